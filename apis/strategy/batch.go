package strategy

import (
	"fmt"
	"math"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Label keys of a generated Job selector, legacy and current.
const (
	labelLegacyControllerUID = "controller-uid"
	labelLegacyJobName       = "job-name"
)

// defaultJob fills upstream's batch/v1 Job defaults and, unless spec.manualSelector is true,
// the generated selector and template labels keyed on the Job's uid.
func defaultJob(obj runtime.Object) {
	job, ok := obj.(*batchv1.Job)
	if !ok {
		return
	}
	defaultJobSpec(&job.Spec)
	// Labels come from the template before the generated ones are added, as upstream's
	// decoding defaults run before its create strategy.
	if l := job.Spec.Template.Labels; l != nil && len(job.Labels) == 0 {
		job.Labels = copyLabels(l)
	}
	if job.Spec.ManualSelector == nil || !*job.Spec.ManualSelector {
		generateJobSelector(job)
	}
}

func defaultJobSpec(spec *batchv1.JobSpec) {
	if spec.Completions == nil && spec.Parallelism == nil {
		spec.Completions = ptrTo(int32(1))
		spec.Parallelism = ptrTo(int32(1))
	}
	if spec.Parallelism == nil {
		spec.Parallelism = ptrTo(int32(1))
	}
	if spec.BackoffLimit == nil {
		if spec.BackoffLimitPerIndex != nil {
			spec.BackoffLimit = ptrTo(int32(math.MaxInt32))
		} else {
			spec.BackoffLimit = ptrTo(int32(6))
		}
	}
	if spec.CompletionMode == nil {
		spec.CompletionMode = ptrTo(batchv1.NonIndexedCompletion)
	}
	if spec.Suspend == nil {
		spec.Suspend = ptrTo(false)
	}
	if spec.PodFailurePolicy != nil {
		for _, rule := range spec.PodFailurePolicy.Rules {
			for i := range rule.OnPodConditions {
				if rule.OnPodConditions[i].Status == "" {
					rule.OnPodConditions[i].Status = corev1.ConditionTrue
				}
			}
		}
	}
	if spec.PodReplacementPolicy == nil {
		if spec.PodFailurePolicy != nil {
			spec.PodReplacementPolicy = ptrTo(batchv1.Failed)
		} else {
			spec.PodReplacementPolicy = ptrTo(batchv1.TerminatingOrFailed)
		}
	}
	defaultPodSpec(&spec.Template.Spec)
}

// generateJobSelector adds the job-name and controller-uid labels to the template where absent,
// and selects the controller-uid label. A conflicting user value is left for validation.
func generateJobSelector(job *batchv1.Job) {
	t := &job.Spec.Template
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	for _, k := range []string{labelLegacyJobName, batchv1.JobNameLabel} {
		if _, found := t.Labels[k]; !found {
			t.Labels[k] = job.Name
		}
	}
	for _, k := range []string{labelLegacyControllerUID, batchv1.ControllerUidLabel} {
		if _, found := t.Labels[k]; !found {
			t.Labels[k] = string(job.UID)
		}
	}
	if job.Spec.Selector == nil {
		job.Spec.Selector = &metav1.LabelSelector{}
	}
	if job.Spec.Selector.MatchLabels == nil {
		job.Spec.Selector.MatchLabels = map[string]string{}
	}
	if _, found := job.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel]; !found {
		job.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel] = string(job.UID)
	}
}

