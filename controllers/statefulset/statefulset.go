// Package statefulset gives each StatefulSet its stable, ordered pods, as upstream's statefulset
// controller does: pods named <set>-<ordinal> with a hostname in the set's service, their
// PersistentVolumeClaims made from the claim templates, created in order and each only once the
// one before is Running and Ready (OrderedReady) or all at once (Parallel), removed from the
// highest ordinal down, and rolled to a new template from the highest ordinal down to the
// partition within maxUnavailable (RollingUpdate) or as the user deletes them (OnDelete). Each
// template is a ControllerRevision; the status names the current and update revisions.
package statefulset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/keelson/keelson/controllers/history"
	"github.com/keelson/keelson/controllers/manager"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

var (
	kind    = appsv1.SchemeGroupVersion.WithKind("StatefulSet")
	podKind = corev1.SchemeGroupVersion.WithKind("Pod")
)

type controller struct {
	*manager.Loop
	client    kubernetes.Interface
	history   history.Store
	setLister appslisters.StatefulSetLister
	podLister corelisters.PodLister
	pvcLister corelisters.PersistentVolumeClaimLister
	revLister appslisters.ControllerRevisionLister
	recorder  record.EventRecorder
}

// New registers the controller's handlers.
func New(c *manager.Context) (manager.Controller, error) {
	sets := c.Informers.Apps().V1().StatefulSets()
	pods := c.Informers.Core().V1().Pods()
	pvcs := c.Informers.Core().V1().PersistentVolumeClaims()
	revs := c.Informers.Apps().V1().ControllerRevisions()
	ctl := &controller{client: c.Client, history: history.Store{Client: c.Client}, setLister: sets.Lister(), podLister: pods.Lister(),
		pvcLister: pvcs.Lister(), revLister: revs.Lister(),
		recorder: c.Recorder("statefulset-controller")}
	ctl.Loop = manager.NewLoop("statefulset-controller", 5, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{sets.Informer().HasSynced, pods.Informer().HasSynced, pvcs.Informer().HasSynced, revs.Informer().HasSynced}
	enqueue := func(o any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
			ctl.Enqueue(key)
		}
	}
	if _, err := sets.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue}); err != nil {
		return nil, err
	}
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { ctl.onChild(o) },
		UpdateFunc: func(old, o any) {
			oldPod, pod := old.(*corev1.Pod), o.(*corev1.Pod)
			if oldPod.ResourceVersion == pod.ResourceVersion {
				return
			}
			ctl.onChild(old)
			ctl.onChild(o)
			// A pod that turns ready becomes available minReadySeconds later, with no event to say so.
			if ref := metav1.GetControllerOfNoCopy(pod); ref != nil && ref.Kind == kind.Kind && !manager.PodReady(oldPod) && manager.PodReady(pod) {
				if set, err := ctl.setLister.StatefulSets(pod.Namespace).Get(ref.Name); err == nil && set.Spec.MinReadySeconds > 0 {
					ctl.Queue.AddAfter(pod.Namespace+"/"+ref.Name, time.Duration(set.Spec.MinReadySeconds)*time.Second)
				}
			}
		},
		DeleteFunc: func(o any) { ctl.onChild(o) },
	}); err != nil {
		return nil, err
	}
	// A pod waits for a stale claim of its name to be deleted; the deletion wakes the set.
	if _, err := pvcs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(o any) { ctl.onClaimDeleted(o) }}); err != nil {
		return nil, err
	}
	if _, err := revs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { ctl.onChild(o) }, UpdateFunc: func(_, o any) { ctl.onChild(o) }, DeleteFunc: func(o any) { ctl.onChild(o) },
	}); err != nil {
		return nil, err
	}
	return ctl, nil
}

// onChild wakes the set that controls a pod or revision, or for an orphan the sets that select it.
func (c *controller) onChild(o any) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	m, ok := o.(metav1.Object)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
		if ref.Kind == kind.Kind && ref.APIVersion == kind.GroupVersion().String() {
			c.Enqueue(m.GetNamespace() + "/" + ref.Name)
		}
		return
	}
	sets, err := c.setLister.StatefulSets(m.GetNamespace()).List(labels.Everything())
	if err != nil {
		return
	}
	for _, set := range sets {
		if sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(m.GetLabels())) {
			c.Enqueue(set.Namespace + "/" + set.Name)
		}
	}
}

