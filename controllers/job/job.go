// Package job runs Jobs to completion, as upstream's job controller does: it creates pods up to
// parallelism until completions succeed (each completion index once, for Indexed Jobs), recreates
// failed pods after an exponential backoff until backoffLimit, applies the pod failure and success
// policies, suspends and resumes, enforces activeDeadlineSeconds, and counts every finished pod
// exactly once through the batch.kubernetes.io/job-tracking finalizer and
// status.uncountedTerminatedPods. Terminal conditions follow upstream's two steps:
// SuccessCriteriaMet or FailureTarget first, Complete or Failed once no pod is left running.
package job

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

// controllerName is the value of spec.managedBy that this controller serves (as does an empty one).
const controllerName = "kubernetes.io/job-controller"

// maxUncounted bounds the pod UIDs one sync adds to status.uncountedTerminatedPods, which keeps
// the status small and lets other Jobs have their turn, as upstream's limit.
const maxUncounted = 500

// maxPodsPerSync bounds the pods created or deleted in one sync.
const maxPodsPerSync = 500

// orphanPrefix marks queue keys that name a pod whose tracking finalizer no Job will remove.
const orphanPrefix = "pod:"

var jobKind = batchv1.SchemeGroupVersion.WithKind("Job")

// Conditions' reasons and messages, as upstream writes them.
const (
	reasonCompletionsReached = "CompletionsReached"
	msgCompletionsReached    = "Reached expected number of succeeded pods"
	msgBackoffLimit          = "Job has reached the specified backoff limit"
	msgDeadline              = "Job was active longer than specified deadline"
)

type controller struct {
	*manager.Loop
	client    kubernetes.Interface
	jobLister batchlisters.JobLister
	podLister corelisters.PodLister
	recorder  record.EventRecorder
	now       func() time.Time

	// mu guards the three maps below, all keyed by the Job's key.
	mu sync.Mutex
	// pending are pod creates and deletes issued but not yet seen in the informer.
	pending manager.Expectations
	// removing are the pods whose tracking finalizer removal was issued but not yet seen.
	removing map[string]sets.Set[types.UID]
	// backoffs record the pod failures since each Job's last success.
	backoffs map[string]backoff
}

// New returns the Job controller.
func New(c *manager.Context) (manager.Controller, error) {
	jobs := c.Informers.Batch().V1().Jobs()
	pods := c.Informers.Core().V1().Pods()
	ctl := &controller{client: c.Client, jobLister: jobs.Lister(), podLister: pods.Lister(), now: time.Now,
		removing: map[string]sets.Set[types.UID]{}, backoffs: map[string]backoff{}}
	ctl.Loop = manager.NewLoop("job-controller", 5, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{jobs.Informer().HasSynced, pods.Informer().HasSynced}
	if _, err := jobs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    ctl.jobChanged,
		UpdateFunc: func(_, o any) { ctl.jobChanged(o) },
		DeleteFunc: ctl.jobDeleted,
	}); err != nil {
		return nil, err
	}
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { ctl.podEvent(nil, o.(*corev1.Pod), false) },
		UpdateFunc: func(old, o any) { ctl.podEvent(old.(*corev1.Pod), o.(*corev1.Pod), false) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				ctl.podEvent(nil, p, true)
			}
		},
	}); err != nil {
		return nil, err
	}
	ctl.recorder = c.Recorder("job-controller")
	return ctl, nil
}

// Run works the queue until ctx is done, then stops the event recorder.
func (c *controller) Run(ctx context.Context) error {
	return c.Loop.Run(ctx)
}

func (c *controller) jobChanged(o any) {
	job, ok := o.(*batchv1.Job)
	if !ok {
		return
	}
	c.Enqueue(job.Namespace + "/" + job.Name)
	if finished(job) {
		c.releaseFinalizers(job)
	}
}

func (c *controller) jobDeleted(o any) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	if job, ok := o.(*batchv1.Job); ok {
		c.Enqueue(job.Namespace + "/" + job.Name)
		c.releaseFinalizers(job)
	}
}

