package podendpoints

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func readyAt(name string, at time.Time) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)}}}}
}

// The trigger time is the Service's creation at first, then the earliest change since the last
// successful sync; a failed sync leaves it to its retry.
func TestTriggerTimes(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", CreationTimestamp: metav1.NewTime(created)}}
	tt := NewTriggerTimes()
	steps := []struct {
		name   string
		pods   []*corev1.Pod
		commit bool
		want   time.Time
	}{
		{"first sync", nil, true, created},
		{"nothing new", nil, true, time.Time{}},
		{"a pod turns ready", []*corev1.Pod{readyAt("a", created.Add(time.Minute))}, false, created.Add(time.Minute)},
		{"the failed sync's retry", []*corev1.Pod{readyAt("a", created.Add(time.Minute)), readyAt("b", created.Add(2*time.Minute))}, true, created.Add(time.Minute)},
		{"after it", []*corev1.Pod{readyAt("a", created.Add(time.Minute)), readyAt("b", created.Add(2*time.Minute))}, true, time.Time{}},
	}
	for _, s := range steps {
		got, commit := tt.Compute("ns/web", svc, s.pods)
		if !got.Equal(s.want) {
			t.Errorf("%s: trigger time %v, want %v", s.name, got, s.want)
		}
		if s.commit {
			commit()
		}
	}
}
