package job

import (
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Backoff limit per index: each completion index of an Indexed Job may fail
// spec.backoffLimitPerIndex times before the index is failed for good. A pod carries its index's
// failure count in an annotation, and a failed pod keeps its tracking finalizer until its
// replacement exists, so that the count passes on.

const (
	msgMaxFailedIndexes = "Job has exceeded the specified maximal number of failed indexes"
	msgFailedIndexes    = "Job has failed indexes"
)

func perIndex(job *batchv1.Job) bool { return indexed(job) && job.Spec.BackoffLimitPerIndex != nil }

// annotationCount reads a failure count annotation; a missing or bad value is 0.
func annotationCount(p *corev1.Pod, key string) int32 {
	v, err := strconv.Atoi(p.Annotations[key])
	if err != nil || v < 0 || v > 1<<31-1 {
		return 0
	}
	return int32(v)
}

func failureCount(p *corev1.Pod) int32 {
	return annotationCount(p, batchv1.JobIndexFailureCountAnnotation)
}

func absoluteFailureCount(p *corev1.Pod) int32 {
	return failureCount(p) + annotationCount(p, batchv1.JobIndexIgnoredFailureCountAnnotation)
}

// indexFailed tells whether a failed pod fails its index: a FailIndex rule matched, or it was
// the last failure the index may have.
func indexFailed(job *batchv1.Job, p *corev1.Pod) bool {
	if !podFailed(p, job) {
		return false
	}
	v := matchFailurePolicy(job.Spec.PodFailurePolicy, p)
	if v.action != nil && *v.action == batchv1.PodFailurePolicyActionFailIndex {
		return true
	}
	return v.counts() && failureCount(p) >= *job.Spec.BackoffLimitPerIndex
}

// perIndexState works out the failed indexes and, for every index still to retry, its latest
// failed pod, whose finalizer stays until the replacement is made. It may set the Job's
// failure condition.
func (s *syncState) perIndexState() {
	job := s.job
	completions := int(*job.Spec.Completions)
	var prev indexSet
	if job.Status.FailedIndexes != nil {
		prev = parseIndexes(*job.Status.FailedIndexes, completions)
	}
	var fresh []int
	for _, p := range s.pods {
		if ix := validIndex(job, p); ix != noIndex && hasTrackingFinalizer(p) && indexFailed(job, p) {
			fresh = append(fresh, ix)
		}
	}
	failed := prev.with(fresh...)
	s.failedIndexes = &failed
	if s.finishedCondition == nil {
		switch {
		case job.Spec.MaxFailedIndexes != nil && failed.total() > int(*job.Spec.MaxFailedIndexes):
			s.finishedCondition = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonMaxFailedIndexesExceeded, msgMaxFailedIndexes, s.now)
		case failed.total() > 0 && failed.total()+s.succeededIndexes.total() >= completions:
			s.finishedCondition = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonFailedIndexes, msgFailedIndexes, s.now)
		}
	}
	activeIndexes := indexSet{}
	for _, p := range s.active {
		if ix := validIndex(job, p); ix != noIndex {
			activeIndexes = activeIndexes.with(ix)
		}
	}
	s.delayed = map[int]*corev1.Pod{}
	for _, p := range s.pods {
		ix := validIndex(job, p)
		if ix == noIndex || !hasTrackingFinalizer(p) || s.removing.Has(p.UID) || !podFailed(p, job) ||
			s.succeededIndexes.has(ix) || failed.has(ix) || activeIndexes.has(ix) {
			continue
		}
		if last, ok := s.delayed[ix]; !ok || (absoluteFailureCount(last) <= absoluteFailureCount(p) && !finishedAt(p).Before(finishedAt(last))) {
			s.delayed[ix] = p
		}
	}
}

// indexBackoff is how long index ix must still wait for its replacement pod.
func (s *syncState) indexBackoff(ix int) time.Duration {
	last := s.delayed[ix]
	if last == nil {
		return 0
	}
	return backoff{failures: int(absoluteFailureCount(last)) + 1, lastFailure: finishedAt(last)}.remaining(s.now)
}

// replacementCounts are the failure count annotations of the pod that replaces index ix.
func (s *syncState) replacementCounts(ix int) (count, ignored int32) {
	last := s.delayed[ix]
	if last == nil {
		return 0, 0
	}
	count, ignored = failureCount(last), annotationCount(last, batchv1.JobIndexIgnoredFailureCountAnnotation)
	if matchFailurePolicy(s.job.Spec.PodFailurePolicy, last).counts() {
		count++
	} else {
		ignored++
	}
	return count, ignored
}
