package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/keelson/keelson/proxy"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// runProxy runs the service proxy alone, as kube-proxy would run on a node.
func runProxy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	host, _ := os.Hostname()
	var opts proxy.Options
	fs.StringVar(&opts.NodeName, "hostname-override", strings.ToLower(host), "name of this node")
	nodeIPs := fs.String("node-ip", "", "comma-separated addresses NodePorts listen on (default: the Node's InternalIP addresses)")
	fs.StringVar(&opts.ClusterCIDR, "cluster-cidr", "10.244.0.0/16", "range of pod IPs (comma-separated for dual stack)")
	fs.StringVar(&opts.ServiceCIDR, "service-cluster-ip-range", "10.96.0.0/12", "range of Service cluster IPs (comma-separated for dual stack)")
	fs.StringVar(&opts.TableName, "table", proxy.DefaultTableName, "nftables table to program")
	fs.DurationVar(&opts.MinSyncPeriod, "min-sync-period", 0, "least time between two syncs of the rules (default 1s)")
	fs.BoolVar(&opts.CleanupOnExit, "cleanup-on-exit", false, "delete the nftables table on exit")
	_ = fs.Parse(args)
	for _, s := range strings.Split(*nodeIPs, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("--node-ip: %q is not an IP address", s)
		}
		opts.NodeIPs = append(opts.NodeIPs, ip)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	opts.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	return proxy.Run(ctx, client, opts)
}
