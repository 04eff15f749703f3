package controllers

import (
	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func deploymentOf(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"deploy": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}},
			},
		},
	}
}

func replicaSetsOf(ctx SpecContext, ns, name string) []appsv1.ReplicaSet {
	GinkgoHelper()
	list, err := client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "deploy=" + name})
	Expect(err).NotTo(HaveOccurred())
	return list.Items
}

var _ = Describe("Deployments", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("roll out through a ReplicaSet, roll a new template out within maxSurge, and keep revisions", func(ctx SpecContext) {
		cluster.MarkPodsReady(client, ns)
		_, err := client.AppsV1().Deployments(ns).Create(ctx, deploymentOf("web", 3), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Status.AvailableReplicas).To(Equal(int32(3)))
			g.Expect(d.Status.UpdatedReplicas).To(Equal(int32(3)))
			g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
			g.Expect(d.Annotations).To(HaveKeyWithValue("deployment.kubernetes.io/revision", "1"))
		}).Should(Succeed())
		sets := replicaSetsOf(ctx, ns, "web")
		Expect(sets).To(HaveLen(1))
		first := sets[0]
		Expect(first.Labels).To(HaveKey(appsv1.DefaultDeploymentUniqueLabelKey))
		Expect(first.Name).To(Equal("web-" + first.Labels[appsv1.DefaultDeploymentUniqueLabelKey]))

		_, err = client.AppsV1().Deployments(ns).Patch(ctx, "web", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:2"}]}}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Status.UpdatedReplicas).To(Equal(int32(3)))
			g.Expect(d.Status.AvailableReplicas).To(Equal(int32(3)))
			g.Expect(d.Status.Replicas).To(Equal(int32(3)))
			g.Expect(d.Annotations).To(HaveKeyWithValue("deployment.kubernetes.io/revision", "2"))
			var progressing *appsv1.DeploymentCondition
			for i := range d.Status.Conditions {
				if d.Status.Conditions[i].Type == appsv1.DeploymentProgressing {
					progressing = &d.Status.Conditions[i]
				}
			}
			g.Expect(progressing).NotTo(BeNil())
			g.Expect(progressing.Reason).To(Equal("NewReplicaSetAvailable"))
		}).Should(Succeed())
		sets = replicaSetsOf(ctx, ns, "web")
		Expect(sets).To(HaveLen(2))
		for _, rs := range sets {
			if rs.UID == first.UID {
				Expect(*rs.Spec.Replicas).To(BeZero())
				Expect(rs.Annotations).To(HaveKeyWithValue("deployment.kubernetes.io/revision", "1"))
			} else {
				Expect(*rs.Spec.Replicas).To(Equal(int32(3)))
				Expect(rs.Annotations).To(HaveKeyWithValue("deployment.kubernetes.io/revision", "2"))
			}
		}
	})

	It("never exceed maxSurge nor go below the available minimum while rolling", func(ctx SpecContext) {
		// No pod ever becomes ready here: with maxUnavailable 0 the old ReplicaSet must stay whole
		// and the new one may only grow by the surge.
		_, err := client.AppsV1().Deployments(ns).Create(ctx, deploymentOf("stuck", 2), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() int { return len(replicaSetsOf(ctx, ns, "stuck")) }).Should(Equal(1))
		_, err = client.AppsV1().Deployments(ns).Patch(ctx, "stuck", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:2"}]}}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() int { return len(replicaSetsOf(ctx, ns, "stuck")) }).Should(Equal(2))
		Consistently(func(g Gomega) {
			total := int32(0)
			for _, rs := range replicaSetsOf(ctx, ns, "stuck") {
				total += *rs.Spec.Replicas
			}
			g.Expect(total).To(BeNumerically("<=", 3))
		}, "1s").Should(Succeed())
	})

	It("release a ReplicaSet whose labels they no longer select, and replace it", func(ctx SpecContext) {
		cluster.MarkPodsReady(client, ns)
		_, err := client.AppsV1().Deployments(ns).Create(ctx, deploymentOf("rel", 1), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []appsv1.ReplicaSet { return replicaSetsOf(ctx, ns, "rel") }).WithContext(ctx).Should(HaveLen(1))
		first := replicaSetsOf(ctx, ns, "rel")[0]
		_, err = client.AppsV1().ReplicaSets(ns).Patch(ctx, first.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"deploy":"elsewhere"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			rs, err := client.AppsV1().ReplicaSets(ns).Get(ctx, first.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(metav1.GetControllerOf(rs)).To(BeNil())
			selected, err := client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "deploy=rel"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(selected.Items).To(HaveLen(1))
			g.Expect(selected.Items[0].Name).NotTo(Equal(first.Name))
		}).WithContext(ctx).Should(Succeed())
	})

	It("take their ReplicaSets and pods along when deleted", func(ctx SpecContext) {
		_, err := client.AppsV1().Deployments(ns).Create(ctx, deploymentOf("gone", 2), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() int {
			list, _ := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "deploy=gone"})
			return len(list.Items)
		}).Should(Equal(2))
		Expect(client.AppsV1().Deployments(ns).Delete(ctx, "gone", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() int { return len(replicaSetsOf(ctx, ns, "gone")) }).Should(BeZero())
		Eventually(func() int {
			list, _ := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "deploy=gone"})
			return len(list.Items)
		}).Should(BeZero())
	})
})
