// Package apiserver assembles the API server: etcd, the stores and caches, PKI, the HTTPS listener
// and the request chain, in the order a request runs through it:
//
//	panic recovery → authentication → health, version and discovery → resource REST handlers.
package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/keelson/keelson/apis/admission/noderestriction"
	"github.com/keelson/keelson/apis/admission/priority"
	saadmission "github.com/keelson/keelson/apis/admission/serviceaccount"
	"github.com/keelson/keelson/apis/aggregator"
	"github.com/keelson/keelson/apis/authn"
	"github.com/keelson/keelson/apis/catalogue"
	"github.com/keelson/keelson/apis/connect"
	"github.com/keelson/keelson/apis/discovery"
	"github.com/keelson/keelson/apis/metrics"
	"github.com/keelson/keelson/apis/openapi"
	"github.com/keelson/keelson/apis/rest"
	"github.com/keelson/keelson/apis/scheme"
	"github.com/keelson/keelson/apis/serviceaccount"
	"github.com/keelson/keelson/apis/services"
	"github.com/keelson/keelson/apis/strategy"
	"github.com/keelson/keelson/pki"
	"github.com/keelson/keelson/registry/etcd"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
)

// Options configure the API server.
type Options struct {
	// DataDir holds etcd's data (when embedded), the PKI and the admin kubeconfig.
	DataDir string
	// BindAddress and Port are where HTTPS is served.
	BindAddress string
	Port        int
	// AdvertiseAddress is the address other members reach this server at; empty picks the
	// host's first global IPv4 address.
	AdvertiseAddress string
	// EtcdServers names an external etcd cluster; empty runs etcd embedded.
	EtcdServers []string
	// ServiceCIDR is the range cluster IPs come from.
	ServiceCIDR string
	// CompactionInterval is how often etcd history is compacted.
	CompactionInterval time.Duration
	// MaxRequestsInFlight and MaxMutatingRequestsInFlight bound concurrent requests (0: no limit).
	MaxRequestsInFlight, MaxMutatingRequestsInFlight int
	Log                                              *slog.Logger
}

// Server is a running API server.
type Server struct {
	opts      Options
	log       *slog.Logger
	backend   *etcd.Backend
	api       *rest.API
	discovery *discovery.Server
	// aggregator proxies the group/versions of APIServices that name a Service.
	aggregator *aggregator.Aggregator
	// frontProxy is the CA of the front-proxy client certificate the aggregator presents.
	frontProxy *pki.Bundle
	authn      *authn.Authenticator
	bundle     *pki.Bundle
	alloc      *services.Allocators
	catalogue  *catalogue.Catalogue
	openapi    http.Handler
	metrics    *metrics.Metrics
	ready      readiness

	// KubeconfigPath is the admin kubeconfig written at start.
	KubeconfigPath string
	// URL is where clients reach the server.
	URL string
}

// readiness records the named checks /readyz reports.
type readiness struct {
	mu     sync.Mutex // guards checks
	checks map[string]bool
}

func (r *readiness) set(name string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checks == nil {
		r.checks = map[string]bool{}
	}
	r.checks[name] = ok
}

func (r *readiness) snapshot() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]bool, len(r.checks))
	for k, v := range r.checks {
		out[k] = v
	}
	return out
}

