package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// env is one test's API namespace and running proxy.
type env struct {
	t      *testing.T
	client kubernetes.Interface
	ns     string
	table  string
	nft    knftables.Interface
	cancel context.CancelFunc
	done   chan error

	mu    sync.Mutex
	syncs []SyncStats
}

// newEnv starts a proxy with a table of its own, against the test cluster, and a
// namespace for the test's Services.
func newEnv(t *testing.T) *env {
	t.Helper()
	c := startCluster(t)
	e := &env{t: t, client: c.Clientset(), table: "kpt-" + utilrand.String(6)}
	ctx := context.Background()
	ns, err := e.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "proxy-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.ns = ns.Name
	t.Cleanup(func() {
		_ = e.client.CoreV1().Namespaces().Delete(context.Background(), e.ns, metav1.DeleteOptions{})
	})
	if e.nft, err = knftables.New(knftables.IPv4Family, e.table); err != nil {
		t.Fatal(err)
	}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *env) start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	opts := Options{
		NodeName:      nodeName,
		NodeIPs:       []net.IP{net.ParseIP(nodeIP)},
		ClusterCIDR:   clusterCIDR,
		ServiceCIDR:   serviceCIDR,
		TableName:     e.table,
		Log:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		MinSyncPeriod: -1,
		CleanupOnExit: true,
		OnSync: func(st SyncStats) {
			e.mu.Lock()
			e.syncs = append(e.syncs, st)
			e.mu.Unlock()
		},
	}
	go func() { e.done <- Run(ctx, e.client, opts) }()
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Errorf("proxy: %v", err)
	}
	e.cancel = nil
}

func (e *env) stats() []SyncStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]SyncStats(nil), e.syncs...)
}

type epSpec struct {
	ip          string
	node        string // "" for this node
	ready       bool
	serving     bool
	terminating bool
}

func ready(ip string) epSpec { return epSpec{ip: ip, ready: true, serving: true} }

// service creates a Service (mutate adjusts it) and, when eps is not nil, its slice.
func (e *env) service(name string, mutate func(*corev1.Service), eps []epSpec) *corev1.Service {
	e.t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
	if mutate != nil {
		mutate(svc)
	}
	svc, err := e.client.CoreV1().Services(e.ns).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if eps != nil {
		e.slice(name, eps, false)
	}
	return svc
}

