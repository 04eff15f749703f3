// Package disruption keeps the status of every PodDisruptionBudget: how many of its pods are
// healthy, how many must be, and so how many disruptions the eviction subresource may allow, as
// upstream's disruption controller does. It also clears the DisruptionTarget condition of pods an
// eviction marked but that were never deleted.
package disruption

import (
	"context"
	"fmt"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

const (
	// DeletionTimeout is how long a pod stays in status.disruptedPods, counted as gone, after an
	// eviction approved it; if it is still there then, the eviction is taken to have failed.
	DeletionTimeout = 2 * time.Minute
	// staleDisruptionTimeout is how long a pod may carry a DisruptionTarget condition without
	// being deleted before the condition is reset.
	staleDisruptionTimeout = 2 * time.Minute
	controllerName         = "disruption-controller"
)

type controller struct {
	*manager.Loop
	// stale is the second loop: pods whose DisruptionTarget condition went stale.
	stale *manager.Loop

	client   kubernetes.Interface
	pdbs     policylisters.PodDisruptionBudgetLister
	pods     corelisters.PodLister
	rcs      corelisters.ReplicationControllerLister
	rss      appslisters.ReplicaSetLister
	deploys  appslisters.DeploymentLister
	sets     appslisters.StatefulSetLister
	recorder record.EventRecorder
	now      func() time.Time

	// For controllers of other kinds, the scale subresource: mapper finds the resource of a
	// kind, scales reads it, discovery tells whether the resource has one.
	mapper    *restmapper.DeferredDiscoveryRESTMapper
	scales    scale.ScalesGetter
	discovery discovery.DiscoveryInterface
}

// New registers the controller on c's informers.
func New(c *manager.Context) (manager.Controller, error) {
	pdbs := c.Informers.Policy().V1().PodDisruptionBudgets()
	pods := c.Informers.Core().V1().Pods()
	rcs := c.Informers.Core().V1().ReplicationControllers()
	rss := c.Informers.Apps().V1().ReplicaSets()
	deploys := c.Informers.Apps().V1().Deployments()
	sets := c.Informers.Apps().V1().StatefulSets()
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client.Discovery()))
	scales, err := scale.NewForConfig(c.Config, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(c.Client.Discovery()))
	if err != nil {
		return nil, err
	}
	ctl := &controller{
		mapper: mapper, scales: scales, discovery: c.Client.Discovery(),
		client: c.Client, pdbs: pdbs.Lister(), pods: pods.Lister(), rcs: rcs.Lister(), rss: rss.Lister(),
		deploys: deploys.Lister(), sets: sets.Lister(),
		recorder: c.Recorder("controllermanager"),
		now:      time.Now,
	}
	ctl.Loop = manager.NewLoop(controllerName, 2, c.Log, ctl.sync)
	ctl.stale = manager.NewLoop(controllerName+"-stale-pod-disruption", 1, c.Log, ctl.syncStale)
	synced := []cache.InformerSynced{pdbs.Informer().HasSynced, pods.Informer().HasSynced, rcs.Informer().HasSynced,
		rss.Informer().HasSynced, deploys.Informer().HasSynced, sets.Informer().HasSynced}
	ctl.Synced, ctl.stale.Synced = synced, synced

	enqueueBudget := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		if key, err := cache.MetaNamespaceKeyFunc(o); err == nil {
			ctl.Enqueue(key)
		}
	}
	if _, err := pdbs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueBudget, UpdateFunc: func(_, o any) { enqueueBudget(o) }, DeleteFunc: enqueueBudget,
	}); err != nil {
		return nil, err
	}
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { ctl.podChanged(o, true) },
		UpdateFunc: func(_, o any) { ctl.podChanged(o, true) },
		DeleteFunc: func(o any) { ctl.podChanged(o, false) },
	}); err != nil {
		return nil, err
	}
	return ctl, nil
}

// Run runs both loops and the event broadcaster until ctx is done.
func (c *controller) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.stale.Run(ctx)
	}()
	err := c.Loop.Run(ctx)
	<-done
	return err
}

// podChanged enqueues the budget of a pod that came, changed or went, and a pod whose
// DisruptionTarget condition will go stale.
func (c *controller) podChanged(o any, live bool) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	if pdb := c.budgetOf(pod); pdb != nil {
		c.Enqueue(pdb.Namespace + "/" + pdb.Name)
	}
	if live {
		if stale, after := c.staleDisruption(pod); stale {
			c.stale.Queue.AddAfter(pod.Namespace+"/"+pod.Name, after)
		}
	}
}

