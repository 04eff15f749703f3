package nodenet

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// linkRange is where the veth pairs' /30 networks come from: 10.254.N.0/30, the host side
// .1 and the node side .2. It is private and never routed out of the host.
var linkRange = net.IPv4(10, 254, 0, 0).To4()

// Link is a node's network namespace and the veth pair joining it to the namespace that made it.
type Link struct {
	// Netns is the namespace's name (/var/run/netns/<Netns>).
	Netns string
	// HostIf is the host side's interface; the node side is eth0 in the namespace.
	HostIf string
	// HostIP and NodeIP are the two ends' addresses, on a /30.
	HostIP, NodeIP net.IP
}

// Path is the namespace's file, for setns(2) and nsenter.
func (l *Link) Path() string { return filepath.Join("/var/run/netns", l.Netns) }

// HostInterface is the host-side veth name of a namespace: short enough for IFNAMSIZ and the
// same every time, so that a namespace is found again.
func HostInterface(netns string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(netns))
	return fmt.Sprintf("kv%08x", h.Sum32())
}

// Setup creates the network namespace (or reuses it) with a veth pair to the current
// namespace, loopback up, a default route via the host side and forwarding on in both.
func Setup(netns string) (_ *Link, setupErr error) {
	if netns == "" || strings.ContainsAny(netns, "/ ") {
		return nil, fmt.Errorf("nodenet: bad network namespace name %q", netns)
	}
	l := &Link{Netns: netns, HostIf: HostInterface(netns)}
	if _, statErr := os.Stat(l.Path()); statErr != nil {
		if err := ip("netns", "add", netns); err != nil {
			return nil, err
		}
		// A namespace made here goes again when it cannot be set up.
		defer func() {
			if setupErr != nil {
				_ = l.Teardown()
			}
		}()
	}
	if link, err := netlink.LinkByName(l.HostIf); err == nil {
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("nodenet: %s has no address: delete it (ip link del %s)", l.HostIf, l.HostIf)
		}
		l.HostIP = addrs[0].IP.To4()
	} else {
		if l.HostIP, err = freeLinkAddress(); err != nil {
			return nil, err
		}
		if err := ip("link", "add", l.HostIf, "type", "veth", "peer", "name", "eth0", "netns", netns); err != nil {
			return nil, err
		}
	}
	l.NodeIP = net.IPv4(l.HostIP[0], l.HostIP[1], l.HostIP[2], l.HostIP[3]+1).To4()
	steps := [][]string{
		{"addr", "replace", l.HostIP.String() + "/30", "dev", l.HostIf},
		{"link", "set", l.HostIf, "up"},
		{"-n", netns, "link", "set", "lo", "up"},
		{"-n", netns, "addr", "replace", l.NodeIP.String() + "/30", "dev", "eth0"},
		{"-n", netns, "link", "set", "eth0", "up"},
		{"-n", netns, "route", "replace", "default", "via", l.HostIP.String()},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return nil, err
		}
	}
	// Pods' traffic crosses both namespaces: the host forwards between nodes, the node
	// between its bridge and its veth.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command("nsenter", "--net="+l.Path(), "--", "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nodenet: forwarding in %s: %v: %s", netns, err, out)
	}
	return l, nil
}

// Teardown removes the veth pair (and so the routes through it) and the namespace's name; the
// namespace itself goes when its last process does.
func (l *Link) Teardown() error {
	var errs []error
	if link, err := netlink.LinkByName(l.HostIf); err == nil {
		errs = append(errs, netlink.LinkDel(link))
	}
	if _, err := os.Stat(l.Path()); err == nil {
		errs = append(errs, ip("netns", "delete", l.Netns))
	}
	return errors.Join(errs...)
}