// slice creates (or, with update, replaces) the Service's EndpointSlice.
func (e *env) slice(service string, eps []epSpec, update bool) {
	e.t.Helper()
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: service + "-1", Labels: map[string]string{
			discoveryv1.LabelServiceName: service, discoveryv1.LabelManagedBy: "proxy-test"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
	}
	for _, ep := range eps {
		node := ep.node
		if node == "" {
			node = nodeName
		}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{ep.ip},
			NodeName:  ptr.To(node),
			Conditions: discoveryv1.EndpointConditions{
				Ready: ptr.To(ep.ready), Serving: ptr.To(ep.serving), Terminating: ptr.To(ep.terminating)},
		})
	}
	var err error
	if update {
		old, gerr := e.client.DiscoveryV1().EndpointSlices(e.ns).Get(context.Background(), s.Name, metav1.GetOptions{})
		if gerr != nil {
			e.t.Fatal(gerr)
		}
		s.ResourceVersion = old.ResourceVersion
		_, err = e.client.DiscoveryV1().EndpointSlices(e.ns).Update(context.Background(), s, metav1.UpdateOptions{})
	} else {
		_, err = e.client.DiscoveryV1().EndpointSlices(e.ns).Create(context.Background(), s, metav1.CreateOptions{})
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// eventually retries f until it succeeds, failing the test after a minute.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

func url(ip string, port int32) string {
	return "http://" + net.JoinHostPort(ip, strconv.Itoa(int(port))) + "/"
}

// backend fetches url and returns which endpoint answered and the client address it saw.
func backend(fetch func(string) (string, error), url string) (ep, peer string, err error) {
	body, err := fetch(url)
	if err != nil {
		return "", "", err
	}
	ep, peer, ok := strings.Cut(body, " ")
	if !ok {
		return "", "", fmt.Errorf("unexpected answer %q", body)
	}
	return ep, peer, nil
}

// backends fetches url n times and counts the answering endpoints.
func backends(t *testing.T, fetch func(string) (string, error), url string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		ep, _, err := backend(fetch, url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		seen[ep]++
	}
	return seen
}

// waitFor waits until url is answered by one of want.
func waitFor(t *testing.T, fetch func(string) (string, error), url string, want ...string) {
	t.Helper()
	eventually(t, "reaching "+url, func() error {
		ep, _, err := backend(fetch, url)
		if err != nil {
			return err
		}
		for _, w := range want {
			if ep == w {
				return nil
			}
		}
		return fmt.Errorf("answered by %s, want one of %v", ep, want)
	})
}

// refused reports nil when a TCP connection to addr is refused.
func refused(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err == nil {
		c.Close()
		return errors.New("connection accepted")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("want connection refused, got %v", err)
	}
	return nil
}

func TestClusterIPAndNodePortReachEndpoints(t *testing.T) {
	e := newEnv(t)
	svc := e.service("web", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort },
		[]epSpec{ready(endpointIPs[0]), ready(endpointIPs[1])})
	cip := url(svc.Spec.ClusterIP, 80)
	np := url(nodeIP, svc.Spec.Ports[0].NodePort)

	waitFor(t, get, cip, endpointIPs[0], endpointIPs[1])
	if seen := backends(t, get, cip, 40); len(seen) != 2 {
		t.Errorf("ClusterIP: 40 connections reached %v, want both endpoints", seen)
	}
	waitFor(t, get, np, endpointIPs[0], endpointIPs[1])
	if seen := backends(t, get, np, 40); len(seen) != 2 {
		t.Errorf("NodePort: 40 connections reached %v, want both endpoints", seen)
	}
	// Upstream's nftables mode does not serve NodePorts on localhost.
	if err := refused(net.JoinHostPort("127.0.0.1", strconv.Itoa(int(svc.Spec.Ports[0].NodePort)))); err != nil {
		t.Errorf("NodePort on localhost: %v", err)
	}

	// From a pod: the client address is kept (no masquerade inside the pod network).
	pod := newPeerNetns(t, "pod", "10.244.9.1", "10.244.9.5", 24)
	ep, peer, err := backend(pod.get, cip)
	if err != nil {
		t.Fatal(err)
	}
	if peer != pod.ip {
		t.Errorf("pod → ClusterIP reached %s seeing client %s, want the pod's address %s", ep, peer, pod.ip)
	}
	// From outside to a NodePort (externalTrafficPolicy Cluster) whose endpoint is a pod:
	// masqueraded, so that the reply comes back through this node.
	pod.serve(t, "10.244.9.5:8080")
	podSvc := e.service("webpod", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }, []epSpec{ready(pod.ip)})
	ext := newPeerNetns(t, "ext", "192.0.2.1", "192.0.2.5", 24)
	podNP := url(nodeIP, podSvc.Spec.Ports[0].NodePort)
	waitFor(t, ext.get, podNP, pod.ip)
	if _, peer, err := backend(ext.get, podNP); err != nil {
		t.Fatal(err)
	} else if peer != "10.244.9.1" {
		t.Errorf("external → NodePort → pod: the pod saw client %s, want the node's address on its link 10.244.9.1", peer)
	}
}

func TestServiceWithoutEndpointsRejects(t *testing.T) {
	e := newEnv(t)
	svc := e.service("empty", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }, nil)
	np := strconv.Itoa(int(svc.Spec.Ports[0].NodePort))
	eventually(t, "ClusterIP without endpoints", func() error { return refused(net.JoinHostPort(svc.Spec.ClusterIP, "80")) })
	eventually(t, "NodePort without endpoints", func() error { return refused(net.JoinHostPort(nodeIP, np)) })
	// An endpoint that is neither ready nor terminating is not usable either.
	e.slice("empty", []epSpec{{ip: endpointIPs[0]}}, false)
	if err := refused(net.JoinHostPort(svc.Spec.ClusterIP, "80")); err != nil {
		t.Error(err)
	}
	// Once an endpoint is ready the Service answers, and a port it does not have rejects.
	e.slice("empty", []epSpec{ready(endpointIPs[0])}, true)
	waitFor(t, get, url(svc.Spec.ClusterIP, 80), endpointIPs[0])
	if err := refused(net.JoinHostPort(svc.Spec.ClusterIP, "81")); err != nil {
		t.Errorf("unknown port of a ClusterIP: %v", err)
	}
}

