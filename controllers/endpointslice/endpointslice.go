// Package endpointslice is upstream's EndpointSlice controller: for every Service with a selector
// it keeps EndpointSlices (discovery.k8s.io/v1) listing the selected pods, at most 100 to a slice,
// one group of slices per address type and per distinct set of ports, with each endpoint's
// conditions (ready, serving, terminating), node, zone, hostname and target pod. When pods change
// it updates the slices in place where it can rather than rewriting them.
package endpointslice

import (
	"context"
	"errors"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	"github.com/keelson/keelson/controllers/podendpoints"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// ControllerName is the value of the managed-by label on the slices this controller manages.
const ControllerName = "endpointslice-controller.k8s.io"

// MaxEndpointsPerSlice is upstream's default --max-endpoints-per-slice.
const MaxEndpointsPerSlice = 100

// sliceChangeDelay is how long a change to one of its slices waits before the Service is synced,
// so that changes to several slices are handled together (upstream's minimum sync delay).
const sliceChangeDelay = time.Second

// ErrStale is returned by a sync that finds the informer behind the controller's own writes.
var ErrStale = errors.New("EndpointSlice informer cache is out of date")

type controller struct {
	*manager.Loop
	client       kubernetes.Interface
	services     corelisters.ServiceLister
	pods         corelisters.PodLister
	nodes        corelisters.NodeLister
	slices       discoverylisters.EndpointSliceLister
	tracker      *Tracker
	triggerTimes *podendpoints.TriggerTimes
	planner      planner
	// events reports failed syncs on the Service, as upstream's endpoint-slice-controller does.
	recorder record.EventRecorder
}

// New returns the EndpointSlice controller.
func New(c *manager.Context) (manager.Controller, error) {
	svcs := c.Informers.Core().V1().Services()
	pods := c.Informers.Core().V1().Pods()
	nodes := c.Informers.Core().V1().Nodes()
	eps := c.Informers.Discovery().V1().EndpointSlices()
	ctl := &controller{client: c.Client, services: svcs.Lister(), pods: pods.Lister(), nodes: nodes.Lister(), slices: eps.Lister(),
		tracker: NewTracker(), triggerTimes: podendpoints.NewTriggerTimes()}
	ctl.planner = planner{maxPerSlice: MaxEndpointsPerSlice, node: func(name string) (*corev1.Node, error) { return ctl.nodes.Get(name) }}
	ctl.recorder = c.Recorder("endpoint-slice-controller")
	ctl.Loop = manager.NewLoop("endpointslice-controller", 5, c.Log, ctl.sync)
	ctl.Queue = NewQueue("endpoint_slice")
	ctl.Synced = []cache.InformerSynced{svcs.Informer().HasSynced, pods.Informer().HasSynced, nodes.Informer().HasSynced, eps.Informer().HasSynced}
	enqueue := func(o any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
			ctl.Enqueue(key)
		}
	}
	if _, err := svcs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	}); err != nil {
		return nil, err
	}
	if err := podendpoints.OnPodEvents(pods.Informer(), ctl.services, ctl.Enqueue); err != nil {
		return nil, err
	}
	if _, err := eps.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { ctl.sliceEvent(nil, o.(*discoveryv1.EndpointSlice)) },
		UpdateFunc: func(o, n any) { ctl.sliceEvent(o.(*discoveryv1.EndpointSlice), n.(*discoveryv1.EndpointSlice)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			s, ok := o.(*discoveryv1.EndpointSlice)
			// A deletion this controller did not make brings the slice back.
			if ok && managed(s) && ctl.tracker.Has(s) && !ctl.tracker.HandleDeletion(s) {
				ctl.enqueueFor(s)
			}
		},
	}); err != nil {
		return nil, err
	}
	return ctl, nil
}

// NewQueue is the work queue of the EndpointSlice controllers: as upstream's, retries back off
// from 1s rather than 5ms, since a sync may rewrite many slices, and all retries together are
// held to 10 per second.
func NewQueue(name string) workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedMaxOfRateLimiter(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Second, 1000*time.Second),
			&workqueue.TypedBucketRateLimiter[string]{Limiter: rate.NewLimiter(rate.Limit(10), 100)}),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name})
}

func managed(s *discoveryv1.EndpointSlice) bool { return ManagedBy(s, ControllerName) }

// ManagedBy tells whether the slice carries the managed-by label of controller.
func ManagedBy(s *discoveryv1.EndpointSlice, controller string) bool {
	return s.Labels[discoveryv1.LabelManagedBy] == controller
}

// ChangedSlices returns the slices of an event (old is nil for an add) whose Services the
// controller managing slices as managedBy must sync: those changed other than by its own
// writes (one it did not write, a newer generation), and both sides of a change of
// service-name or managed-by.
func ChangedSlices(old, s *discoveryv1.EndpointSlice, managedBy string, tracker *Tracker) []*discoveryv1.EndpointSlice {
	if old != nil {
		if old.Labels[discoveryv1.LabelServiceName] != s.Labels[discoveryv1.LabelServiceName] {
			return []*discoveryv1.EndpointSlice{old, s}
		}
		if ManagedBy(old, managedBy) != ManagedBy(s, managedBy) {
			return []*discoveryv1.EndpointSlice{s}
		}
	}
	if ManagedBy(s, managedBy) && tracker.ShouldSync(s) {
		return []*discoveryv1.EndpointSlice{s}
	}
	return nil
}

// sliceEvent syncs the Services a slice event concerns.
func (c *controller) sliceEvent(old, s *discoveryv1.EndpointSlice) {
	for _, changed := range ChangedSlices(old, s, ControllerName, c.tracker) {
		c.enqueueFor(changed)
	}
}

func (c *controller) enqueueFor(s *discoveryv1.EndpointSlice) {
	if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
		c.Queue.AddAfter(s.Namespace+"/"+name, sliceChangeDelay)
	}
}

func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	svc, err := c.services.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		// The slices go with the Service through their owner reference.
		c.triggerTimes.Forget(key)
		c.tracker.Forget(types.NamespacedName{Namespace: namespace, Name: name})
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	// ExternalName Services and Services without a selector get no slices from here; the latter
	// get theirs from their users, or mirrored from their Endpoints.
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.Selector == nil {
		return 0, nil
	}
	pods, err := c.pods.Pods(namespace).List(labels.Set(svc.Spec.Selector).AsSelectorPreValidated())
	if err != nil {
		return 0, err
	}
	listed, err := c.slices.EndpointSlices(namespace).List(labels.Set{
		discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: ControllerName}.AsSelectorPreValidated())
	if err != nil {
		return 0, err
	}
	var existing []*discoveryv1.EndpointSlice
	for _, s := range listed {
		if s.DeletionTimestamp == nil {
			existing = append(existing, s)
		}
	}
	if c.tracker.Stale(types.NamespacedName{Namespace: namespace, Name: name}, svc.UID, existing) {
		return 0, ErrStale
	}
	trigger, seen := c.triggerTimes.Compute(key, svc, pods)
	ch, planErr := c.planner.plan(svc, pods, existing)
	applyErr := apply(ctx, c.client, c.tracker, svc, ch, trigger)
	if applyErr == nil {
		seen()
	}
	if err := utilerrors.NewAggregate([]error{planErr, applyErr}); err != nil {
		c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToUpdateEndpointSlices",
			"Error updating Endpoint Slices for Service %s/%s: %v", namespace, name, err)
		return 0, err
	}
	return 0, nil
}
