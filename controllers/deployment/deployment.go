// Package deployment rolls Deployments out through ReplicaSets, as upstream's deployment
// controller does: one ReplicaSet per pod template (told apart by the pod-template-hash label),
// revisions in annotations, the Recreate and RollingUpdate strategies bounded by maxSurge and
// maxUnavailable, old ReplicaSets pruned to revisionHistoryLimit, and upstream's status conditions.
package deployment

import (
	"context"
	"fmt"
	"sort"
	"strconv"
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
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// Annotations and the label upstream uses.
const (
	revisionAnnotation        = "deployment.kubernetes.io/revision"
	desiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	maxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
	hashLabel                 = appsv1.DefaultDeploymentUniqueLabelKey
)

type controller struct {
	*manager.Loop
	client   kubernetes.Interface
	dLister  appslisters.DeploymentLister
	rsLister appslisters.ReplicaSetLister
}

// New registers the controller's handlers.
func New(c *manager.Context) (manager.Controller, error) {
	d := c.Informers.Apps().V1().Deployments()
	rs := c.Informers.Apps().V1().ReplicaSets()
	ctl := &controller{client: c.Client, dLister: d.Lister(), rsLister: rs.Lister()}
	ctl.Loop = manager.NewLoop("deployment-controller", 5, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{d.Informer().HasSynced, rs.Informer().HasSynced}
	enqueue := func(o any) {
		if key, err := cache.MetaNamespaceKeyFunc(o); err == nil {
			ctl.Enqueue(key)
		}
	}
	if _, err := d.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }}); err != nil {
		return nil, err
	}
	onRS := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		r, ok := o.(*appsv1.ReplicaSet)
		if !ok {
			return
		}
		if ref := metav1.GetControllerOf(r); ref != nil && ref.Kind == "Deployment" {
			ctl.Enqueue(r.Namespace + "/" + ref.Name)
			return
		}
		ds, _ := ctl.dLister.Deployments(r.Namespace).List(labels.Everything())
		for _, d := range ds {
			if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(r.Labels)) {
				ctl.Enqueue(d.Namespace + "/" + d.Name)
			}
		}
	}
	if _, err := rs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onRS, UpdateFunc: func(_, o any) { onRS(o) }, DeleteFunc: onRS}); err != nil {
		return nil, err
	}
	return ctl, nil
}

func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	d, err := c.dLister.Deployments(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if d.DeletionTimestamp != nil {
		return 0, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		return 0, nil
	}
	sets, err := c.claim(ctx, d, sel)
	if err != nil {
		return 0, err
	}
	newRS, old := splitNew(d, sets)
	created := false
	if newRS == nil && !d.Spec.Paused {
		if newRS, err = c.createNewRS(ctx, d, old); err != nil {
			return 0, err
		}
		created = true
	}
	if newRS != nil && !d.Spec.Paused {
		if newRS, err = c.syncRevision(ctx, d, newRS, old); err != nil {
			return 0, err
		}
		switch d.Spec.Strategy.Type {
		case appsv1.RecreateDeploymentStrategyType:
			err = c.recreate(ctx, d, newRS, old)
		default:
			err = c.rollingUpdate(ctx, d, newRS, old)
		}
		if err != nil {
			return 0, err
		}
		if err := c.cleanup(ctx, d, old); err != nil {
			return 0, err
		}
	}
	return c.updateStatus(ctx, d, newRS, old, created)
}

// claim adopts the orphan ReplicaSets the selector matches, releases those it controls that it
// no longer selects, and returns those the Deployment controls.
func (c *controller) claim(ctx context.Context, d *appsv1.Deployment, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	all, err := c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	return manager.Claim(ctx, appsv1.SchemeGroupVersion.WithKind("Deployment"), d, all,
		func(rs *appsv1.ReplicaSet) bool { return sel.Matches(labels.Set(rs.Labels)) },
		func(ctx context.Context, rs *appsv1.ReplicaSet, patch []byte) (*appsv1.ReplicaSet, error) {
			return c.client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		})
}

// splitNew finds the ReplicaSet whose template is the Deployment's.
func splitNew(d *appsv1.Deployment, sets []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet) {
	var newRS *appsv1.ReplicaSet
	var old []*appsv1.ReplicaSet
	sort.Slice(sets, func(i, j int) bool { return sets[i].CreationTimestamp.Before(&sets[j].CreationTimestamp) })
	for _, rs := range sets {
		t := rs.Spec.Template.DeepCopy()
		delete(t.Labels, hashLabel)
		if newRS == nil && apiequality.Semantic.DeepEqual(t, &d.Spec.Template) {
			newRS = rs
			continue
		}
		old = append(old, rs)
	}
	return newRS, old
}

