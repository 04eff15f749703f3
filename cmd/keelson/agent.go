package main

import (
	"flag"
	"net"

	"github.com/keelson/keelson/agent"
)

// agentFlags are the node agent's flags, shared by `server` and `agent`.
func agentFlags(fs *flag.FlagSet, opts *agent.Options) {
	fs.StringVar(&opts.NodeName, "node-name", "", "name of this node (default: the host name)")
	fs.Func("node-ip", "address of this node (default: the host's first global IPv4 address)", func(s string) error {
		opts.NodeIP = net.ParseIP(s)
		if opts.NodeIP == nil {
			return &net.ParseError{Type: "IP address", Text: s}
		}
		return nil
	})
	fs.StringVar(&opts.RuntimeEndpoint, "container-runtime-endpoint", "", "CRI socket of a running containerd (default: start a private containerd under <data-dir>/agent)")
	fs.StringVar(&opts.ClusterDNS, "cluster-dns", "", "address of the cluster DNS service pods resolve through (default: the tenth address of the service range)")
	fs.StringVar(&opts.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	fs.IntVar(&opts.KubeletPort, "kubelet-port", 10250, "port of the kubelet's API (-1: any free port)")
}
