// Package watchcache keeps one resource's objects in memory, fed by one etcd watch, and serves lists
// and watches from there with upstream's resourceVersion semantics.
//
// One goroutine (Run) owns the etcd watch and applies its events in revision order; readers take the
// read lock. Objects held here are shared by every reader and must never be modified.
package watchcache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keelson/keelson/registry/store"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// Event is one change to one object. For a deletion Object is the last state, carrying the
// revision of the deletion.
type Event struct {
	Type     watch.EventType
	Key      string
	Object   runtime.Object
	Prev     runtime.Object
	Revision int64
}

// DefaultWindowSize is how many events a cache keeps by default: enough for clients to resume
// their watches across a burst of thousands of writes (upstream keeps up to about 100,000, or
// 75 seconds' worth).
const DefaultWindowSize = 10000

// Options tune a cache.
type Options struct {
	// WindowSize is how many recent events are kept for watches that resume from an older
	// resourceVersion; older ones get 410 Gone.
	WindowSize int
	// WatcherBuffer is how many events a watcher may fall behind before it is dropped.
	WatcherBuffer int
	// BookmarkInterval is how often watchers that asked for bookmarks get one.
	BookmarkInterval time.Duration
}

// ErrTooOld means the requested revision is older than the event window.
var ErrTooOld = errors.New("watchcache: resource version too old")

// TooOldError carries what was asked and what is still held, for upstream's message.
type TooOldError struct{ Requested, Oldest int64 }

func (e *TooOldError) Error() string {
	return fmt.Sprintf("too old resource version: %d (%d)", e.Requested, e.Oldest)
}
func (e *TooOldError) Unwrap() error { return ErrTooOld }

// Cache is the in-memory copy of one store.
type Cache struct {
	store *store.Store
	opts  Options
	log   *slog.Logger

	// mu guards everything below.
	mu       sync.RWMutex
	ready    bool
	revision int64
	// advanced is closed and replaced whenever revision grows.
	advanced chan struct{}
	objects  map[string]runtime.Object
	// window holds the newest events in a ring; every event with a revision above windowStart is in it.
	window      []Event
	windowHead  int
	windowLen   int
	windowStart int64
	watchers    map[*Watcher]struct{}
	// stall is how long delivery may still wait, in all, for watchers whose buffers are full
	// before it drops them; it refills with time (see wait).
	stall   time.Duration
	stallAt time.Time
}

// Delivery waits at most maxStall at once for full watchers, and earns stallPerSecond of waiting
// per second, as upstream's watch cache budgets its dispatch: a watcher that falls behind in a
// burst catches up, one that stays behind is dropped, and the others are held up little.
const (
	maxStall       = 100 * time.Millisecond
	stallPerSecond = 50 * time.Millisecond
)

// New returns a cache of s; Run fills and feeds it.
func New(s *store.Store, opts Options, log *slog.Logger) *Cache {
	if opts.WindowSize <= 0 {
		opts.WindowSize = DefaultWindowSize
	}
	if opts.WatcherBuffer <= 0 {
		opts.WatcherBuffer = 1000
	}
	if opts.BookmarkInterval <= 0 {
		opts.BookmarkInterval = time.Minute
	}
	return &Cache{
		store:    s,
		opts:     opts,
		log:      log.With("cache", s.Resource().String()),
		advanced: make(chan struct{}),
		objects:  map[string]runtime.Object{},
		window:   make([]Event, min(opts.WindowSize, 64)),
		watchers: map[*Watcher]struct{}{},
	}
}

// Store is the store the cache reads.
func (c *Cache) Store() *store.Store { return c.store }

