package job

import (
	"context"
	"fmt"
	"sort"
	"strconv"
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
	"k8s.io/utils/ptr"
)

// syncState is one sync of one Job: what it saw and what it decided.
type syncState struct {
	c   *controller
	key string
	job *batchv1.Job // a private copy: the status is built on it
	now time.Time

	pods     []*corev1.Pod
	active   []*corev1.Pod
	removing sets.Set[types.UID] // finalizer removals issued, not yet seen

	uncountedSucceeded, uncountedFailed sets.Set[types.UID]
	succeeded, failed                   int32
	activeCount, ready, terminating     int32

	prevSucceededIndexes, succeededIndexes indexSet
	newBackoff                             backoff
	// failedIndexes and delayed are for a backoff limit per index: the failed indexes, and the
	// latest failed pod of each index awaiting its replacement.
	failedIndexes *indexSet
	delayed       map[int]*corev1.Pod

	// finishedCondition is the terminal condition this sync reached, if any: first
	// SuccessCriteriaMet or FailureTarget, then Complete or Failed.
	finishedCondition *batchv1.JobCondition
	// requeue is when to look again without an event (0: no need).
	requeue time.Duration
}

func (s *syncState) after(d time.Duration) {
	if d <= 0 {
		d = time.Millisecond
	}
	if s.requeue == 0 || d < s.requeue {
		s.requeue = d
	}
}