// onClaimDeleted wakes the sets that select a deleted claim's labels, as their claims carry.
func (c *controller) onClaimDeleted(o any) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	claim, ok := o.(*corev1.PersistentVolumeClaim)
	if !ok {
		return
	}
	sets, err := c.setLister.StatefulSets(claim.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, set := range sets {
		if len(set.Spec.VolumeClaimTemplates) == 0 {
			continue
		}
		if sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(claim.Labels)) {
			c.Enqueue(set.Namespace + "/" + set.Name)
		}
	}
}

func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	set, err := c.setLister.StatefulSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	selector, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil || selector.Empty() {
		return 0, nil // validation refuses these; nothing sensible to do
	}
	set = set.DeepCopy()
	allPods, err := c.podLister.Pods(namespace).List(labels.Everything())
	if err != nil {
		return 0, err
	}
	pods, err := c.claimPods(ctx, set, selector, allPods)
	if err != nil {
		return 0, err
	}
	allRevs, err := c.revLister.ControllerRevisions(namespace).List(labels.Everything())
	if err != nil {
		return 0, err
	}
	revisions, err := c.history.Claim(ctx, set, kind, selector, allRevs)
	if err != nil {
		return 0, err
	}
	after, err := c.update(ctx, set, pods, revisions)
	if manager.NamespaceTerminating(err) {
		return 0, nil
	}
	return after, err
}

// claimPods adopts the orphans the set selects and whose names make them its members, releases
// the pods it owns that no longer qualify, and returns the pods it owns.
func (c *controller) claimPods(ctx context.Context, set *appsv1.StatefulSet, selector labels.Selector, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	return manager.ClaimPods(ctx, c.client, kind, set, pods, func(p *corev1.Pod) bool { return selector.Matches(labels.Set(p.Labels)) && isMemberOf(set, p) })
}

// update reconciles the set's pods and claims with its spec and revisions, writes its status
// and prunes its history.
func (c *controller) update(ctx context.Context, set *appsv1.StatefulSet, pods []*corev1.Pod, revisions []*appsv1.ControllerRevision) (time.Duration, error) {
	history.Sort(revisions)
	current, updateRev, collisionCount, err := c.revisions(ctx, set, revisions)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	status, manageErr := c.manage(ctx, set, current, updateRev, collisionCount, pods, now)
	if status != nil {
		if err := c.writeStatus(ctx, set, status); err != nil && manageErr == nil {
			manageErr = err
		}
	}
	if err := c.truncateHistory(ctx, set, pods, revisions, current, updateRev); err != nil && manageErr == nil {
		manageErr = err
	}
	if manageErr != nil {
		return 0, manageErr
	}
	if set.Spec.MinReadySeconds > 0 && status != nil && status.ReadyReplicas != status.AvailableReplicas {
		return time.Duration(set.Spec.MinReadySeconds) * time.Second, nil
	}
	return 0, nil
}

// revisions finds or creates the revision of the set's template (the update revision), moving
// an older equal revision to the top of the history as a rollback does, and finds the current
// revision from the status (the update revision for a new set).
func (c *controller) revisions(ctx context.Context, set *appsv1.StatefulSet, revisions []*appsv1.ControllerRevision) (current, updateRev *appsv1.ControllerRevision, collisionCount int32, err error) {
	collisionCount = ptr.Deref(set.Status.CollisionCount, 0)
	updateRev, err = newRevision(set, history.MaxRevision(revisions)+1, &collisionCount)
	if err != nil {
		return nil, nil, collisionCount, err
	}
	equal := history.FindEqual(revisions, updateRev)
	switch {
	case len(equal) > 0 && history.Equal(revisions[len(revisions)-1], equal[len(equal)-1]):
		updateRev = revisions[len(revisions)-1]
	case len(equal) > 0:
		updateRev, err = c.history.SetRevision(ctx, equal[len(equal)-1], updateRev.Revision)
	default:
		updateRev, err = c.history.Create(ctx, set, updateRev, &collisionCount)
	}
	if err != nil {
		return nil, nil, collisionCount, err
	}
	for _, r := range revisions {
		if r.Name == set.Status.CurrentRevision {
			current = r
			break
		}
	}
	if current == nil {
		current = updateRev
	}
	return current, updateRev, collisionCount, nil
}

