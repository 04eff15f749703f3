package podautoscaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/apis/apiserver/apiservertest"
	"github.com/keelson/keelson/controllers/manager"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The controller against an API server, with metrics from a fixed source: a Deployment at 2
// replicas whose pods use 150% of their CPU request, for a target of 50%, is scaled up to 4
// (the 2x limit of one scale-up without behavior), with upstream's status, conditions and
// event; a second autoscaler on the same pods is refused.
// testTarget starts an API server with a Deployment "web" of replicas and as many running,
// ready pods (100m of CPU requested each, started 10 minutes ago).
func testTarget(t *testing.T, ctx context.Context, replicas int) (*rest.Config, kubernetes.Interface) {
	t.Helper()
	cfg := apiservertest.Start(t, apiserver.Options{})
	apiservertest.DefaultServiceAccount(t, cfg)
	client := kubernetes.NewForConfigOrDie(cfg)
	const ns = "default"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	labels := map[string]string{"app": "web"}
	_, err := client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: new(int32(replicas)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}, metav1.CreateOptions{})
	must(err)
	long := metav1.NewTime(time.Now().Add(-10 * time.Minute))
	for i := range replicas {
		p, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}}}, metav1.CreateOptions{})
		must(err)
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &long,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: long}}}
		_, err = client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		must(err)
	}
	return cfg, client
}

// runController runs the controller with metrics from source until ctx is done.
func runController(ctx context.Context, cfg *rest.Config, source metricsSource) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() {
		_ = manager.Run(ctx, cfg, manager.Options{LeaseName: "hpa-test", Log: log}, func(c *manager.Context) ([]manager.Controller, error) {
			ctl, err := newController(c, source)
			return []manager.Controller{ctl}, err
		})
	}()
}

