// Package manager runs the controllers under leader election on a Lease, as
// kube-controller-manager does: one copy is active, the others stand by and take over within the
// lease time when it dies.
package manager

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
)

// Controller is one control loop. Run blocks until ctx is done.
type Controller interface {
	Name() string
	Run(ctx context.Context) error
}

// Context is what controllers are built from: clients and the shared informers, which the
// manager starts once every controller has registered its handlers.
type Context struct {
	Config    *rest.Config
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	Log       *slog.Logger

	events record.EventBroadcaster
}

// Recorder returns an event recorder that reports as component (the controller's name in
// events' source, as upstream's controllers report).
func (c *Context) Recorder(component string) record.EventRecorder {
	return c.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
}

// Builder makes the controllers of one leadership term.
type Builder func(c *Context) ([]Controller, error)

// Options configure the manager.
type Options struct {
	// LeaseName and LeaseNamespace name the leader-election Lease.
	LeaseName, LeaseNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's leader-election timings.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Log                                       *slog.Logger
}

// Run campaigns for the lease and, while leading, runs every controller. It returns when ctx is
// done; losing the lease stops the controllers and campaigns again.
func Run(ctx context.Context, cfg *rest.Config, opts Options, build Builder) error {
	if opts.LeaseName == "" {
		opts.LeaseName = "kube-controller-manager"
	}
	if opts.LeaseNamespace == "" {
		opts.LeaseNamespace = "kube-system"
	}
	if opts.LeaseDuration == 0 {
		opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s_%s", host, uuid.NewUUID())
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(opts),
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	for ctx.Err() == nil {
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   opts.LeaseDuration,
			RenewDeadline:   opts.RenewDeadline,
			RetryPeriod:     opts.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            opts.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					opts.Log.Info("leading: starting controllers", "lease", opts.LeaseNamespace+"/"+opts.LeaseName, "identity", id)
					c := &Context{Config: cfg, Client: client, Informers: informers.NewSharedInformerFactory(client, 0), Log: opts.Log,
						events: record.NewBroadcaster(record.WithContext(ctx))}
					c.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
					defer c.events.Shutdown()
					controllers, err := build(c)
					if err != nil {
						opts.Log.Error("building controllers", "err", err)
						return
					}
					c.Informers.Start(ctx.Done())
					defer c.Informers.Shutdown()
					runAll(ctx, controllers, opts.Log)
				},
				OnStoppedLeading: func() {
					opts.Log.Info("stopped leading", "identity", id)
				},
			},
		})
	}
	return nil
}

// runAll runs the controllers until ctx is done and waits for them.
func runAll(ctx context.Context, controllers []Controller, log *slog.Logger) {
	var wg sync.WaitGroup
	for _, c := range controllers {
		wg.Go(func() {
			if err := c.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("controller stopped", "controller", c.Name(), "err", err)
			}
		})
	}
	wg.Wait()
}
