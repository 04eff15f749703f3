package job

import (
	"slices"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// noIndex stands for a pod without a valid completion index.
const noIndex = -1

// span is the closed range of completion indexes [first, last].
type span struct{ first, last int }

// indexSet is a set of completion indexes as ordered, disjoint, non-adjacent spans: the form of
// status.completedIndexes and status.failedIndexes ("1,3-5,7").
type indexSet []span

// parseIndexes reads an index list, keeping only indexes below completions. Malformed parts are
// skipped, as upstream does.
func parseIndexes(s string, completions int) indexSet {
	var out indexSet
	if s == "" {
		return nil
	}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil || first < 0 {
			continue
		}
		if first >= completions {
			break
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil {
				continue
			}
			last = min(last, completions-1)
		}
		out = out.merge(indexSet{{first, last}})
	}
	return out
}

// with returns the set with the given indexes added.
func (s indexSet) with(indexes ...int) indexSet {
	add := make(indexSet, 0, len(indexes))
	sorted := slices.Clone(indexes)
	slices.Sort(sorted)
	for _, ix := range sorted {
		add = append(add, span{ix, ix})
	}
	return s.merge(add)
}

// merge returns the union of two sets.
func (s indexSet) merge(o indexSet) indexSet {
	all := append(slices.Clone(s), o...)
	slices.SortFunc(all, func(a, b span) int { return a.first - b.first })
	var out indexSet
	for _, sp := range all {
		if n := len(out); n > 0 && sp.first <= out[n-1].last+1 {
			out[n-1].last = max(out[n-1].last, sp.last)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// total is how many indexes the set holds.
func (s indexSet) total() int {
	n := 0
	for _, sp := range s {
		n += sp.last - sp.first + 1
	}
	return n
}

// has tells whether ix is in the set.
func (s indexSet) has(ix int) bool {
	i, _ := slices.BinarySearchFunc(s, ix, func(sp span, ix int) int {
		if sp.last < ix {
			return -1
		}
		if sp.first > ix {
			return 1
		}
		return 0
	})
	return i < len(s) && s[i].first <= ix && ix <= s[i].last
}

// String writes the set as upstream does: a span of two is written "a,b", longer ones "a-b".
func (s indexSet) String() string {
	var b strings.Builder
	for _, sp := range s {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(sp.first))
		switch {
		case sp.last == sp.first+1:
			b.WriteByte(',')
			b.WriteString(strconv.Itoa(sp.last))
		case sp.last > sp.first:
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(sp.last))
		}
	}
	return b.String()
}

// firstPending returns up to count indexes below completions that are in none of the taken sets.
func firstPending(count, completions int, taken indexSet) []int {
	var out []int
	for ix := 0; ix < completions && len(out) < count; ix++ {
		if !taken.has(ix) {
			out = append(out, ix)
		}
	}
	return out
}

// completionIndex is the pod's completion index from its annotation, or noIndex.
func completionIndex(p *corev1.Pod) int {
	v, ok := p.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		return noIndex
	}
	ix, err := strconv.Atoi(v)
	if err != nil || ix < 0 {
		return noIndex
	}
	return ix
}

// validIndex is the pod's completion index if it is one of the Job's, else noIndex.
func validIndex(job *batchv1.Job, p *corev1.Pod) int {
	ix := completionIndex(p)
	if ix == noIndex || job.Spec.Completions == nil || ix >= int(*job.Spec.Completions) {
		return noIndex
	}
	return ix
}
