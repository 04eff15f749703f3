package controllers

import (
	"time"

	"github.com/keelson/keelson/simulator"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var _ = Describe("Node lifecycle", func() {
	It("gives nodes a podCIDR, and taints a node whose lease stops and evicts the pods that do not tolerate it", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		nodes := testCluster.SimulatedNodes(simulator.Options{Count: 2, Prefix: "lifecycle-"})
		dying := nodes.Names()[0]

		cidrs := map[string]bool{}
		for _, name := range nodes.Names() {
			Eventually(func(g Gomega) {
				n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(n.Spec.PodCIDR).NotTo(BeEmpty())
				g.Expect(n.Spec.PodCIDRs).To(Equal([]string{n.Spec.PodCIDR}))
				cidrs[n.Spec.PodCIDR] = true
			}).WithContext(ctx).Should(Succeed())
		}
		Expect(cidrs).To(HaveLen(2), "two nodes share a podCIDR")

		pod := func(name string, seconds *int64) {
			_, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{corev1.LabelHostname: dying},
					Tolerations: []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
						Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}},
					Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
				},
			}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			Eventually(func(g Gomega) {
				p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
			}).WithContext(ctx).Should(Succeed())
		}
		pod("brief", ptr.To(int64(2)))
		pod("patient", nil)

		nodes.StopHeartbeat(dying)
		Eventually(func(g Gomega) {
			n, err := client.CoreV1().Nodes().Get(ctx, dying, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			var ready *corev1.NodeCondition
			for i := range n.Status.Conditions {
				if n.Status.Conditions[i].Type == corev1.NodeReady {
					ready = &n.Status.Conditions[i]
				}
			}
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(corev1.ConditionUnknown))
			g.Expect(ready.Reason).To(Equal("NodeStatusUnknown"))
			g.Expect(ready.Message).To(Equal("Kubelet stopped posting node status."))
			var effects []corev1.TaintEffect
			for _, t := range n.Spec.Taints {
				if t.Key == corev1.TaintNodeUnreachable {
					effects = append(effects, t.Effect)
				}
			}
			g.Expect(effects).To(ConsistOf(corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute))
		}).WithContext(ctx).WithTimeout(90 * time.Second).WithPolling(time.Second).Should(Succeed())

		Eventually(func(g Gomega) {
			p, err := client.CoreV1().Pods(ns).Get(ctx, "brief", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.DeletionTimestamp).NotTo(BeNil())
			var target *corev1.PodCondition
			for i := range p.Status.Conditions {
				if p.Status.Conditions[i].Type == corev1.DisruptionTarget {
					target = &p.Status.Conditions[i]
				}
			}
			g.Expect(target).NotTo(BeNil())
			g.Expect(target.Reason).To(Equal("DeletionByTaintManager"))
			g.Expect(target.Message).To(Equal("Taint manager: deleting due to NoExecute taint"))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		p, err := client.CoreV1().Pods(ns).Get(ctx, "patient", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(p.DeletionTimestamp).To(BeNil(), "a pod tolerating the taint forever was evicted")
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				Expect(c.Status).To(Equal(corev1.ConditionFalse), "the pods of an unreachable node are still ready")
			}
		}
	})
})
