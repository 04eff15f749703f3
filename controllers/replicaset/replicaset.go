// Package replicaset keeps the number of pods a ReplicaSet or a ReplicationController asks for,
// as upstream's replicaset and replicationcontroller controllers do: it adopts matching orphans,
// releases pods that no longer match, creates and deletes pods in growing batches, and reports what
// it sees in the status. A ReplicationController is handled as the ReplicaSet it converts to.
package replicaset

import (
	"context"
	"sort"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// burstReplicas bounds the pods created or deleted in one sync, as upstream's default.
const burstReplicas = 500

type controller struct {
	*manager.Loop
	client    kubernetes.Interface
	kind      kind
	podLister corelisters.PodLister

	// pending are the creates and deletes issued but not yet seen in the informer, by key; a
	// sync that manages pods waits for them so as not to act on a stale view.
	pending manager.Expectations
}

// kind is what the controller manages, seen as ReplicaSets.
type kind struct {
	gvk      schema.GroupVersionKind
	informer cache.SharedIndexInformer
	get      func(namespace, name string) (*appsv1.ReplicaSet, error)
	list     func(namespace string) ([]*appsv1.ReplicaSet, error)
	// updateStatus writes status to the object rs stands for.
	updateStatus func(ctx context.Context, rs *appsv1.ReplicaSet, status appsv1.ReplicaSetStatus) error
}

// New returns the ReplicaSet controller.
func New(c *manager.Context) (manager.Controller, error) {
	inf := c.Informers.Apps().V1().ReplicaSets()
	lister := inf.Lister()
	return newController(c, "replicaset-controller", kind{
		gvk:      appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
		informer: inf.Informer(),
		get:      func(ns, name string) (*appsv1.ReplicaSet, error) { return lister.ReplicaSets(ns).Get(name) },
		list:     func(ns string) ([]*appsv1.ReplicaSet, error) { return lister.ReplicaSets(ns).List(labels.Everything()) },
		updateStatus: func(ctx context.Context, rs *appsv1.ReplicaSet, status appsv1.ReplicaSetStatus) error {
			update := rs.DeepCopy()
			update.Status = status
			_, err := c.Client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, update, metav1.UpdateOptions{})
			return err
		},
	})
}

// NewReplicationController returns the ReplicationController controller.
func NewReplicationController(c *manager.Context) (manager.Controller, error) {
	inf := c.Informers.Core().V1().ReplicationControllers()
	lister := inf.Lister()
	return newController(c, "replicationcontroller-controller", kind{
		gvk:      corev1.SchemeGroupVersion.WithKind("ReplicationController"),
		informer: inf.Informer(),
		get: func(ns, name string) (*appsv1.ReplicaSet, error) {
			rc, err := lister.ReplicationControllers(ns).Get(name)
			if err != nil {
				return nil, err
			}
			return asReplicaSet(rc), nil
		},
		list: func(ns string) ([]*appsv1.ReplicaSet, error) {
			rcs, err := lister.ReplicationControllers(ns).List(labels.Everything())
			out := make([]*appsv1.ReplicaSet, len(rcs))
			for i, rc := range rcs {
				out[i] = asReplicaSet(rc)
			}
			return out, err
		},
		updateStatus: func(ctx context.Context, rs *appsv1.ReplicaSet, status appsv1.ReplicaSetStatus) error {
			rc, err := lister.ReplicationControllers(rs.Namespace).Get(rs.Name)
			if err != nil {
				return err
			}
			update := rc.DeepCopy()
			update.Status = corev1.ReplicationControllerStatus{Replicas: status.Replicas, FullyLabeledReplicas: status.FullyLabeledReplicas,
				ReadyReplicas: status.ReadyReplicas, AvailableReplicas: status.AvailableReplicas, ObservedGeneration: status.ObservedGeneration}
			for _, c := range status.Conditions {
				update.Status.Conditions = append(update.Status.Conditions, corev1.ReplicationControllerCondition{Type: corev1.ReplicationControllerConditionType(c.Type),
					Status: c.Status, LastTransitionTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message})
			}
			_, err = c.Client.CoreV1().ReplicationControllers(rs.Namespace).UpdateStatus(ctx, update, metav1.UpdateOptions{})
			return err
		},
	})
}