// releaseFinalizers queues the Job's pods that still carry the tracking finalizer, for a Job
// that is finished or gone and so will not count them.
func (c *controller) releaseFinalizers(job *batchv1.Job) {
	pods, err := c.podLister.Pods(job.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, p := range pods {
		if metav1.IsControlledBy(p, job) && hasTrackingFinalizer(p) {
			c.Enqueue(orphanPrefix + p.Namespace + "/" + p.Name)
		}
	}
}

// podEvent accounts a pod's creation, change or deletion to the Job that owns it and wakes that
// Job, or the Jobs that might adopt an orphan.
func (c *controller) podEvent(old, p *corev1.Pod, deleted bool) {
	if old != nil && old.ResourceVersion == p.ResourceVersion {
		return
	}
	if old != nil {
		if oldRef := metav1.GetControllerOf(old); oldRef != nil && oldRef.Kind == jobKind.Kind {
			if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != oldRef.UID {
				c.Enqueue(old.Namespace + "/" + oldRef.Name)
			}
		}
	}
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != jobKind.Kind || ref.APIVersion != jobKind.GroupVersion().String() {
		if hasTrackingFinalizer(p) && (ref == nil || ref.Kind != jobKind.Kind) {
			c.Enqueue(orphanPrefix + p.Namespace + "/" + p.Name)
		}
		if ref == nil && !deleted {
			c.enqueueSelecting(p)
		}
		return
	}
	key := p.Namespace + "/" + ref.Name
	job, err := c.jobLister.Jobs(p.Namespace).Get(ref.Name)
	if err != nil || job.UID != ref.UID || finished(job) {
		if hasTrackingFinalizer(p) {
			c.Enqueue(orphanPrefix + p.Namespace + "/" + p.Name)
		}
		return
	}
	switch {
	case old == nil && !deleted && p.DeletionTimestamp == nil:
		c.pending.Observe(key, 1, 0)
	case deleted, p.DeletionTimestamp != nil && (old == nil || old.DeletionTimestamp == nil):
		c.pending.Observe(key, 0, 1)
	}
	if deleted || !hasTrackingFinalizer(p) {
		c.finalizerGone(key, p.UID)
	}
	c.Enqueue(key)
}

func (c *controller) enqueueSelecting(p *corev1.Pod) {
	jobs, err := c.jobLister.Jobs(p.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, j := range jobs {
		if sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			c.Enqueue(j.Namespace + "/" + j.Name)
		}
	}
}

func (c *controller) expectFinalizersGone(key string, uids []types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removing[key] == nil {
		c.removing[key] = sets.New[types.UID]()
	}
	c.removing[key].Insert(uids...)
}

func (c *controller) finalizerGone(key string, uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.removing[key]; s != nil {
		s.Delete(uid)
	}
}

func (c *controller) removingUIDs(key string) sets.Set[types.UID] {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.removing[key].Clone()
}

func (c *controller) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending.Forget(key)
	delete(c.removing, key)
	delete(c.backoffs, key)
}

func (c *controller) backoffOf(key string) backoff {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.backoffs[key]
}

func (c *controller) setBackoff(key string, b backoff) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.backoffs[key] = b
}

func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	if pod, ok := strings.CutPrefix(key, orphanPrefix); ok {
		return 0, c.syncOrphan(ctx, pod)
	}
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	shared, err := c.jobLister.Jobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if m := shared.Spec.ManagedBy; m != nil && *m != controllerName {
		return 0, nil
	}
	if finished(shared) {
		c.forget(key)
		return 0, nil
	}
	if mode := shared.Spec.CompletionMode; mode != nil && *mode != batchv1.NonIndexedCompletion && *mode != batchv1.IndexedCompletion {
		c.recorder.Event(shared, corev1.EventTypeWarning, "UnknownCompletionMode", "Skipped Job sync because completion mode is unknown")
		return 0, nil
	}
	if shared.Spec.Selector == nil || shared.Spec.Parallelism == nil || shared.Spec.BackoffLimit == nil {
		return 0, nil // the API server defaults these; nothing sensible to do without them
	}
	s := &syncState{c: c, key: key, job: shared.DeepCopy(), now: c.now()}
	requeue, err := s.run(ctx)
	if apierrors.IsConflict(err) {
		// The Job changed since the informer's copy (often by this controller's own last
		// write): the informer brings the new version, and with it another sync.
		return requeue, nil
	}
	return requeue, err
}

