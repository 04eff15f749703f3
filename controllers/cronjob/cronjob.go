// Package cronjob creates Jobs on a CronJob's schedule, as upstream's cronjob controller (v2)
// does: one Job per scheduled time, named <cronjob>-<minutes since the epoch> and annotated with
// the scheduled time; spec.timeZone, startingDeadlineSeconds, the Allow, Forbid and Replace
// concurrency policies, suspend, the successful and failed history limits, and status.active,
// lastScheduleTime and lastSuccessfulTime, with upstream's events.
package cronjob

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

// nextScheduleDelta is how long after a scheduled time the controller looks, so that the time has
// surely passed on its clock.
const nextScheduleDelta = 100 * time.Millisecond

// maxMissed is how many missed start times pass without the TooManyMissedTimes warning.
const maxMissed = 100

var cronJobKind = batchv1.SchemeGroupVersion.WithKind("CronJob")

type controller struct {
	*manager.Loop
	client    kubernetes.Interface
	cjLister  batchlisters.CronJobLister
	jobLister batchlisters.JobLister
	recorder  record.EventRecorder
	now       func() time.Time
}

// New returns the CronJob controller.
func New(c *manager.Context) (manager.Controller, error) {
	cjs := c.Informers.Batch().V1().CronJobs()
	jobs := c.Informers.Batch().V1().Jobs()
	ctl := &controller{client: c.Client, cjLister: cjs.Lister(), jobLister: jobs.Lister(), now: time.Now}
	ctl.Loop = manager.NewLoop("cronjob-controller", 5, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{cjs.Informer().HasSynced, jobs.Informer().HasSynced}
	enqueue := func(o any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
			ctl.Enqueue(key)
		}
	}
	if _, err := cjs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(old, o any) {
			oldCJ, cj := old.(*batchv1.CronJob), o.(*batchv1.CronJob)
			if oldCJ.Spec.Schedule == cj.Spec.Schedule && ptr.Equal(oldCJ.Spec.TimeZone, cj.Spec.TimeZone) {
				enqueue(o)
				return
			}
			// A new schedule: look again at its next time.
			sched, err := cron.ParseStandard(formatSchedule(cj, nil))
			if err != nil {
				ctl.recorder.Eventf(cj, corev1.EventTypeWarning, "UnParseableCronJobSchedule", "unparseable schedule for cronjob: %s", cj.Spec.Schedule)
				return
			}
			ctl.Queue.AddAfter(cj.Namespace+"/"+cj.Name, nextScheduleIn(cj, ctl.now(), sched))
		},
	}); err != nil {
		return nil, err
	}
	onJob := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		j, ok := o.(*batchv1.Job)
		if !ok {
			return
		}
		if ref := metav1.GetControllerOf(j); ref != nil && ref.Kind == cronJobKind.Kind && ref.APIVersion == cronJobKind.GroupVersion().String() {
			ctl.Enqueue(j.Namespace + "/" + ref.Name)
		}
	}
	if _, err := jobs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onJob, DeleteFunc: onJob,
		UpdateFunc: func(old, o any) {
			if old.(*batchv1.Job).ResourceVersion != o.(*batchv1.Job).ResourceVersion {
				onJob(old)
				onJob(o)
			}
		},
	}); err != nil {
		return nil, err
	}
	ctl.recorder = c.Recorder("cronjob-controller")
	return ctl, nil
}

// Run works the queue until ctx is done, then stops the event recorder.
func (c *controller) Run(ctx context.Context) error {
	return c.Loop.Run(ctx)
}

func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	shared, err := c.cjLister.CronJobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	all, err := c.jobLister.Jobs(namespace).List(labels.Everything())
	if err != nil {
		return 0, err
	}
	var jobs []*batchv1.Job
	for _, j := range all {
		if ref := metav1.GetControllerOf(j); ref != nil && ref.UID == shared.UID && ref.Kind == cronJobKind.Kind {
			jobs = append(jobs, j)
		}
	}
	cj := shared.DeepCopy()
	cleaned := c.cleanupFinished(ctx, cj, jobs)
	requeue, changed, syncErr := c.syncCronJob(ctx, cj, jobs)
	if cleaned || changed {
		if !apiequality.Semantic.DeepEqual(cj.Status, shared.Status) {
			_, err := c.client.BatchV1().CronJobs(namespace).UpdateStatus(ctx, cj, metav1.UpdateOptions{})
			switch {
			case apierrors.IsConflict(err):
				// A newer CronJob is on its way through the informer, and with it another sync.
				return requeue, syncErr
			case err != nil && !apierrors.IsNotFound(err):
				return 0, err
			}
		}
	}
	return requeue, syncErr
}

