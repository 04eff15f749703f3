package aggregation

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// Fixed usage the backend reports for every container and node.
var (
	containerCPU    = resource.MustParse("200m")
	containerMemory = resource.MustParse("10Mi")
)

// seenRequest is what the backend saw of one request.
type seenRequest struct {
	Path   string
	User   string
	Groups []string
	// ClientCert is the certificate the front proxy presented, if any.
	ClientCert *x509.Certificate
}

// metricsBackend is an extension API server serving metrics.k8s.io/v1beta1 over HTTPS, with a
// self-signed certificate: discovery, and PodMetrics and NodeMetrics for the cluster's pods and
// nodes with fixed usage.
type metricsBackend struct {
	server *httptest.Server
	client kubernetes.Interface

	mu   sync.Mutex
	seen []seenRequest
}

func startMetricsBackend(client kubernetes.Interface) *metricsBackend {
	return startMetricsBackendWith(client, nil)
}

// startMetricsBackendWith serves with cert, or httptest's self-signed certificate when nil.
func startMetricsBackendWith(client kubernetes.Interface, cert *tls.Certificate) *metricsBackend {
	b := &metricsBackend{client: client}
	b.server = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	// Refused handshakes are expected where the API server must not trust the backend.
	b.server.Config.ErrorLog = log.New(io.Discard, "", 0)
	b.server.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	if cert != nil {
		b.server.TLS.Certificates = []tls.Certificate{*cert}
	}
	b.server.StartTLS()
	return b
}

// servingCert makes a CA and a serving certificate it signs for dnsName, returning the CA's PEM.
func servingCert(dnsName string) (caPEM []byte, cert tls.Certificate, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, cert, err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, cert, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, cert, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dnsName}, DNSNames: []string{dnsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, cert, err
	}
	cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), cert, nil
}

func (b *metricsBackend) Close() { b.server.Close() }

// Port is the backend's port on 127.0.0.1.
func (b *metricsBackend) Port() int32 {
	addr := b.server.Listener.Addr().String()
	port := addr[strings.LastIndex(addr, ":")+1:]
	var n int32
	for _, c := range port {
		n = n*10 + int32(c-'0')
	}
	return n
}

// Seen returns the requests the backend saw for a path.
func (b *metricsBackend) Seen(path string) []seenRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []seenRequest
	for _, s := range b.seen {
		if s.Path == path {
			out = append(out, s)
		}
	}
	return out
}

