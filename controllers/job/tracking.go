package job

import (
	"context"
	"fmt"
	"slices"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/ptr"
)

// track counts finished pods exactly once, in upstream's order, which a strict API server checks:
//  1. write the finished pods' UIDs into status.uncountedTerminatedPods (with an interim
//     SuccessCriteriaMet or FailureTarget condition, if this sync reached one);
//  2. remove their tracking finalizers;
//  3. move the UIDs whose finalizer is gone into the succeeded and failed counters;
//  4. add Complete or Failed once nothing is uncounted or terminating, and write the status.
func (s *syncState) track(ctx context.Context, needsFlush bool) error {
	job := s.job
	uncounted := job.Status.UncountedTerminatedPods
	pods := slices.Clone(s.pods)
	if indexed(job) {
		slices.SortStableFunc(pods, func(a, b *corev1.Pod) int { return completionIndex(a) - completionIndex(b) })
	}
	withFinalizer := sets.New[types.UID]()
	for _, p := range pods {
		if hasTrackingFinalizer(p) && !s.removing.Has(p.UID) {
			withFinalizer.Insert(p.UID)
		}
	}
	if moveCounted(&job.Status, withFinalizer) {
		needsFlush = true
	}
	var release []*corev1.Pod
	var newIndexes []int
	full := false
	jobFailing := s.finishedCondition != nil && s.finishedCondition.Type != batchv1.JobSuccessCriteriaMet
	for _, p := range pods {
		if !hasTrackingFinalizer(p) || s.removing.Has(p.UID) {
			continue // counted in an earlier sync
		}
		failed := podFailed(p, job)
		if !(job.DeletionTimestamp != nil || s.finishedCondition != nil || p.Status.Phase == corev1.PodSucceeded || failed) {
			continue
		}
		if job.DeletionTimestamp == nil && s.finishedCondition == nil && p.Status.Phase != corev1.PodSucceeded {
			if ix := validIndex(job, p); ix != noIndex && s.delayed[ix] == p {
				continue // its replacement inherits its failure count first
			}
		}
		release = append(release, p)
		switch {
		case p.Status.Phase == corev1.PodSucceeded && !s.uncountedFailed.Has(p.UID):
			if indexed(job) {
				if ix := validIndex(job, p); ix != noIndex && !s.prevSucceededIndexes.has(ix) {
					newIndexes = append(newIndexes, ix)
					needsFlush = true
				}
			} else if !s.uncountedSucceeded.Has(p.UID) {
				uncounted.Succeeded = append(uncounted.Succeeded, p.UID)
				needsFlush = true
			}
		case failed || jobFailing:
			// A Job that fails counts every pod it did not let finish as failed.
			if s.uncountedFailed.Has(p.UID) || (indexed(job) && validIndex(job, p) == noIndex) {
				break
			}
			if matchFailurePolicy(job.Spec.PodFailurePolicy, p).counts() {
				uncounted.Failed = append(uncounted.Failed, p.UID)
				needsFlush = true
			}
		}
		if len(newIndexes)+len(uncounted.Succeeded)+len(uncounted.Failed) >= maxUncounted {
			full = true // the status and pod updates bring the Job back for the rest
			break
		}
	}
	if indexed(job) {
		s.succeededIndexes = s.succeededIndexes.with(newIndexes...)
		if str := s.succeededIndexes.String(); str != job.Status.CompletedIndexes {
			job.Status.CompletedIndexes = str
			needsFlush = true
		}
		job.Status.Succeeded = int32(s.succeededIndexes.total())
		var failedIndexes *string
		if s.failedIndexes != nil {
			str := s.failedIndexes.String()
			failedIndexes = &str
		}
		if !ptr.Equal(failedIndexes, job.Status.FailedIndexes) {
			job.Status.FailedIndexes = failedIndexes
			needsFlush = true
		}
	}
	if fc := s.finishedCondition; fc != nil {
		switch fc.Type {
		case batchv1.JobFailureTarget:
			job.Status.Conditions = append(job.Status.Conditions, *fc)
			needsFlush = true
			s.finishedCondition = newCondition(batchv1.JobFailed, fc.Reason, fc.Message, s.now)
		case batchv1.JobSuccessCriteriaMet:
			if conditionTrue(job, batchv1.JobSuccessCriteriaMet) == nil {
				job.Status.Conditions = append(job.Status.Conditions, *fc)
				needsFlush = true
			}
			s.finishedCondition = newCondition(batchv1.JobComplete, fc.Reason, fc.Message, s.now)
		}
	}

	// Steps 1 to 3.
	if needsFlush {
		if err := s.updateStatus(ctx); err != nil {
			return fmt.Errorf("adding uncounted pods to status: %w", err)
		}
		s.c.setBackoff(s.key, s.newBackoff)
		needsFlush = false
	}
	var rmErr error
	if len(release) > 0 {
		var gone []types.UID
		gone, rmErr = s.releasePods(ctx, release)
		withFinalizer.Delete(gone...)
	}
	if moveCounted(&job.Status, withFinalizer) {
		needsFlush = true
	}
	if rmErr != nil {
		if needsFlush {
			if err := s.updateStatus(ctx); err != nil {
				return fmt.Errorf("removing uncounted pods from status: %w", err)
			}
		}
		return rmErr
	}

	// Step 4.
	finishedNow := !full && s.finish()
	if finishedNow {
		needsFlush = true
	}
	if needsFlush {
		if err := s.updateStatus(ctx); err != nil {
			return fmt.Errorf("removing uncounted pods from status: %w", err)
		}
		if finishedNow {
			s.recordFinished()
		}
	}
	return nil
}