// syncCronJob brings the active list up to date with the Jobs, then starts the Job of the most
// recent scheduled time if it is due. It returns when to look again and whether the status changed.
func (c *controller) syncCronJob(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) (time.Duration, bool, error) {
	now := c.now()
	changed := false
	children := map[types.UID]bool{}
	for _, j := range jobs {
		children[j.UID] = true
		found := inActiveList(cj, j.UID)
		done, condition := finishedStatus(j)
		switch {
		case !found && !done:
			fresh, err := c.client.BatchV1().CronJobs(cj.Namespace).Get(ctx, cj.Name, metav1.GetOptions{})
			if err != nil {
				return 0, changed, err
			}
			if inActiveList(fresh, j.UID) {
				cj = fresh
				continue
			}
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnexpectedJob", "Saw a job that the controller did not create or forgot: %s", j.Name)
		case done:
			if found {
				deleteFromActiveList(cj, j.UID)
				c.recorder.Eventf(cj, corev1.EventTypeNormal, "SawCompletedJob", "Saw completed job: %s, condition: %v", j.Name, condition)
				changed = true
			}
			// A finished Job counts for the last success whether or not it was in the list.
			if condition == batchv1.JobComplete && j.Status.CompletionTime != nil &&
				(cj.Status.LastSuccessfulTime == nil || j.Status.CompletionTime.After(cj.Status.LastSuccessfulTime.Time)) {
				cj.Status.LastSuccessfulTime = j.Status.CompletionTime
				changed = true
			}
		}
	}
	// An active Job that is gone (not just missing from a lagging informer) leaves the list.
	for _, ref := range append([]corev1.ObjectReference(nil), cj.Status.Active...) {
		if children[ref.UID] {
			continue
		}
		_, err := c.client.BatchV1().Jobs(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "MissingJob", "Active job went missing: %v", ref.Name)
			deleteFromActiveList(cj, ref.UID)
			changed = true
		case err != nil:
			return 0, changed, err
		}
	}

	if cj.DeletionTimestamp != nil {
		return 0, changed, nil
	}
	if tz := cj.Spec.TimeZone; tz != nil {
		if _, err := time.LoadLocation(*tz); err != nil {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnknownTimeZone", "invalid timeZone: %q: %s", *tz, err)
			return 0, changed, nil
		}
	}
	if ptr.Deref(cj.Spec.Suspend, false) {
		return 0, changed, nil
	}
	sched, err := cron.ParseStandard(formatSchedule(cj, c.recorder))
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnparseableSchedule", "unparseable schedule: %q : %s", cj.Spec.Schedule, err)
		return 0, changed, nil
	}
	scheduled, missed := mostRecentSchedule(cj, now, sched)
	if missed > maxMissed {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "TooManyMissedTimes", "too many missed start times: %d. Set or decrease .spec.startingDeadlineSeconds or check clock skew", missed)
	}
	next := nextScheduleIn(cj, now, sched)
	if scheduled == nil {
		return next, changed, nil
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && scheduled.Add(time.Duration(*d)*time.Second).Before(now) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "MissSchedule", "Missed scheduled time to start a job: %s", scheduled.UTC().Format(time.RFC1123Z))
		return next, changed, nil
	}
	name := jobName(cj, *scheduled)
	if inActiveListByName(cj, name) || (cj.Status.LastScheduleTime != nil && cj.Status.LastScheduleTime.Equal(&metav1.Time{Time: *scheduled})) {
		return next, changed, nil
	}
	if cj.Spec.ConcurrencyPolicy == batchv1.ForbidConcurrent && len(cj.Status.Active) > 0 {
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
		return next, changed, nil
	}
	if cj.Spec.ConcurrencyPolicy == batchv1.ReplaceConcurrent {
		for _, ref := range append([]corev1.ObjectReference(nil), cj.Status.Active...) {
			j, err := c.client.BatchV1().Jobs(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedGet", "Get job: %v", err)
				return 0, changed, err
			}
			if !c.deleteJob(ctx, cj, j) {
				return 0, changed, fmt.Errorf("could not replace job %s/%s", j.Namespace, j.Name)
			}
			changed = true
		}
	}

	job, err := jobFromTemplate(cj, *scheduled)
	if err != nil {
		return 0, changed, err
	}
	created, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, job, metav1.CreateOptions{})
	switch {
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return 0, changed, err
	case apierrors.IsAlreadyExists(err):
		// Created earlier but not recorded, or created by someone else, who then keeps the status.
		existing, err := c.client.BatchV1().Jobs(cj.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
		if err != nil {
			return 0, changed, err
		}
		if !metav1.IsControlledBy(existing, cj) || inActiveList(cj, existing.UID) {
			return 0, changed, nil
		}
		created = existing
	case err != nil:
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)
		return 0, changed, err
	default:
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulCreate", "Created job %v", created.Name)
	}
	cj.Status.Active = append(cj.Status.Active, corev1.ObjectReference{Kind: "Job", Namespace: created.Namespace, Name: created.Name,
		UID: created.UID, APIVersion: batchv1.SchemeGroupVersion.String(), ResourceVersion: created.ResourceVersion})
	cj.Status.LastScheduleTime = &metav1.Time{Time: *scheduled}
	return nextScheduleIn(cj, now, sched), true, nil
}