// newRevision is the revision of the set's template, carrying the set's annotations.
func newRevision(set *appsv1.StatefulSet, revision int64, collisionCount *int32) (*appsv1.ControllerRevision, error) {
	patch, err := history.TemplatePatch(set)
	if err != nil {
		return nil, err
	}
	rev := history.New(set, kind, set.Spec.Template.Labels, patch, revision, collisionCount)
	if len(set.Annotations) > 0 {
		rev.Annotations = make(map[string]string, len(set.Annotations))
		for k, v := range set.Annotations {
			rev.Annotations[k] = v
		}
	}
	return rev, nil
}

// applyRevision is the set with its template restored from rev.
func applyRevision(set *appsv1.StatefulSet, rev *appsv1.ControllerRevision) (*appsv1.StatefulSet, error) {
	original, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	patched, err := strategicpatch.StrategicMergePatch(original, rev.Data.Raw, &appsv1.StatefulSet{})
	if err != nil {
		return nil, err
	}
	restored := &appsv1.StatefulSet{}
	if err := json.Unmarshal(patched, restored); err != nil {
		return nil, err
	}
	return restored, nil
}

// manage creates, repairs, deletes and updates pods, one step at a time for OrderedReady sets,
// and returns the status that results (nil when nothing could be worked out).
func (c *controller) manage(ctx context.Context, set *appsv1.StatefulSet, current, updateRev *appsv1.ControllerRevision, collisionCount int32,
	pods []*corev1.Pod, now time.Time) (*appsv1.StatefulSetStatus, error) {
	currentSet, err := applyRevision(set, current)
	if err != nil {
		return nil, err
	}
	updateSet, err := applyRevision(set, updateRev)
	if err != nil {
		return nil, err
	}
	status := &appsv1.StatefulSetStatus{
		ObservedGeneration: set.Generation, CurrentRevision: current.Name, UpdateRevision: updateRev.Name,
		CollisionCount: ptr.To(collisionCount), Conditions: append([]appsv1.StatefulSetCondition(nil), set.Status.Conditions...),
	}
	countReplicas(status, set.Spec.MinReadySeconds, current, updateRev, now, pods)

	start := startOrdinal(set)
	replicas := make([]*corev1.Pod, int(ptr.Deref(set.Spec.Replicas, 1)))
	var condemned []*corev1.Pod
	for _, p := range pods {
		switch o := ordinalOf(p); {
		case inRange(p, set):
			replicas[o-start] = p
		case o >= 0:
			condemned = append(condemned, p)
		}
	}
	for i := range replicas {
		if replicas[i] == nil {
			replicas[i] = newVersionedPod(currentSet, updateSet, current.Name, updateRev.Name, start+i)
		}
	}
	sort.Slice(condemned, func(i, j int) bool { return ordinalOf(condemned[i]) > ordinalOf(condemned[j]) })

	// The first unavailable pod, in ordinal order then from the lowest condemned, is the one an
	// OrderedReady set may delete although it is not ready: waiting for it would wait forever.
	var firstUnavailable *corev1.Pod
	for _, p := range replicas {
		if unavailable(p, set.Spec.MinReadySeconds, now) {
			firstUnavailable = p
			break
		}
	}
	if firstUnavailable == nil {
		for i := len(condemned) - 1; i >= 0; i-- {
			if unavailable(condemned[i], set.Spec.MinReadySeconds, now) {
				firstUnavailable = condemned[i]
				break
			}
		}
	}
	if set.DeletionTimestamp != nil {
		return status, nil
	}
	monotonic := set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
	recount := func() { countReplicas(status, set.Spec.MinReadySeconds, current, updateRev, now, replicas, condemned) }

	if stop, err := forAll(replicas, monotonic, func(i int) (bool, error) {
		return c.processReplica(ctx, set, updateSet, monotonic, replicas[i], now)
	}); stop || err != nil {
		recount()
		return status, err
	}
	if stop, err := forAll(condemned, monotonic, func(i int) (bool, error) {
		return false, c.fixClaims(ctx, updateSet, condemned[i])
	}); stop || err != nil {
		recount()
		return status, err
	}
	if stop, err := forAll(condemned, monotonic, func(i int) (bool, error) {
		return c.processCondemned(ctx, set, firstUnavailable, monotonic, condemned[i], now)
	}); stop || err != nil {
		recount()
		return status, err
	}
	recount()
	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return status, nil
	}
	return status, c.rollingUpdate(ctx, set, replicas, updateRev, status, now)
}