// moveCounted moves the uncounted UIDs whose pods no longer carry the finalizer into the counters.
func moveCounted(status *batchv1.JobStatus, withFinalizer sets.Set[types.UID]) bool {
	u := status.UncountedTerminatedPods
	keep := func(uids []types.UID) []types.UID {
		var out []types.UID
		for _, uid := range uids {
			if withFinalizer.Has(uid) {
				out = append(out, uid)
			}
		}
		return out
	}
	changed := false
	if k := keep(u.Succeeded); len(k) != len(u.Succeeded) {
		status.Succeeded += int32(len(u.Succeeded) - len(k))
		u.Succeeded, changed = k, true
	}
	if k := keep(u.Failed); len(k) != len(u.Failed) {
		status.Failed += int32(len(u.Failed) - len(k))
		u.Failed, changed = k, true
	}
	return changed
}

// releasePods removes the tracking finalizer from pods, returning the UIDs it is gone from.
func (s *syncState) releasePods(ctx context.Context, pods []*corev1.Pod) ([]types.UID, error) {
	uids := make([]types.UID, len(pods))
	for i, p := range pods {
		uids[i] = p.UID
	}
	s.c.expectFinalizersGone(s.key, uids)
	var mu sync.Mutex
	var gone []types.UID
	errs := make(chan error, len(pods))
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(func() {
			if err := s.c.removeFinalizer(ctx, p); err != nil {
				s.c.finalizerGone(s.key, p.UID) // no event will come for it
				errs <- fmt.Errorf("removing tracking finalizer: %w", err)
				return
			}
			mu.Lock()
			gone = append(gone, p.UID)
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	return gone, errFrom(errs)
}

// finish adds the terminal condition the sync reached, once every finished pod is counted and
// none is still terminating; it tells whether it did.
func (s *syncState) finish() bool {
	fc := s.finishedCondition
	if fc == nil {
		return false
	}
	job := s.job
	if u := job.Status.UncountedTerminatedPods; len(u.Succeeded)+len(u.Failed) > 0 {
		return false
	}
	if s.terminating > 0 {
		return false
	}
	setCondition(job, fc.Type, fc.Status, fc.Reason, fc.Message, s.now)
	if fc.Type == batchv1.JobComplete {
		job.Status.CompletionTime = &fc.LastTransitionTime
	}
	return true
}

func (s *syncState) recordFinished() {
	job, fc := s.job, s.finishedCondition
	if fc.Type == batchv1.JobComplete {
		if job.Spec.Completions != nil && job.Status.Succeeded > *job.Spec.Completions {
			s.c.recorder.Event(job, corev1.EventTypeWarning, "TooManySucceededPods", "Too many succeeded pods running after completion count reached")
		}
		s.c.recorder.Event(job, corev1.EventTypeNormal, "Completed", "Job completed")
		return
	}
	s.c.recorder.Event(job, corev1.EventTypeWarning, fc.Reason, fc.Message)
}

// updateStatus writes the status and continues from what the server returned.
func (s *syncState) updateStatus(ctx context.Context) error {
	updated, err := s.c.client.BatchV1().Jobs(s.job.Namespace).UpdateStatus(ctx, s.job, metav1.UpdateOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	// Keep the status as built here (the server returns it as written) with the new version.
	s.job.ResourceVersion = updated.ResourceVersion
	return nil
}
