// Package controllermanager lists the built-in controllers and runs them under leader election:
// `keelson controller-manager`, or in process in `keelson server`.
package controllermanager

import (
	"context"
	"log/slog"
	"time"

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
	Log              *slog.Logger
	// Election tunes leader election; zero values take upstream's defaults.
	Election manager.Options
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
		constructors := []func(*manager.Context) (manager.Controller, error){
			serviceaccount.New,
			func(c *manager.Context) (manager.Controller, error) { return rootca.New(c, opts.RootCA) },
			namespace.New,
			garbagecollector.New,
			replicaset.New,
			replicaset.NewReplicationController,
			deployment.New,
			statefulset.New,
			daemonset.New,
			job.New,
			cronjob.New,
			ttlafterfinished.New,
			func(c *manager.Context) (manager.Controller, error) {
				return podgc.New(c, opts.TerminatedPodGCThreshold)
			},
			func(c *manager.Context) (manager.Controller, error) {
				return nodelifecycle.New(c, opts.NodeMonitorGracePeriod)
			},
			tainteviction.New,
			disruption.New,
			resourcequota.New,
			podautoscaler.New,
			endpoints.New,
			endpointslice.New,
			endpointslicemirroring.New,
		}
		if opts.ClusterCIDR != "" {
			constructors = append(constructors, func(c *manager.Context) (manager.Controller, error) {
				return nodeipam.New(c, opts.ClusterCIDR, opts.NodeCIDRMaskSize)
			})
		}
		controllers := make([]manager.Controller, 0, len(constructors))
		for _, construct := range constructors {
			ctl, err := construct(c)
			if err != nil {
				return nil, err
			}
			controllers = append(controllers, ctl)
		}
		return controllers, nil
	})
}
