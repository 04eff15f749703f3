package controllers

import (
	"context"
	"sort"
	"strings"
	"time"

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

// createNodes creates Node objects for the spec (and deletes them when it ends): name, labels and
// taints per node, every name prefixed with the namespace so that specs do not share nodes.
func createNodes(ctx context.Context, ns string, nodes ...*corev1.Node) {
	GinkgoHelper()
	for _, n := range nodes {
		n.Name = ns + "-" + n.Name
		_, err := client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		name := n.Name
		DeferCleanup(func(ctx SpecContext) { _ = client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}) })
	}
}

func daemonSetOf(name, nodeLabel string) *appsv1.DaemonSet {
	labels := map[string]string{"ds": name}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{nodeLabel: "yes"},
					Containers:   []corev1.Container{{Name: "c", Image: "busybox:1"}},
				},
			},
		},
	}
}

// daemonPods maps each pod of the DaemonSet to the node it is bound or pinned to.
func daemonPods(ctx context.Context, g Gomega, ns, name string) map[string]corev1.Pod {
	list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "ds=" + name})
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]corev1.Pod{}
	for _, p := range list.Items {
		node := p.Spec.NodeName
		if node == "" {
			node = p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchFields[0].Values[0]
		}
		out[p.Name+"@"+node] = p
	}
	return out
}

func nodesOf(pods map[string]corev1.Pod) []string {
	var nodes []string
	for _, p := range pods {
		nodes = append(nodes, p.Spec.NodeName)
	}
	sort.Strings(nodes)
	return nodes
}

