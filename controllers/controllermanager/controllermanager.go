// Package controllermanager lists the built-in controllers and runs them under leader election:
// `keelson controller-manager`, or in process in `keelson server`.
package controllermanager

import (
	"context"
	"log/slog"

	"github.com/keelson/keelson/controllers/deployment"
	"github.com/keelson/keelson/controllers/endpoints"
	"github.com/keelson/keelson/controllers/endpointslice"
	"github.com/keelson/keelson/controllers/endpointslicemirroring"
	"github.com/keelson/keelson/controllers/garbagecollector"
	"github.com/keelson/keelson/controllers/manager"
	"github.com/keelson/keelson/controllers/namespace"
	"github.com/keelson/keelson/controllers/podgc"
	"github.com/keelson/keelson/controllers/replicaset"
	"github.com/keelson/keelson/controllers/rootca"
	"github.com/keelson/keelson/controllers/serviceaccount"
	"k8s.io/client-go/rest"
)

// Options configure the controller manager.
type Options struct {
	// RootCA is the CA bundle published to every namespace as kube-root-ca.crt.
	RootCA []byte
	// TerminatedPodGCThreshold is how many terminated pods are kept before the oldest are
	// deleted (<= 0: all are kept), upstream's --terminated-pod-gc-threshold.
	TerminatedPodGCThreshold int
	Log                      *slog.Logger
	// Election tunes leader election; zero values take upstream's defaults.
	Election manager.Options
}

// Run runs the controllers until ctx is done.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kube-controller-manager"
	// The endpoints controllers use the Endpoints API knowingly; the server's deprecation warning
	// on each of their requests would only fill the log.
	cfg.WarningHandler = rest.NoWarnings{}
	if opts.Election.Log == nil {
		opts.Election.Log = opts.Log
	}
	return manager.Run(ctx, cfg, opts.Election, func(c *manager.Context) ([]manager.Controller, error) {
		sa, err := serviceaccount.New(c)
		if err != nil {
			return nil, err
		}
		ca, err := rootca.New(c, opts.RootCA)
		if err != nil {
			return nil, err
		}
		ns, err := namespace.New(c)
		if err != nil {
			return nil, err
		}
		gc, err := garbagecollector.New(c)
		if err != nil {
			return nil, err
		}
		rs, err := replicaset.New(c)
		if err != nil {
			return nil, err
		}
		rc, err := replicaset.NewReplicationController(c)
		if err != nil {
			return nil, err
		}
		dep, err := deployment.New(c)
		if err != nil {
			return nil, err
		}
		pgc, err := podgc.New(c, opts.TerminatedPodGCThreshold)
		if err != nil {
			return nil, err
		}
		ep, err := endpoints.New(c)
		if err != nil {
			return nil, err
		}
		eps, err := endpointslice.New(c)
		if err != nil {
			return nil, err
		}
		mirror, err := endpointslicemirroring.New(c)
		if err != nil {
			return nil, err
		}
		return []manager.Controller{sa, ca, ns, gc, rs, rc, dep, pgc, ep, eps, mirror}, nil
	})
}
