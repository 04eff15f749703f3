package scheduler

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func queuedTestPod(name string, priority int32) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name)}, Spec: corev1.PodSpec{Priority: &priority}}
}

func TestQueuePopsByPriorityThenArrival(t *testing.T) {
	q := newQueue()
	q.add(queuedTestPod("low", 0))
	q.add(queuedTestPod("high", 10))
	q.add(queuedTestPod("low-later", 0))
	var order []string
	for range 3 {
		qp, _ := q.pop()
		order = append(order, qp.pod.Name)
		q.done(qp.pod.UID)
	}
	if order[0] != "high" || order[1] != "low" || order[2] != "low-later" {
		t.Fatalf("order %v", order)
	}
}

func TestUnschedulablePodWaitsForAClusterChange(t *testing.T) {
	q := newQueue()
	q.add(queuedTestPod("p", 0))
	qp, cycle := q.pop()
	q.requeue(qp, true, cycle)
	q.flush(time.Now().Add(maxUnschedulableWait - time.Minute))
	if len(q.active) != 0 {
		t.Fatal("an unschedulable pod came back without a change")
	}
	q.clusterChanged()
	// Back off first: one attempt means one second.
	q.flush(time.Now())
	if len(q.active) != 0 {
		t.Fatal("the pod skipped its backoff")
	}
	q.flush(time.Now().Add(initialBackoff))
	if len(q.active) != 1 {
		t.Fatal("the pod did not return after its backoff")
	}
}

func TestAPodThatFailsWhileTheClusterChangesIsNotParked(t *testing.T) {
	q := newQueue()
	q.add(queuedTestPod("p", 0))
	qp, cycle := q.pop()
	q.clusterChanged()
	q.requeue(qp, true, cycle)
	if len(q.unschedulable) != 0 || len(q.backingOff) != 1 {
		t.Fatalf("parked %d, backing off %d", len(q.unschedulable), len(q.backingOff))
	}
}

func TestBackoffDoublesToTenSeconds(t *testing.T) {
	for attempts, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 9: 10 * time.Second} {
		if got := (&queuedPod{attempts: attempts}).backoff(); got != want {
			t.Errorf("attempts %d: %s, want %s", attempts, got, want)
		}
	}
}

func TestNumFeasibleNodesToFind(t *testing.T) {
	for all, want := range map[int]int{50: 50, 100: 100, 500: 230, 1000: 420, 5000: 500, 10000: 500} {
		if got := numFeasibleNodesToFind(all); got != want {
			t.Errorf("%d nodes: %d, want %d", all, got, want)
		}
	}
}

func TestFitErrorMessage(t *testing.T) {
	got := fitErrorMessage(3, "", map[string]int{"Insufficient cpu": 2, reasonUntoleratedTaint: 1},
		&preemptionPlan{message: "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."})
	want := "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if got := fitErrorMessage(0, "", nil, nil); got != "no nodes available to schedule pods" {
		t.Fatal(got)
	}
	got = fitErrorMessage(2, "pod has unbound immediate PersistentVolumeClaims", nil, nil)
	if got != "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling." {
		t.Fatal(got)
	}
}

// The scheduler's own status writes do not send a parked pod round again; a change to the pod
// that may make it fit does.
func TestParkedPodMovesOnlyOnSchedulingChanges(t *testing.T) {
	q := newQueue()
	q.add(queuedTestPod("p", 0))
	qp, cycle := q.pop()
	q.requeue(qp, true, cycle)

	status := qp.pod.DeepCopy()
	status.ResourceVersion = "2"
	status.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse}}
	q.add(status)
	if len(q.unschedulable) != 1 {
		t.Fatal("a status write moved the parked pod")
	}
	relabelled := status.DeepCopy()
	relabelled.Labels = map[string]string{"a": "b"}
	q.add(relabelled)
	if len(q.unschedulable) != 0 {
		t.Fatal("a change to the pod left it parked")
	}
}