func revision(o metav1.Object) int64 {
	v, _ := strconv.ParseInt(o.GetAnnotations()[revisionAnnotation], 10, 64)
	return v
}

func maxRevision(sets []*appsv1.ReplicaSet) int64 {
	var m int64
	for _, rs := range sets {
		m = max(m, revision(rs))
	}
	return m
}

func (c *controller) createNewRS(ctx context.Context, d *appsv1.Deployment, old []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	hash := history.TemplateHash(&d.Spec.Template, d.Status.CollisionCount)
	t := d.Spec.Template.DeepCopy()
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	t.Labels[hashLabel] = hash
	sel := d.Spec.Selector.DeepCopy()
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[hashLabel] = hash
	rsLabels := map[string]string{}
	for k, v := range t.Labels {
		rsLabels[k] = v
	}
	surge, _ := resolve(d)
	annotations := map[string]string{}
	for k, v := range d.Annotations {
		if k != revisionAnnotation && k != "kubectl.kubernetes.io/last-applied-configuration" {
			annotations[k] = v
		}
	}
	replicas := ptr.Deref(d.Spec.Replicas, 1)
	annotations[revisionAnnotation] = strconv.FormatInt(maxRevision(old)+1, 10)
	annotations[desiredReplicasAnnotation] = strconv.Itoa(int(replicas))
	annotations[maxReplicasAnnotation] = strconv.Itoa(int(replicas) + surge)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + hash, Namespace: d.Namespace, Labels: rsLabels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), MinReadySeconds: d.Spec.MinReadySeconds, Selector: sel, Template: *t},
	}
	created, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Another template hashed alike: count the collision so that the next name differs.
		update := d.DeepCopy()
		update.Status.CollisionCount = ptr.To(ptr.Deref(d.Status.CollisionCount, 0) + 1)
		if _, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, update, metav1.UpdateOptions{}); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("replica set %s exists with another template", rs.Name)
	}
	if err != nil {
		return nil, err
	}
	return created, nil
}

// syncRevision keeps the new ReplicaSet's revision the newest and the Deployment's the same.
func (c *controller) syncRevision(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	want := max(revision(newRS), maxRevision(old)+1)
	if revision(newRS) == 0 || revision(newRS) < want && maxRevision(old) >= revision(newRS) {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, revisionAnnotation, strconv.FormatInt(want, 10))
		updated, err := c.client.AppsV1().ReplicaSets(newRS.Namespace).Patch(ctx, newRS.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if err != nil {
			return nil, err
		}
		newRS = updated
	}
	if d.Annotations[revisionAnnotation] != newRS.Annotations[revisionAnnotation] {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, revisionAnnotation, newRS.Annotations[revisionAnnotation])
		if _, err := c.client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return nil, err
		}
	}
	return newRS, nil
}

