package strategy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var jobRestartPolicies = []corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}

func validateJob(obj runtime.Object) field.ErrorList {
	job := obj.(*batchv1.Job)
	return validateJobSpec(&job.Spec, field.NewPath("spec"))
}

func validateJobSpec(spec *batchv1.JobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for name, v := range map[string]*int32{"parallelism": spec.Parallelism, "completions": spec.Completions, "backoffLimit": spec.BackoffLimit} {
		if v != nil {
			errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*v), p.Child(name))...)
		}
	}
	if spec.ActiveDeadlineSeconds != nil && *spec.ActiveDeadlineSeconds <= 0 {
		errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *spec.ActiveDeadlineSeconds, "must be greater than 0"))
	}
	if spec.TTLSecondsAfterFinished != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*spec.TTLSecondsAfterFinished), p.Child("ttlSecondsAfterFinished"))...)
	}
	if spec.CompletionMode != nil {
		switch *spec.CompletionMode {
		case batchv1.NonIndexedCompletion:
		case batchv1.IndexedCompletion:
			if spec.Completions == nil {
				errs = append(errs, field.Required(p.Child("completions"), fmt.Sprintf("when completion mode is %s", batchv1.IndexedCompletion)))
			}
		default:
			errs = append(errs, field.NotSupported(p.Child("completionMode"), *spec.CompletionMode, []batchv1.CompletionMode{batchv1.NonIndexedCompletion, batchv1.IndexedCompletion}))
		}
	}
	sel, selErrs := validateSelector(spec.Selector, "job", p.Child("selector"))
	errs = append(errs, selErrs...)
	errs = append(errs, validateJobTemplate(&spec.Template, sel, p.Child("template"))...)
	return errs
}

func validateJobTemplate(t *corev1.PodTemplateSpec, sel labels.Selector, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if sel != nil && !sel.Empty() && !sel.Matches(labels.Set(t.Labels)) {
		errs = append(errs, field.Invalid(p.Child("metadata", "labels"), t.Labels, "`selector` does not match template `labels`"))
	}
	errs = append(errs, validatePodTemplateSpec(t, p)...)
	switch t.Spec.RestartPolicy {
	case corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	case "":
		errs = append(errs, field.Required(p.Child("spec", "restartPolicy"), fmt.Sprintf("valid values: %q, %q", corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)))
	default:
		errs = append(errs, field.NotSupported(p.Child("spec", "restartPolicy"), t.Spec.RestartPolicy, jobRestartPolicies))
	}
	return errs
}

// cronJobMaxNameLength leaves room for the 11-character suffix of the Jobs a CronJob creates.
const cronJobMaxNameLength = 52

func validateCronJob(obj runtime.Object) field.ErrorList {
	cj := obj.(*batchv1.CronJob)
	var errs field.ErrorList
	if len(cj.Name) > cronJobMaxNameLength {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), cj.Name, fmt.Sprintf("must be no more than %d characters", cronJobMaxNameLength)))
	}
	p := field.NewPath("spec")
	if cj.Spec.Schedule == "" {
		errs = append(errs, field.Required(p.Child("schedule"), ""))
	} else if err := validateSchedule(cj.Spec.Schedule); err != nil {
		errs = append(errs, field.Invalid(p.Child("schedule"), cj.Spec.Schedule, err.Error()))
	}
	if cj.Spec.TimeZone != nil {
		errs = append(errs, validateTimeZone(*cj.Spec.TimeZone, p.Child("timeZone"))...)
	}
	if cj.Spec.StartingDeadlineSeconds != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(*cj.Spec.StartingDeadlineSeconds, p.Child("startingDeadlineSeconds"))...)
	}
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent:
	case "":
		errs = append(errs, field.Required(p.Child("concurrencyPolicy"), ""))
	default:
		errs = append(errs, field.NotSupported(p.Child("concurrencyPolicy"), cj.Spec.ConcurrencyPolicy,
			[]batchv1.ConcurrencyPolicy{batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent}))
	}
	for name, v := range map[string]*int32{"successfulJobsHistoryLimit": cj.Spec.SuccessfulJobsHistoryLimit, "failedJobsHistoryLimit": cj.Spec.FailedJobsHistoryLimit} {
		if v != nil {
			errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*v), p.Child(name))...)
		}
	}
	jt := p.Child("jobTemplate", "spec")
	// A CronJob's job template has no selector yet: the Jobs it creates get theirs.
	errs = append(errs, validateJobTemplate(&cj.Spec.JobTemplate.Spec.Template, nil, jt.Child("template"))...)
	return errs
}

