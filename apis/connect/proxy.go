package connect

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keelson/keelson/apis/request"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// proxyTarget splits a proxy request: the name ([scheme:]name[:port]) and the path after
// .../proxy. ok is false when the request should be redirected to .../proxy/ first.
func proxyTarget(w http.ResponseWriter, r *http.Request, info request.Info) (scheme, name, port, path string, ok bool) {
	scheme, name, port, valid := splitSchemeNamePort(info.Name)
	if !valid {
		return "", "", "", "", false
	}
	marker := "/" + info.Resource + "/" + info.Name + "/proxy"
	i := strings.Index(r.URL.Path, marker)
	if i < 0 {
		return scheme, name, port, "/", true
	}
	path = r.URL.Path[i+len(marker):]
	if path == "" {
		// Upstream redirects the proxy root to its trailing slash, so relative links resolve.
		u := *r.URL
		u.Path += "/"
		http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
		return "", "", "", "", false
	}
	return scheme, name, port, path, true
}

// splitSchemeNamePort parses [scheme:]name[:port], upstream's proxy naming.
func splitSchemeNamePort(id string) (scheme, name, port string, valid bool) {
	parts := strings.Split(id, ":")
	switch len(parts) {
	case 1:
		name = parts[0]
	case 2:
		name, port = parts[0], parts[1]
	case 3:
		scheme, name, port = parts[0], parts[1], parts[2]
		if scheme != "http" && scheme != "https" {
			return "", "", "", false
		}
	default:
		return "", "", "", false
	}
	return scheme, name, port, name != ""
}

func invalidProxyName(resource, id string) error {
	return apierrors.NewBadRequest(fmt.Sprintf("invalid %s request %q", strings.TrimSuffix(resource, "s"), id))
}

func (h *Handler) serveNodeProxy(w http.ResponseWriter, r *http.Request, info request.Info) error {
	if _, _, _, valid := splitSchemeNamePort(info.Name); !valid {
		return invalidProxyName(info.Resource, info.Name)
	}
	scheme, name, port, path, ok := proxyTarget(w, r, info)
	if !ok {
		return nil
	}
	base, err := h.kubeletURL(name)
	if err != nil {
		return err
	}
	transport := http.RoundTripper(h.kubelet)
	if port != "" && port != base.Port() {
		// Another port on the node: reached directly, over http unless named.
		if scheme == "" {
			scheme = "http"
		}
		base.Host = net.JoinHostPort(base.Hostname(), port)
		base.Scheme = scheme
		transport = h.direct
	} else if scheme != "" {
		base.Scheme = scheme
	}
	base.Path, base.RawQuery = path, r.URL.RawQuery
	h.proxy(w, r, base, transport)
	return nil
}

func (h *Handler) servePodProxy(w http.ResponseWriter, r *http.Request, info request.Info) error {
	_, podName, _, valid := splitSchemeNamePort(info.Name)
	if !valid {
		return invalidProxyName(info.Resource, info.Name)
	}
	pod, err := h.pod(info.Namespace, podName)
	if err != nil {
		return err
	}
	scheme, _, port, path, ok := proxyTarget(w, r, info)
	if !ok {
		return nil
	}
	if port == "" {
		for _, c := range pod.Spec.Containers {
			if len(c.Ports) > 0 {
				port = strconv.Itoa(int(c.Ports[0].ContainerPort))
				break
			}
		}
	}
	ip := net.ParseIP(pod.Status.PodIP)
	if ip == nil || !ip.IsGlobalUnicast() {
		return apierrors.NewBadRequest("address not allowed")
	}
	if scheme == "" {
		scheme = "http"
	}
	host := pod.Status.PodIP
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if ip.To4() == nil {
		host = "[" + host + "]"
	}
	h.proxy(w, r, &url.URL{Scheme: scheme, Host: host, Path: path, RawQuery: r.URL.RawQuery}, h.direct)
	return nil
}

func (h *Handler) serveServiceProxy(w http.ResponseWriter, r *http.Request, info request.Info) error {
	_, svcName, portStr, valid := splitSchemeNamePort(info.Name)
	if !valid {
		return invalidProxyName(info.Resource, info.Name)
	}
	svc, ok := h.objects.CachedObject(servicesResource, info.Namespace, svcName).(*corev1.Service)
	if !ok {
		return apierrors.NewNotFound(servicesResource, svcName)
	}
	// A port number names the service port that has it.
	if n, err := strconv.Atoi(portStr); err == nil {
		found := false
		for _, p := range svc.Spec.Ports {
			if int(p.Port) == n {
				portStr, found = p.Name, true
				break
			}
		}
		if !found {
			return apierrors.NewServiceUnavailable(fmt.Sprintf("no service port %d found for service %q", n, svcName))
		}
	}
	scheme, _, _, path, ok := proxyTarget(w, r, info)
	if !ok {
		return nil
	}
	var candidates []string
	for _, o := range h.objects.CachedIn(endpointSlicesRes, info.Namespace) {
		slice, ok := o.(*discoveryv1.EndpointSlice)
		if !ok || slice.Labels[discoveryv1.LabelServiceName] != svcName {
			continue
		}
		for _, p := range slice.Ports {
			if p.Port == nil || (p.Name != nil && *p.Name != portStr) || (p.Name == nil && portStr != "") {
				continue
			}
			for _, ep := range slice.Endpoints {
				if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
					continue
				}
				for _, addr := range ep.Addresses {
					candidates = append(candidates, net.JoinHostPort(addr, strconv.Itoa(int(*p.Port))))
				}
			}
		}
	}
	if len(candidates) == 0 {
		return apierrors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", info.Name))
	}
	if scheme == "" {
		scheme = "http"
	}
	host := candidates[rand.IntN(len(candidates))]
	h.proxy(w, r, &url.URL{Scheme: scheme, Host: host, Path: path, RawQuery: r.URL.RawQuery}, h.direct)
	return nil
}