func TestSessionAffinitySticks(t *testing.T) {
	e := newEnv(t)
	svc := e.service("sticky", func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](600)}}
	}, []epSpec{ready(endpointIPs[0]), ready(endpointIPs[1]), ready(endpointIPs[2])})
	u := url(svc.Spec.ClusterIP, 80)
	waitFor(t, get, u, endpointIPs[:3]...)
	if seen := backends(t, get, u, 30); len(seen) != 1 {
		t.Errorf("30 connections with ClientIP affinity reached %v, want one endpoint", seen)
	}
	sets, err := e.nft.List(context.Background(), "sets")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range sets {
		if strings.HasPrefix(s, affinitySetPrefix) && strings.Contains(s, "-"+e.ns+"/sticky/") {
			n++
		}
	}
	if n != 3 {
		t.Errorf("affinity sets for the Service: %d, want 3 (one per endpoint) in %v", n, sets)
	}
}

func TestTrafficPolicyLocal(t *testing.T) {
	e := newEnv(t)
	remote := epSpec{ip: endpointIPs[1], node: "other-node", ready: true, serving: true}
	itp := e.service("itp", func(s *corev1.Service) {
		s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
	}, []epSpec{ready(endpointIPs[0]), remote})
	etp := e.service("etp", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}, []epSpec{ready(endpointIPs[2]), {ip: endpointIPs[3], node: "other-node", ready: true, serving: true}})

	u := url(itp.Spec.ClusterIP, 80)
	waitFor(t, get, u, endpointIPs[0])
	if seen := backends(t, get, u, 20); len(seen) != 1 || seen[endpointIPs[0]] != 20 {
		t.Errorf("internalTrafficPolicy Local reached %v, want only the local endpoint %s", seen, endpointIPs[0])
	}

	ext := newPeerNetns(t, "ext", "192.0.2.1", "192.0.2.5", 24)
	np := url(nodeIP, etp.Spec.Ports[0].NodePort)
	waitFor(t, ext.get, np, endpointIPs[2])
	for range 20 {
		ep, peer, err := backend(ext.get, np)
		if err != nil {
			t.Fatal(err)
		}
		if ep != endpointIPs[2] || peer != ext.ip {
			t.Fatalf("externalTrafficPolicy Local: reached %s seeing client %s, want the local endpoint %s seeing %s",
				ep, peer, endpointIPs[2], ext.ip)
		}
	}
	// The node itself is short-circuited to every endpoint, as upstream does.
	if seen := backends(t, get, np, 40); len(seen) != 2 {
		t.Errorf("node → its own NodePort with externalTrafficPolicy Local reached %v, want both endpoints", seen)
	}
}

func TestTerminatingEndpointsServeWhenNoneIsReady(t *testing.T) {
	e := newEnv(t)
	terminating := epSpec{ip: endpointIPs[1], serving: true, terminating: true}
	svc := e.service("term", nil, []epSpec{ready(endpointIPs[0]), terminating})
	u := url(svc.Spec.ClusterIP, 80)
	waitFor(t, get, u, endpointIPs[0])
	if seen := backends(t, get, u, 20); seen[endpointIPs[1]] != 0 {
		t.Errorf("a terminating endpoint was used while a ready one exists: %v", seen)
	}
	e.slice("term", []epSpec{{ip: endpointIPs[0]}, terminating}, true)
	waitFor(t, get, u, endpointIPs[1])
}

func TestExternalAndLoadBalancerIPs(t *testing.T) {
	e := newEnv(t)
	svc := e.service("lb", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.ExternalIPs = []string{"10.123.200.1"}
	}, []epSpec{ready(endpointIPs[0])})
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "10.123.201.1"}}
	if _, err := e.client.CoreV1().Services(e.ns).UpdateStatus(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ext := newPeerNetns(t, "ext", "192.0.2.1", "192.0.2.5", 24)
	for _, ip := range []string{"10.123.200.1", "10.123.201.1"} {
		waitFor(t, get, url(ip, 80), endpointIPs[0])
		waitFor(t, ext.get, url(ip, 80), endpointIPs[0])
	}
}

