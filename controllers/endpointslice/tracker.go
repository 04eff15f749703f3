package endpointslice

import (
	"sync"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// deletionExpected marks a slice the controller deleted and expects to see go.
const deletionExpected = -1

// Tracker remembers, per Service (or mirrored Endpoints), the generation of each EndpointSlice the
// controller last wrote, so that a sync can tell that the informer has not caught up with its own
// writes yet and wait rather than act on a stale view, and so that the informer's echo of a write
// does not trigger another sync.
type Tracker struct {
	mu sync.Mutex // guards the maps below
	// generations holds, per owner, the expected generation of each slice by UID.
	generations map[types.NamespacedName]map[types.UID]int64
	// owners holds the UID of each tracked owner, to forget writes made for a former namesake.
	owners map[types.NamespacedName]types.UID
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{generations: map[types.NamespacedName]map[types.UID]int64{}, owners: map[types.NamespacedName]types.UID{}}
}

func ownerOf(s *discoveryv1.EndpointSlice) types.NamespacedName {
	return types.NamespacedName{Namespace: s.Namespace, Name: s.Labels[discoveryv1.LabelServiceName]}
}

// Has tells whether the slice is tracked.
func (t *Tracker) Has(s *discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.generations[ownerOf(s)][s.UID]
	return ok
}

// ShouldSync tells whether a seen slice is news: untracked, or newer than what was written.
func (t *Tracker) ShouldSync(s *discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.generations[ownerOf(s)][s.UID]
	return !ok || s.Generation > g
}

// Stale tells whether the listed slices of an owner lag behind the controller's writes: one is
// older than written or expected deleted, or a written one is missing.
func (t *Tracker) Stale(owner types.NamespacedName, uid types.UID, slices []*discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if was, ok := t.owners[owner]; ok && was != "" && uid != "" && was != uid {
		delete(t.generations, owner)
	}
	t.owners[owner] = uid
	gens, ok := t.generations[owner]
	if !ok {
		return false
	}
	listed := map[types.UID]bool{}
	for _, s := range slices {
		listed[s.UID] = true
		if g, ok := gens[s.UID]; ok && (g == deletionExpected || g > s.Generation) {
			return true
		}
	}
	for uid, g := range gens {
		if g != deletionExpected && !listed[uid] {
			return true
		}
	}
	return false
}

// Update records a slice as written.
func (t *Tracker) Update(s *discoveryv1.EndpointSlice) { t.set(s, s.Generation) }

// ExpectDeletion records a slice as deleted.
func (t *Tracker) ExpectDeletion(s *discoveryv1.EndpointSlice) { t.set(s, deletionExpected) }

func (t *Tracker) set(s *discoveryv1.EndpointSlice, g int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := ownerOf(s)
	if t.generations[o] == nil {
		t.generations[o] = map[types.UID]int64{}
	}
	t.generations[o][s.UID] = g
}

// HandleDeletion forgets a deleted slice and tells whether its deletion was expected.
func (t *Tracker) HandleDeletion(s *discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	gens, ok := t.generations[ownerOf(s)]
	if !ok {
		return true
	}
	g, ok := gens[s.UID]
	delete(gens, s.UID)
	return !ok || g == deletionExpected
}

// Forget drops everything tracked for an owner.
func (t *Tracker) Forget(owner types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.generations, owner)
	delete(t.owners, owner)
}
