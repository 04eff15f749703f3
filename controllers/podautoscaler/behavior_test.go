package podautoscaler

import (
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
)

func TestLimitWithoutBehavior(t *testing.T) {
	cases := []struct {
		name                         string
		current, desired, minR, maxR int32
		want                         int32
		reason                       string
	}{
		{"within range", 3, 5, 1, 10, 5, "DesiredWithinRange"},
		{"below min", 3, 1, 2, 10, 2, "TooFewReplicas"},
		{"above max", 3, 9, 1, 5, 5, "TooManyReplicas"},
		{"at most double", 3, 9, 1, 10, 6, "ScaleUpLimit"},
		{"at least 4", 1, 9, 1, 10, 4, "ScaleUpLimit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, reason, _ := limitWithoutBehavior(tc.current, tc.desired, tc.minR, tc.maxR)
			if got != tc.want || reason != tc.reason {
				t.Errorf("got %d %s, want %d %s", got, reason, tc.want, tc.reason)
			}
		})
	}
}

// Without behavior, a scale-down takes the highest recommendation of the last 5 minutes.
func TestStabilizeScaleDown(t *testing.T) {
	h := newHistory()
	h.recordInitial("k", 10, now)
	if got := h.stabilize("k", 4, DownscaleStabilizationWindow, now.Add(time.Minute)); got != 10 {
		t.Errorf("a minute later: %d, want 10", got)
	}
	if got := h.stabilize("k", 6, DownscaleStabilizationWindow, now.Add(2*time.Minute)); got != 10 {
		t.Errorf("two minutes later: %d, want 10", got)
	}
	// The first recommendation is out of the window; 4 and 6 remain.
	if got := h.stabilize("k", 2, DownscaleStabilizationWindow, now.Add(5*time.Minute+time.Second)); got != 6 {
		t.Errorf("past the window: %d, want 6", got)
	}
	if n := len(h.recommendations["k"]); n != 3 {
		t.Errorf("%d recommendations kept, want 3 (the expired slot reused)", n)
	}
}

func rules(sel autoscalingv2.ScalingPolicySelect, window int32, policies ...autoscalingv2.HPAScalingPolicy) *autoscalingv2.HPAScalingRules {
	return &autoscalingv2.HPAScalingRules{SelectPolicy: &sel, StabilizationWindowSeconds: &window, Policies: policies}
}

func pods(n, period int32) autoscalingv2.HPAScalingPolicy {
	return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: n, PeriodSeconds: period}
}

func percent(n, period int32) autoscalingv2.HPAScalingPolicy {
	return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: n, PeriodSeconds: period}
}

func TestScalingPolicies(t *testing.T) {
	defaultUp := defaultRules(nil, true)
	defaultDown := defaultRules(nil, false)
	defaultDown.StabilizationWindowSeconds = new(int32)
	cases := []struct {
		name                         string
		up, down                     *autoscalingv2.HPAScalingRules
		current, desired, minR, maxR int32
		want                         int32
		reason                       string
	}{
		{"default scale-up doubles", defaultUp, defaultDown, 5, 20, 1, 50, 10, "ScaleUpLimit"},
		{"default scale-up adds at least 4", defaultUp, defaultDown, 2, 20, 1, 50, 6, "ScaleUpLimit"},
		{"scale-up within the rate", defaultUp, defaultDown, 5, 8, 1, 50, 8, "DesiredWithinRange"},
		{"scale-up to max", defaultUp, defaultDown, 5, 20, 1, 7, 7, "TooManyReplicas"},
		{"Min picks the smaller change", rules(autoscalingv2.MinChangePolicySelect, 0, pods(4, 15), percent(100, 15)), defaultDown, 5, 20, 1, 50, 9, "ScaleUpLimit"},
		{"scale-up disabled", rules(autoscalingv2.DisabledPolicySelect, 0), defaultDown, 5, 20, 1, 50, 5, "ScaleUpLimit"},
		{"default scale-down to min at once", defaultUp, defaultDown, 10, 0, 2, 50, 2, "TooFewReplicas"},
		{"scale-down by half", defaultUp, rules(autoscalingv2.MaxChangePolicySelect, 0, percent(50, 60)), 10, 1, 1, 50, 5, "ScaleDownLimit"},
		{"scale-down Max picks the larger change", defaultUp, rules(autoscalingv2.MaxChangePolicySelect, 0, percent(10, 60), pods(3, 60)), 10, 1, 1, 50, 7, "ScaleDownLimit"},
		{"scale-down Min picks the smaller change", defaultUp, rules(autoscalingv2.MinChangePolicySelect, 0, percent(10, 60), pods(3, 60)), 10, 1, 1, 50, 9, "ScaleDownLimit"},
		{"scale-down disabled", defaultUp, rules(autoscalingv2.DisabledPolicySelect, 0), 10, 1, 1, 50, 10, "ScaleDownLimit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHistory()
			got, reason, _ := h.limitWithBehavior("k", tc.current, tc.desired, tc.minR, tc.maxR, tc.up, tc.down, now)
			if got != tc.want || reason != tc.reason {
				t.Errorf("got %d %s, want %d %s", got, reason, tc.want, tc.reason)
			}
		})
	}
}

