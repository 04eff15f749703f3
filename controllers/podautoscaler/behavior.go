package podautoscaler

import (
	"math"
	"sync"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// Without behavior, one scale-up may at most double the replicas, and reach at least 4.
const (
	scaleUpLimitFactor  = 2.0
	scaleUpLimitMinimum = 4.0
)

type recommendation struct {
	replicas int32
	at       time.Time
}

type scaleEvent struct {
	change   int32 // replicas added or removed, >= 0
	at       time.Time
	outdated bool
}

// history is what the controller remembers of each autoscaler between syncs: its recent
// unstabilized recommendations and its recent scale-ups and scale-downs. Like upstream's, it
// lives in memory only and starts again after a restart or a change of leader.
type history struct {
	mu              sync.Mutex
	recommendations map[string][]recommendation
	ups, downs      map[string][]scaleEvent
}

func newHistory() *history {
	return &history{recommendations: map[string][]recommendation{}, ups: map[string][]scaleEvent{}, downs: map[string][]scaleEvent{}}
}

func (h *history) forget(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.recommendations, key)
	delete(h.ups, key)
	delete(h.downs, key)
}

// recordInitial makes the current replicas the first recommendation of a new autoscaler.
func (h *history) recordInitial(key string, replicas int32, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.recommendations[key] == nil {
		h.recommendations[key] = []recommendation{{replicas, now}}
	}
}

// record stores a recommendation, reusing the slot of one older than the window.
func (h *history) record(key string, oldIndex int, replicas int32, now time.Time) {
	if oldIndex >= 0 {
		h.recommendations[key][oldIndex] = recommendation{replicas, now}
	} else {
		h.recommendations[key] = append(h.recommendations[key], recommendation{replicas, now})
	}
}

// stabilize (no behavior) records the recommendation and returns the highest one of the
// scale-down window.
func (h *history) stabilize(key string, desired int32, window time.Duration, now time.Time) int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	highest, old := desired, -1
	cutoff := now.Add(-window)
	for i, r := range h.recommendations[key] {
		if r.at.Before(cutoff) {
			old = i
		} else if r.replicas > highest {
			highest = r.replicas
		}
	}
	h.record(key, old, desired, now)
	return highest
}

// stabilizeWithBehavior records the recommendation and brings the current replicas within the
// lowest recommendation of the scale-up window and the highest of the scale-down window; it
// returns the result with the reason and message for AbleToScale should it differ from desired.
func (h *history) stabilizeWithBehavior(key string, current, desired int32, up, down *autoscalingv2.HPAScalingRules, now time.Time) (int32, string, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	upCutoff := now.Add(-time.Duration(*up.StabilizationWindowSeconds) * time.Second)
	downCutoff := now.Add(-time.Duration(*down.StabilizationWindowSeconds) * time.Second)
	upRec, downRec, old := desired, desired, -1
	for i, r := range h.recommendations[key] {
		if r.at.After(upCutoff) {
			upRec = min(upRec, r.replicas)
		}
		if r.at.After(downCutoff) {
			downRec = max(downRec, r.replicas)
		}
		if r.at.Before(upCutoff) && r.at.Before(downCutoff) {
			old = i
		}
	}
	result := min(max(current, upRec), downRec)
	h.record(key, old, desired, now)
	if desired >= current {
		return result, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation"
	}
	return result, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"
}

// recordScale remembers a rescale for the rate policies, reusing the slot of an event older
// than the longest policy period.
func (h *history) recordScale(behavior *autoscalingv2.HorizontalPodAutoscalerBehavior, key string, from, to int32, now time.Time) {
	if behavior == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	events, rules, change := h.ups, defaultRules(behavior.ScaleUp, true), to-from
	if to <= from {
		events, rules, change = h.downs, defaultRules(behavior.ScaleDown, false), from-to
	}
	cutoff := now.Add(-time.Duration(longestPeriod(rules)) * time.Second)
	old := -1
	for i := range events[key] {
		if events[key][i].at.Before(cutoff) {
			events[key][i].outdated = true
		}
		if events[key][i].outdated {
			old = i
		}
	}
	e := scaleEvent{change: change, at: now}
	if old >= 0 {
		events[key][old] = e
	} else {
		events[key] = append(events[key], e)
	}
}

func longestPeriod(rules *autoscalingv2.HPAScalingRules) int32 {
	var longest int32
	for _, p := range rules.Policies {
		longest = max(longest, p.PeriodSeconds)
	}
	return longest
}

