package podautoscaler

import (
	"context"
	"errors"
	"fmt"
	"github.com/keelson/keelson/controllers/manager"
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// tolerances bound the usage ratios around 1 within which no scaling is done.
type tolerances struct {
	down, up float64
}

func (t tolerances) within(ratio float64) bool {
	return 1-t.down <= ratio && ratio <= 1+t.up
}

// calculator turns metrics into replica counts as upstream's replica calculator does.
type calculator struct {
	metrics metricsSource
	pods    corelisters.PodLister
	// cpuInitializationPeriod is how long after its start a pod's CPU samples are doubted;
	// initialReadinessDelay is how long after its start a pod that never was ready is
	// taken to be still starting.
	cpuInitializationPeriod, initialReadinessDelay time.Duration
	now                                            func() time.Time
}

var errNoPods = errors.New("no pods returned by selector while calculating replica count")

func (c *calculator) listPods(namespace string, selector labels.Selector) ([]*corev1.Pod, error) {
	pods, err := c.pods.Pods(namespace).List(selector)
	if err != nil {
		return nil, fmt.Errorf("unable to get pods while calculating replica count: %w", err)
	}
	if len(pods) == 0 {
		return nil, errNoPods
	}
	return pods, nil
}

// resourceReplicas is the replica count that brings the average utilization of resource (of
// the pods' requests) to target percent. It also returns the current utilization and the
// average raw usage.
func (c *calculator) resourceReplicas(ctx context.Context, current, target int32, resource corev1.ResourceName, tol tolerances,
	namespace string, selector labels.Selector, container string) (int32, int32, int64, time.Time, error) {
	samples, ts, err := c.metrics.ResourceMetric(ctx, resource, namespace, selector, container)
	if err != nil {
		return 0, 0, 0, time.Time{}, fmt.Errorf("unable to get metrics for resource %s: %w", resource, err)
	}
	pods, err := c.listPods(namespace, selector)
	if err != nil {
		return 0, 0, 0, time.Time{}, err
	}
	g := c.groupPods(pods, samples, resource)
	if len(samples) == 0 {
		return 0, 0, 0, time.Time{}, fmt.Errorf("did not receive metrics for targeted pods (pods might be unready)")
	}
	requests, err := podRequests(pods, container, resource)
	if err != nil {
		return 0, 0, 0, time.Time{}, err
	}
	ratio, utilization, raw, err := utilizationRatio(samples, requests, target)
	if err != nil {
		return 0, 0, 0, time.Time{}, err
	}
	// Pods without a sample count as using all of their request on a scale-down (or the
	// target, when it is above 100%) and nothing on a scale-up.
	fallback := func(pod string) int64 { return requests[pod] * int64(max(100, target)) / 100 }
	replicas, err := adjust(current, ratio, g, samples, tol, fallback, func() (float64, error) {
		r, _, _, err := utilizationRatio(samples, requests, target)
		return r, err
	})
	if err != nil {
		return 0, utilization, raw, time.Time{}, err
	}
	return replicas, utilization, raw, ts, nil
}

// rawResourceReplicas is the replica count that brings the average usage of resource to
// target (a milli-value).
func (c *calculator) rawResourceReplicas(ctx context.Context, current int32, target int64, resource corev1.ResourceName, tol tolerances,
	namespace string, selector labels.Selector, container string) (int32, int64, time.Time, error) {
	samples, ts, err := c.metrics.ResourceMetric(ctx, resource, namespace, selector, container)
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("unable to get metrics for resource %s: %w", resource, err)
	}
	replicas, usage, err := c.plainReplicas(samples, current, target, tol, namespace, selector, resource)
	return replicas, usage, ts, err
}

// podsMetricReplicas is the replica count that brings the pods' average of a custom metric to
// target.
func (c *calculator) podsMetricReplicas(ctx context.Context, current int32, target int64, metric string, tol tolerances,
	namespace string, selector, metricSelector labels.Selector) (int32, int64, time.Time, error) {
	samples, ts, err := c.metrics.PodsMetric(ctx, metric, namespace, selector, metricSelector)
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("unable to get metric %s: %w", metric, err)
	}
	replicas, usage, err := c.plainReplicas(samples, current, target, tol, namespace, selector, "")
	return replicas, usage, ts, err
}