// forAll runs fn over pods: in order, stopping at the first that asks to, for an OrderedReady
// set; all at once in growing batches for a Parallel one.
func forAll(pods []*corev1.Pod, monotonic bool, fn func(i int) (bool, error)) (bool, error) {
	if monotonic {
		for i := range pods {
			if stop, err := fn(i); stop || err != nil {
				return true, err
			}
		}
		return false, nil
	}
	next := 0
	for batch := 1; next < len(pods); batch *= 2 {
		size := min(batch, len(pods)-next)
		errs := make([]error, size)
		var wg sync.WaitGroup
		for k := range size {
			wg.Go(func() { _, errs[k] = fn(next + k) })
		}
		wg.Wait()
		next += size
		if err := errors.Join(errs...); err != nil {
			return true, err
		}
	}
	return false, nil
}

// processReplica brings the pod at one ordinal to what the set wants; true means an
// OrderedReady set must wait before going further.
func (c *controller) processReplica(ctx context.Context, set, updateSet *appsv1.StatefulSet, monotonic bool, pod *corev1.Pod, now time.Time) (bool, error) {
	if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		// A pod that ended is replaced under the same name once its deletion is seen.
		if pod.DeletionTimestamp == nil {
			if err := c.deletePod(ctx, set, pod); err != nil {
				return true, err
			}
		}
		return true, nil
	}
	if pod.Status.Phase == "" {
		if stale, err := c.claimIsStale(set, pod); err != nil || stale {
			return true, err
		}
		if err := c.createPod(ctx, set, pod); err != nil {
			return true, err
		}
		if monotonic {
			return true, nil
		}
		return false, nil
	}
	if pod.Status.Phase == corev1.PodPending {
		// Claims deleted meanwhile come back for a pod that has not started.
		if err := c.createClaims(ctx, set, pod); err != nil {
			return true, err
		}
		if err := c.fixClaims(ctx, updateSet, pod); err != nil {
			c.podEvent(set, "update", pod, err)
			return true, err
		}
	}
	if monotonic && (pod.DeletionTimestamp != nil || !runningAndReady(pod) || !manager.PodAvailable(pod, set.Spec.MinReadySeconds, now)) {
		return true, nil
	}
	if !identityMatches(set, pod) {
		if err := c.fixIdentity(ctx, set, pod); err != nil {
			return true, err
		}
	}
	if !storageMatches(set, pod) {
		if err := c.createClaims(ctx, set, pod); err != nil {
			return true, err
		}
	}
	return false, c.fixClaims(ctx, updateSet, pod)
}

// processCondemned deletes a pod beyond the set's ordinals: for an OrderedReady set one at a
// time, highest first, and only while the others are healthy.
func (c *controller) processCondemned(ctx context.Context, set *appsv1.StatefulSet, firstUnavailable *corev1.Pod, monotonic bool, pod *corev1.Pod, now time.Time) (bool, error) {
	if pod.DeletionTimestamp != nil {
		return monotonic, nil
	}
	if monotonic && pod != firstUnavailable && (!runningAndReady(pod) || !manager.PodAvailable(pod, set.Spec.MinReadySeconds, now)) {
		return true, nil
	}
	return true, c.deletePod(ctx, set, pod)
}

