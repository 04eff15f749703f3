package podautoscaler

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// samples is a metrics source with fixed answers, standing in for the metrics APIs. The
// controller tests change it while the controller runs, hence the lock.
type samples struct {
	mu       sync.Mutex
	pods     map[string]int64 // resource or pods metric by pod, milli
	at       time.Time
	window   time.Duration
	object   int64
	external []int64
	err      error
	// externalErr fails the external metrics alone.
	externalErr error
}

func (s *samples) podMetrics() (podMetrics, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, time.Time{}, s.err
	}
	out := podMetrics{}
	for name, v := range s.pods {
		out[name] = podMetric{Timestamp: s.at, Window: s.window, Value: v}
	}
	return out, s.at, nil
}

func (s *samples) ResourceMetric(context.Context, corev1.ResourceName, string, labels.Selector, string) (podMetrics, time.Time, error) {
	return s.podMetrics()
}

func (s *samples) PodsMetric(context.Context, string, string, labels.Selector, labels.Selector) (podMetrics, time.Time, error) {
	return s.podMetrics()
}

func (s *samples) ObjectMetric(context.Context, string, string, *autoscalingv2.CrossVersionObjectReference, labels.Selector) (int64, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.object, s.at, s.err
}

func (s *samples) ExternalMetric(context.Context, string, string, labels.Selector) ([]int64, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.externalErr != nil {
		return nil, time.Time{}, s.externalErr
	}
	return s.external, s.at, s.err
}

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// podState is how a test pod stands.
type podState int

const (
	ready    podState = iota // running and ready for long
	pending                  // not started
	starting                 // started a minute ago, not ready yet
	wasReady                 // started long ago, ready for a while, now not ready
	failed                   // failed
	deleting                 // being deleted
)

func testPod(name string, cpuRequest string, state podState) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "a"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuRequest)}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &metav1.Time{Time: now.Add(-time.Hour)},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-50 * time.Minute))}}},
	}
	switch state {
	case pending:
		p.Status = corev1.PodStatus{Phase: corev1.PodPending}
	case starting:
		p.Status.StartTime = &metav1.Time{Time: now.Add(-time.Minute)}
		p.Status.Conditions[0] = corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(now.Add(-time.Minute))}
	case wasReady:
		p.Status.Conditions[0] = corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(now.Add(-time.Minute))}
	case failed:
		p.Status.Phase = corev1.PodFailed
	case deleting:
		p.DeletionTimestamp = &metav1.Time{Time: now}
	}
	return p
}