// freeLinkAddress is the host side of the first 10.254.N.0/30 no address or route of this
// namespace covers.
func freeLinkAddress() (net.IP, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	for n := 0; n < 256; n++ {
		cand := &net.IPNet{IP: net.IPv4(linkRange[0], linkRange[1], byte(n), 0).To4(), Mask: net.CIDRMask(30, 32)}
		used := false
		for _, a := range addrs {
			if cand.Contains(a.IP) || a.IPNet.Contains(cand.IP) {
				used = true
			}
		}
		for _, r := range routes {
			if r.Dst == nil {
				continue
			}
			if ones, _ := r.Dst.Mask.Size(); ones > 0 && (r.Dst.Contains(cand.IP) || cand.Contains(r.Dst.IP)) {
				used = true
			}
		}
		if !used {
			return net.IPv4(cand.IP[0], cand.IP[1], cand.IP[2], 1).To4(), nil
		}
	}
	return nil, fmt.Errorf("nodenet: no free /30 left in 10.254.0.0/16")
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// AgentOptions configure RunAgent.
type AgentOptions struct {
	// Netns is the network namespace the node runs in, created when missing.
	Netns string
	// Keep leaves the namespace and its veth pair when the agent ends.
	Keep bool
	// Kubeconfig names the cluster; a loopback server address in it is reached from the
	// namespace through the host side of the veth pair. Empty: the agent's other ways to join
	// (--server and --token, or the credentials of an earlier join) in Args.
	Kubeconfig string
	// DataDir is the node's data directory; NodeName its name (default: Netns).
	DataDir, NodeName string
	// Args are the agent's command-line arguments; the node's --node-ip, --node-name and
	// (with Kubeconfig) --kubeconfig are appended, and --netns is cleared.
	Args []string
	Log  *slog.Logger
}

// RunAgent runs `keelson agent` inside a network namespace of its own, until ctx ends: it
// sets the namespace up, starts this program's agent in it (so that the agent and all its
// children, containerd and the CNI plugins, live there), keeps the host's routes to the
// cluster's nodes meanwhile, and on exit removes the routes to this node and, unless Keep,
// the veth pair and the namespace.
func RunAgent(ctx context.Context, opts AgentOptions) error {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("keelson agent --netns needs root")
	}
	if opts.NodeName == "" {
		opts.NodeName = opts.Netns
	}
	link, err := Setup(opts.Netns)
	if err != nil {
		return err
	}
	if !opts.Keep {
		defer func() {
			if err := link.Teardown(); err != nil {
				opts.Log.Warn("removing the node's network", "err", err)
			}
		}()
	}
	opts.Log.Info("node network ready", "netns", opts.Netns, "node-ip", link.NodeIP, "host-ip", link.HostIP, "host-if", link.HostIf)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{"--net=" + link.Path(), "--", self, "agent"}, opts.Args...)
	args = append(args, "--netns=", "--node-ip", link.NodeIP.String(), "--node-name", opts.NodeName)
	// With a kubeconfig, this side keeps the host's routes too (a server without its own node
	// keeps none); a node joining with a token reaches the server at the URL it was given.
	var client kubernetes.Interface
	if opts.Kubeconfig != "" {
		kubeconfig := filepath.Join(opts.DataDir, "agent", "netns.kubeconfig")
		if err := rewriteKubeconfig(opts.Kubeconfig, kubeconfig, link.HostIP); err != nil {
			return err
		}
		args = append(args, "--kubeconfig", kubeconfig)
		cfg, err := clientcmd.BuildConfigFromFlags("", opts.Kubeconfig)
		if err != nil {
			return err
		}
		if client, err = kubernetes.NewForConfig(cfg); err != nil {
			return err
		}
	}
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	routesCtx, stopRoutes := context.WithCancel(context.Background())
	routesDone := make(chan struct{})
	go func() {
		defer close(routesDone)
		if client == nil {
			<-routesCtx.Done()
			removeRoutesVia(link.NodeIP)
			return
		}
		_ = RunRoutes(routesCtx, client, RoutesOptions{ForgetOnExit: []net.IP{link.NodeIP}, Log: opts.Log.With("component", "routes")})
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err = <-exited:
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err = <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			err = <-exited
		}
	}
	stopRoutes()
	<-routesDone
	if err != nil && ctx.Err() != nil {
		// Stopped by us: its exit status is the signal's.
		return nil
	}
	return err
}

// rewriteKubeconfig writes a copy of a kubeconfig whose loopback servers are reached at host
// instead, still verified under their loopback name (which the serving certificate covers).
func rewriteKubeconfig(from, to string, host net.IP) error {
	cfg, err := clientcmd.LoadFromFile(from)
	if err != nil {
		return err
	}
	if err := clientcmd.ResolveLocalPaths(cfg); err != nil {
		return err
	}
	for _, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil {
			return err
		}
		h := u.Hostname()
		if ipAddr := net.ParseIP(h); h != "localhost" && (ipAddr == nil || !ipAddr.IsLoopback()) {
			continue
		}
		if c.TLSServerName == "" {
			c.TLSServerName = h
		}
		if p := u.Port(); p != "" {
			u.Host = net.JoinHostPort(host.String(), p)
		} else {
			u.Host = host.String()
		}
		c.Server = u.String()
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*cfg, to)
}