// rollingUpdate deletes pods of older revisions from the highest ordinal down to the partition,
// keeping at most maxUnavailable pods unavailable; the pods come back at the update revision.
func (c *controller) rollingUpdate(ctx context.Context, set *appsv1.StatefulSet, replicas []*corev1.Pod, updateRev *appsv1.ControllerRevision, status *appsv1.StatefulSetStatus, now time.Time) error {
	partition, maxUnavailable := 0, 1
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		partition = int(ptr.Deref(ru.Partition, 0))
		v, err := intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(ru.MaxUnavailable, intstr.FromInt32(1)), len(replicas), false)
		if err != nil {
			return err
		}
		maxUnavailable = max(v, 1)
	}
	parallel := set.Spec.PodManagementPolicy == appsv1.ParallelPodManagement
	unavailablePods, unavailableOutdated := 0, 0
	for _, p := range replicas {
		if unavailable(p, set.Spec.MinReadySeconds, now) {
			unavailablePods++
			if parallel && revisionOf(p) != updateRev.Name && p.DeletionTimestamp == nil {
				unavailableOutdated++
			}
		}
	}
	if unavailablePods >= maxUnavailable && unavailableOutdated == 0 {
		return nil
	}
	outdated := func(p *corev1.Pod) bool { return revisionOf(p) != updateRev.Name && p.DeletionTimestamp == nil }
	if parallel {
		// Outdated pods that are unavailable anyway cost nothing to replace.
		for i := len(replicas) - 1; i >= partition; i-- {
			if p := replicas[i]; outdated(p) && !manager.PodAvailable(p, set.Spec.MinReadySeconds, now) {
				if err := c.deletePod(ctx, set, p); err != nil {
					return err
				}
				status.CurrentReplicas--
			}
		}
		budget := maxUnavailable - unavailablePods
		for i := len(replicas) - 1; i >= partition && budget > 0; i-- {
			if p := replicas[i]; outdated(p) && !unavailable(p, set.Spec.MinReadySeconds, now) {
				if err := c.deletePod(ctx, set, p); err != nil {
					return err
				}
				budget--
				status.CurrentReplicas--
			}
		}
		return nil
	}
	budget := maxUnavailable - unavailablePods
	for i := len(replicas) - 1; i >= partition && budget > 0; i-- {
		if p := replicas[i]; outdated(p) {
			if err := c.deletePod(ctx, set, p); err != nil {
				return err
			}
			budget--
			status.CurrentReplicas--
		}
	}
	return nil
}

// countReplicas fills the status's pod counts from the pod lists.
func countReplicas(status *appsv1.StatefulSetStatus, minReady int32, current, updateRev *appsv1.ControllerRevision, now time.Time, lists ...[]*corev1.Pod) {
	status.Replicas, status.ReadyReplicas, status.AvailableReplicas, status.CurrentReplicas, status.UpdatedReplicas = 0, 0, 0, 0, 0
	for _, list := range lists {
		for _, p := range list {
			created := p.Status.Phase != ""
			if created {
				status.Replicas++
			}
			if runningAndReady(p) {
				status.ReadyReplicas++
				if manager.PodAvailable(p, minReady, now) {
					status.AvailableReplicas++
				}
			}
			if created && p.DeletionTimestamp == nil {
				if revisionOf(p) == current.Name {
					status.CurrentReplicas++
				}
				if revisionOf(p) == updateRev.Name {
					status.UpdatedReplicas++
				}
			}
		}
	}
}

