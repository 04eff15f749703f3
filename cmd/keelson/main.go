// Command keelson runs a Kubernetes cluster from one binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/keelson/keelson/agent"
	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/clusterdns"
	"github.com/keelson/keelson/controllers/certificates"
	"github.com/keelson/keelson/controllers/controllermanager"
	"github.com/keelson/keelson/controllers/nodeipam"
	"github.com/keelson/keelson/controllers/nodelifecycle"
	"github.com/keelson/keelson/controllers/podgc"
	"github.com/keelson/keelson/controllers/tokencleaner"
	"github.com/keelson/keelson/scheduler"
	"github.com/keelson/keelson/simulator"
	"k8s.io/client-go/tools/clientcmd"
)

const usage = `keelson runs a Kubernetes cluster from one binary.

Usage:
  keelson server [flags]      the whole one-node cluster in one process
  keelson apiserver [flags]   the API server alone
  keelson controller-manager  the controllers alone (--kubeconfig)
  keelson scheduler           the scheduler alone (--kubeconfig)
  keelson proxy               the service proxy alone, on nftables (--kubeconfig)
  keelson simulate-nodes      simulated nodes for tests and scale (--count, --kubeconfig);
                              no container runs on them
  keelson agent               a node joining a cluster (--server and --token, or --kubeconfig;
                              --data-dir, --node-name, --node-ip)
  keelson images build        write the pause and busybox image archives (--data-dir)
  keelson cluster-dns         cluster DNS alone (--kubeconfig, --listen, --node-name)
  keelson version

Run 'keelson server -h' for the flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "server", "apiserver":
		err = runServer(ctx, os.Args[1], os.Args[2:])
	case "controller-manager":
		err = runControllerManager(ctx, os.Args[2:])
	case "scheduler":
		err = runScheduler(ctx, os.Args[2:])
	case "proxy":
		err = runProxy(ctx, os.Args[2:])
	case "agent":
		err = runAgent(ctx, os.Args[2:])
	case "simulate-nodes":
		err = runSimulatedNodes(ctx, os.Args[2:])
	case "images":
		err = runImages(ctx, os.Args[2:])
	case "cluster-dns":
		err = runClusterDNS(ctx, os.Args[2:])
	case "version":
		fmt.Println(apiserver.GitVersion)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "keelson: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "keelson: %v\n", err)
		os.Exit(1)
	}
}

func runServer(ctx context.Context, name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	dataDir := fs.String("data-dir", "/var/lib/keelson", "directory for etcd data, certificates and the admin kubeconfig")
	bind := fs.String("bind-address", "0.0.0.0", "address to serve HTTPS on")
	port := fs.Int("secure-port", 6443, "port to serve HTTPS on")
	advertise := fs.String("advertise-address", "", "address the cluster reaches this server at (default: the host's first global IPv4 address)")
	etcdServers := fs.String("etcd-servers", "", "comma-separated URLs of an external etcd cluster (default: run etcd embedded)")
	serviceCIDR := fs.String("service-cluster-ip-range", "10.96.0.0/12", "range of Service cluster IPs")
	compaction := fs.Duration("etcd-compaction-interval", 5*time.Minute, "how often etcd history is compacted")
	maxInflight := fs.Int("max-requests-inflight", 400, "the most read-only requests served at once; more get 429 (0: no limit)")
	maxMutating := fs.Int("max-mutating-requests-inflight", 200, "the most mutating requests served at once; more get 429 (0: no limit)")
	disableAgent := fs.Bool("disable-agent", false, "run the control plane only, without the node agent")
	var agentOpts agent.Options
	if name == "server" {
		agentFlags(fs, &agentOpts)
	}
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	cmOpts := controllermanager.Options{TerminatedPodGCThreshold: podgc.DefaultTerminatedThreshold}
	if name == "server" {
		controllerManagerFlags(fs, &cmOpts)
		fs.StringVar(&cmOpts.ClusterCIDR, "cluster-cidr", "10.244.0.0/16", "range of pod IPs, cut into a podCIDR per node (empty: no podCIDRs)")
	}
	_ = fs.Parse(args)
	if name == "server" && len(cmOpts.Controllers) == 0 {
		// As kubeadm runs it: the bootstrap signer signs cluster-info for joining nodes.
		cmOpts.Controllers = []string{"*", "bootstrap-signer-controller"}
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	opts := apiserver.Options{
		DataDir: *dataDir, BindAddress: *bind, Port: *port, AdvertiseAddress: *advertise,
		ServiceCIDR: *serviceCIDR, CompactionInterval: *compaction, Log: log,
		MaxRequestsInFlight: *maxInflight, MaxMutatingRequestsInFlight: *maxMutating,
	}
	if *etcdServers != "" {
		opts.EtcdServers = strings.Split(*etcdServers, ",")
	}
	// The API server outlives the components that use it, so that on the way out they can still
	// release their leases and withdraw what they published.
	apiCtx, stopAPI := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAPI()
	compCtx, stopComponents := context.WithCancel(ctx)
	defer stopComponents()
	started := make(chan *apiserver.Server, 1)
	apiErr := make(chan error, 1)
	compErr := make(chan error, 4)
	components := 0
	run := func(f func(context.Context) error) {
		components++
		go func() { compErr <- f(compCtx) }()
	}
	begin := time.Now()
	go func() { apiErr <- apiserver.Run(apiCtx, opts, started) }()
	select {
	case s := <-started:
		if name == "server" {
			cfg, err := s.LoopbackConfig()
			if err != nil {
				return err
			}
			caKey, err := s.CAKeyPEM()
			if err != nil {
				return err
			}
			cmOpts.RootCA, cmOpts.Log = s.CAPEM(), log.With("component", "controller-manager")
			cmOpts.ClusterSigningCert, cmOpts.ClusterSigningKey = s.CAPEM(), caKey
			run(func(ctx context.Context) error { return controllermanager.Run(ctx, cfg, cmOpts) })
			run(func(ctx context.Context) error {
				return scheduler.Run(ctx, cfg, scheduler.Options{Log: log.With("component", "scheduler")})
			})
			if !*disableAgent {
				agentOpts.DataDir, agentOpts.Log, agentOpts.ClientCA = *dataDir, log.With("component", "agent"), s.CAPEM()
				agentOpts.ClusterCIDR, agentOpts.ServiceCIDR = cmOpts.ClusterCIDR, *serviceCIDR
				if agentOpts.ClusterDNS == "" {
					ip, err := clusterdns.ServiceIP(*serviceCIDR)
					if err != nil {
						return err
					}
					agentOpts.ClusterDNS = ip.String()
				}
				run(func(ctx context.Context) error { return agent.Run(ctx, cfg, agentOpts) })
			}
		}
		join := ""
		if name == "server" {
			j, err := joinCommand(ctx, s, *dataDir)
			if err != nil {
				return err
			}
			join = j
		}
		fmt.Printf("Keelson is ready (%s). To use it:\n\n  export KUBECONFIG=%s\n\n", time.Since(begin).Round(time.Millisecond), s.KubeconfigPath)
		if join != "" {
			fmt.Printf("To join another node:\n\n  %s\n\n", join)
		}
	case err := <-apiErr:
		return err
	case <-ctx.Done():
		stopAPI()
		return <-apiErr
	}
	// An interrupt, or the first to end, ends the others; the API server goes last.
	var first error
	select {
	case first = <-apiErr:
		stopComponents()
		for ; components > 0; components-- {
			<-compErr
		}
		return first
	case first = <-compErr:
		components--
	case <-ctx.Done():
	}
	stopComponents()
	timeout := time.After(shutdownGrace)
wait:
	for ; components > 0; components-- {
		select {
		case err := <-compErr:
			if first == nil || errors.Is(first, context.Canceled) {
				first = err
			}
		case <-timeout:
			break wait
		}
	}
	stopAPI()
	if err := <-apiErr; first == nil || errors.Is(first, context.Canceled) {
		first = err
	}
	return first
}

// shutdownGrace bounds how long a stopping server waits for its components (the node agent
// stopping containerd, the controllers releasing their leases) before its API server ends.
const shutdownGrace = 15 * time.Second

// runControllerManager runs the controllers alone against the cluster a kubeconfig names.
func runControllerManager(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("controller-manager", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	rootCA := fs.String("root-ca-file", "", "CA bundle to publish as kube-root-ca.crt (default: the kubeconfig's CA)")
	var opts controllermanager.Options
	controllerManagerFlags(fs, &opts)
	signingCert := fs.String("cluster-signing-cert-file", "", "PEM CA certificate the csrsigning controller issues certificates with")
	signingKey := fs.String("cluster-signing-key-file", "", "PEM private key of --cluster-signing-cert-file")
	allocate := fs.Bool("allocate-node-cidrs", false, "give each node a podCIDR from --cluster-cidr")
	fs.StringVar(&opts.ClusterCIDR, "cluster-cidr", "", "range of pod IPs, for --allocate-node-cidrs")
	_ = fs.Parse(args)
	if !*allocate {
		opts.ClusterCIDR = ""
	} else if opts.ClusterCIDR == "" {
		return errors.New("--allocate-node-cidrs needs --cluster-cidr")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	ca := cfg.CAData
	if *rootCA != "" {
		if ca, err = os.ReadFile(*rootCA); err != nil {
			return err
		}
	} else if len(ca) == 0 && cfg.CAFile != "" {
		if ca, err = os.ReadFile(cfg.CAFile); err != nil {
			return err
		}
	}
	opts.RootCA = ca
	if (*signingCert == "") != (*signingKey == "") {
		return errors.New("--cluster-signing-cert-file and --cluster-signing-key-file go together")
	}
	if *signingCert != "" {
		if opts.ClusterSigningCert, err = os.ReadFile(*signingCert); err != nil {
			return err
		}
		if opts.ClusterSigningKey, err = os.ReadFile(*signingKey); err != nil {
			return err
		}
	}
	opts.Log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "controller-manager")
	return controllermanager.Run(ctx, cfg, opts)
}

// runSimulatedNodes runs simulated nodes against the cluster a kubeconfig names until stopped.
func runSimulatedNodes(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("simulate-nodes", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	var opts simulator.Options
	fs.IntVar(&opts.Count, "count", 1, "how many nodes to run")
	fs.StringVar(&opts.Prefix, "prefix", "sim-node-", "node name prefix; each name ends in the node's index")
	fs.StringVar(&opts.CPU, "cpu", "32", "each node's CPU capacity")
	fs.StringVar(&opts.Memory, "memory", "256Gi", "each node's memory capacity")
	fs.StringVar(&opts.Pods, "pods", "110", "each node's pod capacity")
	_ = fs.Parse(args)
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	opts.Log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "simulate-nodes")
	nodes, err := simulator.Start(ctx, cfg, opts)
	if err != nil {
		return err
	}
	fmt.Printf("%d simulated nodes running (%s0 ...); no container runs on them. Stop with Ctrl-C.\n", opts.Count, opts.Prefix)
	nodes.Wait()
	return ctx.Err()
}

// runScheduler runs a scheduler alone against the cluster a kubeconfig names.
func runScheduler(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scheduler", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	var opts scheduler.Options
	fs.StringVar(&opts.SchedulerName, "scheduler-name", scheduler.DefaultSchedulerName, "the spec.schedulerName of the pods to schedule")
	fs.StringVar(&opts.ScoringStrategy, "scoring-strategy", scheduler.LeastAllocated, "resource scoring: LeastAllocated (spread) or MostAllocated (pack)")
	_ = fs.Parse(args)
	if opts.ScoringStrategy != scheduler.LeastAllocated && opts.ScoringStrategy != scheduler.MostAllocated {
		return fmt.Errorf("--scoring-strategy must be %s or %s", scheduler.LeastAllocated, scheduler.MostAllocated)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	opts.Log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "scheduler")
	return scheduler.Run(ctx, cfg, opts)
}

// controllerManagerFlags are the controller manager's flags that keelson server shares.
func controllerManagerFlags(fs *flag.FlagSet, opts *controllermanager.Options) {
	fs.IntVar(&opts.TerminatedPodGCThreshold, "terminated-pod-gc-threshold", podgc.DefaultTerminatedThreshold, "terminated pods kept before the oldest are deleted (<= 0: keep them all)")
	fs.DurationVar(&opts.NodeMonitorGracePeriod, "node-monitor-grace-period", nodelifecycle.DefaultMonitorGracePeriod, "how long a node may go without a heartbeat before it is marked Unknown")
	fs.IntVar(&opts.NodeCIDRMaskSize, "node-cidr-mask-size", nodeipam.DefaultNodeMaskSize, "prefix length of each node's podCIDR")
	fs.DurationVar(&opts.ClusterSigningDuration, "cluster-signing-duration", certificates.DefaultSigningDuration, "the longest certificate csrsigning issues")
	fs.DurationVar(&opts.LegacyServiceAccountTokenCleanUpPeriod, "legacy-service-account-token-clean-up-period", tokencleaner.DefaultCleanUpPeriod,
		"how long a legacy service-account token goes unused before it is invalidated, and invalid before it is deleted")
	fs.Func("controllers", "comma-separated controllers to enable: '*' for those on by default, 'foo' to enable foo, '-foo' to disable it", func(v string) error {
		opts.Controllers = strings.Split(v, ",")
		return nil
	})
}
