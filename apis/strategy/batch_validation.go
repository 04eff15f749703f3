package strategy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
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
		if _, err := time.LoadLocation(*cj.Spec.TimeZone); err != nil || *cj.Spec.TimeZone == "" || strings.EqualFold(*cj.Spec.TimeZone, "Local") {
			errs = append(errs, field.Invalid(p.Child("timeZone"), *cj.Spec.TimeZone, "unknown time zone "+*cj.Spec.TimeZone))
		}
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

// validateSchedule accepts the five-field cron syntax and the @-macros, as the cron parser
// upstream uses does, with its error wording.
func validateSchedule(schedule string) error {
	s := strings.TrimSpace(schedule)
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return fmt.Errorf("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
	}
	if strings.HasPrefix(s, "@") {
		switch s {
		case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
			return nil
		}
		if strings.HasPrefix(s, "@every ") {
			if _, err := time.ParseDuration(strings.TrimPrefix(s, "@every ")); err == nil {
				return nil
			}
		}
		return fmt.Errorf("unrecognized descriptor: %s", s)
	}
	fieldsOf := strings.Fields(s)
	if len(fieldsOf) != 5 {
		return fmt.Errorf("expected exactly 5 fields, found %d: %s", len(fieldsOf), s)
	}
	bounds := []struct {
		min, max int
		names    map[string]int
	}{
		{0, 59, nil}, {0, 23, nil}, {1, 31, nil},
		{1, 12, map[string]int{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}},
		{0, 6, map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}},
	}
	for i, f := range fieldsOf {
		b := bounds[i]
		for _, part := range strings.Split(f, ",") {
			if err := validateCronRange(part, b.min, b.max, b.names); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateCronRange(expr string, min, max int, names map[string]int) error {
	rangePart, step, hasStep := strings.Cut(expr, "/")
	if hasStep {
		if n, err := strconv.Atoi(step); err != nil || n <= 0 {
			return fmt.Errorf("failed to parse int from %s: %v", step, errOrZero(err))
		}
	}
	if rangePart == "*" || rangePart == "?" {
		return nil
	}
	lo, hi, isRange := strings.Cut(rangePart, "-")
	value := func(s string) (int, error) {
		if n, ok := names[strings.ToLower(s)]; ok {
			return n, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("failed to parse int from %s: %v", s, err)
		}
		return n, nil
	}
	start, err := value(lo)
	if err != nil {
		return err
	}
	end := start
	if isRange {
		if end, err = value(hi); err != nil {
			return err
		}
	}
	switch {
	case start < min:
		return fmt.Errorf("beginning of range (%d) below minimum (%d): %s", start, min, expr)
	case end > max:
		return fmt.Errorf("end of range (%d) above maximum (%d): %s", end, max, expr)
	case start > end:
		return fmt.Errorf("beginning of range (%d) beyond end of range (%d): %s", start, end, expr)
	}
	return nil
}

func errOrZero(err error) error {
	if err == nil {
		return fmt.Errorf("step must be positive")
	}
	return err
}
