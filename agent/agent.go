// Package agent is the node agent: the container runtime (a private containerd unless one is
// named), the images the node offers without a registry, the kubelet, the service proxy and
// the cluster DNS, run together for one node.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keelson/keelson/agent/nodenet"
	"github.com/keelson/keelson/clusterdns"
	"github.com/keelson/keelson/kubelet"
	"github.com/keelson/keelson/kubelet/containerd"
	"github.com/keelson/keelson/kubelet/images"
	"github.com/keelson/keelson/proxy"
)

// Options configure a node agent.
type Options struct {
	// DataDir is the node's data directory; the agent keeps its state under DataDir/agent.
	DataDir string
	// NodeName is the Node to register (default: the host name).
	NodeName string
	// NodeIP is the node's address (default: the host's first global IPv4 address).
	NodeIP net.IP
	// RuntimeEndpoint is a CRI socket to use; empty starts a private containerd.
	RuntimeEndpoint string
	// ClusterDNS is the cluster DNS service address pods resolve through (empty: the host's
	// resolver) and ClusterDomain its domain.
	ClusterDNS    string
	ClusterDomain string
	// ClientCA is the PEM of the CA whose client certificates (the API server's, admins') may
	// use the kubelet's API; without it the kubelet serves none.
	ClientCA []byte
	// KubeletPort is the kubelet API's port (0: 10250; -1: any free one).
	KubeletPort int
	// ClusterCIDR and ServiceCIDR are the pod and service ranges, for the proxy's rules and the
	// cluster DNS service's address.
	ClusterCIDR, ServiceCIDR string
	Log                      *slog.Logger
}

// Dir is where the agent keeps its state under a data directory.
func Dir(dataDir string) string { return filepath.Join(dataDir, "agent") }

// ImagesDir is the folder of image archives a node imports at start.
func ImagesDir(dataDir string) string { return filepath.Join(Dir(dataDir), "images") }

// Run runs the node agent until ctx ends.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.NodeName == "" {
		host, err := os.Hostname()
		if err != nil {
			return err
		}
		opts.NodeName = host
	}
	if opts.NodeIP == nil {
		ip, err := hostIP()
		if err != nil {
			return err
		}
		opts.NodeIP = ip
	}
	dir := Dir(opts.DataDir)
	cniConf := filepath.Join(dir, "cni", "net.d")
	socket := opts.RuntimeEndpoint
	if socket == "" {
		proc, err := containerd.Start(ctx, containerd.Options{Dir: filepath.Join(dir, "containerd"), CNIConfDir: cniConf,
			Log: opts.Log.With("component", "containerd")})
		if err != nil {
			return err
		}
		defer func() { _ = proc.Stop() }()
		socket = proc.Socket()
	}
	// The node offers the images in its folder of archives; without a registry there is no
	// other way for a pod's image, the pause image included, to get here.
	names, err := images.Import(ctx, socket, ImagesDir(opts.DataDir))
	if err != nil {
		return fmt.Errorf("importing images: %w", err)
	}
	opts.Log.Info("imported images", "count", len(names), "from", ImagesDir(opts.DataDir))
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return proxy.Run(ctx, client, proxy.Options{NodeName: opts.NodeName, NodeIPs: []net.IP{opts.NodeIP},
			ClusterCIDR: opts.ClusterCIDR, ServiceCIDR: opts.ServiceCIDR, Log: opts.Log.With("component", "proxy")})
	})
	g.Go(func() error {
		// The cluster DNS answers on the node's address; the kube-dns Service reaches it there.
		if err := clusterdns.EnsureService(ctx, client, opts.ServiceCIDR, opts.NodeName, opts.NodeIP.String()); err != nil {
			return fmt.Errorf("kube-dns service: %w", err)
		}
		return clusterdns.Run(ctx, cfg, clusterdns.Options{Listen: net.JoinHostPort(opts.NodeIP.String(), "53"),
			Domain: opts.ClusterDomain, Log: opts.Log.With("component", "cluster-dns")})
	})
	g.Go(func() error {
		// Pods of the nodes next to this one (on the same host) are reached through them.
		return nodenet.RunRoutes(ctx, client, nodenet.RoutesOptions{Log: opts.Log.With("component", "routes")})
	})
	g.Go(func() error {
		var dns []string
		if opts.ClusterDNS != "" {
			dns = []string{opts.ClusterDNS}
		}
		return kubelet.Run(ctx, cfg, kubelet.Options{NodeName: opts.NodeName, NodeIP: opts.NodeIP, RuntimeSocket: socket,
			RootDir: filepath.Join(dir, "kubelet"), CNIConfDir: cniConf, ClusterDNS: dns, ClusterDomain: opts.ClusterDomain,
			ClientCA: opts.ClientCA, Port: opts.KubeletPort, Log: opts.Log.With("component", "kubelet")})
	})
	err = g.Wait()
	leave(client, opts.NodeName)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// hostIP is the host's first global unicast IPv4 address.
func hostIP() (net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP, nil
		}
	}
	return nil, fmt.Errorf("no global IPv4 address on this host: name one with --node-ip")
}
