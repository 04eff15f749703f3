// Package server is the kubelet's HTTPS API, as upstream's kubelet serves it on port 10250:
// health, the pods it runs, container logs, and exec, attach and port-forward streams.
//
// Only the API server's kubelet client certificate (CN kube-apiserver-kubelet-client) and admin
// identities (organization system:masters), verified against the cluster CA, may use it.
//
// Streams are accepted from the caller over WebSocket (remotecommand v5/v4 channels, and SPDY
// tunnelled in WebSocket for port-forward) and over SPDY (v4..v2, portforward.k8s.io), and bridged
// to the container runtime's stream server, which the CRI Exec, Attach and PortForward calls
// name and which speaks SPDY.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Identities that may use the API.
const (
	// APIServerClientName is the common name of the API server's kubelet client certificate.
	APIServerClientName = "kube-apiserver-kubelet-client"
	groupMasters        = "system:masters"
)

// Config configures the kubelet's API.
type Config struct {
	// Address is where to listen, host:port (":10250" upstream).
	Address string
	// Certificate is the serving certificate.
	Certificate tls.Certificate
	// ClientCA is the PEM of the CA that signs the clients' certificates (the cluster CA).
	ClientCA []byte
	// Pods returns the pods bound to this node. The objects are shared: never modified.
	Pods func() []*corev1.Pod
	// Runtime is the CRI runtime service the streams and logs come from.
	Runtime runtimeapi.RuntimeServiceClient
	Log     *slog.Logger
}

// Server serves the kubelet's API.
type Server struct {
	cfg     Config
	clients *x509.CertPool
	log     *slog.Logger
}

// New checks cfg and returns the server.
func New(cfg Config) (*Server, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cfg.ClientCA) {
		return nil, errors.New("kubelet server: no client CA certificate")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, clients: pool, log: cfg.Log}, nil
}

// Run listens on cfg.Address and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("kubelet server: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends; it closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler: s.Handler(),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{s.cfg.Certificate},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    s.clients,
			MinVersion:   tls.VersionTLS12,
			// Streams upgrade the connection, which HTTP/2 cannot do.
			NextProtos: []string{"http/1.1"},
		},
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		<-done
		return nil
	case err := <-done:
		return err
	}
}

// Handler is the API behind authentication and authorization, as the routes upstream serves.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /pods", s.servePods)
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.serveContainerLogs)
	mux.HandleFunc("/exec/{namespace}/{pod}/{container}", s.serveExec)
	mux.HandleFunc("/attach/{namespace}/{pod}/{container}", s.serveAttach)
	mux.HandleFunc("/portForward/{namespace}/{pod}", s.servePortForward)
	mux.HandleFunc("POST /run/{namespace}/{pod}/{container}", s.serveRun)
	return s.authenticate(mux)
}

// authenticate admits the API server's client certificate and admins: no certificate is 401,
// another identity 403, as upstream's kubelet with anonymous access off and webhook authorization.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			plainError(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		subject := r.TLS.VerifiedChains[0][0].Subject
		if subject.CommonName != APIServerClientName && !slices.Contains(subject.Organization, groupMasters) {
			plainError(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource(s)=[proxy])", subject.CommonName, verbOf(r)), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func verbOf(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return r.Method
}

func (s *Server) servePods(w http.ResponseWriter, _ *http.Request) {
	list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
	for _, p := range s.cfg.Pods() {
		list.Items = append(list.Items, *p)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&list)
}

// pod finds a pod this kubelet runs.
func (s *Server) pod(namespace, name string) *corev1.Pod {
	for _, p := range s.cfg.Pods() {
		if p.Namespace == namespace && p.Name == name {
			return p
		}
	}
	return nil
}

// errNotFound is a 404 for the caller.
type errNotFound string

func (e errNotFound) Error() string { return string(e) }

// runningContainer is the ID of the pod's running container of the given name.
func (s *Server) runningContainer(ctx context.Context, namespace, podName, container string) (string, error) {
	pod := s.pod(namespace, podName)
	if pod == nil {
		return "", errNotFound("pod does not exist")
	}
	resp, err := s.cfg.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{labelPodUID: string(pod.UID), labelContainerName: container},
	}})
	if err != nil {
		return "", err
	}
	if len(resp.Containers) == 0 {
		return "", errNotFound(fmt.Sprintf("container not found (%q)", container))
	}
	return resp.Containers[0].Id, nil
}

// sandbox is the ID of the pod's ready sandbox.
func (s *Server) sandbox(ctx context.Context, namespace, podName string) (string, error) {
	pod := s.pod(namespace, podName)
	if pod == nil {
		return "", errNotFound("pod does not exist")
	}
	resp, err := s.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
		LabelSelector: map[string]string{labelPodUID: string(pod.UID)},
	}})
	if err != nil {
		return "", err
	}
	if len(resp.Items) == 0 {
		return "", errNotFound(fmt.Sprintf("pod %s/%s has no running sandbox", namespace, podName))
	}
	return resp.Items[0].Id, nil
}

// writeError answers a request that failed before any stream began.
func writeError(w http.ResponseWriter, err error) {
	var nf errNotFound
	switch {
	case errors.As(err, &nf):
		plainError(w, err.Error(), http.StatusNotFound)
	default:
		plainError(w, err.Error(), http.StatusInternalServerError)
	}
}

// Labels the kubelet puts on its containers, upstream's.
const (
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
)

// plainError answers with msg as the whole body, as upstream's kubelet does (no newline added:
// the API server passes the body on as the error's message).
func plainError(w http.ResponseWriter, msg string, code int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg))
}
