package strategy

import (
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func defaultReplicationController(obj runtime.Object) {
	rc, ok := obj.(*corev1.ReplicationController)
	if !ok {
		return
	}
	if rc.Spec.Template != nil {
		if l := rc.Spec.Template.Labels; l != nil {
			if len(rc.Spec.Selector) == 0 {
				rc.Spec.Selector = copyLabels(l)
			}
			if len(rc.Labels) == 0 {
				rc.Labels = copyLabels(l)
			}
		}
		defaultPodTemplate(rc.Spec.Template)
	}
	if rc.Spec.Replicas == nil {
		rc.Spec.Replicas = ptrTo(int32(1))
	}
}

func copyLabels(l map[string]string) map[string]string {
	out := make(map[string]string, len(l))
	for k, v := range l {
		out[k] = v
	}
	return out
}

func defaultDeployment(obj runtime.Object) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return
	}
	if d.Spec.Replicas == nil {
		d.Spec.Replicas = ptrTo(int32(1))
	}
	s := &d.Spec.Strategy
	if s.Type == "" {
		s.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if s.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if s.RollingUpdate == nil {
			s.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		if s.RollingUpdate.MaxUnavailable == nil {
			s.RollingUpdate.MaxUnavailable = intOrStringPtr(intstr.FromString("25%"))
		}
		if s.RollingUpdate.MaxSurge == nil {
			s.RollingUpdate.MaxSurge = intOrStringPtr(intstr.FromString("25%"))
		}
	}
	if d.Spec.RevisionHistoryLimit == nil {
		d.Spec.RevisionHistoryLimit = ptrTo(int32(10))
	}
	if d.Spec.ProgressDeadlineSeconds == nil {
		d.Spec.ProgressDeadlineSeconds = ptrTo(int32(600))
	}
	defaultPodTemplate(&d.Spec.Template)
}

// defaultWorkload fills the defaults of a ReplicaSet, StatefulSet or DaemonSet.
func defaultWorkload(obj runtime.Object) {
	switch w := obj.(type) {
	case *appsv1.ReplicaSet:
		if w.Spec.Replicas == nil {
			w.Spec.Replicas = ptrTo(int32(1))
		}
		defaultPodTemplate(&w.Spec.Template)
	case *appsv1.StatefulSet:
		spec := &w.Spec
		if spec.PodManagementPolicy == "" {
			spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
		}
		if spec.UpdateStrategy.Type == "" {
			spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
			if spec.UpdateStrategy.RollingUpdate == nil {
				spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
			}
		}
		if ru := spec.UpdateStrategy.RollingUpdate; spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType && ru != nil {
			if ru.Partition == nil {
				ru.Partition = ptrTo(int32(0))
			}
			// MaxUnavailableStatefulSet is beta and on by default since v1.35.
			if ru.MaxUnavailable == nil {
				ru.MaxUnavailable = intOrStringPtr(intstr.FromInt32(1))
			}
		}
		if spec.PersistentVolumeClaimRetentionPolicy == nil {
			spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
		}
		if spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted == "" {
			spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
		}
		if spec.PersistentVolumeClaimRetentionPolicy.WhenScaled == "" {
			spec.PersistentVolumeClaimRetentionPolicy.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
		}
		if spec.Replicas == nil {
			spec.Replicas = ptrTo(int32(1))
		}
		if spec.RevisionHistoryLimit == nil {
			spec.RevisionHistoryLimit = ptrTo(int32(10))
		}
		for i := range spec.VolumeClaimTemplates {
			pvc := &spec.VolumeClaimTemplates[i]
			defaultPVCSpec(&pvc.Spec)
			if pvc.Status.Phase == "" {
				pvc.Status.Phase = corev1.ClaimPending
			}
		}
		defaultPodTemplate(&spec.Template)
	case *appsv1.DaemonSet:
		s := &w.Spec.UpdateStrategy
		if s.Type == "" {
			s.Type = appsv1.RollingUpdateDaemonSetStrategyType
		}
		if s.Type == appsv1.RollingUpdateDaemonSetStrategyType {
			if s.RollingUpdate == nil {
				s.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
			}
			if s.RollingUpdate.MaxUnavailable == nil {
				s.RollingUpdate.MaxUnavailable = intOrStringPtr(intstr.FromInt32(1))
			}
			if s.RollingUpdate.MaxSurge == nil {
				s.RollingUpdate.MaxSurge = intOrStringPtr(intstr.FromInt32(0))
			}
		}
		if w.Spec.RevisionHistoryLimit == nil {
			w.Spec.RevisionHistoryLimit = ptrTo(int32(10))
		}
		defaultPodTemplate(&w.Spec.Template)
	}
}

