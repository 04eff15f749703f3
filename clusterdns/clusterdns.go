// Package clusterdns is the node's cluster DNS: CoreDNS, embedded as a library, answering for the
// cluster domain from Services, EndpointSlices and pod names read through the API server, and
// forwarding every other name to the host's resolver. The Corefile is upstream's (kubeadm's
// CoreDNS addon) less the plugins that only make sense in a pod of their own: health, ready,
// reload and loop. There is no loop to detect: the upstreams are the host's, and any of them
// that is this server itself is dropped.
//
// CoreDNS is embedded the way v1.15.0 supports it: the plugin packages are imported for their
// init registration, dnsserver.SetDirectives narrows the (process-wide) plugin order to ours,
// and caddy.Start runs an in-memory Corefile. Importing CoreDNS has process-wide effects beyond
// this package: its kubernetes plugin imports coremain, which defines flags (-conf, -p, -quiet,
// ...) on flag.CommandLine (Keelson parses its own flag sets), and registers client-go's request
// metrics with Prometheus's default registry.
package clusterdns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/miekg/dns"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"

	// The plugins the Corefile uses; each registers itself with caddy in its init.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/metrics"
)

// DefaultDomain is the cluster domain when Options.Domain is empty.
const DefaultDomain = "cluster.local"

// TTL is the time to live of the answers for the cluster domain (upstream's Corefile: ttl 30).
const TTL = 30

// directives are the plugins our Corefile uses, in the order CoreDNS runs them (the order of
// CoreDNS's plugin.cfg): each sees the effects of those after it.
var directives = []string{"bind", "prometheus", "errors", "loadbalance", "cache", "kubernetes", "forward"}

// setDirectives narrows CoreDNS's process-wide directive list to ours, once.
var setDirectives = sync.OnceValue(func() error {
	caddy.Quiet, dnsserver.Quiet = true, true
	return dnsserver.SetDirectives(directives)
})

// startMu serializes caddy startups: caddy's instance list and the directive list are process-wide.
var startMu sync.Mutex

// Options configure the cluster DNS server.
type Options struct {
	// Listen is the address:port to serve DNS on, over UDP and TCP (e.g. "10.254.254.1:53").
	// Port 0 picks a port free for both. An empty host listens on every address; only then
	// does the cluster domain's NS answer name the kube-dns Service (CoreDNS v1.15.0 looks for
	// its own addresses among the interfaces' and leaves NS empty when bound to one).
	Listen string
	// Domain is the cluster domain (default DefaultDomain).
	Domain string
	// Upstream are the resolvers ("ip" or "ip:port") for names outside the cluster domain.
	// Empty means the nameservers of /etc/resolv.conf.
	Upstream []string
	// ResolvConf is read when Upstream is empty (default /etc/resolv.conf).
	ResolvConf string
	// Metrics, if set, is the address:port CoreDNS's Prometheus metrics are served on
	// (upstream serves them on :9153, the kube-dns Service's metrics port).
	Metrics string
	// Log receives the server's own messages (default: discarded). CoreDNS's plugins log
	// through the standard library's log package.
	Log *slog.Logger
	// Ready, if not nil, receives the address DNS is served on (UDP and TCP share it) once
	// the server answers.
	Ready chan<- string
}