func (s *syncState) run(ctx context.Context) (time.Duration, error) {
	job := s.job
	origStart := job.Status.StartTime
	if job.Status.UncountedTerminatedPods == nil {
		job.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
	satisfied := s.c.pending.Satisfied(s.key)
	if err := s.claimPods(ctx); err != nil {
		return 0, err
	}
	s.removing = s.c.removingUIDs(s.key)
	s.uncountedSucceeded = sets.New(job.Status.UncountedTerminatedPods.Succeeded...)
	s.uncountedFailed = sets.New(job.Status.UncountedTerminatedPods.Failed...)
	for _, p := range s.pods {
		switch {
		case podActive(p):
			s.active = append(s.active, p)
			if manager.PodReady(p) {
				s.ready++
			}
		case podTerminating(p):
			s.terminating++
		}
	}
	s.activeCount = int32(len(s.active))

	newSucceeded := s.uncountedPods(s.uncountedSucceeded, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	newFailed := s.uncountedPods(s.uncountedFailed, func(p *corev1.Pod) bool { return podFailed(p, job) })
	countedNewFailed := 0
	for _, p := range newFailed {
		if matchFailurePolicy(job.Spec.PodFailurePolicy, p).counts() {
			countedNewFailed++
		}
	}
	s.succeeded = job.Status.Succeeded + int32(len(newSucceeded)+s.uncountedSucceeded.Len())
	s.failed = job.Status.Failed + int32(countedNewFailed+s.uncountedFailed.Len())

	if job.Status.StartTime == nil && !suspended(job) {
		job.Status.StartTime = ptr.To(metav1.NewTime(s.now))
	}
	s.newBackoff = s.c.backoffOf(s.key).next(newSucceeded, newFailed)

	s.finishedCondition = conditionTrue(job, batchv1.JobSuccessCriteriaMet)
	if s.finishedCondition == nil {
		if ft := conditionTrue(job, batchv1.JobFailureTarget); ft != nil {
			s.finishedCondition = newCondition(batchv1.JobFailed, ft.Reason, ft.Message, s.now)
		} else if msg := s.failJobMessage(); msg != "" {
			s.finishedCondition = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonPodFailurePolicy, msg, s.now)
		}
	}
	if s.finishedCondition == nil {
		switch {
		case s.failed > *job.Spec.BackoffLimit || s.pastBackoffLimitOnFailure():
			s.finishedCondition = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonBackoffLimitExceeded, msgBackoffLimit, s.now)
		case s.pastDeadline():
			s.finishedCondition = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonDeadlineExceeded, msgDeadline, s.now)
		case job.Spec.ActiveDeadlineSeconds != nil && !suspended(job):
			s.after(time.Duration(*job.Spec.ActiveDeadlineSeconds)*time.Second - s.now.Sub(job.Status.StartTime.Time))
		}
	}
	if indexed(job) {
		completions := int(*job.Spec.Completions)
		s.prevSucceededIndexes = parseIndexes(job.Status.CompletedIndexes, completions)
		var fresh []int
		for _, p := range s.pods {
			if ix := validIndex(job, p); ix != noIndex && p.Status.Phase == corev1.PodSucceeded && hasTrackingFinalizer(p) {
				fresh = append(fresh, ix)
			}
		}
		s.succeededIndexes = s.prevSucceededIndexes.with(fresh...)
		s.succeeded = int32(s.succeededIndexes.total())
		if perIndex(job) {
			s.perIndexState()
		}
		if s.finishedCondition == nil {
			if msg, met := matchSuccessPolicy(job.Spec.SuccessPolicy, completions, s.succeededIndexes); met {
				s.finishedCondition = newCondition(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonSuccessPolicy, msg, s.now)
			}
		}
	}

	var manageErr error
	suspendChanged := false
	if s.finishedCondition != nil {
		deleted, deletedReady, err := s.deletePods(ctx, s.active, false)
		if deleted != int32(len(s.active)) || !satisfied {
			// Pods not yet gone, or not yet seen: the Job cannot be declared finished now.
			s.finishedCondition = nil
		}
		s.activeCount -= deleted
		s.terminating += deleted
		s.ready -= deletedReady
		manageErr = err
	} else {
		managed := false
		if satisfied && job.DeletionTimestamp == nil {
			manageErr = s.manage(ctx)
			managed = true
		}
		var complete bool
		if job.Spec.Completions == nil {
			complete = s.succeeded > 0 && s.activeCount == 0
		} else {
			complete = s.succeeded >= *job.Spec.Completions && s.activeCount == 0
		}
		switch {
		case complete:
			s.finishedCondition = newCondition(batchv1.JobSuccessCriteriaMet, reasonCompletionsReached, msgCompletionsReached, s.now)
		case managed && suspended(job):
			if setCondition(job, batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended", s.now) {
				suspendChanged = true
				// The deadline runs only while the Job is not suspended: resuming starts it anew.
				job.Status.StartTime = nil
				s.c.recorder.Event(job, corev1.EventTypeNormal, "Suspended", "Job suspended")
			}
		case managed:
			if setCondition(job, batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed", s.now) {
				suspendChanged = true
				job.Status.StartTime = ptr.To(metav1.NewTime(s.now))
				s.c.recorder.Event(job, corev1.EventTypeNormal, "Resumed", "Job resumed")
			}
		}
	}

	needsUpdate := suspendChanged || s.activeCount != job.Status.Active || !ptr.Equal(job.Status.Ready, &s.ready) ||
		!ptr.Equal(job.Status.Terminating, &s.terminating) || !ptr.Equal(job.Status.StartTime, origStart)
	job.Status.Active = s.activeCount
	job.Status.Ready = ptr.To(s.ready)
	job.Status.Terminating = ptr.To(s.terminating)
	if err := s.track(ctx, needsUpdate); err != nil {
		return 0, fmt.Errorf("tracking status of job %s: %w", describe(job), err)
	}
	return s.requeue, manageErr
}

// uncountedPods are the pods that finished as filter says but are not yet in the Job's status:
// they still carry the finalizer, are not in the uncounted list, and (Indexed) have a valid index.
func (s *syncState) uncountedPods(uncounted sets.Set[types.UID], filter func(*corev1.Pod) bool) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range s.pods {
		if !hasTrackingFinalizer(p) || uncounted.Has(p.UID) || s.removing.Has(p.UID) {
			continue
		}
		if indexed(s.job) && validIndex(s.job, p) == noIndex {
			continue
		}
		if filter(p) {
			out = append(out, p)
		}
	}
	return out
}