var _ = Describe("DaemonSets", func() {
	var ns, nodeLabel string
	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		nodeLabel = "keelson.test/" + ns
		yes := map[string]string{nodeLabel: "yes"}
		createNodes(ctx, ns,
			&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: yes}},
			// Cordoned: daemon pods tolerate node.kubernetes.io/unschedulable.
			&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b", Labels: yes}, Spec: corev1.NodeSpec{Unschedulable: true,
				Taints: []corev1.Taint{{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}}}},
			&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "tainted", Labels: yes}, Spec: corev1.NodeSpec{
				Taints: []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}}},
			&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "unlabelled"}},
		)
	})

	It("run one pod on each eligible node, pinned by node affinity, and roll a new template out", func(ctx SpecContext) {
		cluster.BindAndRunPods(client, ns)
		_, err := client.AppsV1().DaemonSets(ns).Create(ctx, daemonSetOf("agent", nodeLabel), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			ds, err := client.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ds.Status.ObservedGeneration).To(Equal(ds.Generation))
			g.Expect(ds.Status.DesiredNumberScheduled).To(Equal(int32(2)))
			g.Expect(ds.Status.CurrentNumberScheduled).To(Equal(int32(2)))
			g.Expect(ds.Status.NumberReady).To(Equal(int32(2)))
			g.Expect(ds.Status.NumberAvailable).To(Equal(int32(2)))
			g.Expect(ds.Status.UpdatedNumberScheduled).To(Equal(int32(2)))
			g.Expect(ds.Status.NumberUnavailable).To(BeZero())
			g.Expect(ds.Status.NumberMisscheduled).To(BeZero())
			g.Expect(ds.Annotations).To(HaveKeyWithValue("deprecated.daemonset.template.generation", "1"))
		}).Should(Succeed())
		pods := daemonPods(ctx, Default, ns, "agent")
		Expect(nodesOf(pods)).To(Equal([]string{ns + "-a", ns + "-b"}))
		revs, err := client.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "ds=agent"})
		Expect(err).NotTo(HaveOccurred())
		Expect(revs.Items).To(HaveLen(1))
		firstHash := revs.Items[0].Labels["controller-revision-hash"]
		Expect(revs.Items[0].Name).To(Equal("agent-" + firstHash))
		Expect(revs.Items[0].Revision).To(Equal(int64(1)))
		for _, p := range pods {
			Expect(p.GenerateName).To(Equal("agent-"))
			Expect(p.Labels).To(HaveKeyWithValue("controller-revision-hash", firstHash))
			Expect(p.Labels).To(HaveKeyWithValue("pod-template-generation", "1"))
			Expect(p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms).To(Equal([]corev1.NodeSelectorTerm{{
				MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{p.Spec.NodeName}}},
			}}))
			Expect(p.Spec.Tolerations).To(ConsistOf(
				corev1.Toleration{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
				corev1.Toleration{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
				corev1.Toleration{Key: "node.kubernetes.io/disk-pressure", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
				corev1.Toleration{Key: "node.kubernetes.io/memory-pressure", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
				corev1.Toleration{Key: "node.kubernetes.io/pid-pressure", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
				corev1.Toleration{Key: "node.kubernetes.io/unschedulable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
			))
		}

		var created []string
		for name := range pods {
			created = append(created, "Normal SuccessfulCreate Created pod: "+strings.Split(name, "@")[0])
		}
		Eventually(func() []string { return eventsOf(ctx, ns, "DaemonSet", "agent") }).Should(ContainElements(created))

		_, err = client.AppsV1().DaemonSets(ns).Patch(ctx, "agent", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:2"}]}}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			ds, err := client.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ds.Status.ObservedGeneration).To(Equal(ds.Generation))
			g.Expect(ds.Status.UpdatedNumberScheduled).To(Equal(int32(2)))
			g.Expect(ds.Status.NumberAvailable).To(Equal(int32(2)))
			pods := daemonPods(ctx, g, ns, "agent")
			g.Expect(pods).To(HaveLen(2))
			for _, p := range pods {
				g.Expect(p.Spec.Containers[0].Image).To(Equal("busybox:2"))
				g.Expect(p.Labels).To(HaveKeyWithValue("pod-template-generation", "2"))
				g.Expect(p.Labels["controller-revision-hash"]).NotTo(Equal(firstHash))
			}
			g.Expect(nodesOf(pods)).To(Equal([]string{ns + "-a", ns + "-b"}))
		}).Should(Succeed())
		revs, err = client.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "ds=agent"})
		Expect(err).NotTo(HaveOccurred())
		Expect(revs.Items).To(HaveLen(2))
	})

	It("replace pods one node at a time within maxUnavailable", func(ctx SpecContext) {
		cluster.BindAndRunPods(client, ns)
		_, err := client.AppsV1().DaemonSets(ns).Create(ctx, daemonSetOf("slow", nodeLabel), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			ds, err := client.AppsV1().DaemonSets(ns).Get(ctx, "slow", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ds.Status.NumberAvailable).To(Equal(int32(2)))
		}).Should(Succeed())
		_, err = client.AppsV1().DaemonSets(ns).Patch(ctx, "slow", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:2"}]}}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		// maxUnavailable is 1: at every moment at least one node has a running pod that is not being deleted.
		Eventually(func(g Gomega) {
			running := 0
			updated := 0
			for _, p := range daemonPods(ctx, g, ns, "slow") {
				if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
					running++
					if p.Spec.Containers[0].Image == "busybox:2" {
						updated++
					}
				}
			}
			Expect(running).To(BeNumerically(">=", 1), "more than maxUnavailable pods down")
			g.Expect(updated).To(Equal(2))
		}).WithPolling(20 * time.Millisecond).Should(Succeed())
	})

	It("leave OnDelete pods on the old template until they are deleted", func(ctx SpecContext) {
		cluster.BindAndRunPods(client, ns)
		ds := daemonSetOf("manual", nodeLabel)
		ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
		_, err := client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			ds, err := client.AppsV1().DaemonSets(ns).Get(ctx, "manual", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ds.Status.NumberAvailable).To(Equal(int32(2)))
		}).Should(Succeed())
		_, err = client.AppsV1().DaemonSets(ns).Patch(ctx, "manual", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:2"}]}}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		images := func(g Gomega) map[string]string {
			out := map[string]string{}
			for _, p := range daemonPods(ctx, g, ns, "manual") {
				if p.DeletionTimestamp == nil {
					out[p.Spec.NodeName] = p.Spec.Containers[0].Image
				}
			}
			return out
		}
		Eventually(func(g Gomega) {
			ds, err := client.AppsV1().DaemonSets(ns).Get(ctx, "manual", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ds.Status.ObservedGeneration).To(Equal(ds.Generation))
			g.Expect(ds.Status.UpdatedNumberScheduled).To(BeZero())
		}).Should(Succeed())
		Consistently(images, "500ms").Should(Equal(map[string]string{ns + "-a": "busybox:1", ns + "-b": "busybox:1"}))
		for _, p := range daemonPods(ctx, Default, ns, "manual") {
			if p.Spec.NodeName == ns+"-a" {
				Expect(client.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{})).To(Succeed())
			}
		}
		Eventually(images).Should(Equal(map[string]string{ns + "-a": "busybox:2", ns + "-b": "busybox:1"}))
		Eventually(func(g Gomega) {
			ds, err := client.AppsV1().DaemonSets(ns).Get(ctx, "manual", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ds.Status.UpdatedNumberScheduled).To(Equal(int32(1)))
			g.Expect(ds.Status.NumberAvailable).To(Equal(int32(2)))
		}).Should(Succeed())
	})

	It("replace a daemon pod that failed", func(ctx SpecContext) {
		cluster.BindAndRunPods(client, ns)
		_, err := client.AppsV1().DaemonSets(ns).Create(ctx, daemonSetOf("crash", nodeLabel), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var victim corev1.Pod
		Eventually(func(g Gomega) {
			pods := daemonPods(ctx, g, ns, "crash")
			g.Expect(nodesOf(pods)).To(Equal([]string{ns + "-a", ns + "-b"}))
			for _, p := range pods {
				g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
				if p.Spec.NodeName == ns+"-a" {
					victim = p
				}
			}
		}).Should(Succeed())
		_, err = client.CoreV1().Pods(ns).Patch(ctx, victim.Name, types.MergePatchType, []byte(`{"status":{"phase":"Failed"}}`), metav1.PatchOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			pods := daemonPods(ctx, g, ns, "crash")
			g.Expect(nodesOf(pods)).To(Equal([]string{ns + "-a", ns + "-b"}))
			g.Expect(pods).NotTo(HaveKey(victim.Name + "@" + ns + "-a"))
			for _, p := range pods {
				g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
			}
		}).Should(Succeed())
		Eventually(func() []string { return eventsOf(ctx, ns, "DaemonSet", "crash") }).Should(ContainElement(
			"Warning FailedDaemonPod Found failed daemon pod " + ns + "/" + victim.Name + " on node " + ns + "-a, will try to kill it"))
	})

	It("keep a pod on a node newly tainted NoSchedule as misscheduled, and remove it for NoExecute", func(ctx SpecContext) {
		cluster.BindAndRunPods(client, ns)
		_, err := client.AppsV1().DaemonSets(ns).Create(ctx, daemonSetOf("taint", nodeLabel), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		status := func(g Gomega) appsv1.DaemonSetStatus {
			ds, err := client.AppsV1().DaemonSets(ns).Get(ctx, "taint", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			return ds.Status
		}
		Eventually(func(g Gomega) { g.Expect(status(g).NumberAvailable).To(Equal(int32(2))) }).Should(Succeed())
		taint := func(effect corev1.TaintEffect) {
			_, err := client.CoreV1().Nodes().Patch(ctx, ns+"-a", types.MergePatchType,
				[]byte(`{"spec":{"taints":[{"key":"maintenance","effect":"`+string(effect)+`"}]}}`), metav1.PatchOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		taint(corev1.TaintEffectNoSchedule)
		Consistently(func(g Gomega) []string { return nodesOf(daemonPods(ctx, g, ns, "taint")) }, "500ms").Should(Equal([]string{ns + "-a", ns + "-b"}))
		// A pod that may stay does not by itself resync the status (upstream's node handler
		// leaves such a DaemonSet alone); the next sync counts it as misscheduled.
		_, err = client.AppsV1().DaemonSets(ns).Patch(ctx, "taint", types.MergePatchType, []byte(`{"metadata":{"annotations":{"touched":"yes"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			s := status(g)
			g.Expect(s.DesiredNumberScheduled).To(Equal(int32(1)))
			g.Expect(s.NumberMisscheduled).To(Equal(int32(1)))
			g.Expect(s.CurrentNumberScheduled).To(Equal(int32(1)))
		}).Should(Succeed())
		taint(corev1.TaintEffectNoExecute)
		Eventually(func(g Gomega) {
			g.Expect(nodesOf(daemonPods(ctx, g, ns, "taint"))).To(Equal([]string{ns + "-b"}))
			g.Expect(status(g).NumberMisscheduled).To(BeZero())
		}).Should(Succeed())
	})

	It("start the new pod beside the old one with maxSurge, and delete pods from nodes that no longer qualify", func(ctx SpecContext) {
		cluster.BindAndRunPods(client, ns)
		ds := daemonSetOf("surge", nodeLabel)
		ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType, RollingUpdate: &appsv1.RollingUpdateDaemonSet{
			MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromInt32(1))}}
		_, err := client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			ds, err := client.AppsV1().DaemonSets(ns).Get(ctx, "surge", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ds.Status.NumberAvailable).To(Equal(int32(2)))
		}).Should(Succeed())
		_, err = client.AppsV1().DaemonSets(ns).Patch(ctx, "surge", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:2"}]}}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		// maxUnavailable is 0: every node keeps an available pod throughout.
		Eventually(func(g Gomega) {
			perNode := map[string]int{}
			updated := 0
			for _, p := range daemonPods(ctx, g, ns, "surge") {
				if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
					perNode[p.Spec.NodeName]++
					if p.Spec.Containers[0].Image == "busybox:2" {
						updated++
					}
				}
			}
			Expect(perNode).To(HaveLen(2), "a node was left without a running pod")
			g.Expect(updated).To(Equal(2))
			g.Expect(perNode).To(Equal(map[string]int{ns + "-a": 1, ns + "-b": 1}))
		}).WithPolling(20 * time.Millisecond).Should(Succeed())

		// A node that loses the label loses its pod.
		_, err = client.CoreV1().Nodes().Patch(ctx, ns+"-a", types.MergePatchType, []byte(`{"metadata":{"labels":{"`+nodeLabel+`":null}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			g.Expect(nodesOf(daemonPods(ctx, g, ns, "surge"))).To(Equal([]string{ns + "-b"}))
			ds, err := client.AppsV1().DaemonSets(ns).Get(ctx, "surge", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ds.Status.DesiredNumberScheduled).To(Equal(int32(1)))
			g.Expect(ds.Status.NumberMisscheduled).To(BeZero())
		}).Should(Succeed())
	})
})
