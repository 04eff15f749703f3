package printers

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Annotations in which autoscaling/v1 keeps the metrics it has no fields for.
const (
	hpaMetricSpecsAnnotation    = "autoscaling.alpha.kubernetes.io/metrics"
	hpaMetricStatusesAnnotation = "autoscaling.alpha.kubernetes.io/current-metrics"
)

func registerAutoscaling(s *Set) {
	spec, status := autoscalingv2.HorizontalPodAutoscalerSpec{}.SwaggerDoc(), autoscalingv2.HorizontalPodAutoscalerStatus{}.SwaggerDoc()
	columns := []metav1.TableColumnDefinition{
		nameColumn(),
		col("Reference", "string", spec["scaleTargetRef"]),
		col("Targets", "string", spec["metrics"]),
		col("MinPods", "string", spec["minReplicas"]),
		col("MaxPods", "string", spec["maxReplicas"]),
		col("Replicas", "string", status["currentReplicas"]),
		ageColumn(),
	}
	s.add(schema.GroupKind{Group: autoscalingv2.GroupName, Kind: "HorizontalPodAutoscaler"}, &Printer{
		Columns: columns,
		Cells: func(obj runtime.Object, now time.Time) []interface{} {
			switch o := obj.(type) {
			case *autoscalingv2.HorizontalPodAutoscaler:
				return hpaCells(o, now)
			case *autoscalingv1.HorizontalPodAutoscaler:
				return hpaCells(hpaFromV1(o), now)
			}
			return fallbackCells(columns, obj)
		},
	})
}

func hpaCells(o *autoscalingv2.HorizontalPodAutoscaler, now time.Time) []interface{} {
	minPods := "<unset>"
	if o.Spec.MinReplicas != nil {
		minPods = fmt.Sprintf("%d", *o.Spec.MinReplicas)
	}
	reference := o.Spec.ScaleTargetRef.Kind + "/" + o.Spec.ScaleTargetRef.Name
	return []interface{}{o.Name, reference, hpaMetrics(o.Spec.Metrics, o.Status.CurrentMetrics), minPods,
		int64(o.Spec.MaxReplicas), int64(o.Status.CurrentReplicas), age(o, now)}
}

// hpaMetrics is the Targets cell: "current/target" of up to two metrics.
func hpaMetrics(specs []autoscalingv2.MetricSpec, statuses []autoscalingv2.MetricStatus) string {
	if len(specs) == 0 {
		return "<none>"
	}
	const max = 2
	list := make([]string, 0, len(specs))
	for i, spec := range specs {
		var st *autoscalingv2.MetricStatus
		if len(statuses) > i {
			st = &statuses[i]
		}
		list = append(list, hpaMetric(spec, st))
	}
	if len(list) > max {
		return fmt.Sprintf("%s + %d more...", strings.Join(list[:max], ", "), len(list)-max)
	}
	return strings.Join(list, ", ")
}

