// Package metrics holds the API server's Prometheus metrics, under upstream's names and labels, so
// that dashboards and alerts written for kube-apiserver read Keelson unchanged.
package metrics

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keelson/keelson/apis/request"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// latencyBuckets are upstream's request and etcd latency buckets, in seconds.
var latencyBuckets = []float64{0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60}

// Metrics is one server's set of metrics and the registry that exposes them.
type Metrics struct {
	registry        *prometheus.Registry
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	longRunning     *prometheus.GaugeVec
	inflight        *prometheus.GaugeVec
	etcdDuration    *prometheus.HistogramVec
	etcdTotal       *prometheus.CounterVec
}

var requestLabels = []string{"verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"}

// New registers the metrics. objects reports the stored object count per resource, read at scrape
// time for apiserver_resource_objects.
func New(objects func() map[schema.GroupResource]int) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "apiserver_request_total",
			Help: "[STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code."},
			append(append([]string{}, requestLabels...), "code")),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "apiserver_request_duration_seconds",
			Help: "[STABLE] Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.", Buckets: latencyBuckets},
			requestLabels),
		longRunning: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "apiserver_longrunning_requests",
			Help: "[STABLE] Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component. Not all requests are tracked this way."},
			[]string{"verb", "group", "version", "resource", "subresource", "scope", "component"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "apiserver_current_inflight_requests",
			Help: "[STABLE] Maximal number of currently used inflight request limit of this apiserver per request kind in last second."}, []string{"request_kind"}),
		etcdDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "etcd_request_duration_seconds",
			Help: "[ALPHA] Etcd request latency in seconds for each operation and object type.", Buckets: latencyBuckets}, []string{"operation", "group", "resource"}),
		etcdTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "etcd_requests_total",
			Help: "[ALPHA] Etcd request counts for each operation and object type."}, []string{"operation", "group", "resource"}),
	}
	m.registry.MustRegister(m.requests, m.requestDuration, m.longRunning, m.inflight, m.etcdDuration, m.etcdTotal,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&objectsCollector{objects: objects, desc: prometheus.NewDesc("apiserver_resource_objects",
			"[ALPHA] Number of stored objects at the time of last check split by kind. In case of a fetching error, the value will be -1.", []string{"group", "resource"}, nil)})
	return m
}

// objectsCollector reports stored object counts when scraped.
type objectsCollector struct {
	objects func() map[schema.GroupResource]int
	desc    *prometheus.Desc
}

func (c *objectsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *objectsCollector) Collect(ch chan<- prometheus.Metric) {
	for gr, n := range c.objects() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), gr.Group, gr.Resource)
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// ObserveEtcd records one etcd request of a resource.
func (m *Metrics) ObserveEtcd(operation string, gr schema.GroupResource, d time.Duration) {
	m.etcdDuration.WithLabelValues(operation, gr.Group, gr.Resource).Observe(d.Seconds())
	m.etcdTotal.WithLabelValues(operation, gr.Group, gr.Resource).Inc()
}

// Inflight tracks the requests being served, by kind (readOnly, mutating).
func (m *Metrics) Inflight(kind string, delta float64) { m.inflight.WithLabelValues(kind).Add(delta) }

// Wrap records every request that passes through next.
func (m *Metrics) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		begin := time.Now()
		r = request.WithInfo(r)
		labels := requestLabelValues(r)
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		if labels[0] == "WATCH" || labels[0] == "CONNECT" {
			g := m.longRunning.WithLabelValues(labels[0], labels[2], labels[3], labels[4], labels[5], labels[6], labels[7])
			g.Inc()
			defer g.Dec()
		}
		next.ServeHTTP(rec, r)
		m.requests.WithLabelValues(append(labels, strconv.Itoa(rec.code))...).Inc()
		m.requestDuration.WithLabelValues(labels...).Observe(time.Since(begin).Seconds())
	})
}

// requestLabelValues are a request's labels, as upstream names verbs and scopes.
func requestLabelValues(r *http.Request) []string {
	verb := strings.ToUpper(r.Method)
	dryRun := ""
	if v := r.URL.Query()["dryRun"]; len(v) > 0 {
		dryRun = strings.Join(v, ",")
	}
	info, ok := request.From(r)
	if !ok {
		return []string{verb, dryRun, "", "", "", "", "", "apiserver"}
	}
	switch info.Verb {
	case "list":
		verb = "LIST"
	case "watch":
		verb = "WATCH"
	case "patch":
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/apply-patch") {
			verb = "APPLY"
		}
	}
	switch info.Subresource {
	case "exec", "attach", "portforward", "proxy":
		verb = "CONNECT"
	}
	scope := "cluster"
	switch {
	case info.Name != "":
		scope = "resource"
	case info.Namespace != "":
		scope = "namespace"
	}
	return []string{verb, dryRun, info.Group, info.Version, info.Resource, info.Subresource, scope, "apiserver"}
}

// statusRecorder remembers the status code written, passing streaming and hijacking through.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := s.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, http.ErrNotSupported
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