// writeStatus completes a finished update (every pod at the update revision and ready) and
// writes the status if it changed.
func (c *controller) writeStatus(ctx context.Context, set *appsv1.StatefulSet, status *appsv1.StatefulSetStatus) error {
	replicas := ptr.Deref(set.Spec.Replicas, 1)
	if status.UpdatedReplicas == replicas && status.ReadyReplicas == replicas && status.Replicas == replicas {
		status.CurrentReplicas = status.UpdatedReplicas
		status.CurrentRevision = status.UpdateRevision
	}
	old := set.Status
	if status.ObservedGeneration <= old.ObservedGeneration && status.Replicas == old.Replicas && status.ReadyReplicas == old.ReadyReplicas &&
		status.AvailableReplicas == old.AvailableReplicas && status.CurrentReplicas == old.CurrentReplicas && status.UpdatedReplicas == old.UpdatedReplicas &&
		status.CurrentRevision == old.CurrentRevision && status.UpdateRevision == old.UpdateRevision &&
		ptr.Deref(status.CollisionCount, 0) == ptr.Deref(old.CollisionCount, 0) && apiequality.Semantic.DeepEqual(status.Conditions, old.Conditions) {
		return nil
	}
	update := set.DeepCopy()
	update.Status = *status
	_, err := c.client.AppsV1().StatefulSets(set.Namespace).UpdateStatus(ctx, update, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or changed meanwhile: the change brings another sync
	}
	return err
}

// truncateHistory deletes the oldest revisions beyond revisionHistoryLimit that no pod, nor the
// current or update revision, uses.
func (c *controller) truncateHistory(ctx context.Context, set *appsv1.StatefulSet, pods []*corev1.Pod, revisions []*appsv1.ControllerRevision, current, updateRev *appsv1.ControllerRevision) error {
	live := map[string]bool{current.Name: true, updateRev.Name: true}
	for _, p := range pods {
		live[revisionOf(p)] = true
	}
	var old []*appsv1.ControllerRevision
	for _, r := range revisions {
		if !live[r.Name] {
			old = append(old, r)
		}
	}
	limit := int(ptr.Deref(set.Spec.RevisionHistoryLimit, 10))
	if limit < 0 || len(old) <= limit {
		return nil
	}
	for _, r := range old[:len(old)-limit] {
		if err := c.history.Delete(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// createPod creates the pod's claims, then the pod.
func (c *controller) createPod(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	if err := c.createClaims(ctx, set, pod); err != nil {
		c.podEvent(set, "create", pod, err)
		return err
	}
	_, err := c.client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return err // the cache is behind; the next sync sees the pod
	}
	if err == nil {
		// The pod has no uid yet, which only the scale-down ownership would need.
		err = c.fixClaims(ctx, set, pod)
	}
	c.podEvent(set, "create", pod, err)
	return err
}

func (c *controller) deletePod(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	c.podEvent(set, "delete", pod, err)
	return err
}

// podEvent records upstream's event for a pod operation.
func (c *controller) podEvent(set *appsv1.StatefulSet, verb string, pod *corev1.Pod, err error) {
	title := string(verb[0]-'a'+'A') + verb[1:]
	if err == nil {
		c.recorder.Eventf(set, corev1.EventTypeNormal, "Successful"+title, "%s Pod %s in StatefulSet %s successful", title, pod.Name, set.Name)
		return
	}
	c.recorder.Eventf(set, corev1.EventTypeWarning, "Failed"+title, "%s Pod %s in StatefulSet %s failed error: %s", title, pod.Name, set.Name, err)
}

// fixIdentity puts back the labels that name a pod's place in the set.
func (c *controller) fixIdentity(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{
		appsv1.StatefulSetPodNameLabel: pod.Name, appsv1.PodIndexLabel: strconv.Itoa(ordinalOf(pod)),
	}}})
	if err != nil {
		return err
	}
	_, err = c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	c.podEvent(set, "update", pod, err)
	return err
}

// Pod identity, after upstream's helpers.

var podNameRegexp = regexp.MustCompile("(.*)-([0-9]+)$")

// parentAndOrdinal splits a pod name into its set's name and ordinal (-1 if it has none).
func parentAndOrdinal(pod *corev1.Pod) (string, int) {
	m := podNameRegexp.FindStringSubmatch(pod.Name)
	if m == nil {
		return "", -1
	}
	o, err := strconv.ParseInt(m[2], 10, 32)
	if err != nil {
		return "", -1
	}
	return m[1], int(o)
}

func ordinalOf(pod *corev1.Pod) int {
	_, o := parentAndOrdinal(pod)
	return o
}

func isMemberOf(set *appsv1.StatefulSet, pod *corev1.Pod) bool {
	parent, _ := parentAndOrdinal(pod)
	return parent == set.Name
}