var selectorOpts = metav1validation.LabelSelectorValidationOptions{}

// validateSelector checks a workload's selector: required, well formed and not empty.
// It returns the parsed selector, or nil when it cannot be parsed.
func validateSelector(sel *metav1.LabelSelector, kind string, fldPath *field.Path) (labels.Selector, field.ErrorList) {
	if sel == nil {
		return nil, field.ErrorList{field.Required(fldPath, "")}
	}
	allErrs := metav1validation.ValidateLabelSelector(sel, selectorOpts, fldPath)
	if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		allErrs = append(allErrs, field.Invalid(fldPath, sel, fmt.Sprintf("empty selector is invalid for %s", kind)))
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, allErrs
	}
	return s, allErrs
}

// validateReplicatedTemplate is upstream's template check for ReplicaSets and Deployments:
// labels match the selector, the pod template is valid, restartPolicy Always, no deadline.
func validateReplicatedTemplate(t *corev1.PodTemplateSpec, selector labels.Selector, kind string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if selector != nil && !selector.Empty() && !selector.Matches(labels.Set(t.Labels)) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("metadata", "labels"), t.Labels, "`selector` does not match template `labels`"))
	}
	allErrs = append(allErrs, validatePodTemplateSpec(t, fldPath)...)
	if t.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("spec", "restartPolicy"), t.Spec.RestartPolicy, []corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	if t.Spec.ActiveDeadlineSeconds != nil {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("spec", "activeDeadlineSeconds"), t.Spec.ActiveDeadlineSeconds, fmt.Sprintf("activeDeadlineSeconds in %s is not Supported", kind)))
	}
	return allErrs
}

func validateReplicas(replicas *int32, fldPath *field.Path) field.ErrorList {
	if replicas == nil {
		return nil
	}
	return apivalidation.ValidateNonnegativeField(int64(*replicas), fldPath)
}

func validateDeployment(obj runtime.Object) field.ErrorList {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return nil
	}
	specPath := field.NewPath("spec")
	spec := &d.Spec
	allErrs := validateReplicas(spec.Replicas, specPath.Child("replicas"))
	selector, errs := validateSelector(spec.Selector, "deployment", specPath.Child("selector"))
	allErrs = append(allErrs, errs...)
	if spec.Selector != nil && selector == nil {
		allErrs = append(allErrs, field.Invalid(specPath.Child("selector"), spec.Selector, "invalid label selector"))
	} else {
		allErrs = append(allErrs, validateReplicatedTemplate(&spec.Template, selector, "ReplicaSet", specPath.Child("template"))...)
	}
	allErrs = append(allErrs, validateDeploymentStrategy(&spec.Strategy, specPath.Child("strategy"))...)
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	if spec.RevisionHistoryLimit != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*spec.RevisionHistoryLimit), specPath.Child("revisionHistoryLimit"))...)
	}
	if spec.ProgressDeadlineSeconds != nil {
		p := specPath.Child("progressDeadlineSeconds")
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*spec.ProgressDeadlineSeconds), p)...)
		if *spec.ProgressDeadlineSeconds <= spec.MinReadySeconds {
			allErrs = append(allErrs, field.Invalid(p, spec.ProgressDeadlineSeconds, "must be greater than minReadySeconds"))
		}
	}
	return allErrs
}

func validateDeploymentStrategy(s *appsv1.DeploymentStrategy, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch s.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.RollingUpdate != nil {
			allErrs = append(allErrs, field.Forbidden(fldPath.Child("rollingUpdate"), fmt.Sprintf("may not be specified when strategy `type` is '%s'", appsv1.RecreateDeploymentStrategyType)))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if s.RollingUpdate == nil {
			allErrs = append(allErrs, field.Required(fldPath.Child("rollingUpdate"), "this should be defaulted and never be nil"))
			break
		}
		p := fldPath.Child("rollingUpdate")
		allErrs = append(allErrs, validatePositiveIntOrPercent(s.RollingUpdate.MaxUnavailable, p.Child("maxUnavailable"))...)
		allErrs = append(allErrs, validatePositiveIntOrPercent(s.RollingUpdate.MaxSurge, p.Child("maxSurge"))...)
		if intOrPercentValue(s.RollingUpdate.MaxUnavailable) == 0 && intOrPercentValue(s.RollingUpdate.MaxSurge) == 0 {
			allErrs = append(allErrs, field.Invalid(p.Child("maxUnavailable"), s.RollingUpdate.MaxUnavailable, "may not be 0 when `maxSurge` is 0"))
		}
		allErrs = append(allErrs, notMoreThan100Percent(s.RollingUpdate.MaxUnavailable, p.Child("maxUnavailable"))...)
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("type"), s.Type, []appsv1.DeploymentStrategyType{appsv1.RecreateDeploymentStrategyType, appsv1.RollingUpdateDeploymentStrategyType}))
	}
	return allErrs
}

