package scheduler

import (
	"context"
	"fmt"
	"math"
	"sort"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

const (
	reasonPreemptionNotHelpful = "Preemption is not helpful for scheduling"
	reasonNoVictims            = "No preemption victims found for incoming pod"
)

// preemptionPlan is what preemption decided for a pod that fits nowhere: the node to make room
// on and the pods to evict there, or a message saying why there is none.
type preemptionPlan struct {
	node    string
	victims []*corev1.Pod
	message string
}

// preempt looks for the node where evicting the fewest, least important lower-priority pods
// lets the pod fit, breaking as few PodDisruptionBudgets as it can, as upstream's default
// preemption does.
// The caller holds the cache's lock.
func (s *Scheduler) preempt(c *cycle, verdicts map[string]verdict, nodeCount int) *preemptionPlan {
	pod := c.pi.pod
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == corev1.PreemptNever {
		return &preemptionPlan{message: "preemption: not eligible due to preemptionPolicy=Never."}
	}
	prio := corev1helpers.PodPriority(pod)
	if ni := s.cache.nodes[pod.Status.NominatedNodeName]; ni != nil {
		for _, p := range ni.pods {
			if p.pod.DeletionTimestamp != nil && corev1helpers.PodPriority(p.pod) < prio && preemptedByScheduler(p.pod) {
				return &preemptionPlan{message: "preemption: not eligible due to a terminating pod on the nominated node."}
			}
		}
	}
	var best *preemptionPlan
	var bestRank [4]int64
	notHelpful, noVictims := 0, 0
	names := make([]string, 0, len(verdicts))
	for name := range verdicts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if verdicts[name].unresolvable {
			notHelpful++
			continue
		}
		victims := s.victimsOn(c, s.cache.nodes[name], prio)
		if len(victims) == 0 {
			noVictims++
			continue
		}
		// Rank: the disruption budgets broken, the highest victim priority, the sum of
		// priorities, then the count; lower is better on each.
		var sum int64
		infos := make([]*podInfo, len(victims))
		for i, v := range victims {
			sum += int64(corev1helpers.PodPriority(v)) + math.MaxInt32 + 1
			infos[i] = &podInfo{pod: v}
		}
		rank := [4]int64{int64(len(s.budgetViolations(infos))), int64(highest(victims)), sum, int64(len(victims))}
		if best == nil || less(rank, bestRank) {
			best, bestRank = &preemptionPlan{node: name, victims: victims}, rank
		}
	}
	if best != nil {
		return best
	}
	return &preemptionPlan{message: fmt.Sprintf("preemption: 0/%d nodes are available: %s.", nodeCount,
		histogram(map[string]int{reasonPreemptionNotHelpful: notHelpful, reasonNoVictims: noVictims}))}
}

func less(a, b [4]int64) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func highest(pods []*corev1.Pod) int32 {
	h := int32(math.MinInt32)
	for _, p := range pods {
		h = max(h, corev1helpers.PodPriority(p))
	}
	return h
}

// victimsOn finds the pods to evict from a node for the pod to fit: all lower-priority pods
// out, then back in, most important first, every one that still leaves room. The victims
// come out most important first; none means the node cannot help.
func (s *Scheduler) victimsOn(c *cycle, ni *nodeInfo, prio int32) []*corev1.Pod {
	trial := ni.emptyCopy()
	var lower []*podInfo
	for _, p := range ni.pods {
		if corev1helpers.PodPriority(p.pod) < prio {
			lower = append(lower, p)
		} else {
			trial.addPod(p)
		}
	}
	removed := map[types.UID]bool{}
	for _, p := range lower {
		removed[p.pod.UID] = true
	}
	if len(lower) == 0 || !s.filter(s.without(c, removed), trial).ok() {
		return nil
	}
	// Pods whose eviction would break a disruption budget are given back first, then the
	// others, the most important first within each group.
	violating := s.budgetViolations(lower)
	sort.Slice(lower, func(i, j int) bool {
		vi, vj := violating[lower[i].pod.UID], violating[lower[j].pod.UID]
		if vi != vj {
			return vi
		}
		return moreImportant(lower[i].pod, lower[j].pod)
	})
	var victims []*corev1.Pod
	for _, p := range lower {
		trial.addPod(p)
		delete(removed, p.pod.UID)
		if !s.filter(s.without(c, removed), trial).ok() {
			trial.removePod(p.pod.UID)
			removed[p.pod.UID] = true
			victims = append(victims, p.pod)
		}
	}
	return victims
}

// budgetViolations marks the pods whose eviction, together with the others', would take a
// PodDisruptionBudget below what it allows.
func (s *Scheduler) budgetViolations(pods []*podInfo) map[types.UID]bool {
	out := map[types.UID]bool{}
	if s.budgets == nil {
		return out
	}
	pdbs, err := s.budgets.List(labels.Everything())
	if err != nil || len(pdbs) == 0 {
		return out
	}
	allowed := map[*policyv1.PodDisruptionBudget]int32{}
	for _, pdb := range pdbs {
		allowed[pdb] = pdb.Status.DisruptionsAllowed
	}
	for _, p := range pods {
		for _, pdb := range pdbs {
			if pdb.Namespace != p.pod.Namespace || pdb.Spec.Selector == nil {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(p.pod.Labels)) {
				continue
			}
			allowed[pdb]--
			if allowed[pdb] < 0 {
				out[p.pod.UID] = true
			}
		}
	}
	return out
}

// moreImportant orders pods by priority, then by how long they have run.
func moreImportant(a, b *corev1.Pod) bool {
	pa, pb := corev1helpers.PodPriority(a), corev1helpers.PodPriority(b)
	if pa != pb {
		return pa > pb
	}
	if a.Status.StartTime == nil || b.Status.StartTime == nil {
		return a.Status.StartTime != nil
	}
	return a.Status.StartTime.Before(b.Status.StartTime)
}

func preemptedByScheduler(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Reason == corev1.PodReasonPreemptionByScheduler {
			return true
		}
	}
	return false
}

// evict carries out a plan: each victim is marked as a disruption target, told why in an
// event, and deleted.
func (s *Scheduler) evict(ctx context.Context, preemptor *corev1.Pod, plan *preemptionPlan) {
	for _, v := range plan.victims {
		cond := corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: corev1.PodReasonPreemptionByScheduler,
			Message: s.opts.SchedulerName + ": preempting to accommodate a higher priority pod", LastTransitionTime: metav1.Now()}
		patch := map[string]any{"status": map[string]any{"conditions": []corev1.PodCondition{cond}}}
		if err := s.patchStatus(ctx, v, patch); err != nil && !apierrors.IsNotFound(err) {
			s.opts.Log.Info("marking preemption victim failed", "pod", v.Namespace+"/"+v.Name, "err", err)
		}
		err := s.client.CoreV1().Pods(v.Namespace).Delete(ctx, v.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &v.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			s.opts.Log.Info("deleting preemption victim failed", "pod", v.Namespace+"/"+v.Name, "err", err)
			continue
		}
		s.recorder.Eventf(v, preemptor, corev1.EventTypeNormal, "Preempted", "Preempting", "Preempted by pod %v on node %v", preemptor.UID, plan.node)
	}
}