// validateJobUpdate holds upstream's immutable Job fields. The template may change its
// scheduling directives (node affinity, node selector, tolerations, labels, annotations,
// scheduling gates) only while the Job is suspended and has never started.
func validateJobUpdate(obj, old runtime.Object) field.ErrorList {
	job, ok1 := obj.(*batchv1.Job)
	oldJob, ok2 := old.(*batchv1.Job)
	if !ok1 || !ok2 {
		return nil
	}
	specPath := field.NewPath("spec")
	spec, oldSpec := &job.Spec, &oldJob.Spec
	allErrs := apivalidation.ValidateImmutableField(spec.Selector, oldSpec.Selector, specPath.Child("selector"))

	oldTemplate := &oldSpec.Template
	if oldSpec.Suspend != nil && *oldSpec.Suspend && oldJob.Status.StartTime == nil {
		oldTemplate = oldSpec.Template.DeepCopy()
		t := &spec.Template
		switch {
		case t.Spec.Affinity == nil && oldTemplate.Spec.Affinity != nil:
			oldTemplate.Spec.Affinity.NodeAffinity = nil
			if (*oldTemplate.Spec.Affinity == corev1.Affinity{}) {
				oldTemplate.Spec.Affinity = nil
			}
		case t.Spec.Affinity != nil && oldTemplate.Spec.Affinity == nil:
			oldTemplate.Spec.Affinity = &corev1.Affinity{NodeAffinity: t.Spec.Affinity.NodeAffinity}
		case t.Spec.Affinity != nil && oldTemplate.Spec.Affinity != nil:
			oldTemplate.Spec.Affinity.NodeAffinity = t.Spec.Affinity.NodeAffinity
		}
		oldTemplate.Spec.NodeSelector = t.Spec.NodeSelector
		oldTemplate.Spec.Tolerations = t.Spec.Tolerations
		oldTemplate.Annotations = t.Annotations
		oldTemplate.Labels = t.Labels
		oldTemplate.Spec.SchedulingGates = t.Spec.SchedulingGates
	}
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(&spec.Template, oldTemplate, specPath.Child("template"))...)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(spec.CompletionMode, oldSpec.CompletionMode, specPath.Child("completionMode"))...)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(spec.PodFailurePolicy, oldSpec.PodFailurePolicy, specPath.Child("podFailurePolicy"))...)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(spec.BackoffLimitPerIndex, oldSpec.BackoffLimitPerIndex, specPath.Child("backoffLimitPerIndex"))...)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(spec.ManagedBy, oldSpec.ManagedBy, specPath.Child("managedBy"))...)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(spec.SuccessPolicy, oldSpec.SuccessPolicy, specPath.Child("successPolicy"))...)
	allErrs = append(allErrs, apivalidation.ValidateImmutableField(spec.PodReplacementPolicy, oldSpec.PodReplacementPolicy, specPath.Child("podReplacementPolicy"))...)
	allErrs = append(allErrs, validateJobCompletionsUpdate(spec, oldSpec, specPath)...)
	return allErrs
}

// validateJobCompletionsUpdate: completions are immutable, except that an Indexed Job may
// change them together with parallelism (elastic Indexed Jobs).
func validateJobCompletionsUpdate(spec, oldSpec *batchv1.JobSpec, specPath *field.Path) field.ErrorList {
	p := specPath.Child("completions")
	indexed := spec.CompletionMode != nil && *spec.CompletionMode == batchv1.IndexedCompletion
	if !indexed {
		return apivalidation.ValidateImmutableField(spec.Completions, oldSpec.Completions, p)
	}
	if apiequality.Semantic.DeepEqual(spec.Completions, oldSpec.Completions) || spec.Completions == nil {
		return nil
	}
	if spec.Parallelism == nil || *spec.Completions != *spec.Parallelism {
		return field.ErrorList{field.Invalid(p, spec.Completions, fmt.Sprintf("can only be modified in tandem with %s", specPath.Child("parallelism").String()))}
	}
	return nil
}

func defaultCronJob(obj runtime.Object) {
	cj, ok := obj.(*batchv1.CronJob)
	if !ok {
		return
	}
	spec := &cj.Spec
	if spec.ConcurrencyPolicy == "" {
		spec.ConcurrencyPolicy = batchv1.AllowConcurrent
	}
	if spec.Suspend == nil {
		spec.Suspend = ptrTo(false)
	}
	if spec.SuccessfulJobsHistoryLimit == nil {
		spec.SuccessfulJobsHistoryLimit = ptrTo(int32(3))
	}
	if spec.FailedJobsHistoryLimit == nil {
		spec.FailedJobsHistoryLimit = ptrTo(int32(1))
	}
	// Upstream defaults only the pod template of a CronJob's job template, not its Job fields.
	defaultPodSpec(&spec.JobTemplate.Spec.Template.Spec)
}

// keepJobSpec reduces a write of jobs/status to the status: spec and generation stay.
func keepJobSpec(obj, old runtime.Object) {
	job, oldJob := obj.(*batchv1.Job), old.(*batchv1.Job)
	job.Spec = oldJob.Spec
	job.Generation = oldJob.Generation
}