// budgetOf is the first budget that selects the pod; several are reported on the pod.
func (c *controller) budgetOf(pod *corev1.Pod) *policyv1.PodDisruptionBudget {
	pdbs, err := c.pdbs.GetPodPodDisruptionBudgets(pod)
	if err != nil || len(pdbs) == 0 {
		return nil
	}
	if len(pdbs) > 1 {
		c.recorder.Event(pod, corev1.EventTypeWarning, "MultiplePodDisruptionBudgets",
			fmt.Sprintf("Pod %q/%q matches multiple PodDisruptionBudgets.  Chose %q arbitrarily.", pod.Namespace, pod.Name, pdbs[0].Name))
	}
	return pdbs[0]
}

func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	pdb, err := c.pdbs.PodDisruptionBudgets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	recheck, err := c.trySync(ctx, pdb)
	if apierrors.IsConflict(err) {
		return 0, err
	}
	if err != nil {
		// Fail closed: whatever went wrong, no eviction may pass until a sync succeeds.
		return 0, c.failSafe(ctx, pdb, err)
	}
	return recheck, nil
}

// trySync computes and writes the budget's status; it returns when to look again for a
// disrupted pod whose deletion is overdue.
func (c *controller) trySync(ctx context.Context, pdb *policyv1.PodDisruptionBudget) (time.Duration, error) {
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "NoPods", "Failed to get pods: %v", err)
		return 0, err
	}
	pods, err := c.pods.Pods(pdb.Namespace).List(sel)
	if err != nil {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "NoPods", "Failed to get pods: %v", err)
		return 0, err
	}
	if len(pods) == 0 {
		c.recorder.Eventf(pdb, corev1.EventTypeNormal, "NoPods", "No matching pods found")
	}
	expected, desired, unmanaged, err := c.expectedPodCount(ctx, pdb, pods)
	if err != nil {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "CalculateExpectedPodCountFailed", "Failed to calculate the number of expected pods: %v", err)
		return 0, err
	}
	if len(unmanaged) > 0 {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "UnmanagedPods", "Pods selected by this PodDisruptionBudget (selector: %v) were found "+
			"to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. "+
			"To account for these pods please set \".spec.minAvailable\" "+
			"field of the PDB to an integer value.", pdb.Spec.Selector)
	}
	now := c.now()
	disrupted, recheckAt := c.disruptedPods(pods, pdb, now)
	healthy := countHealthy(pods, disrupted, now)
	if err := c.updateStatus(ctx, pdb, healthy, desired, expected, disrupted); err != nil {
		return 0, err
	}
	if recheckAt.IsZero() {
		return 0, nil
	}
	return max(recheckAt.Sub(now), time.Millisecond), nil
}

// expectedPodCount is how many pods the budget expects and how many of them must be healthy.
// An integer minAvailable counts the pods there are; a percentage, or maxUnavailable, counts the
// scale of the pods' controllers.
func (c *controller) expectedPodCount(ctx context.Context, pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod) (expected, desired int32, unmanaged []string, err error) {
	switch {
	case pdb.Spec.MaxUnavailable != nil:
		if expected, unmanaged, err = c.expectedScale(ctx, pods); err != nil {
			return
		}
		var maxUnavailable int
		if maxUnavailable, err = intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(expected), true); err != nil {
			return
		}
		desired = max(expected-int32(maxUnavailable), 0)
	case pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.Type == intstr.Int:
		desired = pdb.Spec.MinAvailable.IntVal
		expected = int32(len(pods))
	case pdb.Spec.MinAvailable != nil:
		if expected, unmanaged, err = c.expectedScale(ctx, pods); err != nil {
			return
		}
		var minAvailable int
		if minAvailable, err = intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(expected), true); err != nil {
			return
		}
		desired = int32(minAvailable)
	}
	return
}

// expectedScale adds up the scale of the controllers of the pods, each counted once. Pods with
// no controller are returned apart; a controller of a kind without a known scale is an error.
func (c *controller) expectedScale(ctx context.Context, pods []*corev1.Pod) (int32, []string, error) {
	scales := map[types.UID]int32{}
	var unmanaged []string
	for _, pod := range pods {
		ref := metav1.GetControllerOf(pod)
		if ref == nil {
			unmanaged = append(unmanaged, pod.Name)
			continue
		}
		if _, ok := scales[ref.UID]; ok {
			continue
		}
		uid, scale, ok := c.scaleOf(ref, pod.Namespace)
		if !ok {
			var err error
			if uid, scale, ok, err = c.genericScaleOf(ctx, ref, pod.Namespace); err != nil {
				return 0, nil, err
			}
		}
		if !ok {
			return 0, nil, fmt.Errorf("found no controllers for pod %q", pod.Name)
		}
		scales[uid] = scale
	}
	var sum int32
	for _, s := range scales {
		sum += s
	}
	return sum, unmanaged, nil
}