func TestHairpinIsMasqueraded(t *testing.T) {
	e := newEnv(t)
	pod := newPeerNetns(t, "pod", "10.244.9.1", "10.244.9.5", 24)
	pod.serve(t, "10.244.9.5:8080")
	svc := e.service("self", nil, []epSpec{ready(pod.ip)})
	u := url(svc.Spec.ClusterIP, 80)
	waitFor(t, pod.get, u, pod.ip)
	if _, peer, err := backend(pod.get, u); err != nil {
		t.Fatal(err)
	} else if peer == pod.ip {
		t.Errorf("a pod reaching itself through its Service saw its own address: want it masqueraded")
	}
}

// serviceRules returns the handles of the rules in the chains of Service name, by chain.
func (e *env) serviceRules(name string) map[string][]int {
	e.t.Helper()
	chains, err := e.nft.List(context.Background(), "chains")
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string][]int{}
	for _, c := range chains {
		if !strings.Contains(c, "-"+e.ns+"/"+name+"/") {
			continue
		}
		rules, err := e.nft.ListRules(context.Background(), c)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, r := range rules {
			out[c] = append(out[c], *r.Handle)
		}
	}
	return out
}

func TestChangeRewritesOnlyThatService(t *testing.T) {
	e := newEnv(t)
	a := e.service("a", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }, []epSpec{ready(endpointIPs[0]), ready(endpointIPs[1])})
	b := e.service("b", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }, []epSpec{ready(endpointIPs[2])})
	waitFor(t, get, url(a.Spec.ClusterIP, 80), endpointIPs[0], endpointIPs[1])
	waitFor(t, get, url(b.Spec.ClusterIP, 80), endpointIPs[2])
	beforeA, beforeB := e.serviceRules("a"), e.serviceRules("b")
	if len(beforeA) == 0 || len(beforeB) == 0 {
		t.Fatalf("no chains found for the Services: a %v, b %v", beforeA, beforeB)
	}
	synced := len(e.stats())

	e.slice("a", []epSpec{ready(endpointIPs[3])}, true)
	waitFor(t, get, url(a.Spec.ClusterIP, 80), endpointIPs[3])
	afterA, afterB := e.serviceRules("a"), e.serviceRules("b")
	if fmt.Sprint(afterB) != fmt.Sprint(beforeB) {
		t.Errorf("Service b's rules were rewritten by a change to a: %v, then %v", beforeB, afterB)
	}
	for c, handles := range afterA {
		if old, ok := beforeA[c]; ok && fmt.Sprint(old) == fmt.Sprint(handles) {
			t.Errorf("Service a's chain %s was not rewritten (rule handles %v)", c, handles)
		}
	}
	// The change went through a partial sync. (How many Services each one wrote is not
	// checked: namespaces of earlier tests may be going away at the same time.)
	partial := false
	for _, st := range e.stats()[synced:] {
		partial = partial || (st.Err == nil && !st.Full && st.ServicesWritten >= 1)
	}
	if !partial {
		t.Errorf("no partial sync after a Service changed: %+v", e.stats()[synced:])
	}

	// Deleting a Service removes its chains and map elements, and its ClusterIP is
	// dropped (it is unallocated) rather than sent anywhere.
	if err := e.client.CoreV1().Services(e.ns).Delete(context.Background(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Service a's rules to go", func() error {
		if left := e.serviceRules("a"); len(left) > 0 {
			return fmt.Errorf("chains left: %v", left)
		}
		for _, m := range []struct{ typ, name string }{{"set", clusterIPsSet}, {"map", serviceIPsMap}, {"map", serviceNodePortsMap}} {
			elems, err := e.nft.ListElements(context.Background(), m.typ, m.name)
			if err != nil {
				return err
			}
			for _, el := range elems {
				if el.Key[0] == a.Spec.ClusterIP || (m.name == serviceNodePortsMap && el.Key[1] == strconv.Itoa(int(a.Spec.Ports[0].NodePort))) {
					return fmt.Errorf("%s still has %v", m.name, el.Key)
				}
			}
		}
		return nil
	})
	waitFor(t, get, url(b.Spec.ClusterIP, 80), endpointIPs[2])
}

