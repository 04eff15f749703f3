package manager

import (
	"sync"
	"time"
)

// expectationsTimeout is how long a controller trusts its own pending creates and deletes
// before looking at its objects again regardless, as upstream's controllers do.
const expectationsTimeout = 5 * time.Minute

// Expectations count, per key, the creates and deletes a controller has issued but not yet seen
// in its informer; a sync that manages children waits until they are seen, so as not to act on
// a stale view. It is safe for concurrent use.
type Expectations struct {
	mu      sync.Mutex // guards pending
	pending map[string]*expectation
}

type expectation struct {
	adds, dels int
	at         time.Time
}

// Expect records that adds creates and dels deletes are about to be issued for key.
func (e *Expectations) Expect(key string, adds, dels int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending == nil {
		e.pending = map[string]*expectation{}
	}
	e.pending[key] = &expectation{adds: adds, dels: dels, at: time.Now()}
}

// Observe records creations and deletions seen (or given up on) for key.
func (e *Expectations) Observe(key string, added, deleted int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.pending[key]; ok {
		x.adds -= added
		x.dels -= deleted
	}
}

// Satisfied tells whether everything expected for key has been seen, or waited for too long.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.pending[key]
	return !ok || (x.adds <= 0 && x.dels <= 0) || time.Since(x.at) > expectationsTimeout
}

// Forget drops what was expected for key.
func (e *Expectations) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.pending, key)
}