// asReplicaSet is a ReplicationController as the ReplicaSet it amounts to.
func asReplicaSet(rc *corev1.ReplicationController) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: *rc.ObjectMeta.DeepCopy(),
		Spec: appsv1.ReplicaSetSpec{Replicas: rc.Spec.Replicas, MinReadySeconds: rc.Spec.MinReadySeconds,
			Selector: &metav1.LabelSelector{MatchLabels: rc.Spec.Selector}},
		Status: appsv1.ReplicaSetStatus{Replicas: rc.Status.Replicas, FullyLabeledReplicas: rc.Status.FullyLabeledReplicas,
			ReadyReplicas: rc.Status.ReadyReplicas, AvailableReplicas: rc.Status.AvailableReplicas, ObservedGeneration: rc.Status.ObservedGeneration},
	}
	if rc.Spec.Template != nil {
		rs.Spec.Template = *rc.Spec.Template.DeepCopy()
	}
	for _, c := range rc.Status.Conditions {
		rs.Status.Conditions = append(rs.Status.Conditions, appsv1.ReplicaSetCondition{Type: appsv1.ReplicaSetConditionType(c.Type),
			Status: c.Status, LastTransitionTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message})
	}
	return rs
}

func newController(c *manager.Context, name string, k kind) (manager.Controller, error) {
	pods := c.Informers.Core().V1().Pods()
	ctl := &controller{client: c.Client, kind: k, podLister: pods.Lister()}
	ctl.Loop = manager.NewLoop(name, 5, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{k.informer.HasSynced, pods.Informer().HasSynced}
	rs := k
	enqueueRS := func(o any) {
		if key, err := cache.MetaNamespaceKeyFunc(o); err == nil {
			ctl.Enqueue(key)
		}
	}
	if _, err := rs.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueRS, UpdateFunc: func(_, o any) { enqueueRS(o) }, DeleteFunc: func(o any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
				ctl.pending.Forget(key)
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { ctl.podEvent(o.(*corev1.Pod), 1, 0) },
		UpdateFunc: func(old, o any) { ctl.podChanged(old.(*corev1.Pod), o.(*corev1.Pod)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				ctl.podEvent(p, 0, 1)
			}
		},
	}); err != nil {
		return nil, err
	}
	return ctl, nil
}

// podEvent credits a pod's creation or deletion to its owning ReplicaSet, or wakes the sets that
// might adopt it.
func (c *controller) podEvent(p *corev1.Pod, added, deleted int) {
	if ref := metav1.GetControllerOf(p); ref != nil {
		if ref.Kind != c.kind.gvk.Kind || ref.APIVersion != c.kind.gvk.GroupVersion().String() {
			return
		}
		key := p.Namespace + "/" + ref.Name
		c.pending.Observe(key, added, deleted)
		c.Enqueue(key)
		return
	}
	c.enqueueMatching(p)
}

func (c *controller) podChanged(old, p *corev1.Pod) {
	if old.ResourceVersion == p.ResourceVersion {
		return
	}
	if p.DeletionTimestamp != nil && old.DeletionTimestamp == nil {
		// A pod marked for deletion counts as deleted from now on.
		c.podEvent(p, 0, 1)
		return
	}
	for _, pod := range []*corev1.Pod{old, p} {
		if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == c.kind.gvk.Kind {
			c.Enqueue(pod.Namespace + "/" + ref.Name)
		}
	}
	if metav1.GetControllerOf(p) == nil {
		c.enqueueMatching(p)
	}
}

func (c *controller) enqueueMatching(p *corev1.Pod) {
	sets, err := c.kind.list(p.Namespace)
	if err != nil {
		return
	}
	for _, rs := range sets {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			c.Enqueue(rs.Namespace + "/" + rs.Name)
		}
	}
}

func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	rs, err := c.kind.get(namespace, name)
	if apierrors.IsNotFound(err) {
		c.pending.Forget(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil || selector.Empty() {
		return 0, nil // validation refuses these; nothing sensible to do
	}
	all, err := c.podLister.Pods(namespace).List(labels.Everything())
	if err != nil {
		return 0, err
	}
	owned, err := c.claim(ctx, rs, selector, all)
	if err != nil {
		return 0, err
	}
	var active []*corev1.Pod
	for _, p := range owned {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			active = append(active, p)
		}
	}
	var manageErr error
	if rs.DeletionTimestamp == nil && c.pending.Satisfied(key) {
		manageErr = c.manage(ctx, key, rs, active)
	}
	if err := c.updateStatus(ctx, rs, active, manageErr); err != nil {
		return 0, err
	}
	if manageErr != nil {
		return 0, manageErr
	}
	if wait := minReadyRecheck(rs, active); wait > 0 {
		return wait, nil
	}
	return 0, nil
}

// claim adopts matching orphans and releases owned pods that no longer match, returning the pods
// the ReplicaSet owns.
func (c *controller) claim(ctx context.Context, rs *appsv1.ReplicaSet, selector labels.Selector, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	return manager.ClaimPods(ctx, c.client, c.kind.gvk, rs, pods, func(p *corev1.Pod) bool { return selector.Matches(labels.Set(p.Labels)) })
}

