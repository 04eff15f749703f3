package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
)

// topologyPair is one topology domain: a node label key and its value.
type topologyPair struct{ key, value string }

// podTerm is a pod (anti-)affinity term with its selectors parsed.
type podTerm struct {
	key        string
	selector   labels.Selector
	namespaces sets.Set[string]
	// nsSelector selects further namespaces by their labels (nil: none).
	nsSelector labels.Selector
	weight     int64
}

func newPodTerm(owner *corev1.Pod, t *corev1.PodAffinityTerm, weight int32) podTerm {
	pt := podTerm{key: t.TopologyKey, namespaces: sets.New(t.Namespaces...), weight: int64(weight), selector: labels.Nothing()}
	if t.LabelSelector != nil {
		if sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector); err == nil {
			pt.selector = sel
		}
	}
	if t.NamespaceSelector != nil {
		if sel, err := metav1.LabelSelectorAsSelector(t.NamespaceSelector); err == nil {
			pt.nsSelector = sel
		}
	}
	if len(t.Namespaces) == 0 && t.NamespaceSelector == nil {
		pt.namespaces.Insert(owner.Namespace)
	}
	return pt
}

// matches tells whether pod is one the term is about.
func (t *podTerm) matches(pod *corev1.Pod, nsLabels func(string) labels.Set) bool {
	if !t.namespaces.Has(pod.Namespace) && (t.nsSelector == nil || !t.nsSelector.Matches(nsLabels(pod.Namespace))) {
		return false
	}
	return t.selector.Matches(labels.Set(pod.Labels))
}

// podTerms are a pod's required and preferred affinity and anti-affinity terms.
type podTerms struct {
	affinity, antiAffinity                   []podTerm
	preferredAffinity, preferredAntiAffinity []podTerm
}

func termsOf(pod *corev1.Pod) podTerms {
	var pt podTerms
	a := pod.Spec.Affinity
	if a == nil {
		return pt
	}
	if a.PodAffinity != nil {
		for i := range a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			pt.affinity = append(pt.affinity, newPodTerm(pod, &a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution[i], 0))
		}
		for _, w := range a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			pt.preferredAffinity = append(pt.preferredAffinity, newPodTerm(pod, &w.PodAffinityTerm, w.Weight))
		}
	}
	if a.PodAntiAffinity != nil {
		for i := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			pt.antiAffinity = append(pt.antiAffinity, newPodTerm(pod, &a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[i], 0))
		}
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			pt.preferredAntiAffinity = append(pt.preferredAntiAffinity, newPodTerm(pod, &w.PodAffinityTerm, w.Weight))
		}
	}
	return pt
}

func (pt *podTerms) empty() bool {
	return len(pt.affinity)+len(pt.antiAffinity)+len(pt.preferredAffinity)+len(pt.preferredAntiAffinity) == 0
}

// interPodState counts, per topology domain, the placed pods that the incoming pod's terms
// match and the placed pods whose terms match it.
type interPodState struct {
	terms podTerms
	// existingAnti counts domains where a placed pod's required anti-affinity rejects the pod.
	existingAnti map[topologyPair]int
	// affinity counts placed pods matching all the pod's required affinity terms; antiAffinity
	// those matching any of its required anti-affinity terms.
	affinity, antiAffinity map[topologyPair]int
	// selfMatch is whether the pod matches its own affinity terms, which lets the first pod of a
	// group that wants to be together go anywhere.
	selfMatch bool
	// preferred scores domains by the preferred terms in both directions.
	preferred map[topologyPair]int64
}