func TestStopWithCleanupRemovesTable(t *testing.T) {
	e := newEnv(t)
	svc := e.service("c", nil, []epSpec{ready(endpointIPs[0])})
	waitFor(t, get, url(svc.Spec.ClusterIP, 80), endpointIPs[0])
	e.stop()
	if out, err := exec.Command("nft", "list", "table", "ip", e.table).CombinedOutput(); err == nil {
		t.Errorf("table %s is still there after the proxy stopped:\n%s", e.table, out)
	}
	if len(e.stats()) == 0 || !e.stats()[0].Full {
		t.Errorf("first sync was not a full one: %+v", e.stats())
	}
}

// TestIPv6 programs an ip6 table from Services held in memory (the test cluster's service
// range is IPv4 only) and reaches an IPv6 endpoint through its ClusterIP and NodePort.
func TestIPv6(t *testing.T) {
	setupNetwork(t)
	const epIP, node6, clusterIP = "fd00:123::1", "fd00:255::1", "fd00:96::10"
	for _, c := range [][]string{
		{"ip", "-6", "addr", "add", epIP + "/128", "dev", "lo", "nodad"},
		{"ip", "-6", "addr", "add", node6 + "/64", "dev", "kp0", "nodad"},
		{"ip", "-6", "route", "add", "default", "dev", "kp0"},
	} {
		if err := run(c...); err != nil {
			t.Fatal(err)
		}
	}
	addr := net.JoinHostPort(epIP, "8080")
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { _ = http.Serve(l, answer(addr)) }()

	table := "kpt6-" + utilrand.String(6)
	nft, err := knftables.New(knftables.IPv6Family, table)
	if err != nil {
		t.Fatal(err)
	}
	r := renderer{fam: family{ipv6: true}, nodeName: nodeName, clusterCIDRs: []string{"fd00:244::/56"}, nodeIPs: []string{node6}}
	p := newProxier(nft, table, slog.New(slog.DiscardHandler), r, []string{"fd00:96::/108"})
	defer func() {
		if err := p.cleanup(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	src := newMemorySource()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "v6", Name: "web"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeNodePort, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, NodePort: 31080}},
		},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "v6", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv6,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{epIP}, NodeName: ptr.To(nodeName)}},
	}
	src.add(svc, slice)
	if st := p.sync(context.Background(), src, nil, true); st.Err != nil {
		t.Fatal(st.Err)
	}
	for _, u := range []string{url(clusterIP, 80), url(node6, 31080)} {
		waitFor(t, get, u, epIP)
	}
	// Without endpoints: rejected.
	slice.Endpoints = nil
	if st := p.sync(context.Background(), src, map[types.NamespacedName]bool{{Namespace: "v6", Name: "web"}: true}, false); st.Err != nil {
		t.Fatal(st.Err)
	}
	if err := refused(net.JoinHostPort(clusterIP, "80")); err != nil {
		t.Error(err)
	}
}

// udpEcho answers every datagram on addr with the server's address.
func udpEcho(t *testing.T, ip string) {
	t.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "8053"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteTo([]byte(ip), from)
		}
	}()
}

// TestUDPConntrackFollowsEndpoints keeps one client socket talking to a UDP Service while
// its endpoint changes: the proxy clears the conntrack entries that led nowhere (before
// the Service had an endpoint) or to the old endpoint, as upstream does.
func TestUDPConntrackFollowsEndpoints(t *testing.T) {
	e := newEnv(t)
	udpEcho(t, endpointIPs[0])
	udpEcho(t, endpointIPs[1])
	svc := e.service("dns", func(s *corev1.Service) {
		s.Spec.Ports = []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}
	}, nil)
	client, err := net.ListenPacket("udp", net.JoinHostPort(nodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	dst := &net.UDPAddr{IP: net.ParseIP(svc.Spec.ClusterIP), Port: 53}
	ask := func() (string, error) {
		if _, err := client.WriteTo([]byte("?"), dst); err != nil {
			return "", err
		}
		buf := make([]byte, 512)
		_ = client.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _, err := client.ReadFrom(buf)
		return string(buf[:n]), err
	}
	// The first datagrams leave before the Service has an endpoint.
	_, _ = ask()
	udpSlice := func(ip string, update bool) {
		s := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "dns-1", Labels: map[string]string{
				discoveryv1.LabelServiceName: "dns", discoveryv1.LabelManagedBy: "proxy-test"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("dns"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](8053)}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, NodeName: ptr.To(nodeName)}},
		}
		slices := e.client.DiscoveryV1().EndpointSlices(e.ns)
		var err error
		if update {
			old, gerr := slices.Get(context.Background(), s.Name, metav1.GetOptions{})
			if gerr != nil {
				t.Fatal(gerr)
			}
			s.ResourceVersion = old.ResourceVersion
			_, err = slices.Update(context.Background(), s, metav1.UpdateOptions{})
		} else {
			_, err = slices.Create(context.Background(), s, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	answeredBy := func(want string) func() error {
		return func() error {
			got, err := ask()
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("answered by %s, want %s", got, want)
			}
			return nil
		}
	}
	udpSlice(endpointIPs[0], false)
	eventually(t, "the same socket reaching the new endpoint", answeredBy(endpointIPs[0]))
	udpSlice(endpointIPs[1], true)
	eventually(t, "the same socket reaching the replacing endpoint", answeredBy(endpointIPs[1]))
}