// syncOrphan removes the tracking finalizer from a pod that no unfinished Job owns.
func (c *controller) syncOrphan(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	p, err := c.podLister.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !hasTrackingFinalizer(p) {
		return nil
	}
	if ref := metav1.GetControllerOf(p); ref != nil {
		if ref.Kind != jobKind.Kind || ref.APIVersion != jobKind.GroupVersion().String() {
			return nil
		}
		if job, err := c.jobLister.Jobs(namespace).Get(ref.Name); err == nil && job.UID == ref.UID && !finished(job) {
			return nil // the Job counts it
		}
	}
	return c.removeFinalizer(ctx, p)
}

func (c *controller) removeFinalizer(ctx context.Context, p *corev1.Pod) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"$deleteFromPrimitiveList/finalizers": []string{batchv1.JobTrackingFinalizer}}})
	_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func hasTrackingFinalizer(p *corev1.Pod) bool {
	for _, f := range p.Finalizers {
		if f == batchv1.JobTrackingFinalizer {
			return true
		}
	}
	return false
}

// finished tells whether the Job has its terminal condition, Complete or Failed.
func finished(job *batchv1.Job) bool {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func findCondition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		if job.Status.Conditions[i].Type == t {
			return &job.Status.Conditions[i]
		}
	}
	return nil
}

func conditionTrue(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	if c := findCondition(job, t); c != nil && c.Status == corev1.ConditionTrue {
		return c
	}
	return nil
}

func newCondition(t batchv1.JobConditionType, reason, message string, now time.Time) *batchv1.JobCondition {
	return &batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: message,
		LastProbeTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)}
}

// setCondition adds or changes a condition of type t, and tells whether anything changed. A
// condition that is absent is not added as False.
func setCondition(job *batchv1.Job, t batchv1.JobConditionType, status corev1.ConditionStatus, reason, message string, now time.Time) bool {
	if c := findCondition(job, t); c != nil {
		if c.Status == status && c.Reason == reason && c.Message == message {
			return false
		}
		*c = *newCondition(t, reason, message, now)
		c.Status = status
		return true
	}
	if status == corev1.ConditionFalse {
		return false
	}
	job.Status.Conditions = append(job.Status.Conditions, *newCondition(t, reason, message, now))
	return true
}

func suspended(job *batchv1.Job) bool { return ptr.Deref(job.Spec.Suspend, false) }

func indexed(job *batchv1.Job) bool {
	return ptr.Deref(job.Spec.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.IndexedCompletion
}

// onlyReplaceFailed tells whether replacements wait for pods to be fully Failed rather than
// merely terminating: podReplacementPolicy Failed, which a pod failure policy implies.
func onlyReplaceFailed(job *batchv1.Job) bool {
	return job.Spec.PodFailurePolicy != nil || ptr.Deref(job.Spec.PodReplacementPolicy, batchv1.TerminatingOrFailed) == batchv1.Failed
}

// podFailed tells whether the Job counts the pod as failed: Failed, or (unless the Job waits for
// full failure) being deleted before it succeeded.
func podFailed(p *corev1.Pod, job *batchv1.Job) bool {
	if p.Status.Phase == corev1.PodFailed {
		return true
	}
	if onlyReplaceFailed(job) {
		return false
	}
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded
}

func podActive(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func podTerminating(p *corev1.Pod) bool {
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// errFrom returns the first error sent on errs, which the caller has closed.
func errFrom(errs <-chan error) error {
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func describe(job *batchv1.Job) string { return fmt.Sprintf("%s/%s", job.Namespace, job.Name) }