// resolve turns maxSurge and maxUnavailable into counts: surge rounds up, unavailable down, and
// both zero means one unavailable, as upstream resolves them.
func resolve(d *appsv1.Deployment) (surge, unavailable int) {
	replicas := int(ptr.Deref(d.Spec.Replicas, 1))
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate == nil {
		return 0, 0
	}
	ru := d.Spec.Strategy.RollingUpdate
	s := ptr.Deref(ru.MaxSurge, intstr.FromString("25%"))
	u := ptr.Deref(ru.MaxUnavailable, intstr.FromString("25%"))
	surge, _ = intstr.GetScaledValueFromIntOrPercent(&s, replicas, true)
	unavailable, _ = intstr.GetScaledValueFromIntOrPercent(&u, replicas, false)
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

func (c *controller) scale(ctx context.Context, rs *appsv1.ReplicaSet, replicas int32, d *appsv1.Deployment) error {
	if ptr.Deref(rs.Spec.Replicas, 1) == replicas && rs.Annotations[desiredReplicasAnnotation] == strconv.Itoa(int(ptr.Deref(d.Spec.Replicas, 1))) {
		return nil
	}
	surge, _ := resolve(d)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:%q}},"spec":{"replicas":%d}}`,
		desiredReplicasAnnotation, strconv.Itoa(int(ptr.Deref(d.Spec.Replicas, 1))),
		maxReplicasAnnotation, strconv.Itoa(int(ptr.Deref(d.Spec.Replicas, 1))+surge), replicas)
	_, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// recreate scales every old ReplicaSet to zero and, once their pods are gone, the new one up.
func (c *controller) recreate(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) error {
	running := int32(0)
	for _, rs := range old {
		if err := c.scale(ctx, rs, 0, d); err != nil {
			return err
		}
		running += rs.Status.Replicas
	}
	if running > 0 {
		return nil
	}
	return c.scale(ctx, newRS, ptr.Deref(d.Spec.Replicas, 1), d)
}

// rollingUpdate scales the new ReplicaSet up within maxSurge and the old ones down within
// maxUnavailable, unhealthy old pods first.
func (c *controller) rollingUpdate(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) error {
	replicas := ptr.Deref(d.Spec.Replicas, 1)
	surge, unavailable := resolve(d)
	total := ptr.Deref(newRS.Spec.Replicas, 0)
	for _, rs := range old {
		total += ptr.Deref(rs.Spec.Replicas, 0)
	}
	newTarget := ptr.Deref(newRS.Spec.Replicas, 0)
	switch {
	case newTarget > replicas:
		newTarget = replicas
	case newTarget < replicas:
		room := replicas + int32(surge) - total
		newTarget = min(replicas, newTarget+max(room, 0))
	}
	if err := c.scale(ctx, newRS, newTarget, d); err != nil {
		return err
	}
	// Old replicas that are not available go first: removing them costs no availability.
	available := newRS.Status.AvailableReplicas
	for _, rs := range old {
		available += rs.Status.AvailableReplicas
	}
	sort.Slice(old, func(i, j int) bool { return revision(old[i]) < revision(old[j]) })
	removable := available - (replicas - int32(unavailable))
	for _, rs := range old {
		want := ptr.Deref(rs.Spec.Replicas, 0)
		unhealthy := want - rs.Status.AvailableReplicas
		if unhealthy > 0 {
			want -= unhealthy
		}
		if removable > 0 && want > 0 {
			cut := min(removable, want)
			want -= cut
			removable -= cut
		}
		if want < ptr.Deref(rs.Spec.Replicas, 0) {
			if err := c.scale(ctx, rs, want, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// cleanup deletes the oldest empty old ReplicaSets beyond revisionHistoryLimit.
func (c *controller) cleanup(ctx context.Context, d *appsv1.Deployment, old []*appsv1.ReplicaSet) error {
	limit := int(ptr.Deref(d.Spec.RevisionHistoryLimit, 10))
	var empty []*appsv1.ReplicaSet
	for _, rs := range old {
		if ptr.Deref(rs.Spec.Replicas, 0) == 0 && rs.Status.Replicas == 0 && rs.DeletionTimestamp == nil {
			empty = append(empty, rs)
		}
	}
	if len(old) <= limit {
		return nil
	}
	sort.Slice(empty, func(i, j int) bool { return revision(empty[i]) < revision(empty[j]) })
	for _, rs := range empty[:min(len(old)-limit, len(empty))] {
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &rs.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
	}
	return nil
}

// updateStatus writes the deployment's status and conditions, and says when to look again for a
// rollout that may pass its progress deadline without any event to wake the controller.
func (c *controller) updateStatus(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet, created bool) (time.Duration, error) {
	replicas := ptr.Deref(d.Spec.Replicas, 1)
	_, unavailable := resolve(d)
	status := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, CollisionCount: d.Status.CollisionCount}
	all := old
	if newRS != nil {
		all = append(append([]*appsv1.ReplicaSet{}, old...), newRS)
		status.UpdatedReplicas = newRS.Status.Replicas
	}
	for _, rs := range all {
		status.Replicas += rs.Status.Replicas
		status.ReadyReplicas += rs.Status.ReadyReplicas
		status.AvailableReplicas += rs.Status.AvailableReplicas
	}
	status.UnavailableReplicas = max(status.Replicas-status.AvailableReplicas, replicas-status.AvailableReplicas, 0)
	now := metav1.Now()
	cond := func(t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, message string) appsv1.DeploymentCondition {
		for _, c := range d.Status.Conditions {
			if c.Type == t && c.Status == s {
				c.Reason, c.Message, c.LastUpdateTime = reason, message, now
				return c
			}
		}
		return appsv1.DeploymentCondition{Type: t, Status: s, LastUpdateTime: now, LastTransitionTime: now, Reason: reason, Message: message}
	}
	if status.AvailableReplicas >= replicas-int32(unavailable) {
		status.Conditions = append(status.Conditions, cond(appsv1.DeploymentAvailable, corev1.ConditionTrue, "MinimumReplicasAvailable", "Deployment has minimum availability."))
	} else {
		status.Conditions = append(status.Conditions, cond(appsv1.DeploymentAvailable, corev1.ConditionFalse, "MinimumReplicasUnavailable", "Deployment does not have minimum availability."))
	}
	progressing, requeue := progress(d, &status, newRS, created, cond, now.Time)
	if progressing != nil {
		status.Conditions = append(status.Conditions, *progressing)
	}
	if statusEqual(d.Status, status) {
		return requeue, nil
	}
	update := d.DeepCopy()
	update.Status = status
	_, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, update, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return 0, nil
	}
	return requeue, err
}

// Reasons of the Progressing condition, as upstream writes them and kubectl reads them.
const (
	reasonNewRSCreated   = "NewReplicaSetCreated"
	reasonFoundNewRS     = "FoundNewReplicaSet"
	reasonRSUpdated      = "ReplicaSetUpdated"
	reasonNewRSAvailable = "NewReplicaSetAvailable"
	reasonTimedOut       = "ProgressDeadlineExceeded"
	reasonPaused         = "DeploymentPaused"
	reasonResumed        = "DeploymentResumed"
)

// progress gives the Progressing condition for the new status, and how long until the rollout
// would pass its deadline (zero when nothing is pending). Its last update time moves only when
// the rollout makes progress, so that a rollout that stalls for progressDeadlineSeconds is
// marked as having timed out.
func progress(d *appsv1.Deployment, status *appsv1.DeploymentStatus, newRS *appsv1.ReplicaSet, created bool,
	cond func(appsv1.DeploymentConditionType, corev1.ConditionStatus, string, string) appsv1.DeploymentCondition, now time.Time) (*appsv1.DeploymentCondition, time.Duration) {
	var current *appsv1.DeploymentCondition
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == appsv1.DeploymentProgressing {
			current = &d.Status.Conditions[i]
		}
	}
	set := func(s corev1.ConditionStatus, reason, message string) *appsv1.DeploymentCondition {
		c := cond(appsv1.DeploymentProgressing, s, reason, message)
		return &c
	}
	if d.Spec.ProgressDeadlineSeconds == nil {
		return nil, 0
	}
	if d.Spec.Paused {
		if current != nil && current.Reason == reasonPaused {
			return current, 0
		}
		return set(corev1.ConditionUnknown, reasonPaused, "Deployment is paused"), 0
	}
	if current != nil && current.Reason == reasonPaused {
		// A resumed rollout's deadline counts from the resume.
		return set(corev1.ConditionUnknown, reasonResumed, "Deployment is resumed"), 0
	}
	subject := fmt.Sprintf("Deployment %q", d.Name)
	if newRS != nil {
		subject = fmt.Sprintf("ReplicaSet %q", newRS.Name)
	}
	replicas := ptr.Deref(d.Spec.Replicas, 1)
	deadline := time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second
	switch {
	case current != nil && current.Reason == reasonNewRSAvailable && status.Replicas == status.UpdatedReplicas:
		return current, 0
	case status.UpdatedReplicas == replicas && status.Replicas == replicas && status.AvailableReplicas == replicas && status.ObservedGeneration >= d.Generation:
		return set(corev1.ConditionTrue, reasonNewRSAvailable, subject+" has successfully progressed."), 0
	case created:
		return set(corev1.ConditionTrue, reasonNewRSCreated, "Created new replica set "+strconv.Quote(newRS.Name)), deadline
	case progressed(d.Status, *status):
		return set(corev1.ConditionTrue, reasonRSUpdated, subject+" is progressing."), deadline
	case current == nil && newRS != nil:
		return set(corev1.ConditionTrue, reasonFoundNewRS, "Found new replica set "+strconv.Quote(newRS.Name)), deadline
	case current == nil || current.Reason == reasonTimedOut:
		return current, 0
	}
	if left := current.LastUpdateTime.Add(deadline).Sub(now); left > 0 {
		return current, left + 100*time.Millisecond
	}
	return set(corev1.ConditionFalse, reasonTimedOut, subject+" has timed out progressing."), 0
}

// progressed tells whether the rollout moved since the last status: more updated, ready or
// available replicas, or fewer old ones.
func progressed(was, is appsv1.DeploymentStatus) bool {
	return is.UpdatedReplicas > was.UpdatedReplicas || is.Replicas-is.UpdatedReplicas < was.Replicas-was.UpdatedReplicas ||
		is.ReadyReplicas > was.ReadyReplicas || is.AvailableReplicas > was.AvailableReplicas
}

func statusEqual(a, b appsv1.DeploymentStatus) bool {
	if a.ObservedGeneration != b.ObservedGeneration || a.Replicas != b.Replicas || a.UpdatedReplicas != b.UpdatedReplicas ||
		a.ReadyReplicas != b.ReadyReplicas || a.AvailableReplicas != b.AvailableReplicas || a.UnavailableReplicas != b.UnavailableReplicas ||
		len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message {
			return false
		}
	}
	return true
}
