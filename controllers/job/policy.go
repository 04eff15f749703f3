package job

import (
	"fmt"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// failureVerdict is what the pod failure policy says of one failed pod.
type failureVerdict struct {
	// action is the matching rule's action, nil when no rule matched.
	action *batchv1.PodFailurePolicyAction
	// failJob is the Job's failure message when a FailJob rule matched.
	failJob string
}

// counts tells whether the failure counts towards the backoff limits (all but Ignore).
func (v failureVerdict) counts() bool {
	return v.action == nil || *v.action != batchv1.PodFailurePolicyActionIgnore
}

// matchFailurePolicy applies the Job's pod failure policy to a failed pod: the first rule whose
// exit codes or pod conditions match decides, as upstream's rules are read in order.
func matchFailurePolicy(policy *batchv1.PodFailurePolicy, pod *corev1.Pod) failureVerdict {
	if policy == nil {
		return failureVerdict{}
	}
	for i, rule := range policy.Rules {
		var failJob string
		switch {
		case rule.OnExitCodes != nil:
			cs := matchExitCodes(pod, rule.OnExitCodes)
			if cs == nil {
				continue
			}
			failJob = fmt.Sprintf("Container %s for pod %s/%s failed with exit code %v matching %v rule at index %d",
				cs.Name, pod.Namespace, pod.Name, cs.State.Terminated.ExitCode, rule.Action, i)
		case rule.OnPodConditions != nil:
			cond := matchPodConditions(pod, rule.OnPodConditions)
			if cond == nil {
				continue
			}
			failJob = fmt.Sprintf("Pod %s/%s has condition %v matching %v rule at index %d", pod.Namespace, pod.Name, cond.Type, rule.Action, i)
		default:
			continue
		}
		v := failureVerdict{action: ptr.To(rule.Action)}
		if rule.Action == batchv1.PodFailurePolicyActionFailJob {
			v.failJob = failJob
		}
		return v
	}
	return failureVerdict{}
}

// matchExitCodes is the first terminated container (then init container) with a non-zero exit
// code that the requirement matches.
func matchExitCodes(pod *corev1.Pod, req *batchv1.PodFailurePolicyOnExitCodesRequirement) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses} {
		for i := range list {
			cs := &list[i]
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 || (req.ContainerName != nil && *req.ContainerName != cs.Name) {
				continue
			}
			in := slices.Contains(req.Values, t.ExitCode)
			if (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && in) || (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpNotIn && !in) {
				return cs
			}
		}
	}
	return nil
}

func matchPodConditions(pod *corev1.Pod, patterns []batchv1.PodFailurePolicyOnPodConditionsPattern) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		c := &pod.Status.Conditions[i]
		for _, p := range patterns {
			if c.Type == p.Type && c.Status == p.Status {
				return c
			}
		}
	}
	return nil
}

// matchSuccessPolicy returns the message of the first success policy rule the succeeded indexes
// meet, and whether one is met.
func matchSuccessPolicy(policy *batchv1.SuccessPolicy, completions int, succeeded indexSet) (string, bool) {
	if policy == nil || len(succeeded) == 0 {
		return "", false
	}
	for i, rule := range policy.Rules {
		met := false
		if rule.SucceededIndexes != nil {
			required := parseIndexes(*rule.SucceededIndexes, completions)
			if len(required) == 0 {
				continue
			}
			have := 0
			for _, sp := range required {
				for ix := sp.first; ix <= sp.last; ix++ {
					if succeeded.has(ix) {
						have++
					}
				}
			}
			met = have == required.total() || (rule.SucceededCount != nil && have >= int(*rule.SucceededCount))
		} else if rule.SucceededCount != nil {
			met = succeeded.total() >= int(*rule.SucceededCount)
		}
		if met {
			return fmt.Sprintf("Matched rules at index %d", i), true
		}
	}
	return "", false
}

// Pod failure backoff: a replacement waits 10s after one failure, doubling per consecutive
// failure (20s, 40s, ...) up to upstream's cap of 10 minutes.
const (
	podFailureBackoff    = 10 * time.Second
	maxPodFailureBackoff = 10 * time.Minute
)

// backoff is a Job's record of failures since its last success.
type backoff struct {
	failures    int
	lastFailure time.Time
}

// next folds newly finished pods into the record: a success clears it, except for failures that
// came after the latest success.
func (b backoff) next(succeeded, failed []*corev1.Pod) backoff {
	if len(succeeded) == 0 && len(failed) == 0 {
		return b
	}
	var lastSuccess time.Time
	for _, p := range succeeded {
		if t := finishedAt(p); t.After(lastSuccess) {
			lastSuccess = t
		}
	}
	if len(succeeded) > 0 {
		b = backoff{}
	}
	for _, p := range failed {
		t := finishedAt(p)
		if len(succeeded) > 0 && !t.After(lastSuccess) {
			continue
		}
		b.failures++
		if t.After(b.lastFailure) {
			b.lastFailure = t
		}
	}
	return b
}

// remaining is how long a replacement pod must still wait at now.
func (b backoff) remaining(now time.Time) time.Duration {
	if b.failures == 0 {
		return 0
	}
	d := podFailureBackoff
	for i := 1; i < b.failures && d < maxPodFailureBackoff; i++ {
		d *= 2
	}
	d = min(d, maxPodFailureBackoff)
	return max(d-now.Sub(b.lastFailure), 0)
}

// finishedAt estimates when a pod finished: its containers' latest finish, else the time it went
// not ready, else its deletion (less the grace period), else its creation, as upstream does.
func finishedAt(p *corev1.Pod) time.Time {
	var latest time.Time
	complete := len(p.Status.ContainerStatuses) > 0
	for _, cs := range p.Status.ContainerStatuses {
		t := cs.State.Terminated
		if t == nil || t.FinishedAt.IsZero() {
			complete = false
			break
		}
		if t.FinishedAt.After(latest) {
			latest = t.FinishedAt.Time
		}
	}
	if complete {
		return latest
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	if p.DeletionTimestamp != nil {
		return p.DeletionTimestamp.Add(-time.Duration(ptr.Deref(p.DeletionGracePeriodSeconds, 0)) * time.Second)
	}
	return p.CreationTimestamp.Time
}
