// Package controllermanager lists the built-in controllers and runs them under leader election:
// `keelson controller-manager`, or in process in `keelson server`.
package controllermanager

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/keelson/keelson/controllers/bootstrapsigner"
	"github.com/keelson/keelson/controllers/certificates"
	"github.com/keelson/keelson/controllers/cronjob"
	"github.com/keelson/keelson/controllers/daemonset"
	"github.com/keelson/keelson/controllers/deployment"
	"github.com/keelson/keelson/controllers/disruption"
	"github.com/keelson/keelson/controllers/endpoints"
	"github.com/keelson/keelson/controllers/endpointslice"
	"github.com/keelson/keelson/controllers/endpointslicemirroring"
	"github.com/keelson/keelson/controllers/garbagecollector"
	"github.com/keelson/keelson/controllers/job"
	"github.com/keelson/keelson/controllers/manager"
	"github.com/keelson/keelson/controllers/namespace"
	"github.com/keelson/keelson/controllers/nodeipam"
	"github.com/keelson/keelson/controllers/nodelifecycle"
	"github.com/keelson/keelson/controllers/podautoscaler"
	"github.com/keelson/keelson/controllers/podgc"
	"github.com/keelson/keelson/controllers/replicaset"
	"github.com/keelson/keelson/controllers/resourcequota"
	"github.com/keelson/keelson/controllers/rootca"
	"github.com/keelson/keelson/controllers/serviceaccount"
	"github.com/keelson/keelson/controllers/statefulset"
	"github.com/keelson/keelson/controllers/tainteviction"
	"github.com/keelson/keelson/controllers/tokencleaner"
	"github.com/keelson/keelson/controllers/ttlafterfinished"
	"k8s.io/client-go/rest"
)

// Options configure the controller manager.
type Options struct {
	// RootCA is the CA bundle published to every namespace as kube-root-ca.crt.
	RootCA []byte
	// TerminatedPodGCThreshold is how many terminated pods are kept before the oldest are
	// deleted (<= 0: all are kept), upstream's --terminated-pod-gc-threshold.
	TerminatedPodGCThreshold int
	// NodeMonitorGracePeriod is how long a node may go without a heartbeat before it is marked
	// Unknown (0: upstream's 50s).
	NodeMonitorGracePeriod time.Duration
	// ClusterCIDR, if set, is cut into NodeCIDRMaskSize ranges given to nodes as their podCIDR
	// (upstream's --allocate-node-cidrs with --cluster-cidr).
	ClusterCIDR      string
	NodeCIDRMaskSize int
	// ClusterSigningCert and ClusterSigningKey are the PEM CA pair csrsigning issues certificates
	// with (upstream's --cluster-signing-cert-file and --cluster-signing-key-file); without them
	// the signer does not run. ClusterSigningDuration caps the certificates' lifetime (0: a year).
	ClusterSigningCert, ClusterSigningKey []byte
	ClusterSigningDuration                time.Duration
	// LegacyServiceAccountTokenCleanUpPeriod is how long a legacy token goes unused before it is
	// invalidated, and invalid before it is deleted (0: a year).
	LegacyServiceAccountTokenCleanUpPeriod time.Duration
	// Controllers enables and disables controllers as upstream's --controllers: "*" is every
	// controller on by default, "name" turns one on, "-name" turns one off. Empty means "*".
	Controllers []string
	Log         *slog.Logger
	// Election tunes leader election; zero values take upstream's defaults.
	Election manager.Options
}

// controller is one entry of the controller manager: upstream's name for it in --controllers
// (and the older short name still accepted), whether it runs by default, and its constructor.
type controller struct {
	names     []string
	onDefault bool
	build     func(*manager.Context) (manager.Controller, error)
}