func validatePositiveIntOrPercent(v *intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	var allErrs field.ErrorList
	switch v.Type {
	case intstr.String:
		for _, msg := range validation.IsValidPercent(v.StrVal) {
			allErrs = append(allErrs, field.Invalid(fldPath, v, msg))
		}
	case intstr.Int:
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(v.IntValue()), fldPath)...)
	default:
		allErrs = append(allErrs, field.Invalid(fldPath, v, "must be an integer or percentage (e.g '5%')"))
	}
	return allErrs
}

// intOrPercentValue is the integer or the percentage number, -1 when unparsable.
func intOrPercentValue(v *intstr.IntOrString) int {
	if v == nil {
		return 0
	}
	if v.Type == intstr.Int {
		return v.IntValue()
	}
	if len(validation.IsValidPercent(v.StrVal)) != 0 {
		return -1
	}
	n := 0
	fmt.Sscanf(v.StrVal, "%d%%", &n)
	return n
}

func notMoreThan100Percent(v *intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	if v == nil || v.Type != intstr.String || intOrPercentValue(v) <= 100 {
		return nil
	}
	return field.ErrorList{field.Invalid(fldPath, v, "must not be greater than 100%")}
}

func validateDeploymentUpdate(obj, old runtime.Object) field.ErrorList {
	d, ok1 := obj.(*appsv1.Deployment)
	oldD, ok2 := old.(*appsv1.Deployment)
	if !ok1 || !ok2 {
		return nil
	}
	return apivalidation.ValidateImmutableField(d.Spec.Selector, oldD.Spec.Selector, field.NewPath("spec").Child("selector"))
}

// validateWorkload validates a ReplicaSet, StatefulSet or DaemonSet.
func validateWorkload(obj runtime.Object) field.ErrorList {
	specPath := field.NewPath("spec")
	switch w := obj.(type) {
	case *appsv1.ReplicaSet:
		spec := &w.Spec
		allErrs := validateReplicas(spec.Replicas, specPath.Child("replicas"))
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
		selector, errs := validateSelector(spec.Selector, "deployment", specPath.Child("selector"))
		allErrs = append(allErrs, errs...)
		if spec.Selector != nil && selector == nil {
			allErrs = append(allErrs, field.Invalid(specPath.Child("selector"), spec.Selector, "invalid label selector"))
		} else {
			allErrs = append(allErrs, validateReplicatedTemplate(&spec.Template, selector, "ReplicaSet", specPath.Child("template"))...)
		}
		return allErrs
	case *appsv1.StatefulSet:
		return validateStatefulSetSpec(&w.Spec, specPath)
	case *appsv1.DaemonSet:
		return validateDaemonSetSpec(&w.Spec, specPath)
	}
	return nil
}