// validateSchedule checks a schedule with the cron parser upstream uses (five fields or an
// @-descriptor); a time zone belongs in spec.timeZone, not in the schedule.
func validateSchedule(schedule string) error {
	if _, err := cron.ParseStandard(schedule); err != nil {
		return err
	}
	if strings.Contains(schedule, "TZ") {
		return fmt.Errorf("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
	}
	return nil
}

// validateJobStatusUpdate holds a Job status write to upstream's rules (with Job managedBy GA):
// counters never go below zero or down, terminal conditions stay, Complete comes after
// SuccessCriteriaMet and with completionTime, Failed after FailureTarget, a finished Job has
// nothing active, terminating or uncounted, and index lists are well formed. Most rules apply only
// when the fields they read change, so that a write unrelated to a broken field still passes.
func validateJobStatusUpdate(obj, old runtime.Object) field.ErrorList {
	job, ok1 := obj.(*batchv1.Job)
	oldJob, ok2 := old.(*batchv1.Job)
	if !ok1 || !ok2 {
		return nil
	}
	p := field.NewPath("status")
	st, ost := &job.Status, &oldJob.Status
	finished, oldFinished := jobFinished(job), jobFinished(oldJob)
	complete, failed := jobCondition(job, batchv1.JobComplete), jobCondition(job, batchv1.JobFailed)
	oldComplete, oldFailed := jobCondition(oldJob, batchv1.JobComplete), jobCondition(oldJob, batchv1.JobFailed)
	target, oldTarget := jobCondition(job, batchv1.JobFailureTarget), jobCondition(oldJob, batchv1.JobFailureTarget)
	met, oldMet := jobCondition(job, batchv1.JobSuccessCriteriaMet), jobCondition(oldJob, batchv1.JobSuccessCriteriaMet)
	changed := func(a, b any) bool { return !apiequality.Semantic.DeepEqual(a, b) }
	finishedChanged, completeChanged, failedChanged := finished != oldFinished, complete != oldComplete, failed != oldFailed
	startChanged, completionChanged := changed(st.StartTime, ost.StartTime), changed(st.CompletionTime, ost.CompletionTime)
	indexedJob := job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion
	var errs field.ErrorList
	invalid := func(path *field.Path, value any, msg string) { errs = append(errs, field.Invalid(path, value, msg)) }
	omit := field.OmitValueType{}

	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(st.Active), p.Child("active"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(st.Succeeded), p.Child("succeeded"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(st.Failed), p.Child("failed"))...)
	if st.Ready != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*st.Ready), p.Child("ready"))...)
	}
	if st.Terminating != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*st.Terminating), p.Child("terminating"))...)
	}
	uncounted := 0
	if u := st.UncountedTerminatedPods; u != nil {
		uncounted = len(u.Succeeded) + len(u.Failed)
		seen := map[types.UID]bool{}
		for _, list := range []struct {
			name string
			uids []types.UID
		}{{"succeeded", u.Succeeded}, {"failed", u.Failed}} {
			for i, uid := range list.uids {
				up := p.Child("uncountedTerminatedPods", list.name).Index(i)
				switch {
				case uid == "":
					invalid(up, uid, "must not be empty")
				case seen[uid]:
					errs = append(errs, field.Duplicate(up, uid))
				}
				seen[uid] = true
			}
		}
	}
	if (completeChanged || failedChanged) && complete && failed {
		invalid(p.Child("conditions"), omit, "cannot set Complete=True and Failed=true conditions")
	}
	if (completeChanged || target != oldTarget) && complete && target {
		invalid(p.Child("conditions"), omit, "cannot set Complete=True and FailureTarget=true conditions")
	}
	if (completeChanged || completionChanged) && st.CompletionTime != nil && !complete {
		invalid(p.Child("completionTime"), st.CompletionTime, "cannot set completionTime when there is no Complete=True condition")
	}
	if (completeChanged || completionChanged) && st.CompletionTime == nil && complete {
		errs = append(errs, field.Required(p.Child("completionTime"), "completionTime is required for Complete jobs"))
	}
	if (startChanged || completionChanged) && st.StartTime != nil && st.CompletionTime != nil && st.CompletionTime.Before(st.StartTime) {
		invalid(p.Child("completionTime"), st.CompletionTime, "completionTime cannot be set before startTime")
	}
	if (failedChanged || target != oldTarget) && failed && !target {
		invalid(p.Child("conditions"), omit, "cannot set Failed=True condition without the FailureTarget=true condition")
	}
	if (completeChanged || met != oldMet) && complete && !met {
		invalid(p.Child("conditions"), omit, "cannot set Complete=True condition without the SuccessCriteriaMet=true condition")
	}
	if (finishedChanged || st.Active != ost.Active) && st.Active > 0 && finished {
		invalid(p.Child("active"), st.Active, "active>0 is invalid for finished job")
	}
	if (finishedChanged || startChanged) && st.StartTime == nil && finished {
		errs = append(errs, field.Required(p.Child("startTime"), "startTime is required for finished job"))
	}
	if (finishedChanged || changed(st.UncountedTerminatedPods, ost.UncountedTerminatedPods)) && finished && uncounted > 0 {
		invalid(p.Child("uncountedTerminatedPods"), st.UncountedTerminatedPods, "uncountedTerminatedPods needs to be empty for finished job")
	}
	completions := int32(-1)
	if job.Spec.Completions != nil {
		completions = *job.Spec.Completions
	}
	if st.CompletedIndexes != ost.CompletedIndexes {
		if completions >= 0 {
			if _, err := validateIndexList(st.CompletedIndexes, completions); err != nil {
				invalid(p.Child("completedIndexes"), st.CompletedIndexes, "error parsing completedIndexes: "+err.Error())
			}
		}
		if st.CompletedIndexes != "" && !indexedJob {
			invalid(p.Child("completedIndexes"), st.CompletedIndexes, "cannot set non-empty completedIndexes when non-indexed completion mode")
		}
	}
	failedIndexesChanged := changed(st.FailedIndexes, ost.FailedIndexes)
	if failedIndexesChanged && st.FailedIndexes != nil {
		if job.Spec.BackoffLimitPerIndex == nil {
			invalid(p.Child("failedIndexes"), *st.FailedIndexes, "cannot set non-null failedIndexes when backoffLimitPerIndex is null")
		} else if completions >= 0 {
			if _, err := validateIndexList(*st.FailedIndexes, completions); err != nil {
				invalid(p.Child("failedIndexes"), st.FailedIndexes, "error parsing failedIndexes: "+err.Error())
			}
		}
	}
	if (failedIndexesChanged || st.CompletedIndexes != ost.CompletedIndexes) && st.FailedIndexes != nil && completions >= 0 {
		_, errA := validateIndexList(st.CompletedIndexes, completions)
		_, errB := validateIndexList(*st.FailedIndexes, completions)
		if ix := overlapIndex(st.CompletedIndexes, *st.FailedIndexes); errA == nil && errB == nil && ix >= 0 {
			invalid(p.Child("failedIndexes"), *st.FailedIndexes, fmt.Sprintf("failedIndexes and completedIndexes overlap at index: %d", ix))
		}
	}
	if (finishedChanged || changed(st.Terminating, ost.Terminating)) && st.Terminating != nil && *st.Terminating > 0 && finished {
		invalid(p.Child("terminating"), st.Terminating, "terminating>0 is invalid for finished job")
	}
	if (changed(st.Ready, ost.Ready) || st.Active != ost.Active) && st.Ready != nil && *st.Ready > st.Active {
		invalid(p.Child("ready"), *st.Ready, "cannot set more ready pods than active")
	}
	if met && failed {
		invalid(p.Child("conditions"), omit, "cannot set SuccessCriteriaMet=True and Failed=true conditions")
	}
	if met && target {
		invalid(p.Child("conditions"), omit, "cannot set SuccessCriteriaMet=True and FailureTarget=true conditions")
	}
	if job.Spec.SuccessPolicy != nil && !met && complete {
		invalid(p.Child("conditions"), omit, "cannot set Complete=True for Job with SuccessPolicy unless SuccessCriteriaMet=True")
	}
	for _, t := range []batchv1.JobConditionType{batchv1.JobFailed, batchv1.JobComplete, batchv1.JobFailureTarget} {
		if jobCondition(oldJob, t) && !jobCondition(job, t) {
			invalid(p.Child("conditions"), omit, fmt.Sprintf("cannot disable the terminal %s=True condition", t))
		}
	}
	if st.Failed < ost.Failed {
		invalid(p.Child("failed"), st.Failed, "cannot decrease the failed counter")
	}
	// An Indexed Job scaled down in tandem (completions == parallelism) may lose successes.
	elastic := indexedJob && job.Spec.Completions != nil && job.Spec.Parallelism != nil && *job.Spec.Completions == *job.Spec.Parallelism
	if st.Succeeded < ost.Succeeded && !elastic {
		invalid(p.Child("succeeded"), st.Succeeded, "cannot decrease the succeeded counter")
	}
	if st.CompletionTime != nil && ost.CompletionTime != nil && !st.CompletionTime.Equal(ost.CompletionTime) {
		invalid(p.Child("completionTime"), st.CompletionTime, "completionTime cannot be mutated")
	}
	// startTime may change only while the Job is suspended, or as it is resumed.
	resuming := jobCondition(oldJob, batchv1.JobSuspended)
	if startChanged && ost.StartTime != nil && !(job.Spec.Suspend != nil && *job.Spec.Suspend) && !resuming {
		errs = append(errs, field.Required(p.Child("startTime"), "startTime cannot be removed for unsuspended job"))
	}
	if oldMet && !met {
		invalid(p.Child("conditions"), omit, "cannot disable the SuccessCriteriaMet=True condition")
	}
	if oldComplete && !oldMet && met {
		invalid(p.Child("conditions"), omit, "cannot set SuccessCriteriaMet=True for Job already has Complete=true conditions")
	}
	return errs
}