func testCalculator(t *testing.T, m metricsSource, pods ...*corev1.Pod) *calculator {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, p := range pods {
		if err := idx.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	return &calculator{metrics: m, pods: corelisters.NewPodLister(idx), cpuInitializationPeriod: CPUInitializationPeriod,
		initialReadinessDelay: InitialReadinessDelay, now: func() time.Time { return now }}
}

var (
	selector   = labels.SelectorFromSet(labels.Set{"app": "a"})
	defaultTol = tolerances{0.1, 0.1}
)

func TestResourceUtilizationReplicas(t *testing.T) {
	cases := []struct {
		name        string
		pods        []*corev1.Pod
		usage       map[string]int64
		current     int32
		target      int32
		tol         tolerances
		want        int32
		utilization int32
		raw         int64
		err         string
	}{
		{name: "scale up", current: 3, target: 50,
			pods:  []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", ready)},
			usage: map[string]int64{"a": 900, "b": 900, "c": 900}, want: 6, utilization: 90, raw: 900},
		{name: "scale down", current: 3, target: 50,
			pods:  []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", ready)},
			usage: map[string]int64{"a": 200, "b": 200, "c": 200}, want: 2, utilization: 20, raw: 200},
		{name: "within the 10% tolerance", current: 3, target: 50,
			pods:  []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", ready)},
			usage: map[string]int64{"a": 540, "b": 540, "c": 540}, want: 3, utilization: 54, raw: 540},
		{name: "just past the tolerance", current: 3, target: 50,
			pods:  []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", ready)},
			usage: map[string]int64{"a": 560, "b": 560, "c": 560}, want: 4, utilization: 56, raw: 560},
		{name: "a configured tolerance", current: 3, target: 50, tol: tolerances{0.1, 0.2},
			pods:  []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", ready)},
			usage: map[string]int64{"a": 580, "b": 580, "c": 580}, want: 3, utilization: 58, raw: 580},
		{name: "missing metric counts as 0 on a scale-up", current: 3, target: 50,
			pods:  []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", ready)},
			usage: map[string]int64{"a": 900, "b": 900}, want: 4, utilization: 90, raw: 900},
		{name: "missing metric counts as the whole request on a scale-down", current: 3, target: 80,
			pods:  []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", ready)},
			usage: map[string]int64{"a": 100, "b": 100}, want: 2, utilization: 10, raw: 100},
		{name: "missing metric that would turn a scale-down into a scale-up keeps the count", current: 3, target: 50,
			pods:  []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", ready)},
			usage: map[string]int64{"a": 400, "b": 400}, want: 3, utilization: 40, raw: 400},
		{name: "unready pods count as 0 on a scale-up", current: 3, target: 50,
			pods:  []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", starting)},
			usage: map[string]int64{"a": 900, "b": 900, "c": 900}, want: 4, utilization: 90, raw: 900},
		{name: "unready pods are left out of a scale-down", current: 3, target: 50,
			pods:  []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", starting)},
			usage: map[string]int64{"a": 100, "b": 100, "c": 100}, want: 1, utilization: 10, raw: 100},
		{name: "pending pods are unready", current: 3, target: 50,
			pods:  []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", pending)},
			usage: map[string]int64{"a": 900, "b": 900}, want: 4, utilization: 90, raw: 900},
		{name: "a pod that was ready long after it started counts though not ready now", current: 2, target: 50,
			pods:  []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", wasReady)},
			usage: map[string]int64{"a": 900, "b": 900}, want: 4, utilization: 90, raw: 900},
		{name: "failed and deleting pods are ignored", current: 2, target: 50,
			pods:  []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", failed), testPod("d", "1", deleting)},
			usage: map[string]int64{"a": 900, "b": 900, "c": 0, "d": 0}, want: 4, utilization: 90, raw: 900},
		{name: "requests weigh the utilization", current: 2, target: 50,
			pods:  []*corev1.Pod{testPod("a", "500m", ready), testPod("b", "1500m", ready)},
			usage: map[string]int64{"a": 500, "b": 500}, want: 2, utilization: 50, raw: 500},
		{name: "no pods", current: 2, target: 50, usage: map[string]int64{"a": 1},
			err: "no pods returned by selector while calculating replica count"},
		{name: "only unready pods have metrics", current: 1, target: 50,
			pods: []*corev1.Pod{testPod("a", "1", starting)}, usage: map[string]int64{"a": 100},
			err: "did not receive metrics for targeted pods (pods might be unready)"},
		{name: "a container without a request", current: 1, target: 50,
			pods: []*corev1.Pod{func() *corev1.Pod {
				p := testPod("a", "1", ready)
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side"})
				return p
			}()}, usage: map[string]int64{"a": 100},
			err: "missing request for cpu in container side of Pod a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tol := tc.tol
			if tol == (tolerances{}) {
				tol = defaultTol
			}
			// Samples are taken well after the pods became ready.
			c := testCalculator(t, &samples{pods: tc.usage, at: now, window: time.Minute}, tc.pods...)
			got, util, raw, _, err := c.resourceReplicas(context.Background(), tc.current, tc.target, corev1.ResourceCPU, tol, "ns", selector, "")
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || util != tc.utilization || raw != tc.raw {
				t.Errorf("got %d replicas at %d%% (%dm), want %d at %d%% (%dm)", got, util, raw, tc.want, tc.utilization, tc.raw)
			}
		})
	}
}

// A CPU sample taken within one window of the pod becoming ready, while the pod is still in its
// initialization period, is not trusted.
func TestCPUSampleFromBeforeReadiness(t *testing.T) {
	fresh := testPod("c", "1", ready)
	fresh.Status.StartTime = &metav1.Time{Time: now.Add(-2 * time.Minute)}
	fresh.Status.Conditions[0].LastTransitionTime = metav1.NewTime(now.Add(-30 * time.Second))
	pods := []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), fresh}
	c := testCalculator(t, &samples{pods: map[string]int64{"a": 900, "b": 900, "c": 900}, at: now, window: time.Minute}, pods...)
	got, _, _, _, err := c.resourceReplicas(context.Background(), 3, 50, corev1.ResourceCPU, defaultTol, "ns", selector, "")
	if err != nil || got != 4 {
		t.Errorf("got %d, %v; want 4 (c counted as unready)", got, err)
	}
	// Not so for memory: every sample of a running pod counts.
	got, _, _, _, err = c.resourceReplicas(context.Background(), 3, 50, corev1.ResourceMemory, defaultTol, "ns", selector, "")
	if err == nil {
		t.Errorf("memory without requests: got %d, want an error", got)
	}
}