// failJobMessage is the message of the first failed pod that a FailJob rule matches.
func (s *syncState) failJobMessage() string {
	if s.job.Spec.PodFailurePolicy == nil {
		return ""
	}
	for _, p := range s.pods {
		if podFailed(p, s.job) {
			if v := matchFailurePolicy(s.job.Spec.PodFailurePolicy, p); v.failJob != "" {
				return v.failJob
			}
		}
	}
	return ""
}

// pastBackoffLimitOnFailure: with restartPolicy OnFailure the kubelet restarts containers in
// place, so the restarts of running pods count against the backoff limit.
func (s *syncState) pastBackoffLimitOnFailure() bool {
	if s.job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var restarts int32
	for _, p := range s.pods {
		if p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodPending {
			continue
		}
		for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			restarts += cs.RestartCount
		}
	}
	if *s.job.Spec.BackoffLimit == 0 {
		return restarts > 0
	}
	return restarts >= *s.job.Spec.BackoffLimit
}

func (s *syncState) pastDeadline() bool {
	j := s.job
	if j.Spec.ActiveDeadlineSeconds == nil || j.Status.StartTime == nil || suspended(j) {
		return false
	}
	return s.now.Sub(j.Status.StartTime.Time) >= time.Duration(*j.Spec.ActiveDeadlineSeconds)*time.Second
}

