// Package ttlafterfinished deletes finished Jobs once spec.ttlSecondsAfterFinished has passed
// since they finished, as upstream's ttl-after-finished controller does: the finish time is the
// Complete or Failed condition's transition time, the TTL is checked again on a fresh read before
// deleting, and the Job is deleted in the foreground with its uid as precondition.
package ttlafterfinished

import (
	"context"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
)

type controller struct {
	*manager.Loop
	client    kubernetes.Interface
	jobLister batchlisters.JobLister
	now       func() time.Time
}

// New returns the controller.
func New(c *manager.Context) (manager.Controller, error) {
	jobs := c.Informers.Batch().V1().Jobs()
	ctl := &controller{client: c.Client, jobLister: jobs.Lister(), now: time.Now}
	ctl.Loop = manager.NewLoop("ttl-after-finished-controller", 5, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{jobs.Informer().HasSynced}
	enqueue := func(o any) {
		if job, ok := o.(*batchv1.Job); ok && job.DeletionTimestamp == nil && needsCleanup(job) {
			ctl.Enqueue(job.Namespace + "/" + job.Name)
		}
	}
	if _, err := jobs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }}); err != nil {
		return nil, err
	}
	return ctl, nil
}

func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	job, err := c.jobLister.Jobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if left, ok := c.timeLeft(job); !ok || left > 0 {
		return left, nil
	}
	// The cached Job may be stale (its TTL changed, say): decide again on a fresh read.
	fresh, err := c.client.BatchV1().Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if left, ok := c.timeLeft(fresh); !ok || left > 0 {
		return left, nil
	}
	policy := metav1.DeletePropagationForeground
	err = c.client.BatchV1().Jobs(namespace).Delete(ctx, name, metav1.DeleteOptions{
		PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &fresh.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return 0, nil // gone, or another Job by that name: its own events bring it here
	}
	return 0, err
}

// timeLeft is how long until the Job expires; ok is false when it is not to be cleaned up.
func (c *controller) timeLeft(job *batchv1.Job) (left time.Duration, ok bool) {
	if job.DeletionTimestamp != nil || !needsCleanup(job) {
		return 0, false
	}
	finishedAt, found := finishTime(job)
	if !found {
		return 0, false
	}
	expireAt := finishedAt.Add(time.Duration(*job.Spec.TTLSecondsAfterFinished) * time.Second)
	return max(expireAt.Sub(c.now()), 0), true
}

func needsCleanup(job *batchv1.Job) bool {
	_, found := finishTime(job)
	return job.Spec.TTLSecondsAfterFinished != nil && found
}

// finishTime is when the Job got its Complete or Failed condition.
func finishTime(job *batchv1.Job) (time.Time, bool) {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}
