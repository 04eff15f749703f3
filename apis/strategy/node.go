package strategy

import (
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var taintEffects = []string{string(corev1.TaintEffectNoSchedule), string(corev1.TaintEffectPreferNoSchedule), string(corev1.TaintEffectNoExecute)}

func validateNode(obj runtime.Object) field.ErrorList {
	node := obj.(*corev1.Node)
	var errs field.ErrorList
	spec := field.NewPath("spec")
	for i, cidr := range node.Spec.PodCIDRs {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			errs = append(errs, field.Invalid(spec.Child("podCIDRs").Index(i), cidr, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
		}
	}
	if len(node.Spec.PodCIDRs) > 0 && node.Spec.PodCIDR != node.Spec.PodCIDRs[0] {
		errs = append(errs, field.Invalid(spec.Child("podCIDR"), node.Spec.PodCIDR, "must match the first element of podCIDRs"))
	}
	seen := map[string]bool{}
	for i, t := range node.Spec.Taints {
		// Upstream reports taint errors under metadata.taints, not spec.taints.
		p := field.NewPath("metadata", "taints").Index(i)
		for _, msg := range validation.IsQualifiedName(t.Key) {
			errs = append(errs, field.Invalid(p.Child("key"), t.Key, msg))
		}
		if t.Value != "" {
			for _, msg := range validation.IsValidLabelValue(t.Value) {
				errs = append(errs, field.Invalid(p.Child("value"), t.Value, msg))
			}
		}
		switch t.Effect {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		case "":
			errs = append(errs, field.Required(p.Child("effect"), ""))
		default:
			errs = append(errs, field.NotSupported(p.Child("effect"), t.Effect, taintEffects))
		}
		id := t.Key + "/" + string(t.Effect)
		if seen[id] {
			errs = append(errs, field.Duplicate(p, fmt.Sprintf("%s=%s:%s", t.Key, t.Value, t.Effect)))
		}
		seen[id] = true
	}
	return errs
}

func validateNodeUpdate(obj, old runtime.Object) field.ErrorList {
	node, oldNode := obj.(*corev1.Node), old.(*corev1.Node)
	var errs field.ErrorList
	if len(oldNode.Spec.PodCIDRs) > 0 && fmt.Sprint(oldNode.Spec.PodCIDRs) != fmt.Sprint(node.Spec.PodCIDRs) {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "podCIDRs"), "node updates may not change podCIDR except from \"\" to valid"))
	}
	if oldNode.Spec.ProviderID != "" && oldNode.Spec.ProviderID != node.Spec.ProviderID {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "providerID"), "node updates may not change providerID except from \"\" to valid"))
	}
	return errs
}

// keepAllButEphemeralContainers makes pods/ephemeralcontainers change nothing else, and only add.
func keepAllButEphemeralContainers(obj, old runtime.Object) {
	pod := obj.(*corev1.Pod)
	kept := old.(*corev1.Pod).DeepCopy()
	kept.Spec.EphemeralContainers = pod.Spec.EphemeralContainers
	kept.ResourceVersion = pod.ResourceVersion
	*pod = *kept
}

func validateEphemeralContainersUpdate(obj, old runtime.Object) field.ErrorList {
	pod, oldPod := obj.(*corev1.Pod), old.(*corev1.Pod)
	path := field.NewPath("spec", "ephemeralContainers")
	current := map[string]corev1.EphemeralContainer{}
	for _, c := range pod.Spec.EphemeralContainers {
		current[c.Name] = c
	}
	var errs field.ErrorList
	for _, c := range oldPod.Spec.EphemeralContainers {
		n, ok := current[c.Name]
		if !ok {
			errs = append(errs, field.Forbidden(path, fmt.Sprintf("existing ephemeral containers %q may not be removed\n", c.Name)))
			continue
		}
		if fmt.Sprint(n) != fmt.Sprint(c) {
			errs = append(errs, field.Forbidden(path, fmt.Sprintf("existing ephemeral containers %q may not be changed\n", c.Name)))
		}
	}
	for i, c := range pod.Spec.EphemeralContainers {
		p := path.Index(i)
		if c.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
		if c.Image == "" {
			errs = append(errs, field.Required(p.Child("image"), ""))
		}
	}
	return errs
}

// keepAllButResources makes pods/resize change container resources and resize policies only.
func keepAllButResources(obj, old runtime.Object) {
	pod := obj.(*corev1.Pod)
	kept := old.(*corev1.Pod).DeepCopy()
	for i := range kept.Spec.Containers {
		for _, c := range pod.Spec.Containers {
			if c.Name == kept.Spec.Containers[i].Name {
				kept.Spec.Containers[i].Resources = c.Resources
				kept.Spec.Containers[i].ResizePolicy = c.ResizePolicy
			}
		}
	}
	kept.ResourceVersion = pod.ResourceVersion
	*pod = *kept
}
