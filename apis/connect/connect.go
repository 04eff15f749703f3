// Package connect serves the subresources that reach past the API server to a node or a pod:
// pods/log, pods/exec, pods/attach and pods/portforward (through the kubelet's API), nodes/proxy
// (to the kubelet), pods/proxy and services/proxy (to the pod's or an endpoint's address).
//
// Streams (exec, attach, port-forward) are proxied as they come: the connection upgrade is
// passed to the kubelet, which speaks both WebSocket and SPDY, so this side never reads the
// stream protocol.
package connect

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keelson/keelson/apis/request"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// Objects reads the stored objects the handlers need; they are shared and never modified.
type Objects interface {
	CachedObject(gr schema.GroupResource, namespace, name string) runtime.Object
	CachedIn(gr schema.GroupResource, namespace string) []runtime.Object
}

// Handler serves the connect subresources.
type Handler struct {
	objects Objects
	// kubelet reaches kubelets' APIs with the API server's kubelet client certificate. As
	// upstream without --kubelet-certificate-authority, the kubelet's serving certificate is
	// not verified.
	kubelet *http.Transport
	// direct reaches pods and endpoints.
	direct *http.Transport
	log    *slog.Logger
}

// New returns a handler that reads objects from objects and authenticates to kubelets with
// clientCert.
func New(objects Objects, clientCert tls.Certificate, log *slog.Logger) *Handler {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &Handler{
		objects: objects,
		kubelet: &http.Transport{
			DialContext: dialer.DialContext,
			TLSClientConfig: &tls.Config{
				Certificates:       []tls.Certificate{clientCert},
				InsecureSkipVerify: true, //nolint:gosec // upstream's default: kubelets serve self-signed certificates
				MinVersion:         tls.VersionTLS12,
			},
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     90 * time.Second,
		},
		direct: &http.Transport{DialContext: dialer.DialContext, IdleConnTimeout: 90 * time.Second},
		log:    log,
	}
}

var (
	podsResource      = schema.GroupResource{Resource: "pods"}
	nodesResource     = schema.GroupResource{Resource: "nodes"}
	servicesResource  = schema.GroupResource{Resource: "services"}
	endpointSlicesRes = schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}
)

// Serves tells whether the subresource is one of this handler's.
func Serves(resource, subresource string) bool {
	switch resource + "/" + subresource {
	case "pods/log", "pods/exec", "pods/attach", "pods/portforward", "pods/proxy", "nodes/proxy", "services/proxy":
		return true
	}
	return false
}

// ServeHTTP serves one request for a subresource Serves accepts. It returns an error only when
// nothing was written yet, for the caller to answer with.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, info request.Info) error {
	switch info.Resource + "/" + info.Subresource {
	case "pods/log":
		return h.serveLog(w, r, info)
	case "pods/exec":
		opts := &corev1.PodExecOptions{}
		if err := h.decode(r, opts); err != nil {
			return err
		}
		return h.serveStream(w, r, info, "exec", opts.Container, streamQuery(opts.Stdin, opts.Stdout, opts.Stderr, opts.TTY, opts.Command))
	case "pods/attach":
		opts := &corev1.PodAttachOptions{}
		if err := h.decode(r, opts); err != nil {
			return err
		}
		return h.serveStream(w, r, info, "attach", opts.Container, streamQuery(opts.Stdin, opts.Stdout, opts.Stderr, opts.TTY, nil))
	case "pods/portforward":
		opts := &corev1.PodPortForwardOptions{}
		if err := h.decode(r, opts); err != nil {
			return err
		}
		q := url.Values{}
		if len(opts.Ports) > 0 {
			ports := make([]string, len(opts.Ports))
			for i, p := range opts.Ports {
				ports[i] = strconv.Itoa(int(p))
			}
			q.Set(corev1.PortHeader, strings.Join(ports, ","))
		}
		return h.serveStream(w, r, info, "portForward", "", q)
	case "nodes/proxy":
		return h.serveNodeProxy(w, r, info)
	case "pods/proxy":
		return h.servePodProxy(w, r, info)
	case "services/proxy":
		return h.serveServiceProxy(w, r, info)
	}
	return apierrors.NewNotFound(schema.GroupResource{}, "")
}