// cleanupFinished deletes the oldest finished Jobs beyond the history limits, and tells whether
// the status changed.
func (c *controller) cleanupFinished(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) bool {
	if cj.Spec.SuccessfulJobsHistoryLimit == nil && cj.Spec.FailedJobsHistoryLimit == nil {
		return false
	}
	var succeeded, failed []*batchv1.Job
	for _, j := range jobs {
		switch done, condition := finishedStatus(j); {
		case done && condition == batchv1.JobComplete:
			succeeded = append(succeeded, j)
		case done && condition == batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	changed := false
	if l := cj.Spec.SuccessfulJobsHistoryLimit; l != nil && c.removeOldest(ctx, cj, succeeded, int(*l)) {
		changed = true
	}
	if l := cj.Spec.FailedJobsHistoryLimit; l != nil && c.removeOldest(ctx, cj, failed, int(*l)) {
		changed = true
	}
	return changed
}

func (c *controller) removeOldest(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job, keep int) bool {
	n := len(jobs) - keep
	if n <= 0 {
		return false
	}
	// Oldest start first, then by name; Jobs never started sort last.
	sort.SliceStable(jobs, func(a, b int) bool {
		ja, jb := jobs[a], jobs[b]
		if jb.Status.StartTime == nil {
			return ja.Status.StartTime != nil
		}
		if ja.Status.StartTime == nil {
			return false
		}
		if ja.Status.StartTime.Equal(jb.Status.StartTime) {
			return ja.Name < jb.Name
		}
		return ja.Status.StartTime.Before(jb.Status.StartTime)
	})
	changed := false
	for _, j := range jobs[:n] {
		if c.deleteJob(ctx, cj, j) {
			changed = true
		}
	}
	return changed
}

// deleteJob deletes a Job (its pods in the background) and drops it from the active list.
func (c *controller) deleteJob(ctx context.Context, cj *batchv1.CronJob, j *batchv1.Job) bool {
	policy := metav1.DeletePropagationBackground
	if err := c.client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil && !apierrors.IsNotFound(err) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedDelete", "Deleted job: %v", err)
		return false
	}
	deleteFromActiveList(cj, j.UID)
	c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job %v", j.Name)
	return true
}

// formatSchedule is the schedule with the CronJob's time zone for the parser. A TZ or CRON_TZ in
// the schedule itself is used as it is, with a warning that it is not supported.
func formatSchedule(cj *batchv1.CronJob, recorder record.EventRecorder) string {
	if strings.Contains(cj.Spec.Schedule, "TZ") {
		if recorder != nil {
			recorder.Eventf(cj, corev1.EventTypeWarning, "UnsupportedSchedule",
				"CRON_TZ or TZ used in schedule %q is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details", cj.Spec.Schedule)
		}
		return cj.Spec.Schedule
	}
	if tz := cj.Spec.TimeZone; tz != nil {
		if _, err := time.LoadLocation(*tz); err == nil {
			return fmt.Sprintf("TZ=%s %s", *tz, cj.Spec.Schedule)
		}
	}
	return cj.Spec.Schedule
}

// mostRecentSchedule is the latest scheduled time after the last one run (or the CronJob's
// creation, or the starting deadline, whichever is latest) and not after now, with how many
// such times there were; nil when none.
func mostRecentSchedule(cj *batchv1.CronJob, now time.Time, sched cron.Schedule) (*time.Time, int) {
	return scheduleSince(cj, now, sched, true)
}

// scheduleSince is mostRecentSchedule, optionally without the starting deadline's bound.
func scheduleSince(cj *batchv1.CronJob, now time.Time, sched cron.Schedule, withDeadline bool) (*time.Time, int) {
	earliest := cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		earliest = cj.Status.LastScheduleTime.Time
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && withDeadline {
		if deadline := now.Add(-time.Duration(*d) * time.Second); deadline.After(earliest) {
			earliest = deadline
		}
	}
	t1 := sched.Next(earliest)
	if t1.IsZero() || t1.After(now) {
		return nil, 0
	}
	t2 := sched.Next(t1)
	if t2.IsZero() || t2.After(now) {
		return &t1, 1
	}
	// Skip ahead by whole periods where the schedule is regular, then walk to the latest time;
	// the walk is bounded because a period is at least a second.
	period := t2.Sub(t1)
	missed := 1
	latest := t1
	if skip := int(now.Sub(t1)/period) - 1; skip > 1 {
		if candidate := t1.Add(time.Duration(skip) * period); !candidate.After(now) && sched.Next(candidate.Add(-time.Second)).Equal(candidate) {
			latest, missed = candidate, 1+skip
		}
	}
	for steps := 0; steps < 1_000_000; steps++ {
		next := sched.Next(latest)
		if next.IsZero() || next.After(now) {
			break
		}
		latest = next
		missed++
	}
	return &latest, missed
}

// nextScheduleIn is how long until the scheduled time after the most recent one (missed or not,
// whatever the starting deadline), plus a delta.
func nextScheduleIn(cj *batchv1.CronJob, now time.Time, sched cron.Schedule) time.Duration {
	from := cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		from = cj.Status.LastScheduleTime.Time
	}
	if recent, _ := scheduleSince(cj, now, sched, false); recent != nil {
		from = *recent
	}
	next := sched.Next(from)
	if next.IsZero() {
		return 0
	}
	return max(next.Add(nextScheduleDelta).Sub(now), nextScheduleDelta)
}

