// Package controllermanager lists the built-in controllers and runs them under leader election:
// `keelson controller-manager`, or in process in `keelson server`.
package controllermanager

import (
	"context"
	"log/slog"
	"time"

	"github.com/keelson/keelson/controllers/certificates"
	"github.com/keelson/keelson/controllers/deployment"
	"github.com/keelson/keelson/controllers/disruption"
	"github.com/keelson/keelson/controllers/garbagecollector"
	"github.com/keelson/keelson/controllers/manager"
	"github.com/keelson/keelson/controllers/namespace"
	"github.com/keelson/keelson/controllers/nodeipam"
	"github.com/keelson/keelson/controllers/nodelifecycle"
	"github.com/keelson/keelson/controllers/podgc"
	"github.com/keelson/keelson/controllers/replicaset"
	"github.com/keelson/keelson/controllers/resourcequota"
	"github.com/keelson/keelson/controllers/rootca"
	"github.com/keelson/keelson/controllers/serviceaccount"
	"github.com/keelson/keelson/controllers/tainteviction"
	"github.com/keelson/keelson/controllers/tokencleaner"
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

// Run runs the controllers until ctx is done.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kube-controller-manager"
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
		lifecycle, err := nodelifecycle.New(c, opts.NodeMonitorGracePeriod)
		if err != nil {
			return nil, err
		}
		eviction, err := tainteviction.New(c)
		if err != nil {
			return nil, err
		}
		dis, err := disruption.New(c)
		if err != nil {
			return nil, err
		}
		rq, err := resourcequota.New(c)
		if err != nil {
			return nil, err
		}
		controllers := []manager.Controller{sa, ca, ns, gc, rs, rc, dep, pgc, lifecycle, eviction, dis, rq}
		more, err := optional(c, opts)
		if err != nil {
			return nil, err
		}
		controllers = append(controllers, more...)
		if opts.ClusterCIDR != "" {
			ipam, err := nodeipam.New(c, opts.ClusterCIDR, opts.NodeCIDRMaskSize)
			if err != nil {
				return nil, err
			}
			controllers = append(controllers, ipam)
		}
		return controllers, nil
	})
}

// optional builds the controllers that --controllers can turn on or off, or that need options.
func optional(c *manager.Context, opts Options) ([]manager.Controller, error) {
	type entry struct {
		name      string
		onDefault bool
		build     func() (manager.Controller, error)
	}
	all := []entry{
		{"csrapproving", true, func() (manager.Controller, error) { return certificates.NewApprover(c) }},
		{"csrcleaner", true, func() (manager.Controller, error) { return certificates.NewCleaner(c) }},
		{"tokencleaner", false, func() (manager.Controller, error) { return tokencleaner.NewBootstrap(c) }},
		{"legacy-serviceaccount-token-cleaner", true, func() (manager.Controller, error) {
			return tokencleaner.NewLegacy(c, tokencleaner.LegacyOptions{CleanUpPeriod: opts.LegacyServiceAccountTokenCleanUpPeriod})
		}},
	}
	// Upstream skips the signer when no signing pair is configured.
	if len(opts.ClusterSigningCert) > 0 && len(opts.ClusterSigningKey) > 0 {
		all = append(all, entry{"csrsigning", true, func() (manager.Controller, error) {
			return certificates.NewSigner(c, opts.ClusterSigningCert, opts.ClusterSigningKey, opts.ClusterSigningDuration)
		}})
	}
	var out []manager.Controller
	for _, e := range all {
		if !Enabled(opts.Controllers, e.name, e.onDefault) {
			continue
		}
		ctl, err := e.build()
		if err != nil {
			return nil, err
		}
		out = append(out, ctl)
	}
	return out, nil
}

// Enabled reads an upstream --controllers list for one controller: "-name" turns it off, "name"
// on, and otherwise "*" (or an empty list) leaves it at its default.
func Enabled(list []string, name string, onByDefault bool) bool {
	if len(list) == 0 {
		return onByDefault
	}
	star := false
	for _, item := range list {
		switch item {
		case "-" + name:
			return false
		case name:
			return true
		case "*":
			star = true
		}
	}
	return star && onByDefault
}