// manage creates or deletes pods to reach spec.replicas.
func (c *controller) manage(ctx context.Context, key string, rs *appsv1.ReplicaSet, active []*corev1.Pod) error {
	want := int(ptr.Deref(rs.Spec.Replicas, 1))
	diff := len(active) - want
	switch {
	case diff < 0:
		n := min(-diff, burstReplicas)
		c.pending.Expect(key, n, 0)
		created, err := manager.SlowStart(n, func(int) error { return c.createPod(ctx, rs) })
		if skipped := n - created; skipped > 0 {
			c.pending.Observe(key, skipped, 0) // the pods not created will not show up
		}
		return err
	case diff > 0:
		n := min(diff, burstReplicas)
		victims := podsToDelete(active, n)
		c.pending.Expect(key, 0, n)
		var firstErr error
		for _, p := range victims {
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
			if err != nil {
				c.pending.Observe(key, 0, 1)
				if !apierrors.IsNotFound(err) && firstErr == nil {
					firstErr = err
				}
			}
		}
		return firstErr
	}
	return nil
}

func (c *controller) createPod(ctx context.Context, rs *appsv1.ReplicaSet) error {
	t := rs.Spec.Template.DeepCopy()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: rs.Name + "-",
			Namespace:    rs.Namespace,
			Labels:       t.Labels,
			Annotations:  t.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: c.kind.gvk.GroupVersion().String(), Kind: c.kind.gvk.Kind, Name: rs.Name, UID: rs.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: t.Spec,
	}
	_, err := c.client.CoreV1().Pods(rs.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	return err
}

// podsToDelete picks n pods, preferring those that matter least: unscheduled, then pending, then
// not ready, then the newest, as upstream ranks them.
func podsToDelete(pods []*corev1.Pod, n int) []*corev1.Pod {
	ranked := append([]*corev1.Pod(nil), pods...)
	rank := func(p *corev1.Pod) int {
		switch {
		case p.Spec.NodeName == "":
			return 0
		case p.Status.Phase == corev1.PodPending:
			return 1
		case !manager.PodReady(p):
			return 2
		}
		return 3
	}
	sort.SliceStable(ranked, func(i, j int) bool {
		ri, rj := rank(ranked[i]), rank(ranked[j])
		if ri != rj {
			return ri < rj
		}
		return ranked[j].CreationTimestamp.Before(&ranked[i].CreationTimestamp)
	})
	return ranked[:n]
}

// minReadyRecheck is when a ready-but-not-yet-available pod becomes available.
func minReadyRecheck(rs *appsv1.ReplicaSet, active []*corev1.Pod) time.Duration {
	if rs.Spec.MinReadySeconds == 0 {
		return 0
	}
	now := time.Now()
	for _, p := range active {
		if manager.PodReady(p) && !manager.PodAvailable(p, rs.Spec.MinReadySeconds, now) {
			return time.Duration(rs.Spec.MinReadySeconds) * time.Second
		}
	}
	return 0
}

func (c *controller) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet, active []*corev1.Pod, manageErr error) error {
	now := time.Now()
	templateLabels := labels.Set(rs.Spec.Template.Labels).AsSelectorPreValidated()
	status := appsv1.ReplicaSetStatus{Replicas: int32(len(active)), ObservedGeneration: rs.Generation}
	for _, p := range active {
		if templateLabels.Matches(labels.Set(p.Labels)) {
			status.FullyLabeledReplicas++
		}
		if manager.PodReady(p) {
			status.ReadyReplicas++
		}
		if manager.PodAvailable(p, rs.Spec.MinReadySeconds, now) {
			status.AvailableReplicas++
		}
	}
	for _, cond := range rs.Status.Conditions {
		if cond.Type != appsv1.ReplicaSetReplicaFailure {
			status.Conditions = append(status.Conditions, cond)
		}
	}
	if manageErr != nil {
		status.Conditions = append(status.Conditions, appsv1.ReplicaSetCondition{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.Now(), Reason: "FailedCreate", Message: manageErr.Error()})
	}
	if statusEqual(rs.Status, status) {
		return nil
	}
	err := c.kind.updateStatus(ctx, rs, status)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		// Gone, or changed meanwhile: the change brings another sync.
		return nil
	}
	return err
}

func statusEqual(a, b appsv1.ReplicaSetStatus) bool {
	if a.Replicas != b.Replicas || a.FullyLabeledReplicas != b.FullyLabeledReplicas || a.ReadyReplicas != b.ReadyReplicas ||
		a.AvailableReplicas != b.AvailableReplicas || a.ObservedGeneration != b.ObservedGeneration || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		if a.Conditions[i].Type != b.Conditions[i].Type || a.Conditions[i].Status != b.Conditions[i].Status || a.Conditions[i].Message != b.Conditions[i].Message {
			return false
		}
	}
	return true
}