// scaleOf finds the controller a pod's controllerRef names and its desired replicas. A
// ReplicaSet owned by a Deployment stands for the Deployment.
func (c *controller) scaleOf(ref *metav1.OwnerReference, ns string) (types.UID, int32, bool) {
	group := groupOf(ref.APIVersion)
	apps := group == "apps" || group == "extensions"
	switch {
	case ref.Kind == "ReplicationController" && group == "":
		rc, err := c.rcs.ReplicationControllers(ns).Get(ref.Name)
		if err != nil || rc.UID != ref.UID {
			return "", 0, false
		}
		return rc.UID, replicas(rc.Spec.Replicas), true
	case ref.Kind == "ReplicaSet" && apps:
		rs, err := c.rss.ReplicaSets(ns).Get(ref.Name)
		if err != nil || rs.UID != ref.UID {
			return "", 0, false
		}
		owner := metav1.GetControllerOf(rs)
		if owner == nil || owner.Kind != "Deployment" {
			return rs.UID, replicas(rs.Spec.Replicas), true
		}
		// A Deployment's ReplicaSet stands for the Deployment.
		if og := groupOf(owner.APIVersion); og != "apps" && og != "extensions" {
			return "", 0, false
		}
		d, err := c.deploys.Deployments(ns).Get(owner.Name)
		if err != nil || d.UID != owner.UID {
			return "", 0, false
		}
		return d.UID, replicas(d.Spec.Replicas), true
	case ref.Kind == "StatefulSet" && group == "apps":
		ss, err := c.sets.StatefulSets(ns).Get(ref.Name)
		if err != nil || ss.UID != ref.UID {
			return "", 0, false
		}
		return ss.UID, replicas(ss.Spec.Replicas), true
	}
	return "", 0, false
}

// genericScaleOf reads the scale subresource of a controller of any other kind (a custom
// resource, say). A kind without one is an error, as upstream reports it.
func (c *controller) genericScaleOf(ctx context.Context, ref *metav1.OwnerReference, ns string) (types.UID, int32, bool, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return "", 0, false, err
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: ref.Kind}
	mapping, err := c.mapper.RESTMapping(gk, gv.Version)
	if err != nil {
		// A kind new since discovery was read is found on a later sync.
		c.mapper.Reset()
		return "", 0, false, err
	}
	sc, err := c.scales.Scales(ns).Get(ctx, mapping.Resource.GroupResource(), ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// Either the controller is gone or its kind has no scale subresource.
		has, err := c.hasScale(mapping.Resource)
		if err != nil {
			return "", 0, false, err
		}
		if !has {
			return "", 0, false, fmt.Errorf("%s does not implement the scale subresource", mapping.Resource.GroupResource().String())
		}
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, err
	}
	if sc.UID != ref.UID {
		return "", 0, false, nil
	}
	return sc.UID, sc.Spec.Replicas, true, nil
}

// hasScale tells whether a resource serves an autoscaling Scale subresource.
func (c *controller) hasScale(gvr schema.GroupVersionResource) (bool, error) {
	list, err := c.discovery.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
	if err != nil {
		return false, err
	}
	for _, r := range list.APIResources {
		if r.Name == gvr.Resource+"/scale" && r.Kind == "Scale" && r.Group == "autoscaling" {
			return true, nil
		}
	}
	return false, nil
}

func groupOf(apiVersion string) string {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return "\x00"
	}
	return gv.Group
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// disruptedPods keeps the budget's disruptedPods entries that still stand: pods that exist, are
// not being deleted yet and whose eviction is within DeletionTimeout. It returns when the first
// of those runs out.
func (c *controller) disruptedPods(pods []*corev1.Pod, pdb *policyv1.PodDisruptionBudget, now time.Time) (map[string]metav1.Time, time.Time) {
	out := map[string]metav1.Time{}
	var recheck time.Time
	if pdb.Status.DisruptedPods == nil {
		return out, recheck
	}
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil {
			continue
		}
		at, ok := pdb.Status.DisruptedPods[pod.Name]
		if !ok {
			continue
		}
		due := at.Add(DeletionTimeout)
		if due.Before(now) {
			c.recorder.Eventf(pod, corev1.EventTypeWarning, "NotDeleted", "Pod was expected by PDB %s/%s to be deleted but it wasn't",
				pdb.Namespace, pdb.Namespace) // sic: upstream names the namespace twice
			continue
		}
		if recheck.IsZero() || due.Before(recheck) {
			recheck = due
		}
		out[pod.Name] = at
	}
	return out, recheck
}

