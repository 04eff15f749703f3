package manager

import (
	"context"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// maxRetries bounds the retries of one key: with the default rate limiter the waits run
// 5ms, 10ms, 20ms, ... doubling to about 82s on the 15th, then the key is dropped until its
// object changes again.
const maxRetries = 15

// Loop is the usual shape of a controller: handlers enqueue keys, workers call Sync with each.
// Sync is never called with the same key twice at once.
type Loop struct {
	ControllerName string
	Workers        int
	Synced         []cache.InformerSynced
	// Sync reconciles one key; it returns the delay after which to look again (0: none).
	Sync  func(ctx context.Context, key string) (time.Duration, error)
	Queue workqueue.TypedRateLimitingInterface[string]
	Log   *slog.Logger
}

// NewLoop returns a loop with its queue.
func NewLoop(name string, workers int, log *slog.Logger, sync func(ctx context.Context, key string) (time.Duration, error)) *Loop {
	return &Loop{
		ControllerName: name, Workers: workers, Sync: sync, Log: log.With("controller", name),
		Queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name}),
	}
}

// Name is the controller's name.
func (l *Loop) Name() string { return l.ControllerName }

// Enqueue adds a key.
func (l *Loop) Enqueue(key string) { l.Queue.Add(key) }

// Run waits for the informers, then works the queue until ctx is done.
func (l *Loop) Run(ctx context.Context) error {
	defer l.Queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), l.Synced...) {
		return ctx.Err()
	}
	var wg sync.WaitGroup
	for range max(l.Workers, 1) {
		wg.Go(func() {
			for l.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	l.Queue.ShutDown()
	wg.Wait()
	return nil
}

func (l *Loop) next(ctx context.Context) bool {
	key, quit := l.Queue.Get()
	if quit {
		return false
	}
	defer l.Queue.Done(key)
	after, err := l.Sync(ctx, key)
	switch {
	case err == nil:
		l.Queue.Forget(key)
		if after > 0 {
			l.Queue.AddAfter(key, after)
		}
	case l.Queue.NumRequeues(key) < maxRetries:
		l.Log.Info("retrying", "key", key, "err", err)
		l.Queue.AddRateLimited(key)
	default:
		l.Log.Error("dropping key after retries", "key", key, "err", err)
		l.Queue.Forget(key)
	}
	return true
}

// EnqueueNamespaces makes every namespace added or changed in inf a key of the loop.
func (l *Loop) EnqueueNamespaces(inf cache.SharedIndexInformer) error {
	enqueue := func(o any) {
		if m, ok := o.(metav1.Object); ok {
			l.Enqueue(m.GetName())
		}
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }})
	return err
}

// ActiveNamespace tells whether the namespace exists and is not being deleted, the condition for
// the controllers that put objects into every namespace.
func ActiveNamespace(namespaces corelisters.NamespaceLister, name string) (bool, error) {
	ns, err := namespaces.Get(name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return ns.DeletionTimestamp == nil && ns.Status.Phase != corev1.NamespaceTerminating, nil
}
