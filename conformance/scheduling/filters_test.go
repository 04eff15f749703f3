package scheduling

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var _ = Describe("Scheduler filters", func() {
	It("binds a pod to a node with room for its requests, and reports Insufficient cpu when none has", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := newFleet(ctx, 2, func(i int, n *corev1.Node) {
			if i == 1 {
				n.Status.Capacity[corev1.ResourceCPU] = resource.MustParse("8")
				n.Status.Allocatable = n.Status.Capacity
			}
		})
		create(ctx, ns, f.pod("six", "6", nil))
		Expect(scheduled(ctx, ns, "six")).To(Equal(f.names[1]))

		create(ctx, ns, f.pod("nine", "9", nil))
		msg := unschedulable(ctx, ns, "nine")
		Expect(fitMessage(msg, "2 Insufficient cpu")).To(BeTrue(), msg)
		Eventually(func() []string { return events(ctx, ns, "nine", "FailedScheduling") }).WithContext(ctx).Should(ContainElement(msg))
		Expect(events(ctx, ns, "six", "Scheduled")).To(ContainElement(fmt.Sprintf("Successfully assigned %s/six to %s", ns, f.names[1])))
	})

	It("counts pods against the node's pod capacity", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := newFleet(ctx, 1, func(_ int, n *corev1.Node) {
			n.Status.Capacity[corev1.ResourcePods] = resource.MustParse("1")
			n.Status.Allocatable = n.Status.Capacity
		})
		create(ctx, ns, f.pod("first", "", nil))
		scheduled(ctx, ns, "first")
		create(ctx, ns, f.pod("second", "", nil))
		Expect(fitMessage(unschedulable(ctx, ns, "second"), "1 Too many pods")).To(BeTrue())
	})

	It("honours the node selector and required node affinity", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := newFleet(ctx, 3, func(i int, n *corev1.Node) { n.Labels["disk"] = []string{"hdd", "ssd", "nvme"}[i] })
		create(ctx, ns, f.pod("selector", "", func(p *corev1.Pod) { p.Spec.NodeSelector["disk"] = "ssd" }))
		create(ctx, ns, f.pod("affinity", "", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"nvme"}}}}},
			}}}
		}))
		create(ctx, ns, f.pod("nowhere", "", func(p *corev1.Pod) { p.Spec.NodeSelector["disk"] = "tape" }))
		Expect(scheduled(ctx, ns, "selector")).To(Equal(f.names[1]))
		Expect(scheduled(ctx, ns, "affinity")).To(Equal(f.names[2]))
		Expect(fitMessage(unschedulable(ctx, ns, "nowhere"), "node(s) didn't match Pod's node affinity/selector")).To(BeTrue())
	})

	It("keeps pods off nodes whose taints they do not tolerate, and off cordoned nodes", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := newFleet(ctx, 2, func(i int, n *corev1.Node) {
			if i == 0 {
				n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
			} else {
				n.Spec.Unschedulable = true
			}
		})
		create(ctx, ns, f.pod("plain", "", nil))
		msg := unschedulable(ctx, ns, "plain")
		Expect(fitMessage(msg, "1 node(s) had untolerated taint(s)")).To(BeTrue(), msg)
		Expect(msg).To(ContainSubstring("1 node(s) were unschedulable"))

		create(ctx, ns, f.pod("tolerant", "", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
		}))
		Expect(scheduled(ctx, ns, "tolerant")).To(Equal(f.names[0]))

		// Uncordoning the node lets the waiting pod in without any change to the pod.
		_, err := client.CoreV1().Nodes().Patch(ctx, f.names[1], types.MergePatchType, []byte(`{"spec":{"unschedulable":false}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(scheduled(ctx, ns, "plain")).To(Equal(f.names[1]))
	})

	It("does not put two pods wanting the same host port on one node", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := newFleet(ctx, 2, nil)
		withPort := func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: corev1.ProtocolTCP}}
		}
		nodes := map[string]bool{}
		for _, name := range []string{"a", "b"} {
			create(ctx, ns, f.pod(name, "", withPort))
			nodes[scheduled(ctx, ns, name)] = true
		}
		Expect(nodes).To(HaveLen(2))
		create(ctx, ns, f.pod("c", "", withPort))
		Expect(fitMessage(unschedulable(ctx, ns, "c"), "2 node(s) didn't have free ports for the requested pod ports")).To(BeTrue())
	})

	It("honours required pod anti-affinity and affinity", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := newFleet(ctx, 2, nil)
		apart := func(p *corev1.Pod) {
			p.Labels["tier"] = "db"
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "db"}}, TopologyKey: corev1.LabelHostname}}}}
		}
		db1, db2 := f.pod("db1", "", apart), f.pod("db2", "", apart)
		create(ctx, ns, db1)
		create(ctx, ns, db2)
		Expect(scheduled(ctx, ns, "db1")).NotTo(Equal(scheduled(ctx, ns, "db2")))
		// A third db pod is kept out by its own rule first (upstream checks the pod's
		// anti-affinity before the placed pods'); a pod the placed pods' rules select is kept
		// out by theirs.
		create(ctx, ns, f.pod("db3", "", apart))
		msg := unschedulable(ctx, ns, "db3")
		Expect(fitMessage(msg, "2 node(s) didn't match pod anti-affinity rules")).To(BeTrue(), msg)
		create(ctx, ns, f.pod("intruder", "", func(p *corev1.Pod) { p.Labels["tier"] = "db" }))
		msg = unschedulable(ctx, ns, "intruder")
		Expect(fitMessage(msg, "2 node(s) didn't satisfy existing pods anti-affinity rules")).To(BeTrue(), msg)

		// A pod that avoids the db pods finds no node either, by its own rule.
		create(ctx, ns, f.pod("avoider", "", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "db"}}, TopologyKey: corev1.LabelHostname}}}}
		}))
		msg = unschedulable(ctx, ns, "avoider")
		Expect(fitMessage(msg, "2 node(s) didn't match pod anti-affinity rules")).To(BeTrue(), msg)

		create(ctx, ns, f.pod("cache", "", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db2"}}, TopologyKey: corev1.LabelHostname}}}}
		}))
		Expect(scheduled(ctx, ns, "cache")).To(Equal(scheduled(ctx, ns, "db2")))

		create(ctx, ns, f.pod("lonely", "", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "absent"}}, TopologyKey: corev1.LabelHostname}}}}
		}))
		Expect(fitMessage(unschedulable(ctx, ns, "lonely"), "2 node(s) didn't match pod affinity rules")).To(BeTrue())
	})

	It("keeps topology spread within maxSkew across zones, and refuses nodes without the key", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := newFleet(ctx, 3, func(i int, n *corev1.Node) {
			if i < 2 {
				n.Labels[corev1.LabelTopologyZone] = []string{"zone-a", "zone-b"}[i]
			}
		})
		spread := func(p *corev1.Pod) {
			p.Labels["app"] = "web"
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone,
				WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
		}
		perNode := map[string]int{}
		for i := range 4 {
			name := fmt.Sprintf("web-%d", i)
			create(ctx, ns, f.pod(name, "", spread))
			perNode[scheduled(ctx, ns, name)]++
		}
		Expect(perNode).To(Equal(map[string]int{f.names[0]: 2, f.names[1]: 2}))

		// Two more pods pinned to zone-a would skew it by 2. (The pin must not narrow the
		// domains counted, hence nodeAffinityPolicy Ignore.)
		pinned := func(p *corev1.Pod) {
			spread(p)
			ignore := corev1.NodeInclusionPolicyIgnore
			p.Spec.TopologySpreadConstraints[0].NodeAffinityPolicy = &ignore
			p.Spec.NodeSelector[corev1.LabelHostname] = f.names[0]
		}
		create(ctx, ns, f.pod("skewed", "", pinned))
		scheduled(ctx, ns, "skewed")
		create(ctx, ns, f.pod("skewed-2", "", pinned))
		msg := unschedulable(ctx, ns, "skewed-2")
		Expect(fitMessage(msg, "1 node(s) didn't match pod topology spread constraints")).To(BeTrue(), msg)
	})

	It("places a pod whose claim is bound to a local volume on the volume's node only", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := newFleet(ctx, 2, nil)
		pvName := "pv-" + f.group
		_, err := client.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: pvName},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: "/mnt/disk"}},
				NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{f.names[1]}}}}}}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_ = client.CoreV1().PersistentVolumes().Delete(ctx, pvName, metav1.DeleteOptions{})
		})
		_, err = client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{VolumeName: pvName, StorageClassName: new(string),
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		create(ctx, ns, f.pod("user", "", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
		}))
		Expect(scheduled(ctx, ns, "user")).To(Equal(f.names[1]))

		create(ctx, ns, f.pod("elsewhere", "", func(p *corev1.Pod) {
			p.Spec.NodeSelector[corev1.LabelHostname] = f.names[0]
			p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
		}))
		msg := unschedulable(ctx, ns, "elsewhere")
		Expect(msg).To(ContainSubstring("node(s) didn't match PersistentVolume's node affinity"))

		_, err = client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "unbound"},
			Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: new(string), AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		create(ctx, ns, f.pod("waiting", "", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "unbound"}}}}
		}))
		Expect(unschedulable(ctx, ns, "waiting")).To(ContainSubstring("pod has unbound immediate PersistentVolumeClaims"))
	})

	It("holds the kube-scheduler Lease while it schedules", func(ctx SpecContext) {
		lease, err := client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-scheduler", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
		Expect(*lease.Spec.HolderIdentity).NotTo(BeEmpty())
		Expect(lease.Spec.RenewTime.Time).To(BeTemporally("~", time.Now(), 30*time.Second))
	})

	It("leaves pods for another scheduler alone", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		f := newFleet(ctx, 1, nil)
		create(ctx, ns, f.pod("other", "", func(p *corev1.Pod) { p.Spec.SchedulerName = "other-scheduler" }))
		stillPending(ctx, ns, "other")
	})
})
