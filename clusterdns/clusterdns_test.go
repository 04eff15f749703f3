package clusterdns_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/keelson/keelson/clusterdns"
	"github.com/keelson/keelson/conformance/cluster"
)

// The suite's cluster, its client, and the address of the cluster DNS started for it.
var (
	testCluster *cluster.Cluster
	client      kubernetes.Interface
	dnsAddr     string
	upstream    *fakeUpstream
)

const ns = "dns-test"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	c, err := cluster.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Stop()
	testCluster, client = c, c.Clientset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := fixtures(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	upstream, err = startUpstream()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer upstream.stop()

	ready := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() {
		done <- clusterdns.Run(ctx, c.Config, clusterdns.Options{
			Listen: "127.0.0.1:0", Upstream: []string{upstream.addr}, Log: log, Ready: ready,
		})
	}()
	select {
	case dnsAddr = <-ready:
	case err := <-done:
		fmt.Fprintln(os.Stderr, "cluster DNS did not start:", err)
		return 1
	}
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "cluster DNS did not stop cleanly:", err)
		return 1
	}
	return code
}

// fixtures creates the Services and EndpointSlices the queries are about.
func fixtures(ctx context.Context) error {
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	services := []*corev1.Service{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
				{Name: "syslog", Port: 514, Protocol: corev1.ProtocolUDP},
			}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "db"},
			Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{
				{Name: "pg", Port: 5432, Protocol: corev1.ProtocolTCP},
			}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "ext"},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.org"},
		},
	}
	for _, s := range services {
		if _, err := client.CoreV1().Services(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "db-1", Labels: map[string]string{
			discoveryv1.LabelServiceName: "db", discoveryv1.LabelManagedBy: "clusterdns-test",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.1.0.1"}, Hostname: ptr.To("db-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.1.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.1.0.3"}, Hostname: ptr.To("db-2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("pg"), Port: ptr.To[int32](5432), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	_, err := client.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{})
	return err
}

// query asks the cluster DNS over net ("udp" or "tcp") for name and type.
func query(t *testing.T, addr, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return r
}

// records renders a section without TTLs (which count down in caches), sorted.
func records(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		h := rr.Header()
		out = append(out, h.Name+" "+dns.TypeToString[h.Rrtype]+" "+strings.TrimPrefix(rr.String(), h.String()))
	}
	sort.Strings(out)
	return out
}

// eventually polls f until it returns nil, failing with its last error after a generous bound.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func serviceIP(t *testing.T, name string) string {
	t.Helper()
	s, err := client.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.Spec.ClusterIP
}