// countHealthy counts the ready pods that are neither being deleted nor about to be.
func countHealthy(pods []*corev1.Pod, disrupted map[string]metav1.Time, now time.Time) int32 {
	var n int32
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil {
			continue
		}
		if at, ok := disrupted[pod.Name]; ok && at.Add(DeletionTimeout).After(now) {
			continue
		}
		if manager.PodReady(pod) {
			n++
		}
	}
	return n
}

func (c *controller) updateStatus(ctx context.Context, pdb *policyv1.PodDisruptionBudget, healthy, desired, expected int32, disrupted map[string]metav1.Time) error {
	// A budget that expects no pods allows nothing, so that its first pods are safe before the
	// status catches up with them.
	allowed := healthy - desired
	if expected <= 0 || allowed <= 0 {
		allowed = 0
	}
	st := pdb.Status
	if st.CurrentHealthy == healthy && st.DesiredHealthy == desired && st.ExpectedPods == expected &&
		st.DisruptionsAllowed == allowed && apiequality.Semantic.DeepEqual(st.DisruptedPods, disrupted) &&
		st.ObservedGeneration == pdb.Generation && conditionUpToDate(pdb) {
		return nil
	}
	next := pdb.DeepCopy()
	next.Status = policyv1.PodDisruptionBudgetStatus{
		CurrentHealthy: healthy, DesiredHealthy: desired, ExpectedPods: expected, DisruptionsAllowed: allowed,
		DisruptedPods: disrupted, ObservedGeneration: pdb.Generation, Conditions: next.Status.Conditions,
	}
	setDisruptionAllowed(next)
	_, err := c.client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	return err
}

// failSafe sets disruptionsAllowed to 0 with a SyncFailed condition, so that the eviction
// subresource refuses what may be unsafe.
func (c *controller) failSafe(ctx context.Context, pdb *policyv1.PodDisruptionBudget, cause error) error {
	next := pdb.DeepCopy()
	next.Status.DisruptionsAllowed = 0
	if next.Status.Conditions == nil {
		next.Status.Conditions = []metav1.Condition{}
	}
	apimeta.SetStatusCondition(&next.Status.Conditions, metav1.Condition{
		Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse, Reason: policyv1.SyncFailedReason,
		Message: cause.Error(), ObservedGeneration: next.Status.ObservedGeneration,
	})
	_, err := c.client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	return err
}

// setDisruptionAllowed sets the DisruptionAllowed condition from status.disruptionsAllowed.
func setDisruptionAllowed(p *policyv1.PodDisruptionBudget) {
	c := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse,
		Reason: policyv1.InsufficientPodsReason, ObservedGeneration: p.Status.ObservedGeneration}
	if p.Status.DisruptionsAllowed > 0 {
		c.Status, c.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	}
	if p.Status.Conditions == nil {
		p.Status.Conditions = []metav1.Condition{}
	}
	apimeta.SetStatusCondition(&p.Status.Conditions, c)
}

// conditionUpToDate tells whether the DisruptionAllowed condition agrees with the status.
func conditionUpToDate(p *policyv1.PodDisruptionBudget) bool {
	c := apimeta.FindStatusCondition(p.Status.Conditions, policyv1.DisruptionAllowedCondition)
	if c == nil || c.ObservedGeneration != p.Status.ObservedGeneration {
		return false
	}
	if p.Status.DisruptionsAllowed > 0 {
		return c.Status == metav1.ConditionTrue && c.Reason == policyv1.SufficientPodsReason
	}
	return c.Status == metav1.ConditionFalse && c.Reason == policyv1.InsufficientPodsReason
}

// staleDisruption tells whether a live pod carries a DisruptionTarget condition that an eviction
// or another disruption set without the pod then being deleted, and how long until it is stale.
func (c *controller) staleDisruption(pod *corev1.Pod) (bool, time.Duration) {
	if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false, 0
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type != corev1.DisruptionTarget {
			continue
		}
		if cond.Status != corev1.ConditionTrue || cond.Reason == corev1.PodReasonTerminationByKubelet {
			return false, 0
		}
		return true, max(staleDisruptionTimeout-c.now().Sub(cond.LastTransitionTime.Time), 0)
	}
	return false, 0
}

// syncStale resets a stale DisruptionTarget condition to False.
func (c *controller) syncStale(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	pod, err := c.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	stale, after := c.staleDisruption(pod)
	if !stale {
		return 0, nil
	}
	if after > 0 {
		return after, nil
	}
	next := pod.DeepCopy()
	for i := range next.Status.Conditions {
		if cond := &next.Status.Conditions[i]; cond.Type == corev1.DisruptionTarget {
			cond.Status = corev1.ConditionFalse
			cond.LastTransitionTime = metav1.NewTime(c.now())
			cond.Reason, cond.Message = "", ""
		}
	}
	_, err = c.client.CoreV1().Pods(ns).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	return 0, err
}