func startOrdinal(set *appsv1.StatefulSet) int {
	if set.Spec.Ordinals != nil {
		return int(set.Spec.Ordinals.Start)
	}
	return 0
}

func inRange(pod *corev1.Pod, set *appsv1.StatefulSet) bool {
	o := ordinalOf(pod)
	return o >= startOrdinal(set) && o < startOrdinal(set)+int(ptr.Deref(set.Spec.Replicas, 1))
}

func podName(set *appsv1.StatefulSet, ordinal int) string {
	return fmt.Sprintf("%s-%d", set.Name, ordinal)
}

func claimName(set *appsv1.StatefulSet, template *corev1.PersistentVolumeClaim, ordinal int) string {
	return fmt.Sprintf("%s-%s-%d", template.Name, set.Name, ordinal)
}

func identityMatches(set *appsv1.StatefulSet, pod *corev1.Pod) bool {
	parent, o := parentAndOrdinal(pod)
	return o >= 0 && parent == set.Name && pod.Name == podName(set, o) && pod.Namespace == set.Namespace &&
		pod.Labels[appsv1.StatefulSetPodNameLabel] == pod.Name && pod.Labels[appsv1.PodIndexLabel] == strconv.Itoa(o)
}

func storageMatches(set *appsv1.StatefulSet, pod *corev1.Pod) bool {
	o := ordinalOf(pod)
	if o < 0 {
		return false
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	for i := range set.Spec.VolumeClaimTemplates {
		t := &set.Spec.VolumeClaimTemplates[i]
		v, ok := volumes[t.Name]
		if !ok || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != claimName(set, t, o) {
			return false
		}
	}
	return true
}

func revisionOf(pod *corev1.Pod) string {
	return pod.Labels[appsv1.StatefulSetRevisionLabel]
}

// newPod is the pod at ordinal from the set's template, labelled with revision.
func newPod(set *appsv1.StatefulSet, ordinal int, revision string) *corev1.Pod {
	t := set.Spec.Template.DeepCopy()
	name := podName(set, ordinal)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: set.Namespace, Labels: map[string]string{}, Annotations: t.Annotations, Finalizers: t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(set, kind)},
		},
		Spec: t.Spec,
	}
	for k, v := range t.Labels {
		pod.Labels[k] = v
	}
	pod.Labels[appsv1.StatefulSetPodNameLabel] = name
	pod.Labels[appsv1.PodIndexLabel] = strconv.Itoa(ordinal)
	pod.Labels[appsv1.StatefulSetRevisionLabel] = revision
	pod.Spec.Hostname = name
	pod.Spec.Subdomain = set.Spec.ServiceName
	// The claims' volumes replace template volumes of the same name.
	claims := map[string]bool{}
	var volumes []corev1.Volume
	for i := range set.Spec.VolumeClaimTemplates {
		ct := &set.Spec.VolumeClaimTemplates[i]
		claims[ct.Name] = true
		volumes = append(volumes, corev1.Volume{Name: ct.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName(set, ct, ordinal)}}})
	}
	for _, v := range pod.Spec.Volumes {
		if !claims[v.Name] {
			volumes = append(volumes, v)
		}
	}
	pod.Spec.Volumes = volumes
	return pod
}

// newVersionedPod is the pod at ordinal at the current revision when a rolling update's
// partition keeps that ordinal back, and at the update revision otherwise.
func newVersionedPod(currentSet, updateSet *appsv1.StatefulSet, current, updateRev string, ordinal int) *corev1.Pod {
	if ru := currentSet.Spec.UpdateStrategy.RollingUpdate; currentSet.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType &&
		ru != nil && ordinal < startOrdinal(currentSet)+int(ptr.Deref(ru.Partition, 0)) {
		return newPod(currentSet, ordinal, current)
	}
	return newPod(updateSet, ordinal, updateRev)
}

// Pod state.

func runningAndReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && manager.PodReady(p)
}

func unavailable(p *corev1.Pod, minReady int32, now time.Time) bool {
	return !manager.PodAvailable(p, minReady, now) || p.DeletionTimestamp != nil
}