func TestRequests(t *testing.T) {
	p := testPod("a", "200m", ready)
	always := corev1.ContainerRestartPolicyAlways
	p.Spec.InitContainers = []corev1.Container{
		{Name: "sidecar", RestartPolicy: &always, Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}},
		{Name: "init"},
	}
	got, err := podRequests([]*corev1.Pod{p}, "", corev1.ResourceCPU)
	if err != nil || got["a"] != 300 {
		t.Errorf("containers and sidecar: %v, %v", got, err)
	}
	got, err = podRequests([]*corev1.Pod{p}, "sidecar", corev1.ResourceCPU)
	if err != nil || got["a"] != 100 {
		t.Errorf("one container: %v, %v", got, err)
	}
	if _, err = podRequests([]*corev1.Pod{p}, "nope", corev1.ResourceCPU); err == nil || err.Error() != "container nope not found in Pod a" {
		t.Errorf("unknown container: %v", err)
	}
	p.Spec.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}
	got, err = podRequests([]*corev1.Pod{p}, "", corev1.ResourceCPU)
	if err != nil || got["a"] != 1000 {
		t.Errorf("pod-level: %v, %v", got, err)
	}
}

func TestPodsMetricReplicas(t *testing.T) {
	pods := []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", ready)}
	for _, tc := range []struct {
		name    string
		values  map[string]int64
		want    int32
		average int64
	}{
		{"scale up", map[string]int64{"a": 20000, "b": 20000, "c": 20000}, 6, 20000},
		{"within tolerance", map[string]int64{"a": 10500, "b": 10500, "c": 10500}, 3, 10500},
		// Missing pods count at the target on a scale-down: (2000+2000+10000)/3 = 4666.
		{"missing pod at the target on a scale-down", map[string]int64{"a": 2000, "b": 2000}, 2, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCalculator(t, &samples{pods: tc.values, at: now}, pods...)
			got, avg, _, err := c.podsMetricReplicas(context.Background(), 3, 10000, "qps", defaultTol, "ns", selector, labels.Everything())
			if err != nil || got != tc.want || avg != tc.average {
				t.Errorf("got %d (average %d), %v; want %d (average %d)", got, avg, err, tc.want, tc.average)
			}
		})
	}
}

func TestObjectAndExternalReplicas(t *testing.T) {
	pods := []*corev1.Pod{testPod("a", "1", ready), testPod("b", "1", ready), testPod("c", "1", starting)}
	ref := &autoscalingv2.CrossVersionObjectReference{Kind: "Service", Name: "s", APIVersion: "v1"}
	c := testCalculator(t, &samples{object: 30000, external: []int64{10000, 20000}, at: now}, pods...)
	ctx := context.Background()

	// Value: the ratio scales the ready pods (2 of 3): 30/10 * 2 = 6.
	got, usage, err := c.objectReplicas(ctx, 3, 10000, "m", defaultTol, "ns", ref, selector, labels.Everything())
	if err != nil || got != 6 || usage != 30000 {
		t.Errorf("object value: %d (%d), %v", got, usage, err)
	}
	// From zero replicas the ratio alone decides, so a target can come back from zero.
	got, _, err = c.objectReplicas(ctx, 0, 10000, "m", defaultTol, "ns", ref, selector, labels.Everything())
	if err != nil || got != 3 {
		t.Errorf("object value from zero: %d, %v", got, err)
	}
	// AverageValue: total over target, the average over the status replicas.
	got, avg, _, err := c.objectPerPodReplicas(ctx, 3, 5000, "m", defaultTol, "ns", ref, labels.Everything())
	if err != nil || got != 6 || avg != 10000 {
		t.Errorf("object average: %d (%d), %v", got, avg, err)
	}
	got, avg, _, err = c.objectPerPodReplicas(ctx, 3, 10000, "m", defaultTol, "ns", ref, labels.Everything())
	if err != nil || got != 3 || avg != 10000 {
		t.Errorf("object average within tolerance: %d (%d), %v", got, avg, err)
	}
	// External values are summed.
	got, total, err := c.externalReplicas(ctx, 3, 15000, "e", defaultTol, "ns", nil, selector)
	if err != nil || got != 4 || total != 30000 {
		t.Errorf("external value: %d (%d), %v", got, total, err)
	}
	got, avg, _, err = c.externalPerPodReplicas(ctx, 3, 3000, "e", defaultTol, "ns", nil)
	if err != nil || got != 10 || avg != 10000 {
		t.Errorf("external average: %d (%d), %v", got, avg, err)
	}
	c.metrics = &samples{err: errTest}
	_, _, _, err = c.externalPerPodReplicas(ctx, 3, 3000, "e", defaultTol, "ns", &metav1.LabelSelector{MatchLabels: map[string]string{"q": "x"}})
	if err == nil || !strings.HasPrefix(err.Error(), "unable to get external metric ns/e/&LabelSelector{MatchLabels:map[string]string{q: x,},") {
		t.Errorf("external error: %v", err)
	}
}

var errTest = &testError{}

type testError struct{}

func (*testError) Error() string { return "no metrics API" }