func validateStatefulSetSpec(spec *appsv1.StatefulSetSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch spec.PodManagementPolicy {
	case "":
		allErrs = append(allErrs, field.Required(fldPath.Child("podManagementPolicy"), ""))
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		allErrs = append(allErrs, field.Invalid(fldPath.Child("podManagementPolicy"), spec.PodManagementPolicy, fmt.Sprintf("must be '%s' or '%s'", appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement)))
	}
	switch spec.UpdateStrategy.Type {
	case "":
		allErrs = append(allErrs, field.Required(fldPath.Child("updateStrategy"), ""))
	case appsv1.OnDeleteStatefulSetStrategyType:
		if spec.UpdateStrategy.RollingUpdate != nil {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("updateStrategy").Child("rollingUpdate"), spec.UpdateStrategy.RollingUpdate, fmt.Sprintf("only allowed for updateStrategy '%s'", appsv1.RollingUpdateStatefulSetStrategyType)))
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		if ru := spec.UpdateStrategy.RollingUpdate; ru != nil {
			p := fldPath.Child("updateStrategy", "rollingUpdate")
			if ru.Partition != nil {
				allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*ru.Partition), p.Child("partition"))...)
			}
			if ru.MaxUnavailable != nil {
				allErrs = append(allErrs, validatePositiveIntOrPercent(ru.MaxUnavailable, p.Child("maxUnavailable"))...)
				if intOrPercentValue(ru.MaxUnavailable) == 0 {
					allErrs = append(allErrs, field.Invalid(p.Child("maxUnavailable"), ru.MaxUnavailable, "cannot be 0"))
				}
				allErrs = append(allErrs, notMoreThan100Percent(ru.MaxUnavailable, p.Child("maxUnavailable"))...)
			}
		}
	default:
		allErrs = append(allErrs, field.Invalid(fldPath.Child("updateStrategy"), spec.UpdateStrategy, fmt.Sprintf("must be '%s' or '%s'", appsv1.RollingUpdateStatefulSetStrategyType, appsv1.OnDeleteStatefulSetStrategyType)))
	}
	if p := spec.PersistentVolumeClaimRetentionPolicy; p != nil {
		valid := []appsv1.PersistentVolumeClaimRetentionPolicyType{appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
		pp := fldPath.Child("persistentVolumeClaimRetentionPolicy")
		if !containsValue(valid, p.WhenDeleted) {
			allErrs = append(allErrs, field.NotSupported(pp.Child("whenDeleted"), p.WhenDeleted, valid))
		}
		if !containsValue(valid, p.WhenScaled) {
			allErrs = append(allErrs, field.NotSupported(pp.Child("whenScaled"), p.WhenScaled, valid))
		}
	}
	allErrs = append(allErrs, validateReplicas(spec.Replicas, fldPath.Child("replicas"))...)
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	if spec.Ordinals != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(spec.Ordinals.Start), fldPath.Child("ordinals", "start"))...)
	}
	selector, errs := validateSelector(spec.Selector, "statefulset", fldPath.Child("selector"))
	allErrs = append(allErrs, errs...)
	tPath := fldPath.Child("template")
	if spec.Selector != nil && selector == nil {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("selector"), spec.Selector, ""))
	} else {
		if selector != nil && !selector.Empty() && !selector.Matches(labels.Set(spec.Template.Labels)) {
			allErrs = append(allErrs, field.Invalid(tPath.Child("metadata", "labels"), spec.Template.Labels, "`selector` does not match template `labels`"))
		}
		allErrs = append(allErrs, validatePodTemplateSpec(&spec.Template, tPath)...)
	}
	if spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		allErrs = append(allErrs, field.NotSupported(tPath.Child("spec", "restartPolicy"), spec.Template.Spec.RestartPolicy, []corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	if spec.Template.Spec.ActiveDeadlineSeconds != nil {
		allErrs = append(allErrs, field.Forbidden(tPath.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in StatefulSet is not Supported"))
	}
	return allErrs
}

func validateDaemonSetSpec(spec *appsv1.DaemonSetSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	tPath := fldPath.Child("template")
	selector, errs := validateSelector(spec.Selector, "daemonset", fldPath.Child("selector"))
	allErrs = append(allErrs, errs...)
	if selector != nil && !selector.Matches(labels.Set(spec.Template.Labels)) {
		allErrs = append(allErrs, field.Invalid(tPath.Child("metadata", "labels"), spec.Template.Labels, "`selector` does not match template `labels`"))
	}
	allErrs = append(allErrs, validatePodTemplateSpec(&spec.Template, tPath)...)
	if spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		allErrs = append(allErrs, field.NotSupported(tPath.Child("spec", "restartPolicy"), spec.Template.Spec.RestartPolicy, []corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	if spec.Template.Spec.ActiveDeadlineSeconds != nil {
		allErrs = append(allErrs, field.Invalid(tPath.Child("spec", "activeDeadlineSeconds"), spec.Template.Spec.ActiveDeadlineSeconds, "activeDeadlineSeconds in DaemonSet is not Supported"))
	}
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	us := spec.UpdateStrategy
	usPath := fldPath.Child("updateStrategy")
	switch us.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
	case appsv1.RollingUpdateDaemonSetStrategyType:
		if us.RollingUpdate == nil {
			allErrs = append(allErrs, field.Required(usPath.Child("rollingUpdate"), ""))
			break
		}
		p := usPath.Child("rollingUpdate")
		mu, ms := us.RollingUpdate.MaxUnavailable, us.RollingUpdate.MaxSurge
		allErrs = append(allErrs, validatePositiveIntOrPercent(mu, p.Child("maxUnavailable"))...)
		allErrs = append(allErrs, validatePositiveIntOrPercent(ms, p.Child("maxSurge"))...)
		allErrs = append(allErrs, notMoreThan100Percent(mu, p.Child("maxUnavailable"))...)
		allErrs = append(allErrs, notMoreThan100Percent(ms, p.Child("maxSurge"))...)
		hasUnavailable, hasSurge := intOrPercentValue(mu) != 0, intOrPercentValue(ms) != 0
		switch {
		case hasUnavailable && hasSurge:
			allErrs = append(allErrs, field.Invalid(p.Child("maxSurge"), ms, "may not be set when maxUnavailable is non-zero"))
		case !hasUnavailable && !hasSurge:
			allErrs = append(allErrs, field.Required(p.Child("maxUnavailable"), "cannot be 0 when maxSurge is 0"))
		}
	default:
		allErrs = append(allErrs, field.NotSupported(usPath.Child("type"), us.Type, []appsv1.DaemonSetUpdateStrategyType{appsv1.OnDeleteDaemonSetStrategyType, appsv1.RollingUpdateDaemonSetStrategyType}))
	}
	if spec.RevisionHistoryLimit != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*spec.RevisionHistoryLimit), fldPath.Child("revisionHistoryLimit"))...)
	}
	return allErrs
}