func (b *metricsBackend) serve(w http.ResponseWriter, r *http.Request) {
	s := seenRequest{Path: r.URL.Path, User: r.Header.Get("X-Remote-User"), Groups: r.Header.Values("X-Remote-Group")}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		s.ClientCert = r.TLS.PeerCertificates[0]
	}
	b.mu.Lock()
	b.seen = append(b.seen, s)
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/apis" && strings.Contains(r.Header.Get("Accept"), "g=apidiscovery.k8s.io"):
		// Aggregated discovery, which names the singular resources the legacy list leaves out.
		doc := &apidiscoveryv2.APIGroupDiscoveryList{Items: []apidiscoveryv2.APIGroupDiscovery{{
			ObjectMeta: metav1.ObjectMeta{Name: "metrics.k8s.io"},
			Versions: []apidiscoveryv2.APIVersionDiscovery{{Version: "v1beta1", Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
				Resources: []apidiscoveryv2.APIResourceDiscovery{
					{Resource: "nodes", SingularResource: "node", Scope: apidiscoveryv2.ScopeCluster,
						ResponseKind: &metav1.GroupVersionKind{Kind: "NodeMetrics"}, Verbs: []string{"get", "list"}},
					{Resource: "pods", SingularResource: "pod", Scope: apidiscoveryv2.ScopeNamespace,
						ResponseKind: &metav1.GroupVersionKind{Kind: "PodMetrics"}, Verbs: []string{"get", "list"}},
				}}},
		}}}
		doc.Kind, doc.APIVersion = "APIGroupDiscoveryList", "apidiscovery.k8s.io/v2"
		body, _ := json.Marshal(doc)
		w.Header().Set("Content-Type", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
		_, _ = w.Write(body)
	case len(parts) == 3 && parts[0] == "apis":
		list := &metav1.APIResourceList{GroupVersion: parts[1] + "/" + parts[2], APIResources: []metav1.APIResource{
			{Name: "nodes", SingularName: "", Namespaced: false, Kind: "NodeMetrics", Verbs: []string{"get", "list"}},
			{Name: "pods", SingularName: "", Namespaced: true, Kind: "PodMetrics", Verbs: []string{"get", "list"}},
		}}
		list.Kind, list.APIVersion = "APIResourceList", "v1"
		writeJSON(w, list)
	case r.URL.Path == "/apis/metrics.k8s.io":
		v := metav1.GroupVersionForDiscovery{GroupVersion: "metrics.k8s.io/v1beta1", Version: "v1beta1"}
		g := &metav1.APIGroup{Name: "metrics.k8s.io", Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v}
		g.Kind, g.APIVersion = "APIGroup", "v1"
		writeJSON(w, g)
	case len(parts) >= 6 && parts[3] == "namespaces" && parts[5] == "pods":
		pods, err := b.client.CoreV1().Pods(parts[4]).List(ctx, metav1.ListOptions{LabelSelector: r.URL.Query().Get("labelSelector")})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if r.URL.Query().Get("watch") == "true" {
			b.watch(w, r, pods.Items)
			return
		}
		list := &metricsv1beta1.PodMetricsList{}
		list.Kind, list.APIVersion = "PodMetricsList", "metrics.k8s.io/v1beta1"
		for _, p := range pods.Items {
			if len(parts) == 7 && p.Name != parts[6] {
				continue
			}
			list.Items = append(list.Items, podMetrics(&p))
		}
		if len(parts) == 7 {
			if len(list.Items) == 0 {
				http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`, http.StatusNotFound)
				return
			}
			m := list.Items[0]
			m.Kind, m.APIVersion = "PodMetrics", "metrics.k8s.io/v1beta1"
			writeJSON(w, &m)
			return
		}
		writeJSON(w, list)
	case len(parts) == 4 && parts[3] == "nodes":
		nodes, err := b.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: r.URL.Query().Get("labelSelector")})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		list := &metricsv1beta1.NodeMetricsList{}
		list.Kind, list.APIVersion = "NodeMetricsList", "metrics.k8s.io/v1beta1"
		for _, n := range nodes.Items {
			list.Items = append(list.Items, metricsv1beta1.NodeMetrics{ObjectMeta: metav1.ObjectMeta{Name: n.Name},
				Timestamp: metav1.Now(), Window: metav1.Duration{Duration: time.Second},
				Usage: corev1.ResourceList{corev1.ResourceCPU: containerCPU, corev1.ResourceMemory: containerMemory}})
		}
		writeJSON(w, list)
	default:
		http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`, http.StatusNotFound)
	}
}

// watch streams an ADDED event per pod, flushed at once, then holds the stream open until the
// client goes (or a minute passes), as a watch does.
func (b *metricsBackend) watch(w http.ResponseWriter, r *http.Request, pods []corev1.Pod) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	for i := range pods {
		m := podMetrics(&pods[i])
		m.Kind, m.APIVersion = "PodMetrics", "metrics.k8s.io/v1beta1"
		body, _ := json.Marshal(map[string]any{"type": "ADDED", "object": m})
		_, _ = w.Write(append(body, '\n'))
	}
	w.(http.Flusher).Flush()
	select {
	case <-r.Context().Done():
	case <-time.After(time.Minute):
	}
}

// podMetrics reports the fixed usage for each container, sampled now over a one-second window
// (so that pods ready for over a second count as ready to the autoscaler).
func podMetrics(p *corev1.Pod) metricsv1beta1.PodMetrics {
	m := metricsv1beta1.PodMetrics{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels},
		Timestamp: metav1.Now(), Window: metav1.Duration{Duration: time.Second}}
	for _, c := range p.Spec.Containers {
		m.Containers = append(m.Containers, metricsv1beta1.ContainerMetrics{Name: c.Name,
			Usage: corev1.ResourceList{corev1.ResourceCPU: containerCPU, corev1.ResourceMemory: containerMemory}})
	}
	return m
}

func writeJSON(w http.ResponseWriter, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
