package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keelson/keelson/conformance/cluster"
)

// The tests run as root inside a network namespace of their own, so that their nftables
// tables, addresses and routes never touch the host: TestMain re-runs the test binary in a
// new namespace. The same binary also serves and fetches HTTP inside the "pod" and
// "external" namespaces the tests create (see serveMode and getMode).
const (
	inNetnsEnv = "KEELSON_PROXY_TEST_IN_NETNS"
	serveEnv   = "KEELSON_PROXY_TEST_SERVE" // listen on this address and answer "<own addr> <peer addr>"
	getEnv     = "KEELSON_PROXY_TEST_GET"   // fetch this URL and print the body
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(serveEnv); addr != "" {
		serveMode(addr)
		return
	}
	if url := os.Getenv(getEnv); url != "" {
		os.Exit(getMode(url))
	}
	if os.Getuid() == 0 && os.Getenv(inNetnsEnv) == "" {
		os.Exit(reexecInNetns())
	}
	code := m.Run()
	if testCluster != nil {
		testCluster.Stop()
	}
	os.Exit(code)
}

// reexecInNetns installs nft if needed, builds keelson (which needs the module proxy, so
// outside the namespace), and runs the tests again in a new network namespace.
func reexecInNetns() int {
	var missing []string
	for bin, pkg := range map[string]string{"nft": "nftables", "ip": "iproute2"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		cmd := exec.Command("sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "+strings.Join(missing, " "))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "installing", missing, err)
			return 1
		}
	}
	env := append(os.Environ(), inNetnsEnv+"=1")
	if wantsCluster() {
		bin, err := cluster.Binary("keelson", "./cmd/keelson")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		env = append(env, "BIN_keelson="+bin)
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// wantsCluster is false when only benchmarks run (-run '^$'), which need no API server.
func wantsCluster() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.run=^$" || a == "-test.list=.*" {
			return false
		}
	}
	return true
}

func serveMode(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening")
	_ = http.Serve(l, answer(addr))
}

// answer replies with the server's own address and the client's address as it sees it.
func answer(self string) http.Handler {
	host, _, _ := net.SplitHostPort(self)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "%s %s", host, peer)
	})
}

func getMode(url string) int {
	body, err := get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Print(body)
	return 0
}

var httpClient = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func get(url string) (string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

var (
	testCluster *cluster.Cluster
	clusterOnce sync.Once
	clusterErr  error
	netOnce     sync.Once
	netErr      error
)

// The node's network in the test namespace: the node address on a veth (whose other end
// is unused) carrying the default route, and endpoint addresses on lo, each with a server.
const (
	nodeIP      = "10.123.255.1"
	clusterCIDR = "10.244.0.0/16"
	serviceCIDR = "10.96.0.0/12"
	nodeName    = "proxy-test-node"
)

var endpointIPs = []string{"10.123.1.1", "10.123.1.2", "10.123.1.3", "10.123.1.4"}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func setupNetwork(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root: the proxy programs nftables (run the tests as root)")
	}
	netOnce.Do(func() {
		for _, c := range [][]string{
			{"ip", "link", "set", "lo", "up"},
			{"ip", "link", "add", "kp0", "type", "veth", "peer", "name", "kp1"},
			{"ip", "link", "set", "kp0", "up"},
			{"ip", "link", "set", "kp1", "up"},
			{"ip", "addr", "add", nodeIP + "/24", "dev", "kp0"},
			{"ip", "route", "add", "default", "dev", "kp0"},
		} {
			if netErr = run(c...); netErr != nil {
				return
			}
		}
		if netErr = os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); netErr != nil {
			return
		}
		for _, ip := range endpointIPs {
			if netErr = run("ip", "addr", "add", ip+"/32", "dev", "lo"); netErr != nil {
				return
			}
			addr := net.JoinHostPort(ip, "8080")
			l, err := net.Listen("tcp", addr)
			if err != nil {
				netErr = err
				return
			}
			go func() { _ = http.Serve(l, answer(addr)) }() // lives as long as the test binary
		}
	})
	if netErr != nil {
		t.Fatal(netErr)
	}
}

func startCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	setupNetwork(t)
	clusterOnce.Do(func() {
		os.Unsetenv("KUBECONFIG") // the cluster must live in this namespace
		testCluster, clusterErr = cluster.Start()
	})
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return testCluster
}

// peerNetns is a network namespace linked to the test's by a veth pair: a "pod" (with an
// address in the pod range) or an "external" client.
type peerNetns struct {
	name string
	ip   string
}

func newPeerNetns(t *testing.T, name, hostIP, peerIP string, prefix int) *peerNetns {
	t.Helper()
	hostDev, peerDev := "kp"+name, "eth0"
	name = fmt.Sprintf("kpt-%s-%d", name, os.Getpid())
	_ = run("ip", "netns", "del", name)
	for _, c := range [][]string{
		{"ip", "netns", "add", name},
		{"ip", "link", "add", hostDev, "type", "veth", "peer", "name", peerDev, "netns", name},
		{"ip", "addr", "add", fmt.Sprintf("%s/%d", hostIP, prefix), "dev", hostDev},
		{"ip", "link", "set", hostDev, "up"},
		{"ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"},
		{"ip", "netns", "exec", name, "ip", "addr", "add", fmt.Sprintf("%s/%d", peerIP, prefix), "dev", peerDev},
		{"ip", "netns", "exec", name, "ip", "link", "set", peerDev, "up"},
		{"ip", "netns", "exec", name, "ip", "route", "add", "default", "via", hostIP},
	} {
		if err := run(c...); err != nil {
			_ = run("ip", "netns", "del", name)
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = run("ip", "netns", "del", name) })
	return &peerNetns{name: name, ip: peerIP}
}

// get fetches url from inside the namespace.
func (n *peerNetns) get(url string) (string, error) {
	cmd := exec.Command("ip", "netns", "exec", n.name, os.Args[0])
	cmd.Env = append(os.Environ(), getEnv+"="+url)
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return "", fmt.Errorf("%v: %s", err, ee.Stderr)
		}
		return "", err
	}
	return string(out), nil
}

// serve starts an HTTP server on addr inside the namespace until the test ends.
func (n *peerNetns) serve(t *testing.T, addr string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.name, os.Args[0])
	cmd.Env = append(os.Environ(), serveEnv+"="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, len("listening"))
	if _, err := io.ReadFull(out, buf); err != nil {
		t.Fatalf("server in %s did not start: %v", n.name, err)
	}
}

var bridgeOnce sync.Once

// newBridgedPod is a "pod" namespace plugged into a bridge (kpbr0, 10.244.8.1/24), as the
// CNI bridge plugin plugs pods: pods on it reach each other at layer 2, and the bridge
// hands their packets to the ip hooks (br_netfilter), where the proxy's rules see them.
func newBridgedPod(t *testing.T, name, ip string) *peerNetns {
	t.Helper()
	bridgeOnce.Do(func() {
		for _, c := range [][]string{
			{"ip", "link", "add", "kpbr0", "type", "bridge"},
			{"ip", "addr", "add", "10.244.8.1/24", "dev", "kpbr0"},
			{"ip", "link", "set", "kpbr0", "up"},
		} {
			if err := run(c...); err != nil {
				t.Fatal(err)
			}
		}
	})
	ns := fmt.Sprintf("kpt-%s-%d", name, os.Getpid())
	hostDev := "kp" + name
	_ = run("ip", "netns", "del", ns)
	for _, c := range [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", hostDev, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "link", "set", hostDev, "master", "kpbr0"},
		{"ip", "link", "set", hostDev, "type", "bridge_slave", "hairpin", "on"},
		{"ip", "link", "set", hostDev, "up"},
		{"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"},
		{"ip", "netns", "exec", ns, "ip", "addr", "add", ip + "/24", "dev", "eth0"},
		{"ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up"},
		{"ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", "10.244.8.1"},
	} {
		if err := run(c...); err != nil {
			_ = run("ip", "netns", "del", ns)
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = run("ip", "netns", "del", ns) })
	return &peerNetns{name: ns, ip: ip}
}
