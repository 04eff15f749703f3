package controllers

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

func statefulSetOf(name string, replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{"sts": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(replicas),
			ServiceName: name + "-svc",
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}},
			},
		},
	}
}

func podNamesOf(ctx context.Context, ns, selector string) []string {
	GinkgoHelper()
	list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, p := range list.Items {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return names
}

// podDeletions records, in order, the names of the pods of ns deleted from now until the spec ends.
func podDeletions(ctx context.Context, ns string) func() []string {
	GinkgoHelper()
	w, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	var mu sync.Mutex
	var deleted []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Deleted {
				mu.Lock()
				deleted = append(deleted, p.Name)
				mu.Unlock()
			}
		}
	}()
	DeferCleanup(func() { w.Stop(); <-done })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), deleted...)
	}
}

// eventsOf lists the events of ns about one object as "type reason message".
func eventsOf(ctx context.Context, ns, kind, name string) []string {
	GinkgoHelper()
	list, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == kind && e.InvolvedObject.Name == name {
			out = append(out, e.Type+" "+e.Reason+" "+e.Message)
		}
	}
	return out
}

func getStatefulSet(ctx context.Context, g Gomega, ns, name string) *appsv1.StatefulSet {
	set, err := client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return set
}

var _ = Describe("StatefulSets", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("create pods in order, each once the one before is ready, and remove them from the highest ordinal", func(ctx SpecContext) {
		_, err := client.AppsV1().StatefulSets(ns).Create(ctx, statefulSetOf("web", 3), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		for i := range 3 {
			name := fmt.Sprintf("web-%d", i)
			Eventually(func() []string { return podNamesOf(ctx, ns, "sts=web") }).Should(ContainElement(name))
			// Nothing is ready yet: the next ordinal must wait.
			Consistently(func() []string { return podNamesOf(ctx, ns, "sts=web") }, "700ms").Should(HaveLen(i + 1))
			pod, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(pod.Labels).To(HaveKeyWithValue("statefulset.kubernetes.io/pod-name", name))
			Expect(pod.Labels).To(HaveKeyWithValue("apps.kubernetes.io/pod-index", strconv.Itoa(i)))
			Expect(pod.Labels).To(HaveKeyWithValue("controller-revision-hash", HavePrefix("web-")))
			Expect(pod.Spec.Hostname).To(Equal(name))
			Expect(pod.Spec.Subdomain).To(Equal("web-svc"))
			Expect(metav1.GetControllerOf(pod)).NotTo(BeNil())
			Expect(metav1.GetControllerOf(pod).Kind).To(Equal("StatefulSet"))
			cluster.MarkPodReady(ctx, client, ns, name)
		}
		Eventually(func(g Gomega) {
			set := getStatefulSet(ctx, g, ns, "web")
			g.Expect(set.Status.ObservedGeneration).To(Equal(set.Generation))
			g.Expect(set.Status.Replicas).To(Equal(int32(3)))
			g.Expect(set.Status.ReadyReplicas).To(Equal(int32(3)))
			g.Expect(set.Status.AvailableReplicas).To(Equal(int32(3)))
			g.Expect(set.Status.CurrentReplicas).To(Equal(int32(3)))
			g.Expect(set.Status.UpdatedReplicas).To(Equal(int32(3)))
			g.Expect(set.Status.CurrentRevision).NotTo(BeEmpty())
			g.Expect(set.Status.UpdateRevision).To(Equal(set.Status.CurrentRevision))
			g.Expect(set.Status.CollisionCount).To(Equal(ptr.To[int32](0)))
		}).Should(Succeed())
		set := getStatefulSet(ctx, Default, ns, "web")
		rev, err := client.AppsV1().ControllerRevisions(ns).Get(ctx, set.Status.CurrentRevision, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(rev.Revision).To(Equal(int64(1)))
		Expect(metav1.IsControlledBy(rev, set)).To(BeTrue())
		Expect(rev.Labels).To(HaveKeyWithValue("controller.kubernetes.io/hash", set.Status.CurrentRevision[len("web-"):]))

		Eventually(func() []string { return eventsOf(ctx, ns, "StatefulSet", "web") }).Should(ContainElements(
			"Normal SuccessfulCreate Create Pod web-0 in StatefulSet web successful",
			"Normal SuccessfulCreate Create Pod web-2 in StatefulSet web successful"))

		deletions := podDeletions(ctx, ns)
		_, err = client.AppsV1().StatefulSets(ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []string { return podNamesOf(ctx, ns, "sts=web") }).Should(Equal([]string{"web-0"}))
		Expect(deletions()).To(Equal([]string{"web-2", "web-1"}))
		Eventually(func(g Gomega) {
			set := getStatefulSet(ctx, g, ns, "web")
			g.Expect(set.Status.Replicas).To(Equal(int32(1)))
			g.Expect(set.Status.ReadyReplicas).To(Equal(int32(1)))
		}).Should(Succeed())
	})

	It("create and delete all pods at once with Parallel management, from spec.ordinals.start", func(ctx SpecContext) {
		set := statefulSetOf("par", 3)
		set.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
		set.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
		_, err := client.AppsV1().StatefulSets(ns).Create(ctx, set, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// No pod ever becomes ready, and all are there regardless.
		Eventually(func() []string { return podNamesOf(ctx, ns, "sts=par") }).Should(Equal([]string{"par-5", "par-6", "par-7"}))
		Eventually(func(g Gomega) {
			set := getStatefulSet(ctx, g, ns, "par")
			g.Expect(set.Status.Replicas).To(Equal(int32(3)))
			g.Expect(set.Status.ReadyReplicas).To(BeZero())
		}).Should(Succeed())
		_, err = client.AppsV1().StatefulSets(ns).Patch(ctx, "par", types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []string { return podNamesOf(ctx, ns, "sts=par") }).Should(BeEmpty())
	})

	It("roll a new template out from the highest ordinal down to the partition", func(ctx SpecContext) {
		cluster.MarkPodsReady(client, ns)
		set := statefulSetOf("roll", 3)
		set.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](1)}}
		_, err := client.AppsV1().StatefulSets(ns).Create(ctx, set, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var first string
		Eventually(func(g Gomega) {
			set := getStatefulSet(ctx, g, ns, "roll")
			g.Expect(set.Status.ReadyReplicas).To(Equal(int32(3)))
			g.Expect(set.Status.CurrentRevision).To(Equal(set.Status.UpdateRevision))
			first = set.Status.CurrentRevision
		}).Should(Succeed())

		deletions := podDeletions(ctx, ns)
		_, err = client.AppsV1().StatefulSets(ns).Patch(ctx, "roll", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:2"}]}}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		var second string
		Eventually(func(g Gomega) {
			set := getStatefulSet(ctx, g, ns, "roll")
			g.Expect(set.Status.ObservedGeneration).To(Equal(set.Generation))
			g.Expect(set.Status.UpdatedReplicas).To(Equal(int32(2)))
			g.Expect(set.Status.CurrentReplicas).To(Equal(int32(1)))
			g.Expect(set.Status.ReadyReplicas).To(Equal(int32(3)))
			g.Expect(set.Status.CurrentRevision).To(Equal(first))
			g.Expect(set.Status.UpdateRevision).NotTo(Equal(first))
			second = set.Status.UpdateRevision
		}).Should(Succeed())
		Expect(deletions()).To(Equal([]string{"roll-2", "roll-1"}))
		images := func() map[string]string {
			list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "sts=roll"})
			Expect(err).NotTo(HaveOccurred())
			out := map[string]string{}
			for _, p := range list.Items {
				out[p.Name] = p.Spec.Containers[0].Image + " " + p.Labels["controller-revision-hash"]
			}
			return out
		}
		Expect(images()).To(Equal(map[string]string{"roll-0": "busybox:1 " + first, "roll-1": "busybox:2 " + second, "roll-2": "busybox:2 " + second}))

		_, err = client.AppsV1().StatefulSets(ns).Patch(ctx, "roll", types.MergePatchType,
			[]byte(`{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			set := getStatefulSet(ctx, g, ns, "roll")
			g.Expect(set.Status.UpdatedReplicas).To(Equal(int32(3)))
			g.Expect(set.Status.CurrentReplicas).To(Equal(int32(3)))
			g.Expect(set.Status.ReadyReplicas).To(Equal(int32(3)))
			g.Expect(set.Status.CurrentRevision).To(Equal(second))
		}).Should(Succeed())
		Expect(deletions()).To(Equal([]string{"roll-2", "roll-1", "roll-0"}))
		revs, err := client.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "sts=roll"})
		Expect(err).NotTo(HaveOccurred())
		Expect(revs.Items).To(HaveLen(2))
	})

	It("replace up to maxUnavailable pods at once, and leave OnDelete pods to the user", func(ctx SpecContext) {
		revisionsOf := func(g Gomega, name string) map[string]string {
			list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "sts=" + name})
			g.Expect(err).NotTo(HaveOccurred())
			out := map[string]string{}
			for _, p := range list.Items {
				if p.DeletionTimestamp == nil {
					out[p.Name] = p.Labels["controller-revision-hash"]
				}
			}
			return out
		}
		markAllReady := func(name string, n int) {
			for i := range n {
				pod := fmt.Sprintf("%s-%d", name, i)
				Eventually(func() []string { return podNamesOf(ctx, ns, "sts="+name) }).Should(ContainElement(pod))
				cluster.MarkPodReady(ctx, client, ns, pod)
			}
		}
		wide := statefulSetOf("wide", 3)
		wide.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
		wide.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: ptr.To(intstr.FromInt32(2))}}
		manual := statefulSetOf("manual", 2)
		manual.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
		for _, set := range []*appsv1.StatefulSet{wide, manual} {
			_, err := client.AppsV1().StatefulSets(ns).Create(ctx, set, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			markAllReady(set.Name, int(*set.Spec.Replicas))
			Eventually(func(g Gomega) {
				g.Expect(getStatefulSet(ctx, g, ns, set.Name).Status.ReadyReplicas).To(Equal(*set.Spec.Replicas))
			}).Should(Succeed())
		}
		image := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:2"}]}}}}`)
		for _, name := range []string{"wide", "manual"} {
			_, err := client.AppsV1().StatefulSets(ns).Patch(ctx, name, types.StrategicMergePatchType, image, metav1.PatchOptions{})
			Expect(err).NotTo(HaveOccurred())
		}

		// Two of three pods go at once; the new ones never become ready, so the third stays.
		var first, second string
		Eventually(func(g Gomega) {
			set := getStatefulSet(ctx, g, ns, "wide")
			first, second = set.Status.CurrentRevision, set.Status.UpdateRevision
			g.Expect(second).NotTo(Equal(first))
			g.Expect(revisionsOf(g, "wide")).To(Equal(map[string]string{"wide-0": first, "wide-1": second, "wide-2": second}))
		}).Should(Succeed())
		Consistently(func(g Gomega) map[string]string { return revisionsOf(g, "wide") }, "500ms").Should(HaveKeyWithValue("wide-0", first))

		// OnDelete: nothing moves until a pod is deleted, which comes back at the new revision.
		set := getStatefulSet(ctx, Default, ns, "manual")
		Consistently(func(g Gomega) map[string]string { return revisionsOf(g, "manual") }, "500ms").
			Should(Equal(map[string]string{"manual-0": set.Status.CurrentRevision, "manual-1": set.Status.CurrentRevision}))
		Expect(client.CoreV1().Pods(ns).Delete(ctx, "manual-1", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			set := getStatefulSet(ctx, g, ns, "manual")
			g.Expect(set.Status.UpdateRevision).NotTo(Equal(set.Status.CurrentRevision))
			g.Expect(revisionsOf(g, "manual")).To(Equal(map[string]string{"manual-0": set.Status.CurrentRevision, "manual-1": set.Status.UpdateRevision}))
			g.Expect(set.Status.UpdatedReplicas).To(Equal(int32(1)))
			g.Expect(set.Status.CurrentReplicas).To(Equal(int32(1)))
		}).Should(Succeed())
	})

	It("make each pod's claims from the templates, and delete them with the set when asked to", func(ctx SpecContext) {
		cluster.MarkPodsReady(client, ns)
		set := statefulSetOf("db", 2)
		set.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: map[string]string{"tier": "storage"}},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		}}
		set.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
			WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
		created, err := client.AppsV1().StatefulSets(ns).Create(ctx, set, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			g.Expect(getStatefulSet(ctx, g, ns, "db").Status.ReadyReplicas).To(Equal(int32(2)))
		}).Should(Succeed())
		for i := range 2 {
			pod, err := client.CoreV1().Pods(ns).Get(ctx, fmt.Sprintf("db-%d", i), metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(pod.Spec.Volumes).To(ContainElement(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: fmt.Sprintf("data-db-%d", i)}}}))
			// While the pod is within the set, the set owns its claim (whenDeleted: Delete).
			Eventually(func(g Gomega) {
				pvc, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, fmt.Sprintf("data-db-%d", i), metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pvc.Labels).To(Equal(map[string]string{"tier": "storage", "sts": "db"}))
				g.Expect(pvc.OwnerReferences).To(HaveLen(1))
				g.Expect(pvc.OwnerReferences[0].UID).To(Equal(created.UID))
				g.Expect(pvc.OwnerReferences[0].Controller).To(Equal(ptr.To(true)))
			}).Should(Succeed())
		}
		// Scaled away, a pod takes its claim along (whenScaled: Delete); the other claim stays.
		_, err = client.AppsV1().StatefulSets(ns).Patch(ctx, "db", types.MergePatchType, []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		claims := func() []string {
			list, err := client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
			Expect(err).NotTo(HaveOccurred())
			var names []string
			for _, c := range list.Items {
				names = append(names, c.Name)
			}
			return names
		}
		Eventually(claims).Should(Equal([]string{"data-db-0"}))
		// Scaled up again, the pod gets a new claim.
		_, err = client.AppsV1().StatefulSets(ns).Patch(ctx, "db", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(claims).Should(Equal([]string{"data-db-0", "data-db-1"}))
		Eventually(func(g Gomega) {
			g.Expect(getStatefulSet(ctx, g, ns, "db").Status.ReadyReplicas).To(Equal(int32(2)))
		}).Should(Succeed())
		Expect(client.AppsV1().StatefulSets(ns).Delete(ctx, "db", metav1.DeleteOptions{})).To(Succeed())
		Eventually(claims).Should(BeEmpty())
	})

	It("keep claims by default when scaled down and reuse them when scaled up", func(ctx SpecContext) {
		cluster.MarkPodsReady(client, ns)
		set := statefulSetOf("keep", 2)
		set.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
		set.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		}}
		_, err := client.AppsV1().StatefulSets(ns).Create(ctx, set, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			g.Expect(getStatefulSet(ctx, g, ns, "keep").Status.ReadyReplicas).To(Equal(int32(2)))
		}).Should(Succeed())
		pvc, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-keep-1", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pvc.OwnerReferences).To(BeEmpty())
		_, err = client.AppsV1().StatefulSets(ns).Patch(ctx, "keep", types.MergePatchType, []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []string { return podNamesOf(ctx, ns, "sts=keep") }).Should(Equal([]string{"keep-0"}))
		Consistently(func() error {
			_, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-keep-1", metav1.GetOptions{})
			return err
		}, "500ms").Should(Succeed())
		_, err = client.AppsV1().StatefulSets(ns).Patch(ctx, "keep", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []string { return podNamesOf(ctx, ns, "sts=keep") }).Should(Equal([]string{"keep-0", "keep-1"}))
		again, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-keep-1", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(again.UID).To(Equal(pvc.UID))
	})

	It("adopt orphaned pods that are theirs by name and selector", func(ctx SpecContext) {
		orphan := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "own-0", Labels: map[string]string{"sts": "own"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}},
		}
		stranger := orphan.DeepCopy()
		stranger.Name = "other-0"
		for _, p := range []*corev1.Pod{orphan, stranger} {
			_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		// An OrderedReady set repairs a pod's identity once the pod is running and ready.
		cluster.MarkPodReady(ctx, client, ns, "own-0")
		set, err := client.AppsV1().StatefulSets(ns).Create(ctx, statefulSetOf("own", 1), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			pod, err := client.CoreV1().Pods(ns).Get(ctx, "own-0", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(metav1.IsControlledBy(pod, set)).To(BeTrue())
			g.Expect(pod.Labels).To(HaveKeyWithValue("statefulset.kubernetes.io/pod-name", "own-0"))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			pod, err := client.CoreV1().Pods(ns).Get(ctx, "other-0", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(metav1.GetControllerOf(pod)).To(BeNil())
		}, "500ms").Should(Succeed())
	})
})