func hpaMetric(spec autoscalingv2.MetricSpec, st *autoscalingv2.MetricStatus) string {
	const unknown = "<unknown>"
	// A metric whose source is missing cannot pass validation; never dereference one.
	if (spec.Type == autoscalingv2.ExternalMetricSourceType && spec.External == nil) ||
		(spec.Type == autoscalingv2.PodsMetricSourceType && spec.Pods == nil) ||
		(spec.Type == autoscalingv2.ObjectMetricSourceType && spec.Object == nil) ||
		(spec.Type == autoscalingv2.ResourceMetricSourceType && spec.Resource == nil) ||
		(spec.Type == autoscalingv2.ContainerResourceMetricSourceType && spec.ContainerResource == nil) {
		return "<unknown type>"
	}
	switch spec.Type {
	case autoscalingv2.ExternalMetricSourceType:
		if spec.External.Target.AverageValue != nil {
			current := unknown
			if st != nil && st.External != nil && st.External.Current.AverageValue != nil {
				current = st.External.Current.AverageValue.String()
			}
			return fmt.Sprintf("%s/%s (avg)", current, spec.External.Target.AverageValue.String())
		}
		current := unknown
		if st != nil && st.External != nil {
			current = st.External.Current.Value.String()
		}
		return fmt.Sprintf("%s/%s", current, spec.External.Target.Value.String())
	case autoscalingv2.PodsMetricSourceType:
		current := unknown
		if st != nil && st.Pods != nil {
			current = st.Pods.Current.AverageValue.String()
		}
		return fmt.Sprintf("%s/%s", current, spec.Pods.Target.AverageValue.String())
	case autoscalingv2.ObjectMetricSourceType:
		if spec.Object.Target.AverageValue != nil {
			current := unknown
			if st != nil && st.Object != nil && st.Object.Current.AverageValue != nil {
				current = st.Object.Current.AverageValue.String()
			}
			return fmt.Sprintf("%s/%s (avg)", current, spec.Object.Target.AverageValue.String())
		}
		current := unknown
		if st != nil && st.Object != nil {
			current = st.Object.Current.Value.String()
		}
		return fmt.Sprintf("%s/%s", current, spec.Object.Target.Value.String())
	case autoscalingv2.ResourceMetricSourceType:
		if spec.Resource.Target.AverageValue != nil {
			current := unknown
			if st != nil && st.Resource != nil {
				current = st.Resource.Current.AverageValue.String()
			}
			return fmt.Sprintf("%s: %s/%s", spec.Resource.Name.String(), current, spec.Resource.Target.AverageValue.String())
		}
		current := unknown
		if st != nil && st.Resource != nil && st.Resource.Current.AverageUtilization != nil {
			current = fmt.Sprintf("%d%%", *st.Resource.Current.AverageUtilization)
		}
		target := "<auto>"
		if spec.Resource.Target.AverageUtilization != nil {
			target = fmt.Sprintf("%d%%", *spec.Resource.Target.AverageUtilization)
		}
		return fmt.Sprintf("%s: %s/%s", spec.Resource.Name.String(), current, target)
	case autoscalingv2.ContainerResourceMetricSourceType:
		if spec.ContainerResource.Target.AverageValue != nil {
			current := unknown
			if st != nil && st.ContainerResource != nil {
				current = st.ContainerResource.Current.AverageValue.String()
			}
			return fmt.Sprintf("%s: %s/%s", spec.ContainerResource.Name.String(), current, spec.ContainerResource.Target.AverageValue.String())
		}
		current := unknown
		if st != nil && st.ContainerResource != nil && st.ContainerResource.Current.AverageUtilization != nil {
			current = fmt.Sprintf("%d%%", *st.ContainerResource.Current.AverageUtilization)
		}
		target := "<auto>"
		if spec.ContainerResource.Target.AverageUtilization != nil {
			target = fmt.Sprintf("%d%%", *spec.ContainerResource.Target.AverageUtilization)
		}
		return fmt.Sprintf("%s: %s/%s", spec.ContainerResource.Name.String(), current, target)
	}
	return "<unknown type>"
}

// hpaFromV1 rebuilds the metrics of an autoscaling/v1 HPA: the metrics kept in its annotations
// first, then the CPU target of its spec.
func hpaFromV1(in *autoscalingv1.HorizontalPodAutoscaler) *autoscalingv2.HorizontalPodAutoscaler {
	out := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: in.ObjectMeta}
	out.Spec.ScaleTargetRef = autoscalingv2.CrossVersionObjectReference(in.Spec.ScaleTargetRef)
	out.Spec.MinReplicas = in.Spec.MinReplicas
	out.Spec.MaxReplicas = in.Spec.MaxReplicas
	out.Status.CurrentReplicas = in.Status.CurrentReplicas

	if enc, ok := in.Annotations[hpaMetricSpecsAnnotation]; ok {
		var specs []autoscalingv1.MetricSpec
		if err := json.Unmarshal([]byte(enc), &specs); err == nil {
			for _, m := range specs {
				out.Spec.Metrics = append(out.Spec.Metrics, metricSpecFromV1(m))
			}
		}
	}
	if t := in.Spec.TargetCPUUtilizationPercentage; t != nil {
		out.Spec.Metrics = append(out.Spec.Metrics, autoscalingv2.MetricSpec{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: t}},
		})
	}

	if enc, ok := in.Annotations[hpaMetricStatusesAnnotation]; ok {
		var statuses []autoscalingv1.MetricStatus
		if err := json.Unmarshal([]byte(enc), &statuses); err == nil {
			for _, m := range statuses {
				out.Status.CurrentMetrics = append(out.Status.CurrentMetrics, metricStatusFromV1(m))
			}
			return out
		}
	}
	if c := in.Status.CurrentCPUUtilizationPercentage; c != nil {
		out.Status.CurrentMetrics = []autoscalingv2.MetricStatus{{
			Type:     autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: c}},
		}}
	}
	return out
}