func TestScaleUpOnUtilization(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, client := testTarget(t, ctx, 2)
	const ns = "default"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	hpa := func(name string) *autoscalingv2.HorizontalPodAutoscaler {
		return &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
				MaxReplicas:    10,
				Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: new(int32(50))}}}}}}
	}
	_, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpa("web"), metav1.CreateOptions{})
	must(err)
	runController(ctx, cfg, &samples{pods: map[string]int64{"web-0": 150, "web-1": 150}, at: time.Now(), window: time.Minute})

	deadline := time.Now().Add(30 * time.Second)
	var got *autoscalingv2.HorizontalPodAutoscaler
	for {
		got, err = client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "web", metav1.GetOptions{})
		must(err)
		if got.Status.DesiredReplicas == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: %+v", got.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	must(err)
	if *d.Spec.Replicas != 4 {
		t.Errorf("deployment at %d replicas, want 4", *d.Spec.Replicas)
	}
	st := got.Status
	if st.CurrentReplicas != 2 || st.LastScaleTime == nil || st.ObservedGeneration == nil || *st.ObservedGeneration != got.Generation {
		t.Errorf("status: %+v", st)
	}
	if len(st.CurrentMetrics) != 1 || st.CurrentMetrics[0].Resource == nil || st.CurrentMetrics[0].Resource.Name != corev1.ResourceCPU ||
		*st.CurrentMetrics[0].Resource.Current.AverageUtilization != 150 || st.CurrentMetrics[0].Resource.Current.AverageValue.String() != "150m" {
		t.Errorf("current metrics: %+v", st.CurrentMetrics)
	}
	want := []struct{ typ, status, reason, message string }{
		{"AbleToScale", "True", "SucceededRescale", "the HPA controller was able to update the target scale to 4"},
		{"ScalingActive", "True", "ValidMetricFound", "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"},
		{"ScalingLimited", "True", "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"},
		{"ScaledToZero", "False", "NotScaledToZero", "the HPA controller did not scale the workload to zero"},
	}
	if len(st.Conditions) != len(want) {
		t.Fatalf("conditions: %+v", st.Conditions)
	}
	for i, w := range want {
		c := st.Conditions[i]
		if string(c.Type) != w.typ || string(c.Status) != w.status || c.Reason != w.reason || c.Message != w.message {
			t.Errorf("condition %d: %s %s %s %q, want %+v", i, c.Type, c.Status, c.Reason, c.Message, w)
		}
	}
	waitEvent(t, client, "web", "SuccessfulRescale", "New size: 4; reason: cpu resource utilization (percentage of request) above target", deadline)

	// A second autoscaler of the same pods.
	_, err = client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpa("again"), metav1.CreateOptions{})
	must(err)
	msg := "pods by selector app=web are controlled by more than one HPA (e.g. [default/again default/web])"
	for {
		got, err = client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "again", metav1.GetOptions{})
		must(err)
		if len(got.Status.Conditions) == 2 {
			c := got.Status.Conditions[1]
			if c.Type != autoscalingv2.ScalingActive || c.Status != corev1.ConditionFalse || c.Reason != "AmbiguousSelector" || c.Message != msg {
				t.Errorf("ScalingActive: %+v", c)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: %+v", got.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitEvent(t, client, "again", "AmbiguousSelector", msg, deadline)
}

func waitEvent(t *testing.T, client kubernetes.Interface, name, reason, message string, deadline time.Time) {
	t.Helper()
	for {
		events, err := client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events.Items {
			if e.Reason == reason {
				if e.Message != message || e.Source.Component != "horizontal-pod-autoscaler" {
					t.Errorf("%s event: %q from %s", reason, e.Message, e.Source.Component)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event on %s: %+v", reason, name, events.Items)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// With two metrics of which one fails: while the other calls for a scale-down, nothing is
// scaled and ScalingActive reports the failing metric; once the other calls for a scale-up, the
// target is scaled on it and ScalingActive is true again.
func TestOneOfTwoMetricsFails(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, client := testTarget(t, ctx, 4)
	hpas := client.AutoscalingV2().HorizontalPodAutoscalers("default")
	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    new(int32(1)), MaxReplicas: 10,
			Metrics: []autoscalingv2.MetricSpec{
				{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "qps"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: new(resource.MustParse("10"))}}},
				{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "queue"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: new(resource.MustParse("30"))}}},
			}}}
	if _, err := hpas.Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	source := &samples{pods: map[string]int64{"web-0": 2000, "web-1": 2000, "web-2": 2000, "web-3": 2000}, at: time.Now(),
		externalErr: errors.New("no metrics API")}
	runController(ctx, cfg, source)
	deadline := time.Now().Add(30 * time.Second)

	const cause = "unable to get external metric default/queue/nil: no metrics API"
	var got *autoscalingv2.HorizontalPodAutoscaler
	active := func() *autoscalingv2.HorizontalPodAutoscalerCondition {
		for i := range got.Status.Conditions {
			if got.Status.Conditions[i].Type == autoscalingv2.ScalingActive {
				return &got.Status.Conditions[i]
			}
		}
		return nil
	}
	waitHPA := func(ok func() bool) {
		t.Helper()
		for {
			var err error
			got, err = hpas.Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if ok() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("status: %+v", got.Status)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitHPA(func() bool { return active() != nil })
	if c := active(); c.Status != corev1.ConditionFalse || c.Reason != "FailedGetExternalMetric" || c.Message != "the HPA was unable to compute the replica count: "+cause {
		t.Errorf("ScalingActive: %+v", c)
	}
	if got.Status.CurrentReplicas != 4 || got.Status.DesiredReplicas != 0 || len(got.Status.CurrentMetrics) != 2 ||
		got.Status.CurrentMetrics[0].Pods == nil || got.Status.CurrentMetrics[0].Pods.Current.AverageValue.String() != "2" ||
		got.Status.CurrentMetrics[1].Type != "" {
		t.Errorf("status: %+v", got.Status)
	}
	waitEvent(t, client, "web", "FailedGetExternalMetric", cause, deadline)
	waitEvent(t, client, "web", "FailedComputeMetricsReplicas",
		"invalid metrics (1 invalid out of 2), first error is: failed to get queue external metric value: failed to get external metric queue: "+cause, deadline)
	if d, err := client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{}); err != nil || *d.Spec.Replicas != 4 {
		t.Fatalf("deployment scaled down on a partial reading: %v %v", d.Spec.Replicas, err)
	}

	// The pods get busy; a spec change makes the controller look at once.
	source.mu.Lock()
	source.pods = map[string]int64{"web-0": 20000, "web-1": 20000, "web-2": 20000, "web-3": 20000}
	source.mu.Unlock()
	hpa, err := hpas.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hpa.Spec.MaxReplicas = 8
	if _, err := hpas.Update(ctx, hpa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitHPA(func() bool { return got.Status.DesiredReplicas == 8 })
	if c := active(); c.Status != corev1.ConditionTrue || c.Reason != "ValidMetricFound" || c.Message != "the HPA was able to successfully calculate a replica count from pods metric qps" {
		t.Errorf("ScalingActive: %+v", c)
	}
	if *got.Status.ObservedGeneration != 2 {
		t.Errorf("observedGeneration %d, want 2", *got.Status.ObservedGeneration)
	}
	waitEvent(t, client, "web", "SuccessfulRescale", "New size: 8; reason: pods metric qps above target", deadline)
	if d, err := client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{}); err != nil || *d.Spec.Replicas != 8 {
		t.Fatalf("deployment: %v %v", d.Spec.Replicas, err)
	}
}