// TestAnswers checks the answers against the Kubernetes DNS specification
// (kubernetes/dns docs/specification.md) as CoreDNS gives them.
func TestAnswers(t *testing.T) {
	web := serviceIP(t, "web")
	webPTR, err := dns.ReverseAddr(web)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		extra  []string
	}{
		{
			name: "ClusterIP service A", qname: "web.dns-test.svc.cluster.local", qtype: dns.TypeA,
			answer: []string{"web.dns-test.svc.cluster.local. A " + web},
		},
		{
			name: "ClusterIP service AAAA of an IPv4 service is empty", qname: "web.dns-test.svc.cluster.local", qtype: dns.TypeAAAA,
		},
		{
			name: "ClusterIP service SRV for a named TCP port", qname: "_http._tcp.web.dns-test.svc.cluster.local", qtype: dns.TypeSRV,
			answer: []string{"_http._tcp.web.dns-test.svc.cluster.local. SRV 0 100 80 web.dns-test.svc.cluster.local."},
			extra:  []string{"web.dns-test.svc.cluster.local. A " + web},
		},
		{
			name: "ClusterIP service SRV for a named UDP port", qname: "_syslog._udp.web.dns-test.svc.cluster.local", qtype: dns.TypeSRV,
			answer: []string{"_syslog._udp.web.dns-test.svc.cluster.local. SRV 0 100 514 web.dns-test.svc.cluster.local."},
			extra:  []string{"web.dns-test.svc.cluster.local. A " + web},
		},
		{
			name: "SRV for a port of the wrong protocol", qname: "_http._udp.web.dns-test.svc.cluster.local", qtype: dns.TypeSRV,
			rcode: dns.RcodeNameError,
		},
		{
			name: "headless service A: one record per ready endpoint", qname: "db.dns-test.svc.cluster.local", qtype: dns.TypeA,
			answer: []string{"db.dns-test.svc.cluster.local. A 10.1.0.1", "db.dns-test.svc.cluster.local. A 10.1.0.2"},
		},
		{
			name: "headless endpoint with a hostname", qname: "db-0.db.dns-test.svc.cluster.local", qtype: dns.TypeA,
			answer: []string{"db-0.db.dns-test.svc.cluster.local. A 10.1.0.1"},
		},
		{
			name: "headless endpoint that is not ready", qname: "db-2.db.dns-test.svc.cluster.local", qtype: dns.TypeA,
			rcode: dns.RcodeNameError,
		},
		{
			name: "headless service SRV: one per ready endpoint, named by hostname or address", qname: "_pg._tcp.db.dns-test.svc.cluster.local", qtype: dns.TypeSRV,
			answer: []string{
				"_pg._tcp.db.dns-test.svc.cluster.local. SRV 0 50 5432 10-1-0-2.db.dns-test.svc.cluster.local.",
				"_pg._tcp.db.dns-test.svc.cluster.local. SRV 0 50 5432 db-0.db.dns-test.svc.cluster.local.",
			},
			extra: []string{"10-1-0-2.db.dns-test.svc.cluster.local. A 10.1.0.2", "db-0.db.dns-test.svc.cluster.local. A 10.1.0.1"},
		},
		{
			name: "ExternalName is a CNAME, its target resolved upstream", qname: "ext.dns-test.svc.cluster.local", qtype: dns.TypeA,
			answer: []string{"example.org. A 192.0.2.80", "ext.dns-test.svc.cluster.local. CNAME example.org."},
		},
		{
			name: "pod record from the name (pods insecure)", qname: "10-244-1-5.dns-test.pod.cluster.local", qtype: dns.TypeA,
			answer: []string{"10-244-1-5.dns-test.pod.cluster.local. A 10.244.1.5"},
		},
		{
			name: "PTR of a service IP", qname: webPTR, qtype: dns.TypePTR,
			answer: []string{webPTR + " PTR web.dns-test.svc.cluster.local."},
		},
		{
			name: "PTR of a headless endpoint with a hostname", qname: "1.0.1.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"1.0.1.10.in-addr.arpa. PTR db-0.db.dns-test.svc.cluster.local."},
		},
		{
			name: "PTR of a headless endpoint without a hostname", qname: "2.0.1.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"2.0.1.10.in-addr.arpa. PTR 10-1-0-2.db.dns-test.svc.cluster.local."},
		},
		{
			name: "the schema version", qname: "dns-version.cluster.local", qtype: dns.TypeTXT,
			answer: []string{`dns-version.cluster.local. TXT "1.1.0"`},
		},
		{
			name: "PTR of another address falls through to the upstream", qname: "1.2.0.192.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"1.2.0.192.in-addr.arpa. PTR upstream.example."},
		},
		{
			name: "missing service", qname: "nope.dns-test.svc.cluster.local", qtype: dns.TypeA,
			rcode: dns.RcodeNameError,
		},
		{
			name: "the kubernetes Service in default", qname: "kubernetes.default.svc.cluster.local", qtype: dns.TypeA,
			answer: []string{"kubernetes.default.svc.cluster.local. A 10.96.0.1"},
		},
		{
			name: "a name outside the cluster domain is forwarded", qname: "example.org", qtype: dns.TypeA,
			answer: []string{"example.org. A 192.0.2.80"},
		},
		{
			name: "an upstream NXDOMAIN is passed on", qname: "missing.example", qtype: dns.TypeA,
			rcode: dns.RcodeNameError,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, network := range []string{"udp", "tcp"} {
				r := query(t, dnsAddr, network, tc.qname, tc.qtype)
				if r.Rcode != tc.rcode {
					t.Fatalf("%s: rcode %s, want %s\n%v", network, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode], r)
				}
				if got := records(r.Answer); !slices.Equal(got, tc.answer) {
					t.Errorf("%s: answer\n%q\nwant\n%q", network, got, tc.answer)
				}
				for _, rr := range r.Answer {
					if h := rr.Header(); (strings.HasSuffix(h.Name, ".cluster.local.") || h.Name == webPTR || strings.HasSuffix(h.Name, ".0.1.10.in-addr.arpa.")) && h.Ttl != clusterdns.TTL {
						t.Errorf("%s: %v has TTL %d, want %d", network, rr, h.Ttl, clusterdns.TTL)
					}
				}
				var extra []dns.RR
				for _, rr := range r.Extra {
					if rr.Header().Rrtype != dns.TypeOPT {
						extra = append(extra, rr)
					}
				}
				if tc.extra != nil {
					if got := records(extra); !slices.Equal(got, tc.extra) {
						t.Errorf("%s: additional\n%q\nwant\n%q", network, got, tc.extra)
					}
				}
			}
		})
	}
}