// claimPods lists the Job's pods: it adopts matching orphans (adding the tracking finalizer) and
// releases owned pods that no longer match.
func (s *syncState) claimPods(ctx context.Context) error {
	job := s.job
	selector, err := metav1.LabelSelectorAsSelector(job.Spec.Selector)
	if err != nil {
		return fmt.Errorf("job %s: selector: %w", describe(job), err)
	}
	all, err := s.c.podLister.Pods(job.Namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	pods := s.c.client.CoreV1().Pods(job.Namespace)
	for _, p := range all {
		ref := metav1.GetControllerOf(p)
		matches := !selector.Empty() && selector.Matches(labels.Set(p.Labels))
		switch {
		case ref != nil && ref.UID == job.UID:
			if matches {
				s.pods = append(s.pods, p)
				continue
			}
			patch := fmt.Appendf(nil, `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":%q}],"uid":%q}}`, job.UID, p.UID)
			if _, err := pods.Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		case ref == nil && matches && p.DeletionTimestamp == nil && job.DeletionTimestamp == nil:
			patch := fmt.Appendf(nil, `{"metadata":{"ownerReferences":[{"apiVersion":%q,"kind":%q,"name":%q,"uid":%q,"controller":true,"blockOwnerDeletion":true}],"uid":%q,"finalizers":[%q]}}`,
				jobKind.GroupVersion().String(), jobKind.Kind, job.Name, job.UID, p.UID, batchv1.JobTrackingFinalizer)
			adopted, err := pods.Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			s.pods = append(s.pods, adopted)
		}
	}
	return nil
}

// manage creates or deletes pods towards what the Job wants running now.
func (s *syncState) manage(ctx context.Context) error {
	job := s.job
	if suspended(job) {
		deleted, deletedReady, err := s.deletePods(ctx, s.active, true)
		s.activeCount -= deleted
		s.terminating += deleted
		s.ready -= deletedReady
		return err
	}
	parallelism := *job.Spec.Parallelism
	var want int32
	if job.Spec.Completions == nil {
		// Without completions any success ends the Job: leave what runs running.
		if s.succeeded > 0 {
			want = s.activeCount
		} else {
			want = parallelism
		}
	} else {
		want = max(min(*job.Spec.Completions-s.succeeded, parallelism), 0)
	}
	if victims := s.podsToRemove(int(max(s.activeCount-want, 0))); len(victims) > 0 {
		if len(victims) > maxPodsPerSync {
			victims = victims[:maxPodsPerSync]
		}
		deleted, deletedReady, err := s.deletePods(ctx, victims, true)
		s.activeCount -= deleted
		s.terminating += deleted
		s.ready -= deletedReady
		// One sync either deletes or creates, deletion first.
		return err
	}
	var terminating int32
	if onlyReplaceFailed(job) {
		terminating = s.terminating
	}
	diff := want - terminating - s.activeCount
	if diff <= 0 {
		return nil
	}
	if wait := s.newBackoff.remaining(s.now); wait > 0 && !perIndex(job) {
		s.after(max(wait, time.Second))
		return nil
	}
	diff = min(diff, maxPodsPerSync)
	var indexes []int
	if indexed(job) {
		taken := s.succeededIndexes
		for _, p := range s.active {
			if ix := completionIndex(p); ix != noIndex {
				taken = taken.with(ix)
			}
		}
		if onlyReplaceFailed(job) {
			for _, p := range s.pods {
				if ix := completionIndex(p); ix != noIndex && podTerminating(p) {
					taken = taken.with(ix)
				}
			}
		}
		if s.failedIndexes != nil {
			taken = taken.merge(*s.failedIndexes)
		}
		indexes = firstPending(int(diff), int(*job.Spec.Completions), taken)
		if perIndex(job) {
			// Each index waits out its own backoff; look again when the first one is over.
			var ready []int
			var wait time.Duration
			for _, ix := range indexes {
				if d := s.indexBackoff(ix); d == 0 {
					ready = append(ready, ix)
				} else if wait == 0 || d < wait {
					wait = d
				}
			}
			if len(ready) == 0 && wait > 0 {
				s.after(max(wait, time.Second))
				return nil
			}
			indexes = ready
		}
		diff = int32(len(indexes))
	}
	if diff == 0 {
		return nil
	}
	s.c.pending.Expect(s.key, int(diff), 0)
	created, err := manager.SlowStart(int(diff), func(i int) error {
		ix := noIndex
		if indexes != nil {
			ix = indexes[i]
		}
		return s.createPod(ctx, ix)
	})
	if skipped := int(diff) - created; skipped > 0 {
		s.c.pending.Observe(s.key, skipped, 0)
	}
	s.activeCount += int32(created)
	return err
}

// maxGeneratedNameLength leaves room for the five random characters the API server adds.
const maxGeneratedNameLength = 58

func (s *syncState) createPod(ctx context.Context, ix int) error {
	job := s.job
	t := job.Spec.Template.DeepCopy()
	generateName := job.Name + "-"
	if len(generateName) > maxGeneratedNameLength {
		generateName = generateName[:maxGeneratedNameLength]
	}
	if ix != noIndex {
		suffix := "-" + strconv.Itoa(ix) + "-"
		generateName = job.Name + suffix
		if len(generateName) > maxGeneratedNameLength {
			generateName = generateName[:maxGeneratedNameLength-len(suffix)] + suffix
		}
		if t.Annotations == nil {
			t.Annotations = map[string]string{}
		}
		if t.Labels == nil {
			t.Labels = map[string]string{}
		}
		t.Annotations[batchv1.JobCompletionIndexAnnotation] = strconv.Itoa(ix)
		t.Labels[batchv1.JobCompletionIndexAnnotation] = strconv.Itoa(ix)
		t.Spec.Hostname = fmt.Sprintf("%s-%d", job.Name, ix)
		if perIndex(job) {
			count, ignored := s.replacementCounts(ix)
			t.Annotations[batchv1.JobIndexFailureCountAnnotation] = strconv.Itoa(int(count))
			if ignored > 0 {
				t.Annotations[batchv1.JobIndexIgnoredFailureCountAnnotation] = strconv.Itoa(int(ignored))
			}
		}
		for _, list := range [][]corev1.Container{t.Spec.InitContainers, t.Spec.Containers} {
			for i := range list {
				addIndexEnv(&list[i])
			}
		}
	}
	finalizers := t.Finalizers
	if !containsString(finalizers, batchv1.JobTrackingFinalizer) {
		finalizers = append(finalizers, batchv1.JobTrackingFinalizer)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: generateName, Namespace: job.Namespace, Labels: t.Labels, Annotations: t.Annotations, Finalizers: finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, jobKind)},
		},
		Spec: t.Spec,
	}
	created, err := s.c.client.CoreV1().Pods(job.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		s.c.recorder.Eventf(job, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		return err
	}
	s.c.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", created.Name)
	return nil
}