// plainReplicas computes replicas for an average-value target.
func (c *calculator) plainReplicas(samples podMetrics, current int32, target int64, tol tolerances, namespace string,
	selector labels.Selector, resource corev1.ResourceName) (int32, int64, error) {
	pods, err := c.listPods(namespace, selector)
	if err != nil {
		return 0, 0, err
	}
	g := c.groupPods(pods, samples, resource)
	if len(samples) == 0 {
		return 0, 0, fmt.Errorf("did not receive metrics for targeted pods (pods might be unready)")
	}
	ratio, usage := usageRatio(samples, target)
	// Pods without a sample count as using exactly the target on a scale-down.
	replicas, err := adjust(current, ratio, g, samples, tol, func(string) int64 { return target }, func() (float64, error) {
		r, _ := usageRatio(samples, target)
		return r, nil
	})
	return replicas, usage, err
}

// podGroups sorts the pods of a calculation.
type podGroups struct {
	ready            int
	unready, missing sets.Set[string]
}

// groupPods counts the ready pods with samples, and sorts out the unready ones and those
// without samples; it drops from samples those of pods that are not counted (deleted, failed,
// unready).
func (c *calculator) groupPods(pods []*corev1.Pod, samples podMetrics, resource corev1.ResourceName) podGroups {
	g := podGroups{unready: sets.New[string](), missing: sets.New[string]()}
	now := c.now()
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodFailed {
			delete(samples, pod.Name)
			continue
		}
		if pod.Status.Phase == corev1.PodPending {
			g.unready.Insert(pod.Name)
			continue
		}
		sample, ok := samples[pod.Name]
		if !ok {
			g.missing.Insert(pod.Name)
			continue
		}
		if resource == corev1.ResourceCPU && c.cpuUnready(pod, sample, now) {
			g.unready.Insert(pod.Name)
			continue
		}
		g.ready++
	}
	for name := range g.unready {
		delete(samples, name)
	}
	return g
}

// cpuUnready tells whether a pod's CPU sample is not to be trusted: the pod is not ready, or
// it is still starting and the sample was (partly) taken before it became ready, or it never
// was ready since it started.
func (c *calculator) cpuUnready(pod *corev1.Pod, sample podMetric, now time.Time) bool {
	cond := manager.PodReadyCondition(pod)
	if cond == nil || pod.Status.StartTime == nil {
		return true
	}
	start := pod.Status.StartTime.Time
	if start.Add(c.cpuInitializationPeriod).After(now) {
		return cond.Status == corev1.ConditionFalse || sample.Timestamp.Before(cond.LastTransitionTime.Add(sample.Window))
	}
	return cond.Status == corev1.ConditionFalse && start.Add(c.initialReadinessDelay).After(cond.LastTransitionTime.Time)
}

// adjust finishes a calculation from the first usage ratio: with every pod accounted for it
// scales the ready pods by the ratio; otherwise it fills in the pods without samples (fallback
// on a scale-down, nothing on a scale-up) and the unready pods (nothing, on a scale-up only),
// recomputes the ratio and keeps the current count if the change is then within tolerance or
// would turn the direction of scaling.
func adjust(current int32, ratio float64, g podGroups, samples podMetrics, tol tolerances, fallback func(pod string) int64,
	recompute func() (float64, error)) (int32, error) {
	scaleUpWithUnready := len(g.unready) > 0 && ratio > 1
	if !scaleUpWithUnready && len(g.missing) == 0 {
		if tol.within(ratio) {
			return current, nil
		}
		return int32(math.Ceil(ratio * float64(g.ready))), nil
	}
	for pod := range g.missing {
		switch {
		case ratio < 1:
			samples[pod] = podMetric{Value: fallback(pod)}
		case ratio > 1:
			samples[pod] = podMetric{Value: 0}
		}
	}
	if scaleUpWithUnready {
		for pod := range g.unready {
			samples[pod] = podMetric{Value: 0}
		}
	}
	newRatio, err := recompute()
	if err != nil {
		return 0, err
	}
	if tol.within(newRatio) || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1) {
		return current, nil
	}
	replicas := int32(math.Ceil(newRatio * float64(len(samples))))
	if (newRatio < 1 && replicas > current) || (newRatio > 1 && replicas < current) {
		return current, nil
	}
	return replicas, nil
}