func quantityPtr(q resource.Quantity) *resource.Quantity { return &q }

func metricSpecFromV1(m autoscalingv1.MetricSpec) autoscalingv2.MetricSpec {
	out := autoscalingv2.MetricSpec{Type: autoscalingv2.MetricSourceType(m.Type)}
	switch {
	case m.Object != nil:
		t := autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: quantityPtr(m.Object.TargetValue)}
		if m.Object.AverageValue != nil {
			t = autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: m.Object.AverageValue}
		}
		out.Object = &autoscalingv2.ObjectMetricSource{Target: t}
	case m.Pods != nil:
		out.Pods = &autoscalingv2.PodsMetricSource{Target: autoscalingv2.MetricTarget{
			Type: autoscalingv2.AverageValueMetricType, AverageValue: quantityPtr(m.Pods.TargetAverageValue)}}
	case m.Resource != nil:
		out.Resource = &autoscalingv2.ResourceMetricSource{Name: m.Resource.Name,
			Target: v1ResourceTarget(m.Resource.TargetAverageValue, m.Resource.TargetAverageUtilization)}
	case m.ContainerResource != nil:
		out.ContainerResource = &autoscalingv2.ContainerResourceMetricSource{Name: m.ContainerResource.Name,
			Container: m.ContainerResource.Container,
			Target:    v1ResourceTarget(m.ContainerResource.TargetAverageValue, m.ContainerResource.TargetAverageUtilization)}
	case m.External != nil:
		t := autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: m.External.TargetValue}
		if m.External.TargetAverageValue != nil {
			t = autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: m.External.TargetAverageValue}
		}
		out.External = &autoscalingv2.ExternalMetricSource{Target: t}
	}
	return out
}

func v1ResourceTarget(avg *resource.Quantity, util *int32) autoscalingv2.MetricTarget {
	if avg != nil {
		return autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: avg}
	}
	return autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: util}
}

func metricStatusFromV1(m autoscalingv1.MetricStatus) autoscalingv2.MetricStatus {
	out := autoscalingv2.MetricStatus{Type: autoscalingv2.MetricSourceType(m.Type)}
	switch {
	case m.Object != nil:
		out.Object = &autoscalingv2.ObjectMetricStatus{Current: autoscalingv2.MetricValueStatus{
			Value: quantityPtr(m.Object.CurrentValue), AverageValue: m.Object.AverageValue}}
	case m.Pods != nil:
		out.Pods = &autoscalingv2.PodsMetricStatus{Current: autoscalingv2.MetricValueStatus{
			AverageValue: quantityPtr(m.Pods.CurrentAverageValue)}}
	case m.Resource != nil:
		out.Resource = &autoscalingv2.ResourceMetricStatus{Name: m.Resource.Name, Current: autoscalingv2.MetricValueStatus{
			AverageValue: quantityPtr(m.Resource.CurrentAverageValue), AverageUtilization: m.Resource.CurrentAverageUtilization}}
	case m.ContainerResource != nil:
		out.ContainerResource = &autoscalingv2.ContainerResourceMetricStatus{Name: m.ContainerResource.Name,
			Container: m.ContainerResource.Container, Current: autoscalingv2.MetricValueStatus{
				AverageValue:       quantityPtr(m.ContainerResource.CurrentAverageValue),
				AverageUtilization: m.ContainerResource.CurrentAverageUtilization}}
	case m.External != nil:
		out.External = &autoscalingv2.ExternalMetricStatus{Current: autoscalingv2.MetricValueStatus{
			Value: quantityPtr(m.External.CurrentValue), AverageValue: m.External.CurrentAverageValue}}
	}
	return out
}
