package podautoscaler

import (
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// selectorStore holds the pod selector of every autoscaler by namespace, to find pods that
// several autoscalers select. An autoscaler is registered, with a selector that matches
// nothing, when it is seen; its selector is set from its target's scale at each sync.
type selectorStore struct {
	mu sync.RWMutex
	// namespaces maps a namespace to its autoscalers' names and selectors.
	namespaces map[string]map[string]labels.Selector
}

func newSelectorStore() *selectorStore {
	return &selectorStore{namespaces: map[string]map[string]labels.Selector{}}
}

func splitKey(key string) (string, string) {
	ns, name, _ := strings.Cut(key, "/")
	return ns, name
}

// putIfAbsent registers an autoscaler that is not yet known.
func (s *selectorStore) putIfAbsent(key string) {
	ns, name := splitKey(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.namespaces[ns] == nil {
		s.namespaces[ns] = map[string]labels.Selector{}
	}
	if _, ok := s.namespaces[ns][name]; !ok {
		s.namespaces[ns][name] = labels.Nothing()
	}
}

// putIfPresent sets the selector of a registered autoscaler; false if it is not registered
// (it was deleted).
func (s *selectorStore) putIfPresent(key string, sel labels.Selector) bool {
	ns, name := splitKey(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.namespaces[ns][name]; !ok {
		return false
	}
	s.namespaces[ns][name] = sel
	return true
}

func (s *selectorStore) delete(key string) {
	ns, name := splitKey(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.namespaces[ns], name)
	if len(s.namespaces[ns]) == 0 {
		delete(s.namespaces, ns)
	}
}

// matching returns "namespace/name" of the autoscalers that select any of the pods, stopping
// at limit (> 0).
func (s *selectorStore) matching(ns string, pods []*corev1.Pod, limit int) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	found := map[string]bool{}
	seen := map[string]bool{}
	for _, p := range pods {
		set := labels.Set(p.Labels)
		if seen[set.String()] {
			continue
		}
		seen[set.String()] = true
		for name, sel := range s.namespaces[ns] {
			if sel.Matches(set) {
				found[ns+"/"+name] = true
				if limit > 0 && len(found) >= limit {
					return sortedKeys(found)
				}
			}
		}
	}
	return sortedKeys(found)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
