package strategy

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// defaultHPA applies upstream's autoscaling/v2 defaults: minReplicas 1, a CPU utilization
// target of 80% when no metric is given, and, when a behavior is given, its unset scaling rules
// (scale-up: no stabilization, the larger of 4 pods or 100% per 15s; scale-down: 100% per 15s,
// the stabilization window left to the controller).
func defaultHPA(obj runtime.Object) {
	hpa, ok := obj.(*autoscalingv2.HorizontalPodAutoscaler)
	if !ok {
		return
	}
	if hpa.Spec.MinReplicas == nil {
		hpa.Spec.MinReplicas = ptrTo(int32(1))
	}
	if len(hpa.Spec.Metrics) == 0 {
		hpa.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptrTo(int32(80))}}}}
	}
	if b := hpa.Spec.Behavior; b != nil {
		b.ScaleUp = defaultScalingRules(b.ScaleUp, &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: ptrTo(int32(0)),
			Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
				{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
			}})
		b.ScaleDown = defaultScalingRules(b.ScaleDown, &autoscalingv2.HPAScalingRules{
			Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}}})
	}
}

// defaultScalingRules fills the unset fields of rules from def (whose selectPolicy is Max).
func defaultScalingRules(rules, def *autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
	def.SelectPolicy = ptrTo(autoscalingv2.MaxChangePolicySelect)
	if rules == nil {
		return def
	}
	if rules.SelectPolicy == nil {
		rules.SelectPolicy = def.SelectPolicy
	}
	if rules.StabilizationWindowSeconds == nil {
		rules.StabilizationWindowSeconds = def.StabilizationWindowSeconds
	}
	if rules.Policies == nil {
		rules.Policies = def.Policies
	}
	return rules
}