// The rate policies count the scaling done within their period.
func TestScalingPoliciesCountRecentScaling(t *testing.T) {
	up := defaultRules(nil, true)
	down := rules(autoscalingv2.MaxChangePolicySelect, 0, pods(2, 60))
	behavior := &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: up, ScaleDown: down}
	h := newHistory()
	h.recordScale(behavior, "k", 5, 10, now)
	// 5s later the period started at 5 replicas: at most 10 (100%) or 9 (+4).
	if got, reason, _ := h.limitWithBehavior("k", 10, 30, 1, 50, up, down, now.Add(5*time.Second)); got != 10 || reason != "ScaleUpLimit" {
		t.Errorf("within the period: %d %s, want 10 ScaleUpLimit", got, reason)
	}
	// Once the period is over, the count may double again.
	if got, _, _ := h.limitWithBehavior("k", 10, 30, 1, 50, up, down, now.Add(16*time.Second)); got != 20 {
		t.Errorf("after the period: %d, want 20", got)
	}
	// A scale-up within the period of a scale-down policy counts against it: 10 replicas
	// 30s after 5 were added started the minute at 5, and 2 pods a minute leave 3.
	if got, _, _ := h.limitWithBehavior("k", 10, 1, 1, 50, up, down, now.Add(30*time.Second)); got != 3 {
		t.Errorf("scale-down after a scale-up: %d, want 3", got)
	}

	h = newHistory()
	h.recordScale(behavior, "k", 10, 8, now)
	// 2 pods per minute: the 2 removed used the minute up.
	if got, _, _ := h.limitWithBehavior("k", 8, 1, 1, 50, up, down, now.Add(30*time.Second)); got != 8 {
		t.Errorf("scale-down within the period: %d, want 8", got)
	}
	if got, _, _ := h.limitWithBehavior("k", 8, 1, 1, 50, up, down, now.Add(61*time.Second)); got != 6 {
		t.Errorf("scale-down after the period: %d, want 6", got)
	}
	// An old event's slot is reused.
	h.recordScale(behavior, "k", 8, 6, now.Add(90*time.Second))
	if n := len(h.downs["k"]); n != 1 {
		t.Errorf("%d scale-down events kept, want 1", n)
	}
}

func TestStabilizationWindows(t *testing.T) {
	up := rules(autoscalingv2.MaxChangePolicySelect, 60, percent(100, 15))
	down := rules(autoscalingv2.MaxChangePolicySelect, 120, percent(100, 15))
	h := newHistory()
	h.recordInitial("k", 5, now)
	// Scale-up waits for the lowest recommendation of the last minute: 5.
	got, reason, _ := h.stabilizeWithBehavior("k", 5, 10, up, down, now.Add(10*time.Second))
	if got != 5 || reason != "ScaleUpStabilized" {
		t.Errorf("scale-up within a minute: %d %s, want 5 ScaleUpStabilized", got, reason)
	}
	got, _, _ = h.stabilizeWithBehavior("k", 5, 10, up, down, now.Add(71*time.Second))
	if got != 10 {
		t.Errorf("scale-up after a minute of 10s: %d, want 10", got)
	}
	// Scale-down takes the highest of the last two minutes: 10.
	got, reason, _ = h.stabilizeWithBehavior("k", 10, 3, up, down, now.Add(80*time.Second))
	if got != 10 || reason != "ScaleDownStabilized" {
		t.Errorf("scale-down within two minutes: %d %s, want 10 ScaleDownStabilized", got, reason)
	}
	got, _, _ = h.stabilizeWithBehavior("k", 10, 3, up, down, now.Add(80*time.Second+2*time.Minute))
	if got != 3 {
		t.Errorf("scale-down after two minutes of 3s: %d, want 3", got)
	}
}

// The controller's normalization sets AbleToScale and ScalingLimited as upstream's.
func TestNormalizeConditions(t *testing.T) {
	c := &controller{hist: newHistory(), downscaleWindow: DownscaleStabilizationWindow}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 10}}
	c.hist.recordInitial("k", 8, now)
	if got := c.normalize(hpa, "k", 8, 2, 1, now.Add(time.Minute)); got != 8 {
		t.Errorf("stabilized scale-down: %d, want 8", got)
	}
	want := map[autoscalingv2.HorizontalPodAutoscalerConditionType][2]string{
		autoscalingv2.AbleToScale:    {"ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"},
		autoscalingv2.ScalingLimited: {"DesiredWithinRange", "the desired count is within the acceptable range"},
	}
	for _, cond := range hpa.Status.Conditions {
		if w := want[cond.Type]; cond.Reason != w[0] || cond.Message != w[1] {
			t.Errorf("%s: %s %q, want %s %q", cond.Type, cond.Reason, cond.Message, w[0], w[1])
		}
	}
	// A behavior without a scale-down window gets the controller's.
	hpa.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{}
	if got := c.normalizeWithBehavior(hpa, "k", 8, 30, 1, now.Add(2*time.Minute)); got != 10 {
		t.Errorf("scale-up: %d, want 10", got)
	}
	for _, cond := range hpa.Status.Conditions {
		if cond.Type == autoscalingv2.ScalingLimited && (cond.Status != corev1.ConditionTrue || cond.Reason != "TooManyReplicas") {
			t.Errorf("ScalingLimited: %s %s", cond.Status, cond.Reason)
		}
		if cond.Type == autoscalingv2.AbleToScale && cond.Reason != "ReadyForNewScale" {
			t.Errorf("AbleToScale: %s", cond.Reason)
		}
	}
	if got := c.normalizeWithBehavior(hpa, "k", 10, 2, 1, now.Add(3*time.Minute)); got != 10 {
		t.Errorf("scale-down within the default window: %d, want 10", got)
	}
}
