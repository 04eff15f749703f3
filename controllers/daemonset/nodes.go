package daemonset

import (
	"slices"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// defaultTolerations are the tolerations upstream gives every daemon pod, so that it runs on
// nodes that are not ready, unreachable, under pressure or cordoned (and, for host-network pods,
// without a pod network).
func defaultTolerations(hostNetwork bool) []corev1.Toleration {
	t := []corev1.Toleration{
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	}
	if hostNetwork {
		t = append(t, corev1.Toleration{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	}
	return t
}

// addDefaultTolerations adds the default tolerations to spec, replacing any of the same key,
// operator, value and effect.
func addDefaultTolerations(spec *corev1.PodSpec) {
	for _, want := range defaultTolerations(spec.HostNetwork) {
		found := false
		for i := range spec.Tolerations {
			if want.MatchToleration(&spec.Tolerations[i]) {
				if !apiequality.Semantic.DeepEqual(want, spec.Tolerations[i]) {
					spec.Tolerations[i] = want
				}
				found = true
			}
		}
		if !found {
			spec.Tolerations = append(spec.Tolerations, want)
		}
	}
}

// placement is what decides where a DaemonSet's pods go: its tolerations (with the defaults)
// and its required node selection (nodeSelector and required node affinity).
type placement struct {
	nodeName    string
	tolerations []corev1.Toleration
	required    nodeaffinity.RequiredNodeAffinity
}

func placementOf(ds *appsv1.DaemonSet) placement {
	spec := ds.Spec.Template.Spec.DeepCopy()
	addDefaultTolerations(spec)
	return placement{nodeName: spec.NodeName, tolerations: spec.Tolerations,
		required: nodeaffinity.NewRequiredNodeAffinity(spec.NodeSelector, spec.Affinity)}
}

// shouldRun tells whether a daemon pod should run on node, and whether one already there may
// keep running (it may on a node whose only untolerated taints are NoSchedule).
func (p placement) shouldRun(node *corev1.Node) (run, keep bool) {
	if p.nodeName != "" && p.nodeName != node.Name {
		return false, false
	}
	// A selector that does not parse matches no node, as upstream ignores the error.
	if fits, _ := p.required.Match(node); !fits {
		return false, false
	}
	if p.untolerated(node, corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute) {
		return false, !p.untolerated(node, corev1.TaintEffectNoExecute)
	}
	return true, true
}

// untolerated tells whether node has a taint of one of effects that the tolerations do not
// tolerate.
func (p placement) untolerated(node *corev1.Node, effects ...corev1.TaintEffect) bool {
	_, found := v1helper.FindMatchingUntoleratedTaint(logr.Discard(), node.Spec.Taints, p.tolerations, func(t *corev1.Taint) bool {
		return slices.Contains(effects, t.Effect)
	}, false)
	return found
}

// nodeAffinityFor is the pod's affinity with its required node selection replaced by the one
// node it is for, as upstream pins daemon pods for the scheduler to bind.
func nodeAffinityFor(affinity *corev1.Affinity, node string) *corev1.Affinity {
	sel := &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
		MatchFields: []corev1.NodeSelectorRequirement{{Key: metav1.ObjectNameField, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
	}}}
	if affinity == nil {
		affinity = &corev1.Affinity{}
	}
	if affinity.NodeAffinity == nil {
		affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = sel
	return affinity
}

// targetNode is the node a daemon pod is on or is pinned to ("" if neither).
func targetNode(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return pod.Spec.NodeName
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, r := range term.MatchFields {
			if r.Key == metav1.ObjectNameField && r.Operator == corev1.NodeSelectorOpIn && len(r.Values) == 1 {
				return r.Values[0]
			}
		}
	}
	return ""
}
