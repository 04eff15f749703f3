package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/keelson/keelson/clusterdns"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// runClusterDNS serves cluster DNS alone against the cluster a kubeconfig names, optionally
// keeping the kube-dns Service pointed at it (--node-name).
func runClusterDNS(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cluster-dns", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	var opts clusterdns.Options
	fs.StringVar(&opts.Listen, "listen", "0.0.0.0:53", "address:port to serve DNS on (UDP and TCP)")
	fs.StringVar(&opts.Domain, "cluster-domain", clusterdns.DefaultDomain, "the cluster's DNS domain")
	fs.StringVar(&opts.Metrics, "metrics-address", "", "address:port to serve Prometheus metrics on (e.g. :9153; empty: none)")
	upstream := fs.String("upstream", "", "comma-separated resolvers for other names (default: those of /etc/resolv.conf)")
	serviceCIDR := fs.String("service-cluster-ip-range", "10.96.0.0/12", "range of Service cluster IPs; kube-dns takes its tenth address")
	node := fs.String("node-name", "", "create the kube-dns Service with an EndpointSlice naming this node (empty: leave the Service alone)")
	nodeIPs := fs.String("node-ip", "", "comma-separated addresses of the node for the EndpointSlice (default: the --listen address)")
	_ = fs.Parse(args)
	if *upstream != "" {
		opts.Upstream = strings.Split(*upstream, ",")
	}
	opts.Log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "cluster-dns")
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	if *node != "" {
		ips := *nodeIPs
		if ips == "" {
			ips, _, _ = net.SplitHostPort(opts.Listen)
		}
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		if err := clusterdns.EnsureService(ctx, client, *serviceCIDR, *node, strings.Split(ips, ",")...); err != nil {
			return err
		}
	}
	return clusterdns.Run(ctx, cfg, opts)
}
