package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

const maxNodeScore = 100

// Weights of the scores in upstream's default profile.
const (
	weightTaintToleration = 3
	weightNodeAffinity    = 2
	weightSpread          = 2
	weightInterPod        = 2
	weightFit             = 1
	weightBalanced        = 1
	weightImageLocality   = 1
)

// score returns each feasible node's weighted total, each score normalised to 0..100 first.
func (s *Scheduler) score(c *cycle, feasible []*nodeInfo) []int64 {
	n := len(feasible)
	totals := make([]int64, n)
	taints := make([]int64, n)
	affinity := make([]int64, n)
	interPod := make([]int64, n)
	spread := make([]float64, n)
	spreadOK := make([]bool, n)
	preferred, _ := nodeaffinity.NewPreferredSchedulingTerms(preferredNodeTerms(c.pi.pod))
	allNodes := len(s.cache.nodeOrder())
	for i, ni := range feasible {
		totals[i] = weightFit*s.fitScore(c.pi, ni) + weightBalanced*balancedScore(c.pi, ni) +
			weightImageLocality*imageLocality(c.pi.pod, ni.images, s.cache.imageNodes, allNodes)
		taints[i] = intolerablePreferNoSchedule(c.pi.pod, ni.node)
		if preferred != nil {
			affinity[i] = preferred.Score(ni.node)
		}
		interPod[i] = c.interPod.score(ni.node)
		if c.spread != nil && len(c.spread.soft) > 0 {
			spread[i], spreadOK[i] = c.spread.score(ni.node)
		}
	}
	// Fewer untolerated PreferNoSchedule taints is better.
	maxTaints := maxOf(taints)
	maxAffinity := maxOf(affinity)
	minInter, maxInter := minOf(interPod), maxOf(interPod)
	minSpread, maxSpread := math.MaxFloat64, 0.0
	for i := range spread {
		if spreadOK[i] {
			minSpread, maxSpread = math.Min(minSpread, spread[i]), math.Max(maxSpread, spread[i])
		}
	}
	for i := range feasible {
		t := int64(maxNodeScore)
		if maxTaints > 0 {
			t = maxNodeScore - taints[i]*maxNodeScore/maxTaints
		}
		a := int64(0)
		if maxAffinity > 0 {
			a = affinity[i] * maxNodeScore / maxAffinity
		}
		ip := int64(0)
		if maxInter > minInter {
			ip = (interPod[i] - minInter) * maxNodeScore / (maxInter - minInter)
		}
		sp := int64(0)
		if c.spread != nil && len(c.spread.soft) > 0 && spreadOK[i] {
			if maxSpread == 0 {
				sp = maxNodeScore
			} else {
				sp = int64(maxNodeScore * (maxSpread + minSpread - spread[i]) / maxSpread)
			}
		}
		totals[i] += weightTaintToleration*t + weightNodeAffinity*a + weightInterPod*ip + weightSpread*sp
	}
	return totals
}

// fitScore is the resource-fit score over CPU and memory: the free share after placing the
// pod (LeastAllocated) or the used share (MostAllocated).
func (s *Scheduler) fitScore(p *podInfo, ni *nodeInfo) int64 {
	share := func(requested, allocatable int64) int64 {
		if allocatable == 0 {
			return 0
		}
		if requested > allocatable {
			if s.opts.ScoringStrategy == MostAllocated {
				return maxNodeScore
			}
			return 0
		}
		if s.opts.ScoringStrategy == MostAllocated {
			return requested * maxNodeScore / allocatable
		}
		return (allocatable - requested) * maxNodeScore / allocatable
	}
	cpu := share(ni.nonZeroCPU+p.nonZeroCPU, ni.allocatable.milliCPU)
	mem := share(ni.nonZeroMemory+p.nonZeroMemory, ni.allocatable.memory)
	return (cpu + mem) / 2
}

// balancedScore favours nodes whose CPU and memory would be used in equal shares.
func balancedScore(p *podInfo, ni *nodeInfo) int64 {
	fraction := func(requested, allocatable int64) float64 {
		if allocatable == 0 {
			return 1
		}
		return math.Min(float64(requested)/float64(allocatable), 1)
	}
	cpu := fraction(ni.nonZeroCPU+p.nonZeroCPU, ni.allocatable.milliCPU)
	mem := fraction(ni.nonZeroMemory+p.nonZeroMemory, ni.allocatable.memory)
	std := math.Abs(cpu-mem) / 2
	return int64((1 - std) * maxNodeScore)
}

func intolerablePreferNoSchedule(pod *corev1.Pod, node *corev1.Node) int64 {
	var tolerations []corev1.Toleration
	for _, t := range pod.Spec.Tolerations {
		if t.Effect == "" || t.Effect == corev1.TaintEffectPreferNoSchedule {
			tolerations = append(tolerations, t)
		}
	}
	var n int64
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule && !corev1helpers.TolerationsTolerateTaint(klog.Background(), tolerations, t, false) {
			n++
		}
	}
	return n
}

func preferredNodeTerms(pod *corev1.Pod) []corev1.PreferredSchedulingTerm {
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil {
		return a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution
	}
	return nil
}