// changeSince sums the replica changes of the events within the last period seconds.
func changeSince(events []scaleEvent, periodSeconds int32, now time.Time) int32 {
	cutoff := now.Add(-time.Duration(periodSeconds) * time.Second)
	var sum int32
	for _, e := range events {
		if e.at.After(cutoff) {
			sum += e.change
		}
	}
	return sum
}

// limitWithBehavior applies the rate policies and min/max to a stabilized recommendation,
// with ScalingLimited's reason and message.
func (h *history) limitWithBehavior(key string, current, desired, minReplicas, maxReplicas int32, up, down *autoscalingv2.HPAScalingRules, now time.Time) (int32, string, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case desired > current:
		limit := max(scaleUpLimit(current, h.ups[key], h.downs[key], up, now), current)
		allowed, reason, message := maxReplicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
		if maxReplicas > limit {
			allowed, reason, message = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
		}
		if desired > allowed {
			return allowed, reason, message
		}
	case desired < current:
		limit := min(scaleDownLimit(current, h.ups[key], h.downs[key], down, now), current)
		allowed, reason, message := minReplicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
		if minReplicas < limit {
			allowed, reason, message = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
		}
		if desired < allowed {
			return allowed, reason, message
		}
	}
	return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
}

// scaleUpLimit is the most replicas the scale-up policies allow now: each policy from the
// replicas at the start of its period, the policies combined by selectPolicy.
func scaleUpLimit(current int32, ups, downs []scaleEvent, rules *autoscalingv2.HPAScalingRules, now time.Time) int32 {
	if *rules.SelectPolicy == autoscalingv2.DisabledPolicySelect {
		return current
	}
	pick, result := maxInt32, int32(math.MinInt32)
	if *rules.SelectPolicy == autoscalingv2.MinChangePolicySelect {
		pick, result = minInt32, math.MaxInt32
	}
	for _, p := range rules.Policies {
		start := current - changeSince(ups, p.PeriodSeconds, now) + changeSince(downs, p.PeriodSeconds, now)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start + p.Value
		case autoscalingv2.PercentScalingPolicy:
			// Rounded up so that a small target still grows.
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		}
		result = pick(result, proposed)
	}
	return result
}

// scaleDownLimit is the fewest replicas the scale-down policies allow now.
func scaleDownLimit(current int32, ups, downs []scaleEvent, rules *autoscalingv2.HPAScalingRules, now time.Time) int32 {
	if *rules.SelectPolicy == autoscalingv2.DisabledPolicySelect {
		return current
	}
	pick, result := minInt32, int32(math.MaxInt32)
	if *rules.SelectPolicy == autoscalingv2.MinChangePolicySelect {
		pick, result = maxInt32, math.MinInt32
	}
	for _, p := range rules.Policies {
		start := current - changeSince(ups, p.PeriodSeconds, now) + changeSince(downs, p.PeriodSeconds, now)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start - p.Value
		case autoscalingv2.PercentScalingPolicy:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		}
		result = pick(result, proposed)
	}
	return result
}

// limitWithoutBehavior applies min/max and the fixed scale-up limit, with ScalingLimited's
// reason and message.
func limitWithoutBehavior(current, desired, minReplicas, maxReplicas int32) (int32, string, string) {
	upLimit := int32(math.Max(scaleUpLimitFactor*float64(current), scaleUpLimitMinimum))
	allowed, reason, message := maxReplicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
	if maxReplicas > upLimit {
		allowed, reason, message = upLimit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
	}
	switch {
	case desired < minReplicas:
		return minReplicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
	case desired > allowed:
		return allowed, reason, message
	}
	return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
}

// defaultRules fills the unset fields of scaling rules with upstream's API defaults (which the
// API server applies; filled again here so that a server that does not still works).
func defaultRules(rules *autoscalingv2.HPAScalingRules, up bool) *autoscalingv2.HPAScalingRules {
	out := &autoscalingv2.HPAScalingRules{}
	if rules != nil {
		out = rules.DeepCopy()
	}
	if out.SelectPolicy == nil {
		p := autoscalingv2.MaxChangePolicySelect
		out.SelectPolicy = &p
	}
	if out.Policies == nil {
		if up {
			out.Policies = []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
				{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
			}
		} else {
			out.Policies = []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}}
		}
	}
	if out.StabilizationWindowSeconds == nil && up {
		var zero int32
		out.StabilizationWindowSeconds = &zero
	}
	return out
}

func minInt32(a, b int32) int32 { return min(a, b) }
func maxInt32(a, b int32) int32 { return max(a, b) }
