package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/keelson/keelson/agent"
	"github.com/keelson/keelson/agent/nodenet"
	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/clusterdns"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
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

// runAgent runs `keelson agent`: a node joining a running cluster.
func runAgent(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("agent", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig the node uses to reach the cluster")
	server := fs.String("server", "", "URL of the API server to join with --token (https://HOST:PORT)")
	token := fs.String("token", "", "bootstrap token to join with (keelson server writes one to <data-dir>/token)")
	caHash := fs.String("ca-cert-hash", "", "sha256:<hex> pin of the cluster CA's public key (default: trust the CA on first use)")
	var opts agent.Options
	fs.StringVar(&opts.DataDir, "data-dir", "/var/lib/keelson", "the node's data directory (state under <data-dir>/agent)")
	fs.StringVar(&opts.ClusterCIDR, "cluster-cidr", "10.244.0.0/16", "the cluster's pod range, as the server's --cluster-cidr")
	fs.StringVar(&opts.ServiceCIDR, "service-cluster-ip-range", "10.96.0.0/12", "the cluster's service range, as the server's")
	agentFlags(fs, &opts)
	netns := fs.String("netns", "", "run the node in this network namespace (created when missing, with a veth pair to this one; needs root)")
	keepNetns := fs.Bool("keep-netns", false, "with --netns: leave the namespace when the agent ends")
	_ = fs.Parse(args)
	if *netns != "" {
		return nodenet.RunAgent(ctx, nodenet.AgentOptions{Netns: *netns, Keep: *keepNetns, Kubeconfig: *kubeconfig,
			DataDir: opts.DataDir, NodeName: opts.NodeName, Args: args,
			Log: slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "netns")})
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "agent")
	var cfg *rest.Config
	var err error
	switch {
	case *token != "" || *server != "":
		if *token == "" || *server == "" {
			return fmt.Errorf("keelson agent: --server and --token go together")
		}
		if opts.NodeName == "" {
			if opts.NodeName, err = os.Hostname(); err != nil {
				return err
			}
		}
		if cfg, err = agent.Bootstrap(ctx, *server, *token, *caHash, opts.DataDir, opts.NodeName, log); err != nil {
			return err
		}
	case *kubeconfig != "":
		if cfg, err = clientcmd.BuildConfigFromFlags("", *kubeconfig); err != nil {
			return err
		}
	default:
		// A node that joined with a token before keeps its credentials.
		if _, err := os.Stat(agent.KubeletKubeconfig(opts.DataDir)); err == nil {
			if cfg, err = clientcmd.BuildConfigFromFlags("", agent.KubeletKubeconfig(opts.DataDir)); err != nil {
				return err
			}
			break
		}
		return fmt.Errorf("keelson agent: --server with --token, or --kubeconfig (or KUBECONFIG), names the cluster to join")
	}
	// The kubelet's API accepts clients whose certificates the cluster CA signed.
	opts.ClientCA = cfg.CAData
	if len(opts.ClientCA) == 0 && cfg.CAFile != "" {
		if opts.ClientCA, err = os.ReadFile(cfg.CAFile); err != nil {
			return err
		}
	}
	if opts.ClusterDNS == "" {
		ip, err := clusterdns.ServiceIP(opts.ServiceCIDR)
		if err != nil {
			return err
		}
		opts.ClusterDNS = ip.String()
	}
	opts.Log = log
	return agent.Run(ctx, cfg, opts)
}

// joinCommand makes sure the cluster has its join token and returns the command that joins a
// node with it.
func joinCommand(ctx context.Context, s *apiserver.Server, dataDir string) (string, error) {
	cfg, err := s.LoopbackConfig()
	if err != nil {
		return "", err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	token, err := agent.EnsureJoinToken(ctx, client, dataDir)
	if err != nil {
		return "", err
	}
	hash, err := agent.CACertHashPEM(s.CAPEM())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("keelson agent --server %s --token %s --ca-cert-hash %s --data-dir /var/lib/keelson", s.AdvertiseURL(), token, hash), nil
}
