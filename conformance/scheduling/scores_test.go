package scheduling

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"

	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var _ = Describe("Scheduler scores", func() {
	It("spreads pods to the least allocated node by default", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := newFleet(ctx, 2, nil)
		create(ctx, ns, f.pod("hog", "3", func(p *corev1.Pod) { p.Spec.NodeSelector[corev1.LabelHostname] = f.names[0] }))
		scheduled(ctx, ns, "hog")
		for i := range 3 {
			name := fmt.Sprintf("small-%d", i)
			create(ctx, ns, f.pod(name, "100m", nil))
			Expect(scheduled(ctx, ns, name)).To(Equal(f.names[1]))
		}
	})

	It("prefers nodes matching preferred node affinity", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := newFleet(ctx, 3, func(i int, n *corev1.Node) {
			if i == 2 {
				n.Labels["fast"] = "yes"
			}
		})
		for i := range 3 {
			name := fmt.Sprintf("p-%d", i)
			create(ctx, ns, f.pod(name, "", func(p *corev1.Pod) {
				p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
					Weight: 50, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "fast", Operator: corev1.NodeSelectorOpExists}}}}}}}
			}))
			Expect(scheduled(ctx, ns, name)).To(Equal(f.names[2]))
		}
	})

	It("avoids nodes with PreferNoSchedule taints the pod does not tolerate", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := newFleet(ctx, 2, func(i int, n *corev1.Node) {
			if i == 0 {
				n.Spec.Taints = []corev1.Taint{{Key: "spot", Effect: corev1.TaintEffectPreferNoSchedule}}
			}
		})
		for i := range 3 {
			name := fmt.Sprintf("p-%d", i)
			create(ctx, ns, f.pod(name, "", nil))
			Expect(scheduled(ctx, ns, name)).To(Equal(f.names[1]))
		}
	})

	It("places pods near the pods they prefer and away from those they avoid", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := newFleet(ctx, 3, nil)
		create(ctx, ns, f.pod("anchor", "", nil))
		anchorNode := scheduled(ctx, ns, "anchor")
		term := corev1.PodAffinityTerm{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "anchor"}}, TopologyKey: corev1.LabelHostname}
		create(ctx, ns, f.pod("friend", "", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: term}}}}
		}))
		Expect(scheduled(ctx, ns, "friend")).To(Equal(anchorNode))
		for i := range 2 {
			name := fmt.Sprintf("shy-%d", i)
			create(ctx, ns, f.pod(name, "", func(p *corev1.Pod) {
				p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: term}}}}
			}))
			Expect(scheduled(ctx, ns, name)).NotTo(Equal(anchorNode))
		}
	})

	Context("with a second scheduler that packs pods (MostAllocated)", Ordered, func() {
		BeforeAll(func(ctx SpecContext) {
			if !testCluster.Keelson {
				Skip("runs keelson scheduler beside the cluster's own")
			}
			bin, err := cluster.Binary("keelson", "./cmd/keelson")
			Expect(err).NotTo(HaveOccurred())
			startScheduler(bin, "packer", "MostAllocated")
		})

		It("packs pods onto the fullest node, and only schedules pods that name it", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			f := newFleet(ctx, 3, nil)
			nodes := map[string]int{}
			for i := range 3 {
				name := fmt.Sprintf("packed-%d", i)
				create(ctx, ns, f.pod(name, "1", func(p *corev1.Pod) { p.Spec.SchedulerName = "packer" }))
				nodes[scheduled(ctx, ns, name)]++
			}
			Expect(nodes).To(HaveLen(1))
			Eventually(func() []string { return events(ctx, ns, "packed-0", "Scheduled") }).WithContext(ctx).Should(HaveLen(1))
		})

		It("spreads pods with a ScheduleAnyway constraint even when packing", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			f := newFleet(ctx, 2, nil)
			nodes := map[string]int{}
			for i := range 4 {
				name := "spread-" + strconv.Itoa(i)
				create(ctx, ns, f.pod(name, "100m", func(p *corev1.Pod) {
					p.Labels["app"] = "spread"
					p.Spec.SchedulerName = "packer"
					p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelHostname,
						WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "spread"}}}}
				}))
				nodes[scheduled(ctx, ns, name)]++
			}
			Expect(nodes).To(Equal(map[string]int{f.names[0]: 2, f.names[1]: 2}))
		})
	})
})

// startScheduler runs `keelson scheduler` against the test cluster until the suite ends.
func startScheduler(bin, name, strategy string) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "scheduler", "--kubeconfig", testCluster.Kubeconfig, "--scheduler-name", name, "--scoring-strategy", strategy)
	out := &cluster.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	Expect(cmd.Start()).To(Succeed())
	DeferCleanup(func() {
		cancel()
		_ = cmd.Wait()
		AddReportEntry("scheduler "+name+" log", out.String())
	})
}