func maxOf(v []int64) int64 {
	m := int64(0)
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func minOf(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

// spreadStateFor resolves the pod's topology spread constraints, or upstream's system
// defaults (3 per node, 5 per zone, both soft) for a pod that has none but belongs to a
// service or controller, and counts the matching pods per domain.
func (s *Scheduler) spreadStateFor(c *cycle, excluded map[types.UID]bool) *spreadState {
	pod := c.pi.pod
	constraints := pod.Spec.TopologySpreadConstraints
	var defaultSelector labels.Selector
	if len(constraints) == 0 {
		defaultSelector = s.defaultSpreadSelector(pod)
		if defaultSelector == nil {
			return nil
		}
		constraints = []corev1.TopologySpreadConstraint{
			{MaxSkew: 3, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.ScheduleAnyway},
			{MaxSkew: 5, TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: corev1.ScheduleAnyway},
		}
	}
	st := &spreadState{}
	for _, tc := range constraints {
		sc := &spreadConstraint{maxSkew: tc.MaxSkew, key: tc.TopologyKey, selector: defaultSelector, counts: map[string]int{},
			honorAffinity: tc.NodeAffinityPolicy == nil || *tc.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor,
			honorTaints:   tc.NodeTaintsPolicy != nil && *tc.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor}
		if tc.MinDomains != nil {
			sc.minDomains = *tc.MinDomains
		}
		if sc.selector == nil {
			sc.selector = labels.Nothing()
			if tc.LabelSelector != nil {
				if sel, err := metav1.LabelSelectorAsSelector(tc.LabelSelector); err == nil {
					sc.selector = sel
				}
			}
			for _, key := range tc.MatchLabelKeys {
				if v, ok := pod.Labels[key]; ok {
					if req, err := labels.NewRequirement(key, "=", []string{v}); err == nil {
						sc.selector = sc.selector.Add(*req)
					}
				}
			}
		}
		sc.selfMatch = sc.selector.Matches(labels.Set(pod.Labels))
		if tc.WhenUnsatisfiable == corev1.DoNotSchedule {
			st.hard = append(st.hard, sc)
		} else {
			st.soft = append(st.soft, sc)
		}
	}
	all := append(append([]*spreadConstraint{}, st.hard...), st.soft...)
	for _, name := range s.cache.nodeOrder() {
		ni := s.cache.nodes[name]
		for _, sc := range all {
			value, ok := ni.node.Labels[sc.key]
			if !ok || !s.countsForSpread(c, sc, ni.node) {
				continue
			}
			n := 0
			for _, p := range ni.pods {
				if p.pod.Namespace == pod.Namespace && p.pod.DeletionTimestamp == nil && !excluded[p.pod.UID] && sc.selector.Matches(labels.Set(p.pod.Labels)) {
					n++
				}
			}
			sc.counts[value] += n
		}
	}
	for _, sc := range st.hard {
		sc.minMatch = math.MaxInt
		for _, n := range sc.counts {
			sc.minMatch = min(sc.minMatch, n)
		}
		if sc.minMatch == math.MaxInt || int32(len(sc.counts)) < sc.minDomains {
			sc.minMatch = 0
		}
	}
	return st
}

// countsForSpread tells whether a node's domain counts for a constraint, per its node
// inclusion policies.
func (s *Scheduler) countsForSpread(c *cycle, sc *spreadConstraint, node *corev1.Node) bool {
	if sc.honorAffinity {
		if ok, _ := c.requiredAffinity.Match(node); !ok {
			return false
		}
	}
	if sc.honorTaints {
		if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, c.pi.pod.Spec.Tolerations, func(t *corev1.Taint) bool {
			return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
		}, false); untolerated {
			return false
		}
	}
	return true
}

// defaultSpreadSelector selects the pods of the services and controllers the pod belongs
// to, or nil when it belongs to none.
func (s *Scheduler) defaultSpreadSelector(pod *corev1.Pod) labels.Selector {
	set := labels.Set{}
	podLabels := labels.Set(pod.Labels)
	if svcs, err := s.services.Services(pod.Namespace).List(labels.Everything()); err == nil {
		for _, svc := range svcs {
			if len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
				for k, v := range svc.Spec.Selector {
					set[k] = v
				}
			}
		}
	}
	selector := labels.SelectorFromSet(set)
	found := len(set) > 0
	if ref := metav1.GetControllerOf(pod); ref != nil {
		var ls *metav1.LabelSelector
		switch ref.Kind {
		case "ReplicaSet":
			if rs, err := s.replicaSets.ReplicaSets(pod.Namespace).Get(ref.Name); err == nil {
				ls = rs.Spec.Selector
			}
		case "StatefulSet":
			if ss, err := s.statefulSets.StatefulSets(pod.Namespace).Get(ref.Name); err == nil {
				ls = ss.Spec.Selector
			}
		case "ReplicationController":
			if rc, err := s.rcs.ReplicationControllers(pod.Namespace).Get(ref.Name); err == nil {
				ls = &metav1.LabelSelector{MatchLabels: rc.Spec.Selector}
			}
		}
		if ls != nil {
			if sel, err := metav1.LabelSelectorAsSelector(ls); err == nil {
				if reqs, ok := sel.Requirements(); ok && len(reqs) > 0 {
					selector = selector.Add(reqs...)
					found = true
				}
			}
		}
	}
	if !found {
		return nil
	}
	return selector
}