// utilizationRatio is the ratio of the pods' utilization (usage over requests, in percent) to
// the target, with the utilization and the average raw usage. Samples of pods without a known
// request are ignored.
func utilizationRatio(samples podMetrics, requests map[string]int64, target int32) (float64, int32, int64, error) {
	var usage, requested, n int64
	for pod, s := range samples {
		r, ok := requests[pod]
		if !ok {
			continue
		}
		usage += s.Value
		requested += r
		n++
	}
	if requested == 0 {
		return 0, 0, 0, fmt.Errorf("no metrics returned matched known pods")
	}
	utilization := int32(usage * 100 / requested)
	return float64(utilization) / float64(target), utilization, usage / n, nil
}

// usageRatio is the ratio of the pods' average of a metric to the target, with the average.
func usageRatio(samples podMetrics, target int64) (float64, int64) {
	var total int64
	for _, s := range samples {
		total += s.Value
	}
	avg := total / int64(len(samples))
	return float64(avg) / float64(target), avg
}

// podRequests is each pod's request of resource in milli-units: of the named container, or
// the pod-level request when the pod sets pod-level requests, or the sum over its containers
// (restartable init containers included), which must all request it.
func podRequests(pods []*corev1.Pod, container string, resource corev1.ResourceName) (map[string]int64, error) {
	out := make(map[string]int64, len(pods))
	for _, pod := range pods {
		if container == "" && pod.Spec.Resources != nil && len(pod.Spec.Resources.Requests) > 0 {
			r, err := podLevelRequest(pod, resource)
			if err != nil {
				return nil, err
			}
			out[pod.Name] = r
			continue
		}
		r, err := containerRequests(pod, container, resource)
		if err != nil {
			return nil, err
		}
		out[pod.Name] = r
	}
	return out, nil
}

// podLevelRequest is the pod-level request of resource, or for a resource the pod level leaves
// out, what its containers request together.
func podLevelRequest(pod *corev1.Pod, resource corev1.ResourceName) (int64, error) {
	if q, ok := pod.Spec.Resources.Requests[resource]; ok {
		return q.MilliValue(), nil
	}
	var sum int64
	found := false
	for _, c := range podContainers(pod) {
		if q, ok := c.Resources.Requests[resource]; ok {
			sum += q.MilliValue()
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("missing pod-level request for %s in Pod %s", resource, pod.Name)
	}
	return sum, nil
}

func podContainers(pod *corev1.Pod) []corev1.Container {
	cs := append([]corev1.Container{}, pod.Spec.Containers...)
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			cs = append(cs, c)
		}
	}
	return cs
}

func containerRequests(pod *corev1.Pod, container string, resource corev1.ResourceName) (int64, error) {
	var sum int64
	for _, c := range podContainers(pod) {
		if container != "" && c.Name != container {
			continue
		}
		r, ok := c.Resources.Requests[resource]
		if !ok {
			return 0, fmt.Errorf("missing request for %s in container %s of Pod %s", resource, c.Name, pod.Name)
		}
		if container != "" {
			return r.MilliValue(), nil
		}
		sum += r.MilliValue()
	}
	if container != "" {
		return 0, fmt.Errorf("container %s not found in Pod %s", container, pod.Name)
	}
	return sum, nil
}

// readyPods counts the running, ready pods the selector picks.
func (c *calculator) readyPods(namespace string, selector labels.Selector) (int64, error) {
	pods, err := c.listPods(namespace, selector)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning && manager.PodReady(p) {
			n++
		}
	}
	return n, nil
}

// ratioReplicas scales the ready pods by ratio, or from zero replicas gives ceil(ratio)
// (tolerance not applied), so that a target can scale to and from zero.
func (c *calculator) ratioReplicas(current int32, ratio float64, tol tolerances, namespace string, selector labels.Selector) (int32, error) {
	if current == 0 {
		return int32(math.Ceil(ratio)), nil
	}
	if tol.within(ratio) {
		return current, nil
	}
	ready, err := c.readyPods(namespace, selector)
	if err != nil {
		return 0, fmt.Errorf("unable to calculate ready pods: %s", err)
	}
	return clampInt32(ratio * float64(ready)), nil
}