// Run serves cluster DNS until ctx ends, reading the cluster through the API server that
// config reaches. It may run several times in one process, one after the other or at once on
// different addresses. Each start sets klog's process-wide logger (CoreDNS's kubernetes plugin
// does, and Run undoes it): the race detector reports that as a race with any goroutine logging
// through klog at that moment, such as the reflectors of a server already running.
func Run(ctx context.Context, config *rest.Config, opts Options) error {
	if err := setDirectives(); err != nil {
		return fmt.Errorf("clusterdns: %w", err)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	domain := strings.TrimSuffix(opts.Domain, ".")
	if domain == "" {
		domain = DefaultDomain
	}
	if _, ok := dns.IsDomainName(domain); !ok || strings.ContainsAny(domain, " \t\n{}#\"") {
		return fmt.Errorf("clusterdns: invalid domain %q", opts.Domain)
	}
	host, port, err := listenAddress(opts.Listen)
	if err != nil {
		return err
	}
	upstreams, err := upstreamsFor(opts, net.JoinHostPort(host, port))
	if err != nil {
		return err
	}
	if len(upstreams) == 0 {
		log.Warn("no upstream resolver: names outside the cluster domain are not resolved")
	}
	if opts.Metrics != "" {
		if _, _, err := net.SplitHostPort(opts.Metrics); err != nil {
			return fmt.Errorf("clusterdns: metrics address: %w", err)
		}
	}

	dir, err := os.MkdirTemp("", "keelson-clusterdns-")
	if err != nil {
		return fmt.Errorf("clusterdns: %w", err)
	}
	defer os.RemoveAll(dir)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(config, kubeconfig); err != nil {
		return err
	}

	corefile := makeCorefile(corefileParams{
		Host: host, Port: port, Domain: domain, Kubeconfig: kubeconfig,
		Upstream: upstreams, Metrics: opts.Metrics,
	})
	log.Debug("starting CoreDNS", "corefile", corefile)
	startMu.Lock()
	instance, err := caddy.Start(caddy.CaddyfileInput{Filepath: "Corefile", Contents: []byte(corefile), ServerTypeName: "dns"})
	// The kubernetes plugin's setup points klog, which is process-wide, at CoreDNS's logger; the
	// process's other components would then log as "plugin/kubernetes". Give klog back its
	// default output (Keelson sets no klog logger of its own).
	klog.ClearLogger()
	startMu.Unlock()
	if err != nil {
		// A failed start may have run startup callbacks (the API watch); undo them.
		if instance != nil {
			err = errors.Join(err, stop(instance))
		}
		return fmt.Errorf("clusterdns: starting CoreDNS: %w", err)
	}
	addr := net.JoinHostPort(host, port)
	log.Info("cluster DNS serving", "address", addr, "domain", domain, "upstream", upstreams)
	if opts.Ready != nil {
		select {
		case opts.Ready <- addr:
		case <-ctx.Done():
		}
	}
	<-ctx.Done()
	return stop(instance)
}

// stop runs the shutdown callbacks (which stop the API watch and the forwarders' health checks),
// closes the listeners and waits for the servers to end.
func stop(instance *caddy.Instance) error {
	err := errors.Join(instance.ShutdownCallbacks()...)
	err = errors.Join(err, instance.Stop())
	instance.Wait()
	if err != nil {
		return fmt.Errorf("clusterdns: stopping CoreDNS: %w", err)
	}
	return nil
}

// corefileParams are what a Corefile is made of.
type corefileParams struct {
	Host, Port string
	Domain     string
	Kubeconfig string
	Upstream   []string
	Metrics    string
}

// makeCorefile is the configuration CoreDNS runs: upstream's (kubeadm's CoreDNS addon Corefile)
// without health, ready, reload and loop, and with the API server reached through a kubeconfig.
func makeCorefile(p corefileParams) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".:%s {\n", p.Port)
	if p.Host != "" {
		fmt.Fprintf(&b, "    bind %s\n", p.Host)
	}
	b.WriteString("    errors\n")
	fmt.Fprintf(&b, "    kubernetes %s in-addr.arpa ip6.arpa {\n", p.Domain)
	fmt.Fprintf(&b, "        kubeconfig %s\n", strconv.Quote(p.Kubeconfig))
	b.WriteString("        pods insecure\n")
	b.WriteString("        fallthrough in-addr.arpa ip6.arpa\n")
	fmt.Fprintf(&b, "        ttl %d\n", TTL)
	b.WriteString("    }\n")
	if p.Metrics != "" {
		fmt.Fprintf(&b, "    prometheus %s\n", p.Metrics)
	}
	if len(p.Upstream) > 0 {
		fmt.Fprintf(&b, "    forward . %s {\n        max_concurrent 1000\n    }\n", strings.Join(p.Upstream, " "))
	}
	fmt.Fprintf(&b, "    cache 30 {\n        disable success %s\n        disable denial %s\n    }\n", p.Domain, p.Domain)
	b.WriteString("    loadbalance\n")
	b.WriteString("}\n")
	return b.String()
}