// Run lists the store, then follows its etcd watch until ctx is done, listing again whenever the
// watch breaks. Watchers open when the cache relists are closed and must resume by themselves.
func (c *Cache) Run(ctx context.Context) {
	bookmarks := time.NewTicker(c.opts.BookmarkInterval)
	defer bookmarks.Stop()
	go func() {
		<-ctx.Done()
		c.mu.Lock()
		c.closeAllLocked()
		c.mu.Unlock()
	}()
	for ctx.Err() == nil {
		rev, err := c.relist(ctx)
		if err != nil {
			c.log.Warn("listing for watch cache", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		c.follow(ctx, rev, bookmarks.C)
	}
}

func (c *Cache) relist(ctx context.Context) (int64, error) {
	page, err := c.store.ListPage(ctx, c.store.KeyPrefix(), "", 0, 0)
	if err != nil {
		return 0, err
	}
	objects := make(map[string]runtime.Object, len(page.Objects))
	for _, o := range page.Objects {
		key, err := c.keyOf(o)
		if err != nil {
			return 0, err
		}
		objects[key] = o
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeAllLocked()
	c.objects = objects
	c.windowHead, c.windowLen = 0, 0
	c.windowStart = page.Revision
	c.ready = true
	c.advanceLocked(page.Revision)
	return page.Revision, nil
}

func (c *Cache) keyOf(obj runtime.Object) (string, error) {
	m, err := metaOf(obj)
	if err != nil {
		return "", err
	}
	return c.store.Key(m.GetNamespace(), m.GetName()), nil
}

// follow applies the etcd watch from rev+1 until it breaks or ctx is done.
func (c *Cache) follow(ctx context.Context, rev int64, bookmarks <-chan time.Time) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := c.store.Client().Watch(wctx, c.store.KeyPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	for {
		select {
		case <-ctx.Done():
			return
		case <-bookmarks:
			c.sendBookmarks()
		case resp, ok := <-ch:
			if !ok {
				return
			}
			if err := resp.Err(); err != nil {
				c.log.Info("etcd watch ended, relisting", "err", err)
				return
			}
			if resp.IsProgressNotify() {
				c.mu.Lock()
				c.advanceLocked(resp.Header.Revision)
				c.mu.Unlock()
				continue
			}
			for _, ev := range resp.Events {
				e, err := c.convert(ev)
				if err != nil {
					c.log.Error("decoding watch event", "key", string(ev.Kv.Key), "err", err)
					continue
				}
				c.apply(e)
			}
		}
	}
}

func (c *Cache) convert(ev *clientv3.Event) (Event, error) {
	e := Event{Key: string(ev.Kv.Key), Revision: ev.Kv.ModRevision}
	if ev.PrevKv != nil {
		prev, err := c.store.Decode(ev.PrevKv.Value, ev.PrevKv.ModRevision)
		if err != nil {
			return e, err
		}
		e.Prev = prev
	}
	switch {
	case ev.Type == clientv3.EventTypeDelete:
		e.Type = watch.Deleted
		if e.Prev == nil {
			return e, fmt.Errorf("deletion without previous value")
		}
		// The last state, stamped with the deletion's revision, as upstream delivers it.
		obj := e.Prev.DeepCopyObject()
		m, err := metaOf(obj)
		if err != nil {
			return e, err
		}
		m.SetResourceVersion(fmt.Sprint(e.Revision))
		e.Object = obj
	default:
		obj, err := c.store.Decode(ev.Kv.Value, ev.Kv.ModRevision)
		if err != nil {
			return e, err
		}
		e.Object = obj
		e.Type = watch.Modified
		if ev.IsCreate() {
			e.Type = watch.Added
		}
	}
	return e, nil
}

func (c *Cache) apply(e Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Type == watch.Deleted {
		delete(c.objects, e.Key)
	} else {
		c.objects[e.Key] = e.Object
	}
	// Append to the ring; it grows up to WindowSize, and when it is full the oldest event falls
	// out and the window starts after it.
	if c.windowLen == len(c.window) && len(c.window) < c.opts.WindowSize {
		grown := make([]Event, min(2*len(c.window), c.opts.WindowSize))
		for i := range c.windowLen {
			grown[i] = c.window[(c.windowHead+i)%len(c.window)]
		}
		c.window, c.windowHead = grown, 0
	}
	size := len(c.window)
	if c.windowLen == size {
		c.windowStart = c.window[c.windowHead].Revision
		c.window[c.windowHead] = e
		c.windowHead = (c.windowHead + 1) % size
	} else {
		c.window[(c.windowHead+c.windowLen)%size] = e
		c.windowLen++
	}
	for w := range c.watchers {
		if strings.HasPrefix(e.Key, w.prefix) {
			w.send(e)
		}
	}
	c.advanceLocked(e.Revision)
}

func (c *Cache) advanceLocked(rev int64) {
	if rev <= c.revision {
		return
	}
	c.revision = rev
	close(c.advanced)
	c.advanced = make(chan struct{})
}

func (c *Cache) sendBookmarks() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for w := range c.watchers {
		if w.bookmarks {
			w.send(Event{Type: watch.Bookmark, Revision: c.revision})
		}
	}
}

// Len is how many objects the cache holds.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.objects)
}

// Revision is the newest revision the cache has seen.
func (c *Cache) Revision() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.revision
}

// WaitFresh waits until the cache has caught up with etcd's current revision, for a consistent
// read. It asks etcd for a progress notification so that a quiet prefix advances too.
func (c *Cache) WaitFresh(ctx context.Context) error {
	rev, err := c.store.CurrentRevision(ctx)
	if err != nil {
		return err
	}
	return c.WaitFor(ctx, rev)
}