func clampInt32(f float64) int32 {
	if f > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(math.Ceil(f))
}

// objectReplicas is the replica count for a value target on an object's metric.
func (c *calculator) objectReplicas(ctx context.Context, current int32, target int64, metric string, tol tolerances, namespace string,
	ref *autoscalingv2.CrossVersionObjectReference, selector, metricSelector labels.Selector) (int32, int64, error) {
	usage, _, err := c.metrics.ObjectMetric(ctx, metric, namespace, ref, metricSelector)
	if err != nil {
		return 0, 0, fmt.Errorf("unable to get metric %s on %s %s/%s: %w", metric, ref.Kind, namespace, ref.Name, err)
	}
	replicas, err := c.ratioReplicas(current, float64(usage)/float64(target), tol, namespace, selector)
	return replicas, usage, err
}

// perPodReplicas is the replica count for an average-value target on a total: the current
// count when the average over the status replicas is within tolerance, else the total over the
// target. It also returns the average.
func perPodReplicas(statusReplicas int32, total, target int64, tol tolerances) (int32, int64) {
	replicas := statusReplicas
	if !tol.within(float64(total) / (float64(target) * float64(statusReplicas))) {
		replicas = clampInt32(float64(total) / float64(target))
	}
	if statusReplicas == 0 || float64(total) >= math.MaxInt64 {
		return replicas, math.MaxInt64
	}
	return replicas, int64(math.Ceil(float64(total) / float64(statusReplicas)))
}

// objectPerPodReplicas is the replica count for an average-value target on an object's metric.
func (c *calculator) objectPerPodReplicas(ctx context.Context, statusReplicas int32, target int64, metric string, tol tolerances, namespace string,
	ref *autoscalingv2.CrossVersionObjectReference, metricSelector labels.Selector) (int32, int64, time.Time, error) {
	usage, ts, err := c.metrics.ObjectMetric(ctx, metric, namespace, ref, metricSelector)
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("unable to get metric %s on %s %s/%s: %w", metric, ref.Kind, namespace, ref.Name, err)
	}
	replicas, avg := perPodReplicas(statusReplicas, usage, target, tol)
	return replicas, avg, ts, nil
}

// externalTotal fetches an external metric and sums its values, saturating.
func (c *calculator) externalTotal(ctx context.Context, metric, namespace string, metricSelector *metav1.LabelSelector) (int64, time.Time, error) {
	sel, err := metav1.LabelSelectorAsSelector(metricSelector)
	if err != nil {
		return 0, time.Time{}, err
	}
	values, ts, err := c.metrics.ExternalMetric(ctx, metric, namespace, sel)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("unable to get external metric %s/%s/%+v: %s", namespace, metric, metricSelector, err)
	}
	var total int64
	for _, v := range values {
		if v > 0 && total > math.MaxInt64-v {
			return math.MaxInt64, ts, nil
		}
		total += v
	}
	return total, ts, nil
}

// externalReplicas is the replica count for a value target on an external metric.
func (c *calculator) externalReplicas(ctx context.Context, current int32, target int64, metric string, tol tolerances, namespace string,
	metricSelector *metav1.LabelSelector, selector labels.Selector) (int32, int64, error) {
	total, _, err := c.externalTotal(ctx, metric, namespace, metricSelector)
	if err != nil {
		return 0, 0, err
	}
	replicas, err := c.ratioReplicas(current, float64(total)/float64(target), tol, namespace, selector)
	return replicas, total, err
}

// externalPerPodReplicas is the replica count for an average-value target on an external metric.
func (c *calculator) externalPerPodReplicas(ctx context.Context, statusReplicas int32, target int64, metric string, tol tolerances, namespace string,
	metricSelector *metav1.LabelSelector) (int32, int64, time.Time, error) {
	total, ts, err := c.externalTotal(ctx, metric, namespace, metricSelector)
	if err != nil {
		return 0, 0, time.Time{}, err
	}
	replicas, avg := perPodReplicas(statusReplicas, total, target, tol)
	return replicas, avg, ts, nil
}