// jobCondition tells whether the Job has condition t with status True.
func jobCondition(job *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range job.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func jobFinished(job *batchv1.Job) bool {
	return jobCondition(job, batchv1.JobComplete) || jobCondition(job, batchv1.JobFailed)
}

// validateIndexList checks an index list ("1,3-5"): intervals of at most two parts, strictly
// increasing, below completions. It returns how many indexes the list holds.
func validateIndexList(s string, completions int32) (int, error) {
	if s == "" {
		return 0, nil
	}
	last, total := int64(-1), 0
	for part := range strings.SplitSeq(s, ",") {
		limits := strings.Split(part, "-")
		if len(limits) > 2 {
			return 0, fmt.Errorf("the fragment %q violates the requirement that an index interval can have at most two parts separated by '-'", part)
		}
		for i, l := range limits {
			x, err := strconv.ParseInt(l, 10, 32)
			if err != nil {
				return 0, fmt.Errorf("cannot convert string to integer for index: %q", l)
			}
			if x >= int64(completions) {
				return 0, fmt.Errorf("too large index: %q", l)
			}
			if x <= last {
				return 0, fmt.Errorf("non-increasing order, previous: %d, current: %d", last, x)
			}
			if i == 0 {
				total++
			} else {
				total += int(x - last)
			}
			last = x
		}
	}
	return total, nil
}

// overlapIndex is the first index two well-formed index lists share, or -1.
func overlapIndex(a, b string) int64 {
	spans := func(list string) [][2]int64 {
		var out [][2]int64
		if list == "" {
			return nil
		}
		for part := range strings.SplitSeq(list, ",") {
			lo, hi, isRange := strings.Cut(part, "-")
			first, _ := strconv.ParseInt(lo, 10, 32)
			end := first
			if isRange {
				end, _ = strconv.ParseInt(hi, 10, 32)
			}
			out = append(out, [2]int64{first, end})
		}
		return out
	}
	sa, sb := spans(a), spans(b)
	for i, j := 0, 0; i < len(sa) && j < len(sb); {
		if lo := max(sa[i][0], sb[j][0]); lo <= min(sa[i][1], sb[j][1]) {
			return lo
		}
		if sa[i][1] < sb[j][1] {
			i++
		} else {
			j++
		}
	}
	return -1
}

// tzPart is what one part of an IANA time zone name may be: letters, '.', '-', '_', and the
// digits and '+' of legacy names, at most 14 characters.
var tzPart = regexp.MustCompile(`^[A-Za-z\.\-_0-9+]{1,14}$`)

// validateTimeZone holds spec.timeZone to upstream's rules and messages.
func validateTimeZone(tz string, p *field.Path) field.ErrorList {
	if tz == "" {
		return field.ErrorList{field.Invalid(p, &tz, "timeZone must be nil or non-empty string")}
	}
	for _, part := range strings.Split(tz, "/") {
		if part == "." || part == ".." || strings.HasPrefix(part, "-") || !tzPart.MatchString(part) {
			return field.ErrorList{field.Invalid(p, &tz, fmt.Sprintf("unknown time zone %s", tz))}
		}
	}
	var errs field.ErrorList
	if strings.EqualFold(tz, "Local") {
		errs = append(errs, field.Invalid(p, &tz, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"))
	}
	if _, err := time.LoadLocation(tz); err != nil {
		errs = append(errs, field.Invalid(p, &tz, err.Error()))
	}
	return errs
}
