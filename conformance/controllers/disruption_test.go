package controllers

import (
	"fmt"
	"time"

	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

// budgetPods creates n bare pods labelled app=name.
func budgetPods(ctx SpecContext, ns, name string, n int) {
	GinkgoHelper()
	for i := range n {
		_, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, i), Labels: map[string]string{"app": name}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	}
}

func budget(name string, minAvailable, maxUnavailable *intstr.IntOrString) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			MinAvailable: minAvailable, MaxUnavailable: maxUnavailable,
		},
	}
}

// budgetStatus waits until the budget's status is current and has the given counts.
func budgetStatus(ctx SpecContext, ns, name string, expected, desired, healthy, allowed int32) *policyv1.PodDisruptionBudget {
	GinkgoHelper()
	var pdb *policyv1.PodDisruptionBudget
	Eventually(func(g Gomega) {
		var err error
		pdb, err = client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pdb.Status.ObservedGeneration).To(Equal(pdb.Generation))
		g.Expect([]int32{pdb.Status.ExpectedPods, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy, pdb.Status.DisruptionsAllowed}).
			To(Equal([]int32{expected, desired, healthy, allowed}), "expectedPods, desiredHealthy, currentHealthy, disruptionsAllowed")
	}).WithTimeout(20 * time.Second).Should(Succeed())
	return pdb
}

func evict(ctx SpecContext, ns, pod string, opts *metav1.DeleteOptions) error {
	return client.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: ns}, DeleteOptions: opts})
}

