package scheduling

import (
	"context"
	"fmt"

	"github.com/keelson/keelson/simulator"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

// simulatedFleet runs simulated nodes of 4 CPUs for the spec: nodes whose pods run and, when
// deleted, go, as a kubelet would make them.
func simulatedFleet(ctx context.Context, n int) *fleet {
	GinkgoHelper()
	f := &fleet{group: utilrand.String(6)}
	f.names = testCluster.SimulatedNodes(simulator.Options{Count: n, Prefix: "sched-", CPU: "4", Labels: map[string]string{groupLabel: f.group}}).Names()
	return f
}

func priorityClass(ctx context.Context, value int32, policy corev1.PreemptionPolicy) string {
	GinkgoHelper()
	name := "keelson-sched-" + utilrand.String(6)
	_, err := client.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value, PreemptionPolicy: &policy,
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		_ = client.SchedulingV1().PriorityClasses().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return name
}

var _ = Describe("Scheduler preemption", func() {
	It("evicts a lower-priority pod to make room for a higher-priority one", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := simulatedFleet(ctx, 1)
		high := priorityClass(ctx, 1000, corev1.PreemptLowerPriority)
		create(ctx, ns, f.pod("low", "3", nil))
		Expect(scheduled(ctx, ns, "low")).To(Equal(f.names[0]))
		low, err := client.CoreV1().Pods(ns).Get(ctx, "low", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		w, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=low", ResourceVersion: low.ResourceVersion})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		// The preemptor is nominated to the node while it waits; binding clears the nomination.
		hw, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=high", ResourceVersion: low.ResourceVersion})
		Expect(err).NotTo(HaveOccurred())
		defer hw.Stop()
		nominated := make(chan string, 1)
		go func() {
			defer GinkgoRecover()
			for ev := range hw.ResultChan() {
				if p, ok := ev.Object.(*corev1.Pod); ok && p.Status.NominatedNodeName != "" {
					nominated <- p.Status.NominatedNodeName
					return
				}
			}
		}()

		create(ctx, ns, f.pod("high", "3", func(p *corev1.Pod) { p.Spec.PriorityClassName = high }))
		Expect(scheduled(ctx, ns, "high")).To(Equal(f.names[0]))

		var target *corev1.PodCondition
		for ev := range w.ResultChan() {
			p := ev.Object.(*corev1.Pod)
			for i := range p.Status.Conditions {
				if p.Status.Conditions[i].Type == corev1.DisruptionTarget {
					target = &p.Status.Conditions[i]
				}
			}
			if ev.Type == watch.Deleted {
				break
			}
		}
		Expect(target).NotTo(BeNil(), "the victim was not marked as a disruption target")
		Expect(target.Reason).To(Equal("PreemptionByScheduler"))
		Expect(target.Message).To(Equal("default-scheduler: preempting to accommodate a higher priority pod"))

		highPod, err := client.CoreV1().Pods(ns).Get(ctx, "high", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(*highPod.Spec.Priority).To(BeEquivalentTo(1000))
		Expect(highPod.Status.NominatedNodeName).To(BeEmpty())
		Eventually(nominated).WithContext(ctx).Should(Receive(Equal(f.names[0])))
		Eventually(func() []string { return events(ctx, ns, "low", "Preempted") }).WithContext(ctx).
			Should(ContainElement(fmt.Sprintf("Preempted by pod %s on node %s", highPod.UID, f.names[0])))
	})

	It("evicts a lower-priority pod that the new pod's anti-affinity rejects", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := simulatedFleet(ctx, 1)
		high := priorityClass(ctx, 1000, corev1.PreemptLowerPriority)
		create(ctx, ns, f.pod("noisy", "", func(p *corev1.Pod) { p.Labels["tier"] = "noisy" }))
		scheduled(ctx, ns, "noisy")
		create(ctx, ns, f.pod("quiet", "", func(p *corev1.Pod) {
			p.Spec.PriorityClassName = high
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "noisy"}}, TopologyKey: corev1.LabelHostname}}}}
		}))
		Expect(scheduled(ctx, ns, "quiet")).To(Equal(f.names[0]))
		Eventually(func() bool {
			_, err := client.CoreV1().Pods(ns).Get(ctx, "noisy", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithContext(ctx).Should(BeTrue())
	})

	It("prefers victims whose eviction breaks no disruption budget", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := simulatedFleet(ctx, 2)
		high := priorityClass(ctx, 1000, corev1.PreemptLowerPriority)
		for i, name := range []string{"guarded", "free"} {
			create(ctx, ns, f.pod(name, "3", func(p *corev1.Pod) { p.Spec.NodeSelector[corev1.LabelHostname] = f.names[i] }))
			scheduled(ctx, ns, name)
		}
		_, err := client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "guard"},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "guarded"}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			pdb, err := client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "guard", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pdb.Status.ObservedGeneration).To(Equal(pdb.Generation))
			g.Expect(pdb.Status.CurrentHealthy).To(BeEquivalentTo(1))
		}).WithContext(ctx).Should(Succeed())

		create(ctx, ns, f.pod("high", "3", func(p *corev1.Pod) { p.Spec.PriorityClassName = high }))
		Expect(scheduled(ctx, ns, "high")).To(Equal(f.names[1]))
		_, err = client.CoreV1().Pods(ns).Get(ctx, "guarded", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("does not preempt for a pod whose class says Never, nor evict pods of equal priority", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := simulatedFleet(ctx, 1)
		polite := priorityClass(ctx, 1000, corev1.PreemptNever)
		create(ctx, ns, f.pod("low", "3", nil))
		scheduled(ctx, ns, "low")
		create(ctx, ns, f.pod("polite", "3", func(p *corev1.Pod) { p.Spec.PriorityClassName = polite }))
		msg := unschedulable(ctx, ns, "polite")
		Expect(msg).To(ContainSubstring("1 Insufficient cpu"))
		Expect(msg).To(HaveSuffix(". preemption: not eligible due to preemptionPolicy=Never."))

		create(ctx, ns, f.pod("peer", "3", nil))
		msg = unschedulable(ctx, ns, "peer")
		Expect(msg).To(MatchRegexp(`preemption: 0/\d+ nodes are available: .*1 No preemption victims found for incoming pod`))
		_, err := client.CoreV1().Pods(ns).Get(ctx, "low", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("refuses a pod naming a PriorityClass that does not exist", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		_, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p"},
			Spec:       corev1.PodSpec{PriorityClassName: "no-such-class", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}, metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`pods "p" is forbidden: no PriorityClass with name no-such-class was found`))
	})
})
