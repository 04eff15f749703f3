package nodenet

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// inPrivateNetns runs the test again in a network namespace of its own (unshare -n), so that
// the veth pairs and routes it makes never touch the host's, and tells whether this is that
// run.
func inPrivateNetns(t *testing.T) bool {
	if os.Getenv("NODENET_TEST_PRIVATE") == "1" {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: it makes network namespaces, veth pairs and routes")
	}
	for _, c := range []string{"ip", "unshare", "nsenter"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s (iproute2, util-linux)", c)
		}
	}
	cmd := exec.Command("unshare", "-n", "--", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), "NODENET_TEST_PRIVATE=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in a private network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("the run in a private network namespace failed: %v", err)
	}
	return false
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ourRoutes are this namespace's routes of RouteProtocol as "dst via gw".
func ourRoutes(t *testing.T) []string {
	t.Helper()
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s via %s", r.Dst, r.Gw))
	}
	sort.Strings(out)
	return out
}

func node(name, ip, podCIDR string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:   corev1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: []string{podCIDR}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}}
}

func TestNodeNetworkAndRoutes(t *testing.T) {
	if !inPrivateNetns(t) {
		return
	}
	run(t, "ip", "link", "set", "lo", "up")
	// The host has a default route, as real ones do: it must not hide the free link ranges.
	run(t, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	run(t, "ip", "addr", "add", "192.0.2.10/24", "dev", "up0")
	run(t, "ip", "link", "set", "up0", "up")
	run(t, "ip", "link", "set", "up1", "up")
	run(t, "ip", "route", "add", "default", "via", "192.0.2.1")

	name := fmt.Sprintf("keelson-nodenet-test-%d", os.Getpid())
	l, err := Setup(name)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Teardown() }()
	if l.HostIP.String() != "10.254.0.1" || l.NodeIP.String() != "10.254.0.2" {
		t.Errorf("link addresses %s and %s, want 10.254.0.1 and 10.254.0.2", l.HostIP, l.NodeIP)
	}
	if got := run(t, "ip", "-n", name, "route", "show", "default"); !strings.Contains(got, "via 10.254.0.1 dev eth0") {
		t.Errorf("the node's default route: %q", got)
	}
	if got := run(t, "ip", "-n", name, "-br", "addr", "show", "eth0"); !strings.Contains(got, "10.254.0.2/30") {
		t.Errorf("the node's eth0: %q", got)
	}
	if got := run(t, "nsenter", "--net="+l.Path(), "--", "cat", "/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(got) != "1" {
		t.Errorf("forwarding in the node's namespace: %q", got)
	}
	// Set up again: the same namespace and addresses.
	again, err := Setup(name)
	if err != nil {
		t.Fatal(err)
	}
	if !again.HostIP.Equal(l.HostIP) || !again.NodeIP.Equal(l.NodeIP) {
		t.Errorf("a second Setup gave %s/%s, want %s/%s", again.HostIP, again.NodeIP, l.HostIP, l.NodeIP)
	}

	// Only the neighbour's podCIDR is routed: not this host's own, nor one behind a router.
	nodes := []*corev1.Node{
		node("self", "10.254.0.1", "10.244.9.0/24"),
		node("neighbour", "10.254.0.2", "10.244.7.0/24"),
		node("far", "198.51.100.7", "10.244.8.0/24"),
		node("no-cidr", "192.0.2.20", ""),
	}
	if err := SyncRoutes(nodes, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := ourRoutes(t), []string{"10.244.7.0/24 via 10.254.0.2"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("routes %v, want %v", got, want)
	}
	// A moved podCIDR and a node on the uplink's network.
	nodes[1] = node("neighbour", "10.254.0.2", "10.244.17.0/24")
	nodes = append(nodes, node("lan", "192.0.2.30", "10.244.30.0/24"))
	if err := SyncRoutes(nodes, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := ourRoutes(t), []string{"10.244.17.0/24 via 10.254.0.2", "10.244.30.0/24 via 192.0.2.30"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("routes %v, want %v", got, want)
	}
	// Routes of others are left alone; ours of nodes that went are removed.
	run(t, "ip", "route", "add", "10.244.40.0/24", "via", "192.0.2.40")
	if err := SyncRoutes(nodes[:1], nil); err != nil {
		t.Fatal(err)
	}
	if got := ourRoutes(t); len(got) != 0 {
		t.Errorf("routes %v after the nodes went, want none", got)
	}
	if got := run(t, "ip", "route", "show", "10.244.40.0/24"); !strings.Contains(got, "via 192.0.2.40") {
		t.Errorf("another's route went: %q", got)
	}

	// Teardown takes the veth pair, the routes through it and the namespace's name along.
	if err := SyncRoutes(nodes[:2], nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Teardown(); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(l.HostIf); err == nil {
		t.Errorf("%s is still there", l.HostIf)
	}
	if got := ourRoutes(t); len(got) != 0 {
		t.Errorf("routes %v after the teardown, want none", got)
	}
	if _, err := os.Stat(l.Path()); !os.IsNotExist(err) {
		t.Errorf("%s is still there", l.Path())
	}
}

func TestRewriteKubeconfig(t *testing.T) {
	dir := t.TempDir()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:6443", CertificateAuthorityData: []byte("ca")}
	cfg.Clusters["named"] = &clientcmdapi.Cluster{Server: "https://localhost:7443"}
	cfg.Clusters["remote"] = &clientcmdapi.Cluster{Server: "https://192.0.2.2:6443"}
	from, to := filepath.Join(dir, "in"), filepath.Join(dir, "sub", "out")
	if err := clientcmd.WriteToFile(*cfg, from); err != nil {
		t.Fatal(err)
	}
	if err := rewriteKubeconfig(from, to, net.ParseIP("10.254.0.1")); err != nil {
		t.Fatal(err)
	}
	got, err := clientcmd.LoadFromFile(to)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][2]string{
		"local":  {"https://10.254.0.1:6443", "127.0.0.1"},
		"named":  {"https://10.254.0.1:7443", "localhost"},
		"remote": {"https://192.0.2.2:6443", ""},
	} {
		c := got.Clusters[name]
		if c.Server != want[0] || c.TLSServerName != want[1] {
			t.Errorf("cluster %s: server %s, tls-server-name %q; want %s, %q", name, c.Server, c.TLSServerName, want[0], want[1])
		}
	}
	if string(got.Clusters["local"].CertificateAuthorityData) != "ca" {
		t.Errorf("the CA went")
	}
}
