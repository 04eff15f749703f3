package daemonset

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestShouldRun(t *testing.T) {
	node := func(labels map[string]string, taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
	}
	required := func(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
	}
	expr := func(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
	}
	cases := []struct {
		name      string
		spec      corev1.PodSpec
		node      *corev1.Node
		run, keep bool
	}{
		{"any node", corev1.PodSpec{}, node(nil), true, true},
		{"nodeSelector matches", corev1.PodSpec{NodeSelector: map[string]string{"disk": "ssd"}}, node(map[string]string{"disk": "ssd"}), true, true},
		{"nodeSelector does not match", corev1.PodSpec{NodeSelector: map[string]string{"disk": "ssd"}}, node(map[string]string{"disk": "hdd"}), false, false},
		{"nodeName elsewhere", corev1.PodSpec{NodeName: "n2"}, node(nil), false, false},
		{"affinity In", corev1.PodSpec{Affinity: required(expr("zone", corev1.NodeSelectorOpIn, "a", "b"))}, node(map[string]string{"zone": "b"}), true, true},
		{"affinity NotIn", corev1.PodSpec{Affinity: required(expr("zone", corev1.NodeSelectorOpNotIn, "b"))}, node(map[string]string{"zone": "b"}), false, false},
		{"affinity terms are ORed", corev1.PodSpec{Affinity: required(expr("zone", corev1.NodeSelectorOpIn, "x"), expr("gpu", corev1.NodeSelectorOpExists))},
			node(map[string]string{"gpu": ""}), true, true},
		{"affinity Gt", corev1.PodSpec{Affinity: required(expr("cores", corev1.NodeSelectorOpGt, "4"))}, node(map[string]string{"cores": "8"}), true, true},
		{"affinity Lt fails", corev1.PodSpec{Affinity: required(expr("cores", corev1.NodeSelectorOpLt, "4"))}, node(map[string]string{"cores": "8"}), false, false},
		{"an empty term matches nothing", corev1.PodSpec{Affinity: required(corev1.NodeSelectorTerm{})}, node(nil), false, false},
		{"affinity on the node name", corev1.PodSpec{Affinity: required(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}})}, node(nil), true, true},
		{"untolerated NoSchedule: keep what runs", corev1.PodSpec{}, node(nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoSchedule}), false, true},
		{"untolerated NoExecute: evict", corev1.PodSpec{}, node(nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoExecute}), false, false},
		{"PreferNoSchedule is no bar", corev1.PodSpec{}, node(nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectPreferNoSchedule}), true, true},
		{"tolerated taint", corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpEqual, Value: "v"}}},
			node(nil, corev1.Taint{Key: "k", Value: "v", Effect: corev1.TaintEffectNoExecute}), true, true},
		{"default toleration: cordoned", corev1.PodSpec{}, node(nil, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}), true, true},
		{"default toleration: not ready", corev1.PodSpec{}, node(nil, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}), true, true},
		{"network unavailable: host network only", corev1.PodSpec{}, node(nil, corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule}), false, true},
		{"network unavailable: host network", corev1.PodSpec{HostNetwork: true}, node(nil, corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule}), true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: tc.spec}}}
			run, keep := placementOf(ds).shouldRun(tc.node)
			if run != tc.run || keep != tc.keep {
				t.Errorf("shouldRun = %v, %v; want %v, %v", run, keep, tc.run, tc.keep)
			}
		})
	}
}

func TestNodeAffinityFor(t *testing.T) {
	a := nodeAffinityFor(&corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpExists}}}}}}}, "n1")
	pod := &corev1.Pod{Spec: corev1.PodSpec{Affinity: a}}
	if got := targetNode(pod); got != "n1" {
		t.Errorf("targetNode = %q, want n1", got)
	}
	if terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms; len(terms) != 1 || len(terms[0].MatchExpressions) != 0 {
		t.Errorf("the node's term should replace the template's: %+v", terms)
	}
	if got := targetNode(&corev1.Pod{Spec: corev1.PodSpec{NodeName: "n2", Affinity: a}}); got != "n2" {
		t.Errorf("a bound pod's node is its nodeName, got %q", got)
	}
}