// WaitFor waits until the cache has seen revision rev.
func (c *Cache) WaitFor(ctx context.Context, rev int64) error {
	deadline := time.NewTimer(3 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.RLock()
		ready, current, advanced := c.ready, c.revision, c.advanced
		c.mu.RUnlock()
		if ready && current >= rev {
			return nil
		}
		if ready {
			// Progress notifications go to every watch on the client's stream; the error only
			// means this request did not reach etcd, and the wait below retries it.
			_ = c.store.Client().RequestProgress(clientv3.WithRequireLeader(ctx))
		}
		select {
		case <-advanced:
		case <-time.After(20 * time.Millisecond):
		case <-deadline.C:
			return fmt.Errorf("watchcache: %s not at revision %d after 3s (at %d)", c.store.Resource(), rev, current)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// List returns the objects whose keys start with prefix, sorted by key, and the revision they
// are at. The objects are shared: do not modify them.
func (c *Cache) List(prefix string) ([]runtime.Object, int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.listLocked(prefix), c.revision
}

func (c *Cache) listLocked(prefix string) []runtime.Object {
	keys := make([]string, 0, len(c.objects))
	for k := range c.objects {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]runtime.Object, len(keys))
	for i, k := range keys {
		out[i] = c.objects[k]
	}
	return out
}

// Get returns the cached object at key, and the cache's revision.
func (c *Cache) Get(key string) (runtime.Object, bool, int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	o, ok := c.objects[key]
	return o, ok, c.revision
}

// WatchOptions say where a watch starts and what it receives.
type WatchOptions struct {
	// Prefix limits the watch to keys below it (a namespace, or one object's key).
	Prefix string
	// From is the revision after which events are delivered. It is ignored with InitialState.
	From int64
	// InitialState starts the watch with an Added event for every current object, at the cache's
	// revision, instead of replaying history.
	InitialState bool
	// Bookmarks asks for periodic bookmark events.
	Bookmarks bool
}

// Watch registers a watcher. Its Initial events come first, then whatever arrives on Events.
// Revision is the revision the initial state or replay brings the watcher to.
func (c *Cache) Watch(opts WatchOptions) (*Watcher, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		return nil, fmt.Errorf("watchcache: %s is not ready", c.store.Resource())
	}
	w := &Watcher{
		prefix:    opts.Prefix,
		bookmarks: opts.Bookmarks,
		ch:        make(chan Event, c.opts.WatcherBuffer),
		cache:     c,
		Revision:  c.revision,
	}
	if opts.InitialState {
		for _, o := range c.listLocked(opts.Prefix) {
			w.Initial = append(w.Initial, Event{Type: watch.Added, Object: o, Revision: c.revision})
		}
	} else {
		if opts.From < c.windowStart {
			return nil, &TooOldError{Requested: opts.From, Oldest: c.windowStart}
		}
		size := len(c.window)
		for i := 0; i < c.windowLen; i++ {
			e := c.window[(c.windowHead+i)%size]
			if e.Revision > opts.From && strings.HasPrefix(e.Key, opts.Prefix) {
				w.Initial = append(w.Initial, e)
			}
		}
	}
	c.watchers[w] = struct{}{}
	return w, nil
}

func (c *Cache) closeAllLocked() {
	for w := range c.watchers {
		w.closeLocked()
	}
}

// Watcher receives one watch's events. A watcher that falls WatcherBuffer events behind is closed,
// so that one slow client neither stalls the others nor grows memory; it resumes by watching again
// from the last revision it saw.
type Watcher struct {
	prefix    string
	bookmarks bool
	cache     *Cache

	// Initial holds the events to deliver before Events.
	Initial []Event
	// Revision is the revision the watcher stands at after Initial.
	Revision int64

	ch     chan Event
	closed bool // guarded by cache.mu
}

// Events delivers live events; it is closed when the watcher is dropped or stopped.
func (w *Watcher) Events() <-chan Event { return w.ch }

func (w *Watcher) send(e Event) {
	select {
	case w.ch <- e:
		return
	default:
	}
	if e.Type == watch.Bookmark {
		return // a bookmark can be skipped; a change cannot
	}
	c := w.cache
	// The budget is earned with time; it is topped up here, where it is spent, not per event.
	now := time.Now()
	c.stall = min(maxStall, c.stall+time.Duration(float64(now.Sub(c.stallAt))*float64(stallPerSecond)/float64(time.Second)))
	c.stallAt = now
	if c.stall > 0 {
		start := time.Now()
		t := time.NewTimer(c.stall)
		defer t.Stop()
		select {
		case w.ch <- e:
			c.stall -= time.Since(start)
			return
		case <-t.C:
			c.stall = 0
		}
	}
	w.cache.log.Info("dropping a watcher that fell behind", "prefix", w.prefix)
	w.closeLocked()
}

func (w *Watcher) closeLocked() {
	if w.closed {
		return
	}
	w.closed = true
	close(w.ch)
	delete(w.cache.watchers, w)
}

// Stop unregisters the watcher.
func (w *Watcher) Stop() {
	w.cache.mu.Lock()
	defer w.cache.mu.Unlock()
	w.closeLocked()
}