// TestNegativeAnswersCarryTheSOA checks that names of the cluster domain that do not exist, and
// types a name does not have, are answered with the zone's SOA in the authority section.
func TestNegativeAnswersCarryTheSOA(t *testing.T) {
	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
		rcode int
	}{
		{"NXDOMAIN", "nope.dns-test.svc.cluster.local", dns.TypeA, dns.RcodeNameError},
		{"NXDOMAIN in a namespace that does not exist", "web.nowhere.svc.cluster.local", dns.TypeA, dns.RcodeNameError},
		{"NODATA", "web.dns-test.svc.cluster.local", dns.TypeAAAA, dns.RcodeSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := query(t, dnsAddr, "udp", tc.qname, tc.qtype)
			if r.Rcode != tc.rcode || len(r.Answer) != 0 {
				t.Fatalf("rcode %s with %d answers, want %s with none\n%v", dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[tc.rcode], r)
			}
			if len(r.Ns) != 1 {
				t.Fatalf("authority section %v, want one SOA", r.Ns)
			}
			soa, ok := r.Ns[0].(*dns.SOA)
			if !ok || soa.Hdr.Name != "cluster.local." || soa.Ns != "ns.dns.cluster.local." || soa.Mbox != "hostmaster.cluster.local." {
				t.Fatalf("authority %v, want the SOA of cluster.local.", r.Ns[0])
			}
			if !r.Authoritative {
				t.Errorf("negative answer is not authoritative")
			}
		})
	}
}

// TestNewServiceBecomesResolvable checks that a Service created while DNS runs is answered for.
func TestNewServiceBecomesResolvable(t *testing.T) {
	ctx := context.Background()
	s, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "late"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"late.dns-test.svc.cluster.local. A " + s.Spec.ClusterIP}
	eventually(t, func() error {
		r := query(t, dnsAddr, "udp", "late.dns-test.svc.cluster.local", dns.TypeA)
		if got := records(r.Answer); !slices.Equal(got, want) {
			return fmt.Errorf("answer %q (%s), want %q", got, dns.RcodeToString[r.Rcode], want)
		}
		return nil
	})

	if err := client.CoreV1().Services(ns).Delete(ctx, "late", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		r := query(t, dnsAddr, "udp", "late.dns-test.svc.cluster.local", dns.TypeA)
		if r.Rcode != dns.RcodeNameError {
			return fmt.Errorf("deleted service answered %s %q", dns.RcodeToString[r.Rcode], records(r.Answer))
		}
		return nil
	})
}

