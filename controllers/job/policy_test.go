package job

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestIndexSet(t *testing.T) {
	cases := []struct {
		name        string
		start       string
		completions int
		add         []int
		want        string
		total       int
	}{
		{name: "empty", start: "", completions: 5, want: "", total: 0},
		{name: "two adjacent are written with a comma", start: "", completions: 5, add: []int{3, 2}, want: "2,3", total: 2},
		{name: "three or more are a range", start: "0,1", completions: 5, add: []int{2}, want: "0-2", total: 3},
		{name: "merge bridges a gap", start: "0-1,3-4", completions: 9, add: []int{2, 7}, want: "0-4,7", total: 6},
		{name: "parsing drops indexes beyond completions", start: "1,3-8", completions: 5, want: "1,3,4", total: 3},
		{name: "malformed parts are skipped", start: "x,2", completions: 5, want: "2", total: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := parseIndexes(tc.start, tc.completions).with(tc.add...)
			if got := s.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			if got := s.total(); got != tc.total {
				t.Errorf("total() = %d, want %d", got, tc.total)
			}
		})
	}
	s := parseIndexes("1,3-5", 10)
	for ix, want := range map[int]bool{0: false, 1: true, 2: false, 3: true, 5: true, 6: false} {
		if s.has(ix) != want {
			t.Errorf("has(%d) = %v, want %v", ix, !want, want)
		}
	}
}

func TestFirstPending(t *testing.T) {
	got := firstPending(3, 7, parseIndexes("1,3-5", 7))
	want := []int{0, 2, 6}
	if len(got) != len(want) {
		t.Fatalf("firstPending = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("firstPending = %v, want %v", got, want)
		}
	}
}

func failedPod(exitCode int32, conditions ...corev1.PodConditionType) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodFailed,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exitCode}}}}}}
	for _, c := range conditions {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue})
	}
	return p
}

func TestMatchFailurePolicy(t *testing.T) {
	policy := &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}},
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
		{Action: batchv1.PodFailurePolicyActionCount, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpNotIn, Values: []int32{1}}},
	}}
	cases := []struct {
		name    string
		pod     *corev1.Pod
		action  *batchv1.PodFailurePolicyAction
		counts  bool
		failJob string
	}{
		{name: "a disruption is ignored", pod: failedPod(42, corev1.DisruptionTarget), action: ptr.To(batchv1.PodFailurePolicyActionIgnore), counts: false},
		{name: "exit code 42 fails the Job", pod: failedPod(42), action: ptr.To(batchv1.PodFailurePolicyActionFailJob), counts: true,
			failJob: "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"},
		{name: "NotIn matches other codes", pod: failedPod(3), action: ptr.To(batchv1.PodFailurePolicyActionCount), counts: true},
		{name: "no rule matches", pod: failedPod(1), counts: true},
		{name: "exit code 0 never matches", pod: failedPod(0), counts: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := matchFailurePolicy(policy, tc.pod)
			if !ptr.Equal(v.action, tc.action) || v.counts() != tc.counts || v.failJob != tc.failJob {
				t.Errorf("got action %v counts %v failJob %q; want %v %v %q", ptr.Deref(v.action, ""), v.counts(), v.failJob, ptr.Deref(tc.action, ""), tc.counts, tc.failJob)
			}
		})
	}
}

func TestMatchSuccessPolicy(t *testing.T) {
	policy := &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{
		{SucceededIndexes: ptr.To("0-2"), SucceededCount: ptr.To(int32(2))},
		{SucceededCount: ptr.To(int32(4))},
	}}
	cases := []struct {
		name      string
		succeeded string
		msg       string
	}{
		{name: "nothing succeeded", succeeded: ""},
		{name: "one of the required", succeeded: "0,5"},
		{name: "two of the required", succeeded: "0,2", msg: "Matched rules at index 0"},
		{name: "count alone", succeeded: "3-6", msg: "Matched rules at index 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg, met := matchSuccessPolicy(policy, 10, parseIndexes(tc.succeeded, 10))
			if msg != tc.msg || met != (tc.msg != "") {
				t.Errorf("got %q %v, want %q", msg, met, tc.msg)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	podAt := func(phase corev1.PodPhase, at time.Time) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(at)}}}}}}
	}
	cases := []struct {
		name      string
		start     backoff
		succeeded []*corev1.Pod
		failed    []*corev1.Pod
		want      time.Duration
	}{
		{name: "no failure", want: 0},
		{name: "first failure waits 10s", failed: []*corev1.Pod{podAt(corev1.PodFailed, now.Add(-4*time.Second))}, want: 6 * time.Second},
		{name: "third failure waits 40s", start: backoff{failures: 2}, failed: []*corev1.Pod{podAt(corev1.PodFailed, now)}, want: 40 * time.Second},
		{name: "the wait is capped at 10 minutes", start: backoff{failures: 20}, failed: []*corev1.Pod{podAt(corev1.PodFailed, now)}, want: 10 * time.Minute},
		{name: "a success clears earlier failures", start: backoff{failures: 5, lastFailure: now},
			succeeded: []*corev1.Pod{podAt(corev1.PodSucceeded, now)}, want: 0},
		{name: "failures after the success still count", succeeded: []*corev1.Pod{podAt(corev1.PodSucceeded, now.Add(-time.Minute))},
			failed: []*corev1.Pod{podAt(corev1.PodFailed, now.Add(-2*time.Minute)), podAt(corev1.PodFailed, now)}, want: 10 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.start.next(tc.succeeded, tc.failed).remaining(now); got != tc.want {
				t.Errorf("remaining = %v, want %v", got, tc.want)
			}
		})
	}
}
