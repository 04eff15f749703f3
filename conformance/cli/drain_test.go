package cli

import (
	"sort"
	"strings"

	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
)

var _ = Describe("Drain", func() {
	var ns, node string
	BeforeEach(func(ctx SpecContext) {
		if _, err := client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{}); err != nil {
			Skip("drain needs a controller manager to keep disruption budgets")
		}
		ns = newNamespace(ctx)
		node = "drain-" + utilrand.String(6)
		_, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { _ = client.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{}) })
	})

	It("evicts a node's pods through their disruption budget, skipping DaemonSet pods", func(ctx SpecContext) {
		cluster.MarkPodsReady(client, ns)
		labels := map[string]string{"app": "web"}
		// The pods go at once when deleted (grace 0): there is no kubelet on this node.
		podSpec := corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers:                    []corev1.Container{{Name: "c", Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}}},
			Volumes:                       []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		}
		_, err := client.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		dsLabels := map[string]string{"app": "agent"}
		ds, err := client.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: "agent"},
			Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: dsLabels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: dsLabels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "agent-1", Labels: dsLabels, OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent", UID: ds.UID, Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(2)), Selector: &metav1.LabelSelector{MatchLabels: labels}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			pdb, err := client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pdb.Status.ObservedGeneration).To(Equal(pdb.Generation))
			g.Expect(pdb.Status.CurrentHealthy).To(Equal(int32(2)))
		}).Should(Succeed())

		// The budget allows no disruption: drain keeps retrying until its timeout.
		r := kubectlFails(ctx, "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=7s")
		Expect(r.Stdout).To(HavePrefix("node/" + node + " cordoned\n"))
		Expect(r.Stderr).To(ContainSubstring("Warning: ignoring DaemonSet-managed Pods: " + ns + "/agent-1\n"))
		Expect(r.Stderr).To(MatchRegexp(`error when evicting pods/"web-[a-z0-9]+" -n "` + ns + `" \(will retry after 5s\): Cannot evict pod as it would violate the pod's disruption budget\.`))
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(n.Spec.Unschedulable).To(BeTrue())
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		Expect(err).NotTo(HaveOccurred())
		Expect(pods.Items).To(HaveLen(2))

		// With room in the budget, the node drains; the DaemonSet's pod stays.
		_, err = client.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"minAvailable":0}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			pdb, err := client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pdb.Status.ObservedGeneration).To(Equal(pdb.Generation))
			g.Expect(pdb.Status.DisruptionsAllowed).To(Equal(int32(2)))
		}).Should(Succeed())
		names := make([]string, 0, 2)
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
		sort.Strings(names)
		r = run(ctx, invocation{}, "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=30s")
		Expect(r.Code).To(Equal(0), "%s", r)
		Expect(r.Stderr).To(Equal("Warning: ignoring DaemonSet-managed Pods: "+ns+"/agent-1\n"), "%s", r)
		out := lines(r.Stdout)
		Expect(out).To(HaveLen(6), "%s", r)
		Expect(out[0]).To(Equal("node/" + node + " already cordoned"))
		Expect(out[5]).To(Equal("node/" + node + " drained"))
		middle := append([]string(nil), out[1:5]...)
		sort.Strings(middle)
		Expect(middle).To(Equal([]string{
			"evicting pod " + ns + "/" + names[0],
			"evicting pod " + ns + "/" + names[1],
			"pod/" + names[0] + " evicted",
			"pod/" + names[1] + " evicted",
		}), strings.Join(out, "\n"))
		for _, name := range names {
			_, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "pod %s: %v", name, err)
		}
		_, err = client.CoreV1().Pods(ns).Get(ctx, "agent-1", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
	})
})