// TestRunTwice checks that a second server runs beside the first in the same process and that
// stopping it releases its address and leaves the first one answering.
func TestRunTwice(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- clusterdns.Run(ctx, testCluster.Config, clusterdns.Options{
			Listen: "127.0.0.1:0", Domain: "other.test", Upstream: []string{upstream.addr}, Ready: ready, Metrics: metrics,
		})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	r := query(t, addr, "udp", "web.dns-test.svc.other.test", dns.TypeA)
	if got, want := records(r.Answer), []string{"web.dns-test.svc.other.test. A " + serviceIP(t, "web")}; !slices.Equal(got, want) {
		t.Errorf("second server: %q, want %q", got, want)
	}
	if r := query(t, addr, "udp", "web.dns-test.svc.cluster.local", dns.TypeA); len(r.Answer) != 0 {
		t.Errorf("second server answered for the first one's domain: %v", r)
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "coredns_dns_requests_total{") {
		t.Errorf("metrics on %s lack coredns_dns_requests_total:\n%s", metrics, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, network := range []string{"tcp", "udp"} {
		var err error
		if network == "tcp" {
			var l net.Listener
			if l, err = net.Listen(network, addr); err == nil {
				l.Close()
			}
		} else {
			var p net.PacketConn
			if p, err = net.ListenPacket(network, addr); err == nil {
				p.Close()
			}
		}
		if err != nil {
			t.Errorf("stopped server still holds %s %s: %v", network, addr, err)
		}
	}
	if l, err := net.Listen("tcp", metrics); err != nil {
		t.Errorf("stopped server still holds its metrics address %s: %v", metrics, err)
	} else {
		l.Close()
	}
	if r := query(t, dnsAddr, "udp", "web.dns-test.svc.cluster.local", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("first server stopped answering: %v", r)
	}
}

// fakeUpstream stands in for the host's resolver: it knows example.org and one PTR.
type fakeUpstream struct {
	addr     string
	udp, tcp *dns.Server
}

func startUpstream() (*fakeUpstream, error) {
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 60}
		switch {
		case q.Name == "example.org." && q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP("192.0.2.80")})
		case q.Name == "example.org.":
		case q.Name == "1.2.0.192.in-addr.arpa." && q.Qtype == dns.TypePTR:
			m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr, Ptr: "upstream.example."})
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	var l net.Listener
	var p net.PacketConn
	var err error
	for range 10 {
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		if p, err = net.ListenPacket("udp", l.Addr().String()); err == nil {
			break
		}
		l.Close()
	}
	if err != nil {
		return nil, err
	}
	u := &fakeUpstream{addr: l.Addr().String(), udp: &dns.Server{PacketConn: p, Handler: handler}, tcp: &dns.Server{Listener: l, Handler: handler}}
	go func() { _ = u.udp.ActivateAndServe() }()
	go func() { _ = u.tcp.ActivateAndServe() }()
	return u, nil
}

func (u *fakeUpstream) stop() {
	_ = u.udp.Shutdown()
	_ = u.tcp.Shutdown()
}

// expect tells how the answer of r differs from want.
func expect(r *dns.Msg, want ...string) error {
	if got := records(r.Answer); !slices.Equal(got, want) {
		return fmt.Errorf("answer %q (%s), want %q", got, dns.RcodeToString[r.Rcode], want)
	}
	return nil
}

// TestRunRefuses checks that a server that cannot start says so instead of serving.
func TestRunRefuses(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		opts clusterdns.Options
	}{
		{"a listen address without a port", clusterdns.Options{Listen: "127.0.0.1"}},
		{"a listen address that is a name", clusterdns.Options{Listen: "localhost:0"}},
		{"an address in use", clusterdns.Options{Listen: busy.Addr().String()}},
		{"a domain that is not one", clusterdns.Options{Listen: "127.0.0.1:0", Domain: "a b"}},
		{"an upstream that is a name", clusterdns.Options{Listen: "127.0.0.1:0", Upstream: []string{"dns.example"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if tc.opts.Upstream == nil {
				tc.opts.Upstream = []string{upstream.addr}
			}
			if err := clusterdns.Run(ctx, testCluster.Config, tc.opts); err == nil || ctx.Err() != nil {
				t.Fatalf("Run: %v (context: %v), want an error at once", err, ctx.Err())
			}
		})
	}
	t.Run("no API server configuration", func(t *testing.T) {
		if err := clusterdns.Run(context.Background(), nil, clusterdns.Options{Listen: "127.0.0.1:0"}); err == nil {
			t.Fatal("Run without a configuration did not fail")
		}
	})
}
