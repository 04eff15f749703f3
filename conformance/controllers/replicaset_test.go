package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func replicaSet(name string, replicas int32) *appsv1.ReplicaSet {
	labels := map[string]string{"rs": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
}

// ownedPods lists the pods whose controller is the named ReplicaSet.
func ownedPods(ctx SpecContext, ns string, rs *appsv1.ReplicaSet) []corev1.Pod {
	GinkgoHelper()
	list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "rs=" + rs.Name})
	Expect(err).NotTo(HaveOccurred())
	var out []corev1.Pod
	for _, p := range list.Items {
		if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == rs.UID && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

var _ = Describe("ReplicaSets", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("create their pods, scale them up and down, and report it in status", func(ctx SpecContext) {
		rs, err := client.AppsV1().ReplicaSets(ns).Create(ctx, replicaSet("web", 3), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() int { return len(ownedPods(ctx, ns, rs)) }).Should(Equal(3))
		pods := ownedPods(ctx, ns, rs)
		Expect(pods[0].Name).To(HavePrefix("web-"))
		Expect(pods[0].OwnerReferences[0].BlockOwnerDeletion).To(Equal(ptr.To(true)))
		Eventually(func(g Gomega) {
			got, err := client.AppsV1().ReplicaSets(ns).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Replicas).To(Equal(int32(3)))
			g.Expect(got.Status.FullyLabeledReplicas).To(Equal(int32(3)))
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		}).Should(Succeed())

		_, err = client.AppsV1().ReplicaSets(ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() int { return len(ownedPods(ctx, ns, rs)) }).Should(Equal(1))
		// It never overshoots: the count settles at exactly one.
		Consistently(func() int { return len(ownedPods(ctx, ns, rs)) }, "1s").Should(Equal(1))

		_, err = client.AppsV1().ReplicaSets(ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":4}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() int { return len(ownedPods(ctx, ns, rs)) }).Should(Equal(4))
		Consistently(func() int { return len(ownedPods(ctx, ns, rs)) }, "1s").Should(Equal(4))
	})

	It("adopt matching orphans, release pods that stop matching, and replace deleted pods", func(ctx SpecContext) {
		orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Labels: map[string]string{"rs": "adopter"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		_, err := client.CoreV1().Pods(ns).Create(ctx, orphan, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		rs, err := client.AppsV1().ReplicaSets(ns).Create(ctx, replicaSet("adopter", 2), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() int { return len(ownedPods(ctx, ns, rs)) }).Should(Equal(2))
		Eventually(func(g Gomega) {
			p, err := client.CoreV1().Pods(ns).Get(ctx, "orphan", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(metav1.GetControllerOf(p)).NotTo(BeNil())
			g.Expect(metav1.GetControllerOf(p).UID).To(Equal(rs.UID))
		}).Should(Succeed())

		// Relabelled, the pod leaves the set, which makes a new one in its place.
		_, err = client.CoreV1().Pods(ns).Patch(ctx, "orphan", types.MergePatchType, []byte(`{"metadata":{"labels":{"rs":"elsewhere"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			p, err := client.CoreV1().Pods(ns).Get(ctx, "orphan", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(metav1.GetControllerOf(p)).To(BeNil())
		}).Should(Succeed())
		Eventually(func() int { return len(ownedPods(ctx, ns, rs)) }).Should(Equal(2))

		victim := ownedPods(ctx, ns, rs)[0]
		Expect(client.CoreV1().Pods(ns).Delete(ctx, victim.Name, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() []string {
			var names []string
			for _, p := range ownedPods(ctx, ns, rs) {
				names = append(names, p.Name)
			}
			return names
		}).Should(And(HaveLen(2), Not(ContainElement(victim.Name))))
	})

	It("take their pods along when deleted", func(ctx SpecContext) {
		rs, err := client.AppsV1().ReplicaSets(ns).Create(ctx, replicaSet("gone", 2), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() int { return len(ownedPods(ctx, ns, rs)) }).Should(Equal(2))
		Expect(client.AppsV1().ReplicaSets(ns).Delete(ctx, "gone", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() int {
			list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "rs=gone"})
			Expect(err).NotTo(HaveOccurred())
			return len(list.Items)
		}).Should(BeZero())
	})
})

var _ = Describe("ReplicationControllers", func() {
	It("keep their replicas like ReplicaSets, and report it in status", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		labels := map[string]string{"rc": "legacy"}
		rc := &corev1.ReplicationController{
			ObjectMeta: metav1.ObjectMeta{Name: "legacy"},
			Spec: corev1.ReplicationControllerSpec{Replicas: ptr.To[int32](2), Selector: labels,
				Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
		}
		rc, err := client.CoreV1().ReplicationControllers(ns).Create(ctx, rc, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		owned := func() int {
			list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "rc=legacy"})
			Expect(err).NotTo(HaveOccurred())
			n := 0
			for _, p := range list.Items {
				if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == rc.UID && ref.Kind == "ReplicationController" && p.DeletionTimestamp == nil {
					n++
				}
			}
			return n
		}
		Eventually(owned).Should(Equal(2))
		Eventually(func(g Gomega) {
			got, err := client.CoreV1().ReplicationControllers(ns).Get(ctx, "legacy", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Replicas).To(Equal(int32(2)))
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		}).Should(Succeed())
		_, err = client.CoreV1().ReplicationControllers(ns).Patch(ctx, "legacy", types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(owned).Should(BeZero())
	})
})