// TestPodsOnABridge: pods on one bridge reach each other through a ClusterIP (the reply
// is un-DNATed although it could go straight across the bridge), and a pod reaches itself
// through its own Service (hairpin, masqueraded).
func TestPodsOnABridge(t *testing.T) {
	e := newEnv(t)
	server := newBridgedPod(t, "brs", "10.244.8.10")
	client := newBridgedPod(t, "brc", "10.244.8.11")
	server.serve(t, "10.244.8.10:8080")
	svc := e.service("bridged", nil, []epSpec{ready(server.ip)})
	u := url(svc.Spec.ClusterIP, 80)
	waitFor(t, client.get, u, server.ip)
	if _, peer, err := backend(client.get, u); err != nil {
		t.Fatal(err)
	} else if peer != client.ip {
		t.Errorf("pod → ClusterIP → pod on the same bridge: the server saw %s, want the client pod %s", peer, client.ip)
	}
	if _, peer, err := backend(server.get, u); err != nil {
		t.Fatalf("pod → its own Service: %v", err)
	} else if peer == server.ip {
		t.Errorf("pod → its own Service: it saw its own address, want it masqueraded")
	}
}

func TestLoadBalancerSourceRanges(t *testing.T) {
	e := newEnv(t)
	svc := e.service("fw", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.LoadBalancerSourceRanges = []string{"192.0.2.0/24"}
	}, []epSpec{ready(endpointIPs[0])})
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "10.123.202.1"}}
	svc, err := e.client.CoreV1().Services(e.ns).UpdateStatus(context.Background(), svc, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ext := newPeerNetns(t, "ext", "192.0.2.1", "192.0.2.5", 24)
	u := url("10.123.202.1", 80)
	waitFor(t, ext.get, u, endpointIPs[0])

	svc.Spec.LoadBalancerSourceRanges = []string{"198.51.100.0/24"}
	if _, err := e.client.CoreV1().Services(e.ns).Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a client outside loadBalancerSourceRanges to be turned away", func() error {
		if _, err := ext.get(u); err == nil {
			return errors.New("still answered")
		}
		return nil
	})
	// The ClusterIP is not subject to the source ranges.
	waitFor(t, get, url(svc.Spec.ClusterIP, 80), endpointIPs[0])
}