// addIndexEnv gives a container JOB_COMPLETION_INDEX from the pod's completion index label,
// unless it sets the variable itself.
func addIndexEnv(c *corev1.Container) {
	for _, e := range c.Env {
		if e.Name == "JOB_COMPLETION_INDEX" {
			return
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: "JOB_COMPLETION_INDEX", ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{FieldPath: fmt.Sprintf("metadata.labels['%s']", batchv1.JobCompletionIndexAnnotation)}}})
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// podsToRemove picks at least n active pods to delete: for Indexed Jobs first those without a
// valid index and the extra copies of a repeated index, then the pods that matter least.
func (s *syncState) podsToRemove(n int) []*corev1.Pod {
	var rm, left []*corev1.Pod
	if indexed(s.job) {
		byIndex := map[int][]*corev1.Pod{}
		for _, p := range s.active {
			ix := validIndex(s.job, p)
			if ix == noIndex {
				rm = append(rm, p)
				continue
			}
			byIndex[ix] = append(byIndex[ix], p)
		}
		for _, group := range byIndex {
			rankPods(group)
			rm = append(rm, group[:len(group)-1]...)
			left = append(left, group[len(group)-1])
		}
	} else {
		left = append(left, s.active...)
	}
	if len(rm) < n {
		rankPods(left)
		rm = append(rm, left[:n-len(rm)]...)
	}
	return rm
}

// rankPods orders pods from the least to the most worth keeping: unscheduled, pending, not
// ready, then the newest first.
func rankPods(pods []*corev1.Pod) {
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
	sort.SliceStable(pods, func(i, j int) bool {
		if ri, rj := rank(pods[i]), rank(pods[j]); ri != rj {
			return ri < rj
		}
		return pods[j].CreationTimestamp.Before(&pods[i].CreationTimestamp)
	})
}

// deletePods deletes pods, returning how many (and how many ready ones) are gone or going. With
// release, their tracking finalizer is removed first, so they are not counted as failed (a
// suspended or scaled-down Job); without, they stay for tracking to count.
func (s *syncState) deletePods(ctx context.Context, pods []*corev1.Pod, release bool) (int32, int32, error) {
	if len(pods) == 0 {
		return 0, 0, nil
	}
	if release {
		s.c.pending.Expect(s.key, 0, len(pods))
	}
	var mu sync.Mutex
	var deleted, deletedReady int32
	errs := make(chan error, len(pods))
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(func() {
			err := s.deletePod(ctx, p, release)
			if err != nil && !apierrors.IsNotFound(err) {
				if release {
					s.c.pending.Observe(s.key, 0, 1)
				}
				errs <- err
				return
			}
			mu.Lock()
			deleted++
			if manager.PodReady(p) {
				deletedReady++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	return deleted, deletedReady, errFrom(errs)
}

func (s *syncState) deletePod(ctx context.Context, p *corev1.Pod, release bool) error {
	if release && hasTrackingFinalizer(p) {
		if err := s.c.removeFinalizer(ctx, p); err != nil {
			return fmt.Errorf("removing tracking finalizer: %w", err)
		}
	}
	err := s.c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
	switch {
	case err == nil:
		s.c.recorder.Eventf(s.job, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", p.Name)
	case !apierrors.IsNotFound(err):
		s.c.recorder.Eventf(s.job, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
	}
	return err
}