func (s *Scheduler) interPodStateFor(pod *corev1.Pod, placed []*placedPod) *interPodState {
	st := &interPodState{terms: termsOf(pod), existingAnti: map[topologyPair]int{}, affinity: map[topologyPair]int{},
		antiAffinity: map[topologyPair]int{}, preferred: map[topologyPair]int64{}}
	nsLabels := s.namespaceLabels
	for _, t := range st.terms.affinity {
		st.selfMatch = t.matches(pod, nsLabels)
		if !st.selfMatch {
			break
		}
	}
	for _, pp := range placed {
		nodeLabels := pp.node.Labels
		existing := pp.pi.terms
		for _, t := range existing.antiAffinity {
			if v, ok := nodeLabels[t.key]; ok && t.matches(pod, nsLabels) {
				st.existingAnti[topologyPair{t.key, v}]++
			}
		}
		for _, t := range existing.preferredAffinity {
			if v, ok := nodeLabels[t.key]; ok && t.matches(pod, nsLabels) {
				st.preferred[topologyPair{t.key, v}] += t.weight
			}
		}
		for _, t := range existing.preferredAntiAffinity {
			if v, ok := nodeLabels[t.key]; ok && t.matches(pod, nsLabels) {
				st.preferred[topologyPair{t.key, v}] -= t.weight
			}
		}
		other := pp.pi.pod
		if len(st.terms.affinity) > 0 {
			all := true
			for _, t := range st.terms.affinity {
				all = all && t.matches(other, nsLabels)
			}
			if all {
				for _, t := range st.terms.affinity {
					if v, ok := nodeLabels[t.key]; ok {
						st.affinity[topologyPair{t.key, v}]++
					}
				}
			}
		}
		for _, t := range st.terms.antiAffinity {
			if v, ok := nodeLabels[t.key]; ok && t.matches(other, nsLabels) {
				st.antiAffinity[topologyPair{t.key, v}]++
			}
		}
		for _, t := range st.terms.preferredAffinity {
			if v, ok := nodeLabels[t.key]; ok && t.matches(other, nsLabels) {
				st.preferred[topologyPair{t.key, v}] += t.weight
			}
		}
		for _, t := range st.terms.preferredAntiAffinity {
			if v, ok := nodeLabels[t.key]; ok && t.matches(other, nsLabels) {
				st.preferred[topologyPair{t.key, v}] -= t.weight
			}
		}
	}
	return st
}

// filter checks, in upstream's order, the pod's required affinity, its required anti-affinity,
// then the placed pods' anti-affinity towards it.
func (st *interPodState) filter(node *corev1.Node) verdict {
	for _, t := range st.terms.affinity {
		v, ok := node.Labels[t.key]
		if !ok {
			return unresolvable(reasonAffinity)
		}
		if st.affinity[topologyPair{t.key, v}] == 0 {
			// No pod matches anywhere: the pod may start its group if it matches itself.
			if len(st.affinity) == 0 && st.selfMatch {
				continue
			}
			return unresolvable(reasonAffinity)
		}
	}
	for _, t := range st.terms.antiAffinity {
		if v, ok := node.Labels[t.key]; ok && st.antiAffinity[topologyPair{t.key, v}] > 0 {
			return resolvable(reasonAntiAffinity)
		}
	}
	for pair, n := range st.existingAnti {
		if v, ok := node.Labels[pair.key]; ok && n > 0 && v == pair.value {
			return resolvable(reasonExistingAntiAffinty)
		}
	}
	return fits()
}

// score is the node's raw preferred-terms score: the weights of the domains it belongs to.
func (st *interPodState) score(node *corev1.Node) int64 {
	var total int64
	for pair, w := range st.preferred {
		if node.Labels[pair.key] == pair.value {
			if _, ok := node.Labels[pair.key]; ok {
				total += w
			}
		}
	}
	return total
}

// spreadConstraint is a topology spread constraint with its selector resolved.
type spreadConstraint struct {
	maxSkew    int32
	key        string
	selector   labels.Selector
	minDomains int32
	// honorAffinity and honorTaints say which nodes count as domains
	// (nodeAffinityPolicy, nodeTaintsPolicy).
	honorAffinity, honorTaints bool
	selfMatch                  bool
	counts                     map[string]int
	minMatch                   int
}

// spreadState holds the pod's hard (DoNotSchedule) and soft (ScheduleAnyway) constraints
// with the matching pods counted per domain.
type spreadState struct {
	hard, soft []*spreadConstraint
}

func (st *spreadState) filter(node *corev1.Node) verdict {
	if st == nil {
		return fits()
	}
	for _, c := range st.hard {
		v, ok := node.Labels[c.key]
		if !ok {
			return unresolvable(reasonSpreadMissingLabel)
		}
		self := 0
		if c.selfMatch {
			self = 1
		}
		if c.counts[v]+self-c.minMatch > int(c.maxSkew) {
			return resolvable(reasonSpread)
		}
	}
	return fits()
}

// score is the node's raw spreading score, lower being better: the pods already in its
// domains, weighted by how many domains each constraint has.
func (st *spreadState) score(node *corev1.Node) (float64, bool) {
	var total float64
	for _, c := range st.soft {
		v, ok := node.Labels[c.key]
		if !ok {
			return 0, false
		}
		weight := math.Log(float64(len(c.counts) + 2))
		total += float64(c.counts[v])*weight + float64(c.maxSkew-1)
	}
	return total, true
}