// controllers lists the built-in controllers for opts.
func controllers(opts Options) []controller {
	on := func(build func(*manager.Context) (manager.Controller, error), names ...string) controller {
		return controller{names: names, onDefault: true, build: build}
	}
	list := []controller{
		on(serviceaccount.New, "serviceaccount-controller", "serviceaccount"),
		on(func(c *manager.Context) (manager.Controller, error) { return rootca.New(c, opts.RootCA) },
			"root-ca-certificate-publisher-controller", "root-ca-cert-publisher"),
		on(namespace.New, "namespace-controller", "namespace"),
		on(garbagecollector.New, "garbage-collector-controller", "garbagecollector"),
		on(replicaset.New, "replicaset-controller", "replicaset"),
		on(replicaset.NewReplicationController, "replicationcontroller-controller", "replicationcontroller"),
		on(deployment.New, "deployment-controller", "deployment"),
		on(statefulset.New, "statefulset-controller", "statefulset"),
		on(daemonset.New, "daemonset-controller", "daemonset"),
		on(job.New, "job-controller", "job"),
		on(cronjob.New, "cronjob-controller", "cronjob"),
		on(ttlafterfinished.New, "ttl-after-finished-controller", "ttl-after-finished"),
		on(func(c *manager.Context) (manager.Controller, error) {
			return podgc.New(c, opts.TerminatedPodGCThreshold)
		},
			"pod-garbage-collector-controller", "podgc"),
		on(func(c *manager.Context) (manager.Controller, error) {
			return nodelifecycle.New(c, opts.NodeMonitorGracePeriod)
		},
			"node-lifecycle-controller", "nodelifecycle"),
		on(tainteviction.New, "taint-eviction-controller"),
		on(disruption.New, "disruption-controller", "disruption"),
		on(resourcequota.New, "resourcequota-controller", "resourcequota"),
		on(podautoscaler.New, "horizontal-pod-autoscaler-controller", "horizontalpodautoscaling"),
		on(endpoints.New, "endpoints-controller", "endpoint"),
		on(endpointslice.New, "endpointslice-controller", "endpointslice"),
		on(endpointslicemirroring.New, "endpointslice-mirroring-controller", "endpointslicemirroring"),
		on(certificates.NewApprover, "certificatesigningrequest-approving-controller", "csrapproving"),
		on(certificates.NewCleaner, "certificatesigningrequest-cleaner-controller", "csrcleaner"),
		on(func(c *manager.Context) (manager.Controller, error) {
			return tokencleaner.NewLegacy(c, tokencleaner.LegacyOptions{CleanUpPeriod: opts.LegacyServiceAccountTokenCleanUpPeriod})
		}, "legacy-serviceaccount-token-cleaner-controller", "legacy-serviceaccount-token-cleaner"),
		{names: []string{"token-cleaner-controller", "tokencleaner"}, build: tokencleaner.NewBootstrap},
		{names: []string{"bootstrap-signer-controller", "bootstrapsigner"}, build: bootstrapsigner.New},
	}
	// Upstream runs the signer only with a signing pair, and node IPAM only with a cluster CIDR.
	if len(opts.ClusterSigningCert) > 0 && len(opts.ClusterSigningKey) > 0 {
		list = append(list, on(func(c *manager.Context) (manager.Controller, error) {
			return certificates.NewSigner(c, opts.ClusterSigningCert, opts.ClusterSigningKey, opts.ClusterSigningDuration)
		}, "certificatesigningrequest-signing-controller", "csrsigning"))
	}
	if opts.ClusterCIDR != "" {
		list = append(list, on(func(c *manager.Context) (manager.Controller, error) {
			return nodeipam.New(c, opts.ClusterCIDR, opts.NodeCIDRMaskSize)
		}, "node-ipam-controller", "nodeipam"))
	}
	return list
}

// Run runs the controllers until ctx is done.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kube-controller-manager"
	// The endpoints controller uses the Endpoints API knowingly; the server's deprecation warning
	// for it would only fill the log.
	cfg.WarningHandler = rest.NoWarnings{}
	if opts.Election.Log == nil {
		opts.Election.Log = opts.Log
	}
	return manager.Run(ctx, cfg, opts.Election, func(c *manager.Context) ([]manager.Controller, error) {
		var out []manager.Controller
		for _, ctl := range controllers(opts) {
			if !Enabled(opts.Controllers, ctl.names, ctl.onDefault) {
				continue
			}
			built, err := ctl.build(c)
			if err != nil {
				return nil, err
			}
			out = append(out, built)
		}
		return out, nil
	})
}

// Enabled reads an upstream --controllers list for one controller known by names: "-name"
// turns it off, "name" on, and otherwise "*" (or an empty list) leaves it at its default.
func Enabled(list []string, names []string, onByDefault bool) bool {
	if len(list) == 0 {
		return onByDefault
	}
	star := false
	for _, item := range list {
		switch {
		case len(item) > 1 && item[0] == '-' && slices.Contains(names, item[1:]):
			return false
		case slices.Contains(names, item):
			return true
		case item == "*":
			star = true
		}
	}
	return star && onByDefault
}