// decode reads the options from the query, as upstream's generated url.Values conversions do
// (k8s.io/api registers none for these kinds).
func (h *Handler) decode(r *http.Request, into runtime.Object) error {
	q := query{values: r.URL.Query()}
	switch o := into.(type) {
	case *corev1.PodLogOptions:
		o.Container = q.values.Get("container")
		o.Follow, o.Previous, o.Timestamps = q.boolean("follow"), q.boolean("previous"), q.boolean("timestamps")
		o.InsecureSkipTLSVerifyBackend = q.boolean("insecureSkipTLSVerifyBackend")
		o.SinceSeconds, o.TailLines, o.LimitBytes = q.integer("sinceSeconds"), q.integer("tailLines"), q.integer("limitBytes")
		if v := q.values.Get("sinceTime"); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				q.fail(err)
			}
			o.SinceTime = &metav1.Time{Time: t}
		}
		if v, ok := q.values["stream"]; ok && len(v) > 0 {
			stream := v[0]
			o.Stream = &stream
		}
	case *corev1.PodExecOptions:
		o.Container, o.Command = q.values.Get("container"), q.values["command"]
		o.Stdin, o.Stdout, o.Stderr, o.TTY = q.boolean("stdin"), q.boolean("stdout"), q.boolean("stderr"), q.boolean("tty")
	case *corev1.PodAttachOptions:
		o.Container = q.values.Get("container")
		o.Stdin, o.Stdout, o.Stderr, o.TTY = q.boolean("stdin"), q.boolean("stdout"), q.boolean("stderr"), q.boolean("tty")
	case *corev1.PodPortForwardOptions:
		for _, v := range q.values["ports"] {
			for _, p := range strings.Split(v, ",") {
				n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
				if err != nil {
					q.fail(err)
				}
				o.Ports = append(o.Ports, int32(n))
			}
		}
	}
	if q.err != nil {
		return apierrors.NewBadRequest(q.err.Error())
	}
	return nil
}

// query reads typed query parameters, keeping the first error.
type query struct {
	values url.Values
	err    error
}

func (q *query) fail(err error) {
	if q.err == nil {
		q.err = err
	}
}

func (q *query) boolean(name string) bool {
	v := q.values.Get(name)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		q.fail(err)
	}
	return b
}

func (q *query) integer(name string) *int64 {
	v, ok := q.values[name]
	if !ok || len(v) == 0 {
		return nil
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil {
		q.fail(err)
	}
	return &n
}

func (h *Handler) pod(namespace, name string) (*corev1.Pod, error) {
	pod, ok := h.objects.CachedObject(podsResource, namespace, name).(*corev1.Pod)
	if !ok {
		return nil, apierrors.NewNotFound(podsResource, name)
	}
	return pod, nil
}

// kubeletURL is the base URL of the node's kubelet API: its InternalIP and the port it reports.
func (h *Handler) kubeletURL(nodeName string) (*url.URL, error) {
	node, ok := h.objects.CachedObject(nodesResource, "", nodeName).(*corev1.Node)
	if !ok {
		return nil, apierrors.NewNotFound(nodesResource, nodeName)
	}
	host := nodeAddress(node)
	if host == "" {
		return nil, fmt.Errorf("no preferred addresses found; known addresses: %v", node.Status.Addresses)
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port <= 0 {
		port = 10250
	}
	return &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(port))}, nil
}

// nodeAddress is the address the API server reaches the node at, by upstream's preference among
// the addresses that need no name resolution.
func nodeAddress(node *corev1.Node) string {
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == t && a.Address != "" {
				return a.Address
			}
		}
	}
	return ""
}

// containerFor is the container a request names, or the pod's only one, as upstream validates it.
func containerFor(pod *corev1.Pod, container string) (string, error) {
	if container == "" {
		switch len(pod.Spec.Containers) {
		case 1:
			return pod.Spec.Containers[0].Name, nil
		case 0:
			return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s", pod.Name))
		default:
			return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %s", pod.Name, containerNames(pod)))
		}
	}
	for _, n := range containerNames(pod) {
		if n == container {
			return container, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", container, pod.Name))
}

// containerNames are the pod's init, regular and ephemeral containers, in that order.
func containerNames(pod *corev1.Pod) []string {
	var names []string
	for _, c := range pod.Spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		names = append(names, c.Name)
	}
	return names
}

// serveLog streams the container's log from the kubelet.
func (h *Handler) serveLog(w http.ResponseWriter, r *http.Request, info request.Info) error {
	opts := &corev1.PodLogOptions{}
	if err := h.decode(r, opts); err != nil {
		return err
	}
	if errs := validateLogOptions(opts); len(errs) > 0 {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "PodLogOptions"}, info.Name, errs)
	}
	pod, err := h.pod(info.Namespace, info.Name)
	if err != nil {
		return err
	}
	container, err := containerFor(pod, opts.Container)
	if err != nil {
		return err
	}
	if pod.Spec.NodeName == "" {
		// Upstream answers a pod without a node with no content.
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	loc, err := h.kubeletURL(pod.Spec.NodeName)
	if err != nil {
		return err
	}
	q := url.Values{}
	if opts.Follow {
		q.Set("follow", "true")
	}
	if opts.Previous {
		q.Set("previous", "true")
	}
	if opts.Timestamps {
		q.Set("timestamps", "true")
	}
	if opts.SinceSeconds != nil {
		q.Set("sinceSeconds", strconv.FormatInt(*opts.SinceSeconds, 10))
	}
	if opts.SinceTime != nil {
		q.Set("sinceTime", opts.SinceTime.Format(time.RFC3339))
	}
	if opts.TailLines != nil {
		q.Set("tailLines", strconv.FormatInt(*opts.TailLines, 10))
	}
	if opts.LimitBytes != nil {
		q.Set("limitBytes", strconv.FormatInt(*opts.LimitBytes, 10))
	}
	loc.Path = fmt.Sprintf("/containerLogs/%s/%s/%s", pod.Namespace, pod.Name, container)
	loc.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, loc.String(), nil)
	if err != nil {
		return err
	}
	resp, err := h.kubelet.RoundTrip(req)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	defer resp.Body.Close()
	if err := checkResponse(resp, schema.GroupResource{Resource: "pods/log"}, info.Name); err != nil {
		return err
	}
	if wsstream.IsWebSocketRequest(r) {
		// Upstream streams to a WebSocket client one message per read (binary.k8s.io, or
		// base64.binary.k8s.io), pinging it as it goes.
		if err := wsstream.NewReader(resp.Body, true, wsstream.NewDefaultReaderProtocols()).Copy(w, r); err != nil {
			h.log.Debug("streaming a log over WebSocket", "pod", info.Namespace+"/"+info.Name, "err", err)
		}
		return nil
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	if !opts.Follow {
		_, _ = io.Copy(w, resp.Body)
		return nil
	}
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			return nil
		}
	}
}

