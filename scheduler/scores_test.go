package scheduler

import (
	"k8s.io/utils/ptr"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func scoreTestNode(cpu, memory string) *nodeInfo {
	ni := newNodeInfo()
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory), corev1.ResourcePods: resource.MustParse("110")}
	ni.setNode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Status: corev1.NodeStatus{Allocatable: alloc}})
	return ni
}

func scoreTestPod(name, cpu, memory string) *podInfo {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name)}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
	if cpu != "" {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)}
	}
	return newPodInfo(p)
}

func TestFitScores(t *testing.T) {
	ni := scoreTestNode("4", "8Gi")
	ni.addPod(scoreTestPod("placed", "1", "2Gi"))
	p := scoreTestPod("new", "1", "2Gi")
	least := (&Scheduler{opts: Options{ScoringStrategy: LeastAllocated}}).fitScore(p, ni)
	most := (&Scheduler{opts: Options{ScoringStrategy: MostAllocated}}).fitScore(p, ni)
	// Half of CPU and memory used once the pod is placed.
	if least != 50 || most != 50 {
		t.Fatalf("least %d, most %d; want 50, 50", least, most)
	}
	ni.addPod(scoreTestPod("more", "1", "2Gi"))
	least = (&Scheduler{opts: Options{ScoringStrategy: LeastAllocated}}).fitScore(p, ni)
	most = (&Scheduler{opts: Options{ScoringStrategy: MostAllocated}}).fitScore(p, ni)
	if least != 25 || most != 75 {
		t.Fatalf("least %d, most %d; want 25, 75", least, most)
	}
}

func TestPodsWithoutRequestsCountAsTheDefaults(t *testing.T) {
	p := scoreTestPod("bare", "", "")
	if p.nonZeroCPU != defaultMilliCPURequest || p.nonZeroMemory != defaultMemoryRequest {
		t.Fatalf("non-zero requests %d, %d", p.nonZeroCPU, p.nonZeroMemory)
	}
	if p.requests.milliCPU != 0 || p.requests.memory != 0 {
		t.Fatalf("requests %+v", p.requests)
	}
}

func TestBalancedAllocationFavoursEvenUse(t *testing.T) {
	even := scoreTestNode("4", "8Gi")
	skewed := scoreTestNode("4", "8Gi")
	skewed.addPod(scoreTestPod("cpu-heavy", "3", "512Mi"))
	p := scoreTestPod("new", "1", "2Gi")
	if e, s := balancedScore(p, even), balancedScore(p, skewed); e != 100 || s >= e {
		t.Fatalf("even %d, skewed %d", e, s)
	}
}

func TestPreferNoScheduleTaintsCount(t *testing.T) {
	node := &corev1.Node{Spec: corev1.NodeSpec{Taints: []corev1.Taint{
		{Key: "a", Effect: corev1.TaintEffectPreferNoSchedule},
		{Key: "b", Effect: corev1.TaintEffectPreferNoSchedule},
		{Key: "c", Effect: corev1.TaintEffectNoSchedule},
	}}}
	pod := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "a", Operator: corev1.TolerationOpExists}}}}
	if n := intolerablePreferNoSchedule(pod, node); n != 1 {
		t.Fatalf("%d untolerated PreferNoSchedule taints, want 1", n)
	}
}

func TestNominatedPodsHoldTheirRoomAgainstLowerPriorities(t *testing.T) {
	c := newClusterCache()
	ni := scoreTestNode("4", "8Gi")
	c.nodes["n"] = ni
	high := scoreTestPod("high", "3", "1Gi").pod
	high.Spec.Priority = ptr.To(int32(100))
	c.nominate(high, "n")
	low := scoreTestPod("low", "2", "1Gi")
	if fitsResources(low, c.withNominated(ni, low.pod)).ok() {
		t.Fatal("a lower-priority pod took the room held for a nominated pod")
	}
	higher := scoreTestPod("higher", "2", "1Gi")
	higher.pod.Spec.Priority = ptr.To(int32(1000))
	if !fitsResources(higher, c.withNominated(ni, higher.pod)).ok() {
		t.Fatal("a higher-priority pod was kept out by a nominated pod")
	}
	if !fitsResources(scoreTestPod("self", "3", "1Gi"), c.withNominated(ni, high)).ok() {
		t.Fatal("the nominated pod was kept out by its own nomination")
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestNormalizedImageName(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                      "docker.io/library/nginx:latest",
		"nginx:1.25":                 "docker.io/library/nginx:1.25",
		"user/app":                   "docker.io/user/app:latest",
		"registry.k8s.io/pause:3.10": "registry.k8s.io/pause:3.10",
		"localhost:5000/x":           "localhost:5000/x:latest",
		"busybox@sha256:abc":         "docker.io/library/busybox@sha256:abc",
	} {
		if got := normalizedImageName(in); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}

func TestImageLocalityFavoursNodesWithTheImage(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1.25"}}}}
	with := &corev1.Node{Status: corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{"docker.io/library/nginx:1.25"}, SizeBytes: 500 * 1024 * 1024}}}}
	without := &corev1.Node{}
	count := map[string]int{"docker.io/library/nginx:1.25": 1}
	w, wo := imageLocality(pod, imagesOf(with), count, 2), imageLocality(pod, imagesOf(without), count, 2)
	if wo != 0 || w <= 0 || w > maxNodeScore {
		t.Fatalf("with %d, without %d", w, wo)
	}
}
