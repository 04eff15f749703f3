package controllers

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/utils/ptr"
)

// These specs run where no metrics API is served (no metrics-server), as on a fresh cluster.
var _ = Describe("Horizontal pod autoscaler", func() {
	const noMetrics = "unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: " +
		"the server could not find the requested resource (get pods.metrics.k8s.io)"

	hpaFor := func(name string, minReplicas *int32, maxReplicas int32) *autoscalingv2.HorizontalPodAutoscaler {
		return &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
				MinReplicas:    minReplicas, MaxReplicas: maxReplicas,
				Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(int32(50))}}}},
			},
		}
	}
	setUp := func(ctx SpecContext, name string, replicas int32, hpa *autoscalingv2.HorizontalPodAutoscaler) string {
		ns := newNamespace(ctx)
		_, err := client.AppsV1().Deployments(ns).Create(ctx, deploymentOf(name, replicas), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpa, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		return ns
	}
	condition := func(hpa *autoscalingv2.HorizontalPodAutoscaler, t autoscalingv2.HorizontalPodAutoscalerConditionType) *autoscalingv2.HorizontalPodAutoscalerCondition {
		for i := range hpa.Status.Conditions {
			if hpa.Status.Conditions[i].Type == t {
				return &hpa.Status.Conditions[i]
			}
		}
		return nil
	}
	events := func(ctx context.Context, g Gomega, ns, name string) map[string]corev1.Event {
		list, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
			"involvedObject.kind": "HorizontalPodAutoscaler", "involvedObject.name": name}.String()})
		g.Expect(err).NotTo(HaveOccurred())
		out := map[string]corev1.Event{}
		for _, e := range list.Items {
			out[e.Reason] = e
		}
		return out
	}

	It("reports that it cannot get resource metrics and leaves the target alone", func(ctx SpecContext) {
		ns := setUp(ctx, "web", 2, hpaFor("web", ptr.To(int32(1)), 5))
		var hpa *autoscalingv2.HorizontalPodAutoscaler
		Eventually(func(g Gomega) {
			var err error
			hpa, err = client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(condition(hpa, autoscalingv2.ScalingActive)).NotTo(BeNil())
		}).WithContext(ctx).Should(Succeed())

		able, active := condition(hpa, autoscalingv2.AbleToScale), condition(hpa, autoscalingv2.ScalingActive)
		Expect(able).NotTo(BeNil())
		Expect(able.Status).To(Equal(corev1.ConditionTrue))
		Expect(able.Reason).To(Equal("SucceededGetScale"))
		Expect(able.Message).To(Equal("the HPA controller was able to get the target's current scale"))
		Expect(active.Status).To(Equal(corev1.ConditionFalse))
		Expect(active.Reason).To(Equal("FailedGetResourceMetric"))
		Expect(active.Message).To(Equal("the HPA was unable to compute the replica count: failed to get cpu utilization: " + noMetrics))
		Expect(condition(hpa, autoscalingv2.ScalingLimited)).To(BeNil())
		Expect(hpa.Status.CurrentReplicas).To(Equal(int32(2)))
		Expect(hpa.Status.DesiredReplicas).To(Equal(int32(0)))
		Expect(hpa.Status.LastScaleTime).To(BeNil())
		Expect(hpa.Status.ObservedGeneration).To(Equal(ptr.To(hpa.Generation)))
		// The one metric failed: its status is there, empty.
		Expect(hpa.Status.CurrentMetrics).To(Equal([]autoscalingv2.MetricStatus{{}}))

		Eventually(func(g Gomega) {
			evs := events(ctx, g, ns, "web")
			g.Expect(evs).To(HaveKey("FailedGetResourceMetric"))
			g.Expect(evs).To(HaveKey("FailedComputeMetricsReplicas"))
			g.Expect(evs["FailedGetResourceMetric"].Type).To(Equal(corev1.EventTypeWarning))
			g.Expect(evs["FailedGetResourceMetric"].Message).To(Equal("failed to get cpu utilization: " + noMetrics))
			g.Expect(evs["FailedGetResourceMetric"].Source.Component).To(Equal("horizontal-pod-autoscaler"))
			g.Expect(evs["FailedComputeMetricsReplicas"].Message).To(Equal(
				"invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: failed to get cpu utilization: " + noMetrics))
		}).WithContext(ctx).Should(Succeed())

		d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(*d.Spec.Replicas).To(Equal(int32(2)))
	})

	It("brings a target below minReplicas or above maxReplicas into range without metrics", func(ctx SpecContext) {
		ns := setUp(ctx, "few", 1, hpaFor("few", ptr.To(int32(3)), 5))
		_, err := client.AppsV1().Deployments(ns).Create(ctx, deploymentOf("many", 4), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpaFor("many", nil, 2), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		for _, tc := range []struct {
			name     string
			from, to int32
			reason   string
		}{
			{"few", 1, 3, "Current number of replicas below Spec.MinReplicas"},
			{"many", 4, 2, "Current number of replicas above Spec.MaxReplicas"},
		} {
			By("scaling " + tc.name)
			Eventually(func(g Gomega) {
				d, err := client.AppsV1().Deployments(ns).Get(ctx, tc.name, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(*d.Spec.Replicas).To(Equal(tc.to))
				hpa, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, tc.name, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(hpa.Status.CurrentReplicas).To(Equal(tc.from))
				g.Expect(hpa.Status.DesiredReplicas).To(Equal(tc.to))
				g.Expect(hpa.Status.LastScaleTime).NotTo(BeNil())
				able := condition(hpa, autoscalingv2.AbleToScale)
				g.Expect(able).NotTo(BeNil())
				g.Expect(able.Status).To(Equal(corev1.ConditionTrue))
				g.Expect(able.Reason).To(Equal("SucceededRescale"))
				g.Expect(able.Message).To(Equal("the HPA controller was able to update the target scale to " + itoa(tc.to)))
				// No metrics were read on this pass, so no ScalingActive yet.
				g.Expect(condition(hpa, autoscalingv2.ScalingActive)).To(BeNil())
				g.Expect(condition(hpa, autoscalingv2.ScalingLimited)).To(BeNil())
				zero := condition(hpa, autoscalingv2.ScaledToZero)
				g.Expect(zero).NotTo(BeNil())
				g.Expect(zero.Status).To(Equal(corev1.ConditionFalse))
				g.Expect(zero.Reason).To(Equal("NotScaledToZero"))
				g.Expect(zero.Message).To(Equal("the HPA controller did not scale the workload to zero"))
				evs := events(ctx, g, ns, tc.name)
				g.Expect(evs).To(HaveKey("SuccessfulRescale"))
				g.Expect(evs["SuccessfulRescale"].Type).To(Equal(corev1.EventTypeNormal))
				g.Expect(evs["SuccessfulRescale"].Message).To(Equal("New size: " + itoa(tc.to) + "; reason: " + tc.reason))
			}).WithContext(ctx).Should(Succeed())
		}
		// Any kind with a scale subresource, the legacy group's too.
		rc := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}, Spec: corev1.ReplicationControllerSpec{
			Replicas: ptr.To(int32(1)), Selector: map[string]string{"rc": "legacy"},
			Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"rc": "legacy"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}}}}}
		_, err = client.CoreV1().ReplicationControllers(ns).Create(ctx, rc, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		legacy := hpaFor("legacy", ptr.To(int32(2)), 4)
		legacy.Spec.ScaleTargetRef = autoscalingv2.CrossVersionObjectReference{APIVersion: "v1", Kind: "ReplicationController", Name: "legacy"}
		_, err = client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, legacy, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			rc, err := client.CoreV1().ReplicationControllers(ns).Get(ctx, "legacy", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(*rc.Spec.Replicas).To(Equal(int32(2)))
			g.Expect(events(ctx, g, ns, "legacy")["SuccessfulRescale"].Message).To(Equal("New size: 2; reason: Current number of replicas below Spec.MinReplicas"))
		}).WithContext(ctx).Should(Succeed())

		// The API server defaults minReplicas to 1.
		hpa, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "many", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(hpa.Spec.MinReplicas).To(Equal(ptr.To(int32(1))))
	})

	It("disables scaling of a target scaled to zero", func(ctx SpecContext) {
		ns := setUp(ctx, "idle", 0, hpaFor("idle", ptr.To(int32(1)), 5))
		Eventually(func(g Gomega) {
			hpa, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "idle", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			active := condition(hpa, autoscalingv2.ScalingActive)
			g.Expect(active).NotTo(BeNil())
			g.Expect(active.Status).To(Equal(corev1.ConditionFalse))
			g.Expect(active.Reason).To(Equal("ScalingDisabled"))
			g.Expect(active.Message).To(Equal("scaling is disabled since the replica count of the target is zero"))
			able := condition(hpa, autoscalingv2.AbleToScale)
			g.Expect(able).NotTo(BeNil())
			g.Expect(able.Reason).To(Equal("SucceededGetScale"))
			g.Expect(hpa.Status.CurrentReplicas).To(Equal(int32(0)))
			g.Expect(hpa.Status.DesiredReplicas).To(Equal(int32(0)))
			g.Expect(hpa.Status.CurrentMetrics).To(BeEmpty())
		}).WithContext(ctx).Should(Succeed())
		Consistently(func(g Gomega) {
			d, err := client.AppsV1().Deployments(ns).Get(ctx, "idle", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(*d.Spec.Replicas).To(Equal(int32(0)))
		}).WithContext(ctx).WithTimeout(time.Second).Should(Succeed())
	})

	It("reports a target it cannot find", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		_, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpaFor("missing", nil, 3), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			hpa, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "missing", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			able := condition(hpa, autoscalingv2.AbleToScale)
			g.Expect(able).NotTo(BeNil())
			g.Expect(able.Status).To(Equal(corev1.ConditionFalse))
			g.Expect(able.Reason).To(Equal("FailedGetScale"))
			g.Expect(able.Message).To(Equal(`the HPA controller was unable to get the target's current scale: deployments.apps "missing" not found`))
			g.Expect(events(ctx, g, ns, "missing")["FailedGetScale"].Message).To(Equal(`deployments.apps "missing" not found`))
		}).WithContext(ctx).Should(Succeed())
	})
})

func itoa(n int32) string {
	return fmt.Sprint(n)
}