// jobName names the Job of a scheduled time: the CronJob's name and the minutes since the epoch.
func jobName(cj *batchv1.CronJob, scheduled time.Time) string {
	return fmt.Sprintf("%s-%d", cj.Name, scheduled.Unix()/60)
}

// jobFromTemplate is the Job a CronJob starts for a scheduled time.
func jobFromTemplate(cj *batchv1.CronJob, scheduled time.Time) (*batchv1.Job, error) {
	loc, err := time.LoadLocation(ptr.Deref(cj.Spec.TimeZone, ""))
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	for k, v := range cj.Spec.JobTemplate.Labels {
		labels[k] = v
	}
	annotations := map[string]string{}
	for k, v := range cj.Spec.JobTemplate.Annotations {
		annotations[k] = v
	}
	annotations[batchv1.CronJobScheduledTimestampAnnotation] = scheduled.In(loc).Format(time.RFC3339)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: jobName(cj, scheduled), Namespace: cj.Namespace, Labels: labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, cronJobKind)},
		},
	}
	cj.Spec.JobTemplate.Spec.DeepCopyInto(&job.Spec)
	return job, nil
}

func finishedStatus(j *batchv1.Job) (bool, batchv1.JobConditionType) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true, c.Type
		}
	}
	return false, ""
}

func inActiveList(cj *batchv1.CronJob, uid types.UID) bool {
	for _, r := range cj.Status.Active {
		if r.UID == uid {
			return true
		}
	}
	return false
}

func inActiveListByName(cj *batchv1.CronJob, name string) bool {
	for _, r := range cj.Status.Active {
		if r.Name == name && r.Namespace == cj.Namespace {
			return true
		}
	}
	return false
}

func deleteFromActiveList(cj *batchv1.CronJob, uid types.UID) {
	var kept []corev1.ObjectReference
	for _, r := range cj.Status.Active {
		if r.UID != uid {
			kept = append(kept, r)
		}
	}
	cj.Status.Active = kept
}
