package podautoscaler

import (
	"context"
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	resourceclient "k8s.io/metrics/pkg/client/clientset/versioned/typed/metrics/v1beta1"
	customclient "k8s.io/metrics/pkg/client/custom_metrics"
	externalclient "k8s.io/metrics/pkg/client/external_metrics"
)

// customMetricWindow is the window assumed for a custom metric that reports none, as upstream
// assumes metrics-server's.
const customMetricWindow = time.Minute

// podMetric is one pod's sample of a metric, as a milli-value.
type podMetric struct {
	Timestamp time.Time
	Window    time.Duration
	Value     int64
}

// podMetrics are samples by pod name.
type podMetrics map[string]podMetric

// metricsSource is what the controller reads metrics through: the resource metrics API
// (metrics.k8s.io), the custom metrics API (custom.metrics.k8s.io) and the external metrics API
// (external.metrics.k8s.io). Missing samples are not errors: the caller judges pods without one.
type metricsSource interface {
	// ResourceMetric is the usage of resource by the pods the selector picks: of the named
	// container, or the sum of all containers when container is empty; and the time of the
	// samples.
	ResourceMetric(ctx context.Context, resource corev1.ResourceName, namespace string, selector labels.Selector, container string) (podMetrics, time.Time, error)
	// PodsMetric is a custom metric of the pods the selector picks.
	PodsMetric(ctx context.Context, metric, namespace string, selector, metricSelector labels.Selector) (podMetrics, time.Time, error)
	// ObjectMetric is a custom metric of one object.
	ObjectMetric(ctx context.Context, metric, namespace string, ref *autoscalingv2.CrossVersionObjectReference, metricSelector labels.Selector) (int64, time.Time, error)
	// ExternalMetric is the values of an external metric the selector picks.
	ExternalMetric(ctx context.Context, metric, namespace string, selector labels.Selector) ([]int64, time.Time, error)
}

// apiMetrics reads the three metrics APIs with their published clients.
type apiMetrics struct {
	resource resourceclient.PodMetricsesGetter
	custom   customclient.CustomMetricsClient
	external externalclient.ExternalMetricsClient
}

var _ metricsSource = &apiMetrics{}

func (m *apiMetrics) ResourceMetric(ctx context.Context, resource corev1.ResourceName, namespace string, selector labels.Selector, container string) (podMetrics, time.Time, error) {
	list, err := m.resource.PodMetricses(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("unable to fetch metrics from resource metrics API: %w", err)
	}
	if len(list.Items) == 0 {
		return nil, time.Time{}, fmt.Errorf("no metrics returned from resource metrics API")
	}
	out := make(podMetrics, len(list.Items))
	for _, pm := range list.Items {
		if v, ok := usageOf(pm, resource, container); ok {
			out[pm.Name] = podMetric{Timestamp: pm.Timestamp.Time, Window: pm.Window.Duration, Value: v}
		}
	}
	return out, list.Items[0].Timestamp.Time, nil
}

// usageOf is a pod's usage of resource: the named container's, or the sum over all containers,
// which is missing if any container lacks it.
func usageOf(pm metricsv1beta1.PodMetrics, resource corev1.ResourceName, container string) (int64, bool) {
	if container != "" {
		for _, c := range pm.Containers {
			if c.Name == container {
				q, ok := c.Usage[resource]
				return q.MilliValue(), ok
			}
		}
		return 0, false
	}
	if len(pm.Containers) == 0 {
		return 0, false
	}
	var sum int64
	for _, c := range pm.Containers {
		q, ok := c.Usage[resource]
		if !ok {
			return 0, false
		}
		sum += q.MilliValue()
	}
	return sum, true
}

func (m *apiMetrics) PodsMetric(_ context.Context, metric, namespace string, selector, metricSelector labels.Selector) (podMetrics, time.Time, error) {
	list, err := m.custom.NamespacedMetrics(namespace).GetForObjects(schema.GroupKind{Kind: "Pod"}, selector, metric, metricSelector)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("unable to fetch metrics from custom metrics API: %w", err)
	}
	if len(list.Items) == 0 {
		return nil, time.Time{}, fmt.Errorf("no metrics returned from custom metrics API")
	}
	out := make(podMetrics, len(list.Items))
	for _, v := range list.Items {
		window := customMetricWindow
		if v.WindowSeconds != nil {
			window = time.Duration(*v.WindowSeconds) * time.Second
		}
		out[v.DescribedObject.Name] = podMetric{Timestamp: v.Timestamp.Time, Window: window, Value: v.Value.MilliValue()}
	}
	return out, list.Items[0].Timestamp.Time, nil
}

func (m *apiMetrics) ObjectMetric(_ context.Context, metric, namespace string, ref *autoscalingv2.CrossVersionObjectReference, metricSelector labels.Selector) (int64, time.Time, error) {
	gvk := schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)
	var (
		v   interface{ MilliValue() int64 }
		ts  time.Time
		err error
	)
	// A Namespace is the HPA's own: the reference cannot reach out of it.
	if gvk.Group == "" && gvk.Kind == "Namespace" {
		mv, e := m.custom.RootScopedMetrics().GetForObject(gvk.GroupKind(), namespace, metric, metricSelector)
		if e == nil {
			v, ts = &mv.Value, mv.Timestamp.Time
		}
		err = e
	} else {
		mv, e := m.custom.NamespacedMetrics(namespace).GetForObject(gvk.GroupKind(), ref.Name, metric, metricSelector)
		if e == nil {
			v, ts = &mv.Value, mv.Timestamp.Time
		}
		err = e
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("unable to fetch metrics from custom metrics API: %w", err)
	}
	return v.MilliValue(), ts, nil
}

func (m *apiMetrics) ExternalMetric(_ context.Context, metric, namespace string, selector labels.Selector) ([]int64, time.Time, error) {
	list, err := m.external.NamespacedMetrics(namespace).List(metric, selector)
	if err != nil {
		return []int64{}, time.Time{}, fmt.Errorf("unable to fetch metrics from external metrics API: %w", err)
	}
	if len(list.Items) == 0 {
		return nil, time.Time{}, fmt.Errorf("no metrics returned from external metrics API")
	}
	out := make([]int64, 0, len(list.Items))
	for _, v := range list.Items {
		out = append(out, v.Value.MilliValue())
	}
	return out, list.Items[0].Timestamp.Time, nil
}