func TestCategorize(t *testing.T) {
	ep := func(ip string, local, ready, serving, terminating bool, zones ...string) *endpoint {
		return &endpoint{ip: ip, port: 80, local: local, ready: ready, serving: serving, terminating: terminating, zoneHints: zones}
	}
	names := func(eps []*endpoint) string {
		var s []string
		for _, e := range eps {
			s = append(s, e.ip)
		}
		return strings.Join(s, ",")
	}
	cluster := &servicePort{}
	localInternal := &servicePort{internalLocal: true}
	localExternal := &servicePort{externallyAccessible: true, externalLocal: true}
	for _, tc := range []struct {
		name                            string
		sp                              *servicePort
		zone                            string
		eps                             []*endpoint
		wantCluster, wantLocal, wantAll string
		wantAny                         bool
	}{
		{name: "ready endpoints only", sp: cluster,
			eps:         []*endpoint{ep("a", false, true, true, false), ep("b", false, false, true, true), ep("c", false, false, false, false)},
			wantCluster: "a", wantAll: "a", wantAny: true},
		{name: "serving terminating when none is ready", sp: cluster,
			eps:         []*endpoint{ep("b", false, false, true, true), ep("c", false, false, false, true)},
			wantCluster: "b", wantAll: "b", wantAny: true},
		{name: "nothing usable", sp: cluster,
			eps: []*endpoint{ep("c", false, false, false, false)}},
		{name: "internal Local: this node's ready endpoints", sp: localInternal,
			eps:       []*endpoint{ep("a", true, true, true, false), ep("b", false, true, true, false)},
			wantLocal: "a", wantAll: "a", wantAny: true},
		{name: "internal Local: none here, some elsewhere", sp: localInternal,
			eps:     []*endpoint{ep("b", false, true, true, false)},
			wantAny: true},
		{name: "internal Local: this node's terminating ones", sp: localInternal,
			eps:       []*endpoint{ep("a", true, false, true, true), ep("b", false, true, true, false)},
			wantLocal: "a", wantAll: "a", wantAny: true},
		{name: "external Local keeps Cluster endpoints for short-circuits", sp: localExternal,
			eps:         []*endpoint{ep("a", true, true, true, false), ep("b", false, true, true, false)},
			wantCluster: "a,b", wantLocal: "a", wantAll: "a,b", wantAny: true},
		{name: "zone hints narrow the Cluster endpoints", sp: cluster, zone: "z1",
			eps:         []*endpoint{ep("a", false, true, true, false, "z1"), ep("b", false, true, true, false, "z2")},
			wantCluster: "a", wantAll: "a", wantAny: true},
		{name: "zone hints for another zone only are ignored", sp: cluster, zone: "z3",
			eps:         []*endpoint{ep("a", false, true, true, false, "z1"), ep("b", false, true, true, false, "z2")},
			wantCluster: "a,b", wantAll: "a,b", wantAny: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, l, all, any := categorize(tc.eps, tc.sp, nodeName, tc.zone)
			if names(c) != tc.wantCluster || names(l) != tc.wantLocal || names(all) != tc.wantAll || any != tc.wantAny {
				t.Errorf("got cluster %q local %q all %q any %v, want %q %q %q %v",
					names(c), names(l), names(all), any, tc.wantCluster, tc.wantLocal, tc.wantAll, tc.wantAny)
			}
		})
	}
}

// TestSharedElements: an element two Services want (the hairpin entry of an endpoint they
// share) stays until neither wants it.
func TestSharedElements(t *testing.T) {
	setupNetwork(t)
	table := "kpt-" + utilrand.String(6)
	nft, err := knftables.New(knftables.IPv4Family, table)
	if err != nil {
		t.Fatal(err)
	}
	r := renderer{fam: family{}, nodeName: nodeName, clusterCIDRs: []string{clusterCIDR}}
	p := newProxier(nft, table, slog.New(slog.DiscardHandler), r, []string{"198.18.0.0/15"})
	defer func() {
		if err := p.cleanup(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	src := newMemorySource()
	shared := benchSlice(0, 1, 0) // one endpoint on this node
	shared.Endpoints[0].NodeName = ptr.To(nodeName)
	for i := range 2 {
		src.add(benchService(i+1), shared)
	}
	hairpin := func() int {
		elems, err := nft.ListElements(context.Background(), "set", hairpinSet)
		if err != nil {
			t.Fatal(err)
		}
		return len(elems)
	}
	sync := func(full bool, names ...string) {
		dirty := map[types.NamespacedName]bool{}
		for _, n := range names {
			dirty[types.NamespacedName{Namespace: "bench", Name: n}] = true
		}
		if st := p.sync(context.Background(), src, dirty, full); st.Err != nil {
			t.Fatal(st.Err)
		}
	}
	sync(true)
	if n := hairpin(); n != 1 {
		t.Fatalf("hairpin entries: %d, want 1", n)
	}
	delete(src.services, types.NamespacedName{Namespace: "bench", Name: "svc-1"})
	sync(false, "svc-1")
	if n := hairpin(); n != 1 {
		t.Errorf("after deleting one of the two Services: %d hairpin entries, want 1", n)
	}
	delete(src.services, types.NamespacedName{Namespace: "bench", Name: "svc-2"})
	sync(false, "svc-2")
	if n := hairpin(); n != 0 {
		t.Errorf("after deleting both Services: %d hairpin entries, want 0", n)
	}
}