// checkResponse turns a kubelet's error answer into upstream's Status for it.
func checkResponse(resp *http.Response, gr schema.GroupResource, name string) error {
	if resp.StatusCode >= http.StatusOK && resp.StatusCode <= http.StatusPartialContent {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	text := string(body)
	switch resp.StatusCode {
	case http.StatusInternalServerError:
		return apierrors.NewInternalError(fmt.Errorf("%s", text))
	case http.StatusBadRequest:
		return apierrors.NewBadRequest(text)
	}
	return apierrors.NewGenericServerResponse(resp.StatusCode, "", gr, name, text, 0, false)
}

// validateLogOptions is upstream's validation of PodLogOptions with split streams off.
func validateLogOptions(o *corev1.PodLogOptions) field.ErrorList {
	var errs field.ErrorList
	if o.TailLines != nil && *o.TailLines < 0 {
		errs = append(errs, field.Invalid(field.NewPath("tailLines"), *o.TailLines, validation.IsNegativeErrorMsg))
	}
	if o.LimitBytes != nil && *o.LimitBytes < 1 {
		errs = append(errs, field.Invalid(field.NewPath("limitBytes"), *o.LimitBytes, "must be greater than 0"))
	}
	switch {
	case o.SinceSeconds != nil && o.SinceTime != nil:
		errs = append(errs, field.Forbidden(field.NewPath(""), "at most one of `sinceTime` or `sinceSeconds` may be specified"))
	case o.SinceSeconds != nil && *o.SinceSeconds < 1:
		errs = append(errs, field.Invalid(field.NewPath("sinceSeconds"), *o.SinceSeconds, "must be greater than 0"))
	}
	if o.Stream != nil {
		errs = append(errs, field.Forbidden(field.NewPath("stream"), "may not be specified"))
	}
	return errs
}

func streamQuery(stdin, stdout, stderr, tty bool, command []string) url.Values {
	q := url.Values{}
	for name, on := range map[string]bool{corev1.ExecStdinParam: stdin, corev1.ExecStdoutParam: stdout, corev1.ExecStderrParam: stderr, corev1.ExecTTYParam: tty} {
		if on {
			q.Set(name, "1")
		}
	}
	for _, c := range command {
		q.Add("command", c)
	}
	return q
}

// serveStream proxies an exec, attach or port-forward to the pod's kubelet, upgrade included.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request, info request.Info, kind, container string, q url.Values) error {
	pod, err := h.pod(info.Namespace, info.Name)
	if err != nil {
		return err
	}
	path := fmt.Sprintf("/%s/%s/%s", kind, pod.Namespace, pod.Name)
	if kind != "portForward" {
		if container, err = containerFor(pod, container); err != nil {
			return err
		}
		path += "/" + container
	}
	if pod.Spec.NodeName == "" {
		return apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	loc, err := h.kubeletURL(pod.Spec.NodeName)
	if err != nil {
		return err
	}
	loc.Path, loc.RawQuery = path, q.Encode()
	h.proxy(w, r, loc, h.kubelet)
	return nil
}

// proxy passes the request to target (its path and query replace the request's) and the answer
// back, connection upgrades included. The caller's credentials are not passed on.
func (h *Handler) proxy(w http.ResponseWriter, r *http.Request, target *url.URL, transport http.RoundTripper) {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
			pr.Out.Header.Del("Authorization")
			for k := range pr.Out.Header {
				if strings.HasPrefix(k, "Impersonate-") {
					pr.Out.Header.Del(k)
				}
			}
			pr.SetXForwarded()
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			h.log.Debug("proxying", "url", target.Redacted(), "err", err)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "error trying to reach service: %v", err)
		},
	}
	rp.ServeHTTP(w, r)
}