// listenAddress splits listen into host and port, choosing a port free over both UDP and TCP
// when it is 0 (CoreDNS would otherwise bind each protocol to a different random port).
func listenAddress(listen string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(listen)
	if err != nil {
		return "", "", fmt.Errorf("clusterdns: listen address: %w", err)
	}
	if host != "" && net.ParseIP(host) == nil {
		return "", "", fmt.Errorf("clusterdns: listen address %q: host must be an IP address", listen)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", "", fmt.Errorf("clusterdns: listen address %q: bad port", listen)
	}
	if port != "0" {
		return host, port, nil
	}
	for range 20 {
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return "", "", fmt.Errorf("clusterdns: %w", err)
		}
		p := strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port)
		udp, err := net.ListenPacket("udp", net.JoinHostPort(host, p))
		tcp.Close()
		if err == nil {
			udp.Close()
			return host, p, nil
		}
	}
	return "", "", fmt.Errorf("clusterdns: no port free over both UDP and TCP on %q", host)
}

// upstreamsFor lists the resolvers to forward to as ip:port, without self (which would loop).
func upstreamsFor(opts Options, self string) ([]string, error) {
	var servers []string
	if len(opts.Upstream) > 0 {
		for _, u := range opts.Upstream {
			if _, _, err := net.SplitHostPort(u); err != nil {
				u = net.JoinHostPort(u, "53")
			}
			host, _, _ := net.SplitHostPort(u)
			if net.ParseIP(host) == nil {
				return nil, fmt.Errorf("clusterdns: upstream %q is not an IP address", u)
			}
			servers = append(servers, u)
		}
	} else {
		path := opts.ResolvConf
		if path == "" {
			path = "/etc/resolv.conf"
		}
		rc, err := dns.ClientConfigFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("clusterdns: reading the host's resolvers: %w", err)
		}
		for _, s := range rc.Servers {
			if net.ParseIP(s) != nil {
				servers = append(servers, net.JoinHostPort(s, rc.Port))
			}
		}
	}
	out := servers[:0]
	for _, s := range servers {
		if !sameAddress(s, self) {
			out = append(out, s)
		}
	}
	return out, nil
}

// sameAddress tells whether upstream is the listen address (an unspecified listen host matches
// any upstream on the same port that could be this host: loopback, or unspecified).
func sameAddress(upstream, listen string) bool {
	uh, up, _ := net.SplitHostPort(upstream)
	lh, lp, _ := net.SplitHostPort(listen)
	if up != lp {
		return false
	}
	uip, lip := net.ParseIP(uh), net.ParseIP(lh)
	if lh == "" || lip.IsUnspecified() {
		return uip.IsLoopback() || uip.IsUnspecified()
	}
	return uip.Equal(lip)
}

// writeKubeconfig writes config as a kubeconfig file, readable by its owner only: CoreDNS's
// kubernetes plugin takes its API server connection from a kubeconfig path.
func writeKubeconfig(config *rest.Config, path string) error {
	if config == nil || config.Host == "" {
		return fmt.Errorf("clusterdns: no API server configuration")
	}
	cluster := &clientcmdapi.Cluster{
		Server:                   config.Host,
		CertificateAuthority:     config.CAFile,
		CertificateAuthorityData: config.CAData,
		InsecureSkipTLSVerify:    config.Insecure,
		TLSServerName:            config.ServerName,
	}
	user := &clientcmdapi.AuthInfo{
		ClientCertificate:     config.CertFile,
		ClientCertificateData: config.CertData,
		ClientKey:             config.KeyFile,
		ClientKeyData:         config.KeyData,
		Token:                 config.BearerToken,
		TokenFile:             config.BearerTokenFile,
		Username:              config.Username,
		Password:              config.Password,
		Impersonate:           config.Impersonate.UserName,
		ImpersonateUID:        config.Impersonate.UID,
		ImpersonateGroups:     config.Impersonate.Groups,
		ImpersonateUserExtra:  config.Impersonate.Extra,
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["cluster"] = cluster
	kc.AuthInfos["clusterdns"] = user
	kc.Contexts["clusterdns"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "clusterdns"}
	kc.CurrentContext = "clusterdns"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("clusterdns: writing kubeconfig: %w", err)
	}
	return nil
}