// setPodPhase stands in for a kubelet: the pod's phase and readiness.
func setPodPhase(ctx SpecContext, ns, pod string, phase corev1.PodPhase, ready bool) {
	GinkgoHelper()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	patch := fmt.Sprintf(`{"status":{"phase":%q,"conditions":[{"type":"Ready","status":%q,"lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`, phase, status)
	_, err := client.CoreV1().Pods(ns).Patch(ctx, pod, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	Expect(err).NotTo(HaveOccurred())
}

var _ = Describe("Pod disruption budgets", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("report their pods in status, allow an eviction the budget covers and refuse one it does not", func(ctx SpecContext) {
		budgetPods(ctx, ns, "web", 3)
		cluster.MarkPodsReady(client, ns)
		_, err := client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, budget("web", ptr.To(intstr.FromInt32(2)), nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pdb := budgetStatus(ctx, ns, "web", 3, 2, 3, 1)
		cond := apimeta.FindStatusCondition(pdb.Status.Conditions, policyv1.DisruptionAllowedCondition)
		Expect(cond).NotTo(BeNil())
		Expect(cond.Status).To(Equal(metav1.ConditionTrue))
		Expect(cond.Reason).To(Equal(policyv1.SufficientPodsReason))
		Expect(cond.ObservedGeneration).To(Equal(pdb.Generation))

		// A dry run asks the budget but changes nothing.
		Expect(evict(ctx, ns, "web-0", &metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})).To(Succeed())
		_, err = client.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())

		Expect(evict(ctx, ns, "web-0", nil)).To(Succeed())
		_, err = client.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the evicted pod is still there: %v", err)

		pdb = budgetStatus(ctx, ns, "web", 2, 2, 2, 0)
		cond = apimeta.FindStatusCondition(pdb.Status.Conditions, policyv1.DisruptionAllowedCondition)
		Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		Expect(cond.Reason).To(Equal(policyv1.InsufficientPodsReason))
		Expect(pdb.Status.DisruptedPods).To(BeEmpty())

		err = evict(ctx, ns, "web-1", nil)
		Expect(apierrors.IsTooManyRequests(err)).To(BeTrue(), "eviction beyond the budget: %v", err)
		Expect(err.Error()).To(Equal("Cannot evict pod as it would violate the pod's disruption budget."))
		status := err.(apierrors.APIStatus).Status()
		Expect(status.Details.Causes).To(ContainElement(metav1.StatusCause{Type: policyv1.DisruptionBudgetCause,
			Message: "The disruption budget web needs 2 healthy pods and has 2 currently"}))
		_, err = client.CoreV1().Pods(ns).Get(ctx, "web-1", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("record an eviction in disruptedPods and mark the pod DisruptionTarget while it terminates", func(ctx SpecContext) {
		budgetPods(ctx, ns, "db", 2)
		for _, p := range []string{"db-0", "db-1"} {
			// A pod bound to a node terminates gracefully; there is no kubelet here to finish it.
			Expect(client.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p}, Target: corev1.ObjectReference{Kind: "Node", Name: "nowhere"}}, metav1.CreateOptions{})).To(Succeed())
			setPodPhase(ctx, ns, p, corev1.PodRunning, true)
		}
		DeferCleanup(func(ctx SpecContext) {
			_ = client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{})
		})
		_, err := client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, budget("db", nil, ptr.To(intstr.FromInt32(1))), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// Bare pods have no controller to give a scale: maxUnavailable expects none of them.
		budgetStatus(ctx, ns, "db", 0, 0, 2, 0)
		Expect(apierrors.IsTooManyRequests(evict(ctx, ns, "db-0", nil))).To(BeTrue())

		_, err = client.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, "db", types.MergePatchType,
			[]byte(`{"spec":{"maxUnavailable":null,"minAvailable":1}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		pdb := budgetStatus(ctx, ns, "db", 2, 1, 2, 1)
		w, err := client.PolicyV1().PodDisruptionBudgets(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: pdb.ResourceVersion, FieldSelector: "metadata.name=db"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		Expect(evict(ctx, ns, "db-0", nil)).To(Succeed())
		// The eviction charges the budget before the pod goes: one disruption fewer, the pod
		// recorded in disruptedPods (which the controller prunes once the pod is terminating).
		Eventually(w.ResultChan()).WithTimeout(10 * time.Second).Should(Receive(Satisfy(func(ev watch.Event) bool {
			p, ok := ev.Object.(*policyv1.PodDisruptionBudget)
			if !ok {
				return false
			}
			_, recorded := p.Status.DisruptedPods["db-0"]
			return recorded && p.Status.DisruptionsAllowed == 0
		})))
		pod, err := client.CoreV1().Pods(ns).Get(ctx, "db-0", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pod.DeletionTimestamp).NotTo(BeNil())
		var target *corev1.PodCondition
		for i := range pod.Status.Conditions {
			if pod.Status.Conditions[i].Type == corev1.DisruptionTarget {
				target = &pod.Status.Conditions[i]
			}
		}
		Expect(target).NotTo(BeNil())
		Expect(target.Status).To(Equal(corev1.ConditionTrue))
		Expect(target.Reason).To(Equal("EvictionByEvictionAPI"))
		Expect(target.Message).To(Equal("Eviction API: evicting"))
		// The pod being deleted no longer counts as healthy.
		budgetStatus(ctx, ns, "db", 2, 1, 1, 0)
	})

	It("refuse to evict a pod that more than one budget selects", func(ctx SpecContext) {
		budgetPods(ctx, ns, "two", 2)
		cluster.MarkPodsReady(client, ns)
		for _, name := range []string{"two-a", "two-b"} {
			b := budget(name, ptr.To(intstr.FromInt32(0)), nil)
			b.Spec.Selector.MatchLabels = map[string]string{"app": "two"}
			_, err := client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, b, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		// Upstream answers with the Status's own code, 500 (checked against kube-apiserver v1.37.1).
		var code int
		res := client.PolicyV1().RESTClient().Post().AbsPath("/api/v1").Namespace(ns).Resource("pods").Name("two-0").SubResource("eviction").
			Body(&policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "two-0", Namespace: ns}}).Do(ctx).StatusCode(&code)
		Expect(code).To(Equal(500))
		_, err := res.Get()
		Expect(err).To(HaveOccurred())
		status := err.(apierrors.APIStatus).Status()
		Expect(status.Code).To(Equal(int32(500)))
		Expect(status.Message).To(Equal("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."))
		_, err = client.CoreV1().Pods(ns).Get(ctx, "two-0", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("let pending and terminal pods go without asking the budget", func(ctx SpecContext) {
		budgetPods(ctx, ns, "idle", 3)
		setPodPhase(ctx, ns, "idle-1", corev1.PodSucceeded, false)
		_, err := client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, budget("idle", ptr.To(intstr.FromInt32(3)), nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		budgetStatus(ctx, ns, "idle", 3, 3, 0, 0)
		Expect(evict(ctx, ns, "idle-0", nil)).To(Succeed())
		Expect(evict(ctx, ns, "idle-1", nil)).To(Succeed())
		_, err = client.CoreV1().Pods(ns).Get(ctx, "idle-1", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})

	It("let an unready pod go only as unhealthyPodEvictionPolicy says", func(ctx SpecContext) {
		budgetPods(ctx, ns, "sick", 3)
		setPodPhase(ctx, ns, "sick-0", corev1.PodRunning, false)
		setPodPhase(ctx, ns, "sick-1", corev1.PodRunning, true)
		setPodPhase(ctx, ns, "sick-2", corev1.PodRunning, true)
		b := budget("sick", ptr.To(intstr.FromInt32(3)), nil)
		_, err := client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, b, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		budgetStatus(ctx, ns, "sick", 3, 3, 2, 0)
		// IfHealthyBudget (the default): the application is already disrupted, so nothing goes.
		Expect(apierrors.IsTooManyRequests(evict(ctx, ns, "sick-0", nil))).To(BeTrue())

		_, err = client.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, "sick", types.MergePatchType,
			[]byte(`{"spec":{"unhealthyPodEvictionPolicy":"AlwaysAllow"}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		budgetStatus(ctx, ns, "sick", 3, 3, 2, 0)
		Expect(evict(ctx, ns, "sick-0", nil)).To(Succeed())
		// A ready pod is still guarded.
		Expect(apierrors.IsTooManyRequests(evict(ctx, ns, "sick-1", nil))).To(BeTrue())
	})

	It("honour the eviction's delete preconditions", func(ctx SpecContext) {
		budgetPods(ctx, ns, "pre", 1)
		cluster.MarkPodsReady(client, ns)
		err := evict(ctx, ns, "pre-0", &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(types.UID("not-the-uid"))}})
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "%v", err)
		Expect(evict(ctx, ns, "pre-0", nil)).To(Succeed())
	})

	It("count a percentage and maxUnavailable against the scale of the pods' controllers", func(ctx SpecContext) {
		cluster.MarkPodsReady(client, ns)
		rs := replicaSet("pct", 4)
		_, err := client.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		b := budget("pct", ptr.To(intstr.FromString("50%")), nil)
		b.Spec.Selector.MatchLabels = map[string]string{"rs": "pct"}
		_, err = client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, b, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		budgetStatus(ctx, ns, "pct", 4, 2, 4, 2)

		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "dep"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](3),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "dep"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "dep"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
				},
			},
		}
		_, err = client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, budget("dep", nil, ptr.To(intstr.FromString("34%"))), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// 34% of 3 rounds up to 2 unavailable.
		budgetStatus(ctx, ns, "dep", 3, 1, 3, 2)
	})

	It("fail safe when a pod's controller has no scale subresource", func(ctx SpecContext) {
		owner, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "odd", Labels: map[string]string{"app": "odd"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: owner.UID, Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, budget("odd", nil, ptr.To(intstr.FromInt32(1))), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			pdb, err := client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "odd", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			cond := apimeta.FindStatusCondition(pdb.Status.Conditions, policyv1.DisruptionAllowedCondition)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(cond.Reason).To(Equal(policyv1.SyncFailedReason))
			g.Expect(cond.Message).To(Equal(`configmaps does not implement the scale subresource`))
			g.Expect(pdb.Status.DisruptionsAllowed).To(BeZero())
		}).WithTimeout(20 * time.Second).Should(Succeed())
	})
})