// Run starts the API server and blocks until ctx is done. started, if not nil, receives the
// server once it is ready to serve.
func Run(ctx context.Context, opts Options, started chan<- *Server) error {
	begin := time.Now()
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.ServiceCIDR == "" {
		opts.ServiceCIDR = "10.96.0.0/12"
	}
	if opts.CompactionInterval == 0 {
		opts.CompactionInterval = 5 * time.Minute
	}
	if opts.AdvertiseAddress == "" {
		opts.AdvertiseAddress = hostAddress()
	}
	s := &Server{opts: opts, log: opts.Log}
	s.metrics = metrics.New(func() map[schema.GroupResource]int {
		if s.api == nil {
			return nil
		}
		return s.api.ObjectCounts()
	})
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return err
	}
	// Listen first, so that a port in use fails the start at once.
	ln, err := net.Listen("tcp", net.JoinHostPort(opts.BindAddress, strconv.Itoa(opts.Port)))
	if err != nil {
		return fmt.Errorf("apiserver: listen: %w", err)
	}
	defer ln.Close()
	sch, err := scheme.New()
	if err != nil {
		return err
	}
	cat := catalogue.New(catalogue.Builtin())
	s.catalogue = cat
	// The OpenAPI documents take a while to build: do it while etcd starts.
	type built struct {
		docs *openapi.Documents
		err  error
	}
	openapiDone := make(chan built, 1)
	go func() {
		docs, err := openapi.Build(cat, sch, GitVersion)
		openapiDone <- built{docs, err}
	}()
	s.bundle, err = pki.Load(filepath.Join(opts.DataDir, "pki"))
	if err != nil {
		return err
	}
	// The front-proxy CA is separate from the cluster CA, as upstream's --requestheader-client-ca-file.
	s.frontProxy, err = pki.Load(filepath.Join(opts.DataDir, "pki", "front-proxy"))
	if err != nil {
		return err
	}
	proxyCertPath, proxyKeyPath, err := s.frontProxy.ClientPair(frontProxyClient, frontProxyClient, nil)
	if err != nil {
		return err
	}
	proxyCert, err := tls.LoadX509KeyPair(proxyCertPath, proxyKeyPath)
	if err != nil {
		return err
	}
	if len(opts.EtcdServers) > 0 {
		s.backend, err = etcd.Connect(ctx, opts.EtcdServers)
	} else {
		s.backend, err = etcd.StartEmbedded(ctx, filepath.Join(opts.DataDir, "etcd"))
	}
	if err != nil {
		return err
	}
	defer s.backend.Close()

	tokens, err := serviceaccount.LoadIssuer(filepath.Join(s.bundle.Dir, pki.ServiceAcctKey))
	if err != nil {
		return err
	}
	b := <-openapiDone
	if b.err != nil {
		return b.err
	}
	docs := b.docs
	if s.openapi, err = openapi.Handler(docs); err != nil {
		return err
	}
	typeConverter, err := managedfields.NewTypeConverter(docs.Schemas, false)
	if err != nil {
		return fmt.Errorf("apiserver: type converter: %w", err)
	}
	s.api, err = rest.New(rest.Config{Catalogue: cat, Scheme: sch, Etcd: s.backend.Client, Log: opts.Log, Tokens: tokens, TypeConverter: typeConverter,
		ObserveEtcd: s.metrics.ObserveEtcd})
	if err != nil {
		return err
	}
	s.authn = authn.New(s.bundle.Pool, &authn.BootstrapTokens{Secrets: s.api.Secret, Next: s.api})
	alloc, err := services.NewAllocators(s.api, opts.ServiceCIDR)
	if err != nil {
		return err
	}
	s.api.SetHooks(schema.GroupResource{Resource: "services"}, alloc.Hooks())
	s.api.SetHooks(schema.GroupResource{Resource: "pods"}, rest.Hooks{BeforeCreate: rest.Chain(
		noderestriction.BeforeCreatePod, saadmission.New(s.api).BeforeCreate, priority.New(s.api).BeforeCreate)})
	s.api.SetHooks(schema.GroupResource{Resource: "nodes"}, rest.Hooks{BeforeCreate: noderestriction.BeforeCreateNode})
	s.api.SetHooks(schema.GroupResource{Group: "certificates.k8s.io", Resource: "certificatesigningrequests"}, rest.Hooks{BeforeCreate: strategy.CSRRequester})
	s.alloc = alloc
	kubeletCert, kubeletKey, err := s.bundle.ClientPair(kubeletClient, kubeletClientName, []string{kubeletClientGroup})
	if err != nil {
		return err
	}
	kubeletPair, err := tls.LoadX509KeyPair(kubeletCert, kubeletKey)
	if err != nil {
		return err
	}
	s.api.SetConnect(connect.New(s.api, kubeletPair, opts.Log))
	s.discovery = discovery.New(cat, sch, net.JoinHostPort(opts.AdvertiseAddress, strconv.Itoa(opts.Port)))
	s.aggregator = aggregator.New(s.api, proxyCert, opts.Log)
	s.discovery.ExtraGroups, s.discovery.ExtraDiscovery = s.aggregator.Groups, s.aggregator.DiscoveryGroups

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.api.Run(ctx) })
	wg.Go(func() { etcd.RunCompactor(ctx, s.backend.Client, opts.CompactionInterval, opts.Log) })
	if err := s.api.WaitReady(ctx); err != nil {
		return err
	}
	s.ready.set("etcd", true)
	s.ready.set("informer-sync", true)

	hosts, ips := servingNames(opts.AdvertiseAddress, net.IP(alloc.IPs.Nth(1).AsSlice()))
	serving, err := s.bundle.ServingPair(hosts, ips)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: s.handler(),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{serving},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    s.bundle.Pool,
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"h2", "http/1.1"},
		},
		ReadHeaderTimeout: 30 * time.Second,
		// Requests end with the server: long watches see their context close at shutdown.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(opts.Log.Handler(), slog.LevelDebug),
	}
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- srv.ServeTLS(ln, "", "") })
	defer func() {
		shutdown, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancelShutdown()
		_ = srv.Shutdown(shutdown)
	}()
	s.URL = "https://" + net.JoinHostPort(loopbackHost(opts.BindAddress), strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))

	s.KubeconfigPath = filepath.Join(opts.DataDir, "admin.kubeconfig")
	if err := s.writeAdminKubeconfig(s.KubeconfigPath); err != nil {
		return err
	}
	if err := s.bootstrap(ctx); err != nil {
		return fmt.Errorf("apiserver: bootstrap: %w", err)
	}
	s.ready.set("bootstrap-controller", true)
	wg.Go(func() { s.keepKubernetesService(ctx) })
	statusClient, err := s.loopbackClient()
	if err != nil {
		return err
	}
	wg.Go(func() { s.aggregator.RunStatus(ctx, statusClient.CoreV1().RESTClient()) })
	opts.Log.Info("API server ready", "url", s.URL, "took", time.Since(begin).Round(time.Millisecond))
	if started != nil {
		started <- s
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

func loopbackHost(bind string) string {
	if bind == "" || bind == "0.0.0.0" || bind == "::" {
		return "127.0.0.1"
	}
	return bind
}

// hostAddress is the host's first global IPv4 address, or 127.0.0.1 when it has none.
func hostAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// servingNames are the names and addresses the serving certificate covers: loopback, the
// host's addresses and the kubernetes Service's cluster IP and DNS names.
func servingNames(advertise string, serviceIP net.IP) ([]string, []net.IP) {
	hosts := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	ips := []net.IP{net.ParseIP("127.0.0.1"), serviceIP}
	if ip := net.ParseIP(advertise); ip != nil {
		ips = append(ips, ip)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
				ips = append(ips, n.IP)
			}
		}
	}
	return hosts, ips
}