// validateWorkloadUpdate holds the immutable parts of ReplicaSets, StatefulSets and DaemonSets.
func validateWorkloadUpdate(obj, old runtime.Object) field.ErrorList {
	selPath := field.NewPath("spec").Child("selector")
	switch w := obj.(type) {
	case *appsv1.ReplicaSet:
		if o, ok := old.(*appsv1.ReplicaSet); ok {
			return apivalidation.ValidateImmutableField(w.Spec.Selector, o.Spec.Selector, selPath)
		}
	case *appsv1.DaemonSet:
		if o, ok := old.(*appsv1.DaemonSet); ok {
			return apivalidation.ValidateImmutableField(w.Spec.Selector, o.Spec.Selector, selPath)
		}
	case *appsv1.StatefulSet:
		if o, ok := old.(*appsv1.StatefulSet); ok {
			// Only these fields may change; everything else of the spec is compared.
			a, b := w.Spec.DeepCopy(), o.Spec.DeepCopy()
			for _, s := range []*appsv1.StatefulSetSpec{a, b} {
				s.Replicas = nil
				s.Ordinals = nil
				s.Template = corev1.PodTemplateSpec{}
				s.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{}
				s.RevisionHistoryLimit = nil
				s.PersistentVolumeClaimRetentionPolicy = nil
				s.MinReadySeconds = 0
			}
			if !apiequality.Semantic.DeepEqual(a, b) {
				return field.ErrorList{field.Forbidden(field.NewPath("spec"), "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")}
			}
		}
	}
	return nil
}

// A DaemonSet's template generation counts the changes of its pod template. Upstream keeps it in
// the internal spec and shows it in apps/v1 as this annotation, which clients cannot set; the
// DaemonSet controller labels pods with it.
const templateGenerationAnnotation = appsv1.DeprecatedTemplateGeneration

// firstTemplateGeneration gives a new DaemonSet template generation 1.
func firstTemplateGeneration(obj runtime.Object) {
	ds, ok := obj.(*appsv1.DaemonSet)
	if !ok {
		return
	}
	if ds.Annotations == nil {
		ds.Annotations = map[string]string{}
	}
	ds.Annotations[templateGenerationAnnotation] = "1"
}

// nextTemplateGeneration keeps a DaemonSet's template generation, counting one more when the
// update changes the template.
func nextTemplateGeneration(obj, old runtime.Object) {
	ds, ok1 := obj.(*appsv1.DaemonSet)
	oldDS, ok2 := old.(*appsv1.DaemonSet)
	if !ok1 || !ok2 {
		return
	}
	defaultWorkload(ds) // compare templates as they will be stored
	g, _ := strconv.ParseInt(oldDS.Annotations[templateGenerationAnnotation], 10, 64)
	if !apiequality.Semantic.DeepEqual(ds.Spec.Template, oldDS.Spec.Template) {
		g++
	}
	if g <= 0 {
		delete(ds.Annotations, templateGenerationAnnotation)
		return
	}
	if ds.Annotations == nil {
		ds.Annotations = map[string]string{}
	}
	ds.Annotations[templateGenerationAnnotation] = strconv.FormatInt(g, 10)
}
