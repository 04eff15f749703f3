package watchcache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/keelson/keelson/apis/scheme"
	"github.com/keelson/keelson/registry/etcd"
	"github.com/keelson/keelson/registry/store"
	"github.com/keelson/keelson/registry/watchcache"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/watch"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	b, err := etcd.StartEmbedded(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	return store.New(b.Client, schema.GroupResource{Resource: "configmaps"}, "configmaps", protobuf.NewSerializer(s, s))
}

func cm(ns, name string) runtime.Object {
	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	obj.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	return obj
}

func startCache(t *testing.T, s *store.Store, opts watchcache.Options) *watchcache.Cache {
	t.Helper()
	c := watchcache.New(s, opts, slog.Default())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := c.WaitFor(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	return c
}

func receive(t *testing.T, w *watchcache.Watcher) watchcache.Event {
	t.Helper()
	select {
	case e, ok := <-w.Events():
		if !ok {
			t.Fatal("watcher closed")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return watchcache.Event{}
}

func TestWatchReplaysFromRevisionAndFollows(t *testing.T) {
	s := newStore(t)
	c := startCache(t, s, watchcache.Options{})
	ctx := context.Background()
	created, err := s.Create(ctx, s.Key("a", "one"), cm("a", "one"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFresh(ctx); err != nil {
		t.Fatal(err)
	}
	rv := created.(*corev1.ConfigMap).ResourceVersion
	var from int64
	fmt.Sscan(rv, &from)
	if _, err := s.Create(ctx, s.Key("a", "two"), cm("a", "two")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, s.Key("b", "other"), cm("b", "other")); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFresh(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(watchcache.WatchOptions{Prefix: s.NamespacePrefix("a"), From: from})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if len(w.Initial) != 1 || w.Initial[0].Key != s.Key("a", "two") || w.Initial[0].Type != watch.Added {
		t.Fatalf("replay = %+v, want the one later event of namespace a", w.Initial)
	}
	if _, err := s.Delete(ctx, s.Key("a", "one"), nil); err != nil {
		t.Fatal(err)
	}
	e := receive(t, w)
	if e.Type != watch.Deleted || e.Key != s.Key("a", "one") || e.Prev == nil {
		t.Fatalf("got %+v, want the deletion of a/one with its previous state", e)
	}
}

func TestWatchFromBeforeTheWindowIsTooOld(t *testing.T) {
	s := newStore(t)
	c := startCache(t, s, watchcache.Options{WindowSize: 3})
	ctx := context.Background()
	for i := range 5 {
		if _, err := s.Create(ctx, s.Key("a", fmt.Sprint(i)), cm("a", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitFresh(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := c.Watch(watchcache.WatchOptions{From: 1})
	var tooOld *watchcache.TooOldError
	if !errors.As(err, &tooOld) {
		t.Fatalf("err = %v, want TooOldError", err)
	}
	// The newest three events are still there.
	w, err := c.Watch(watchcache.WatchOptions{From: c.Revision() - 3})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if len(w.Initial) != 3 {
		t.Fatalf("replayed %d events, want 3", len(w.Initial))
	}
}

// The window grows as events come, keeping them in order, up to its size.
func TestWindowGrowsInOrder(t *testing.T) {
	s := newStore(t)
	c := startCache(t, s, watchcache.Options{WindowSize: 150})
	ctx := context.Background()
	from := c.Revision()
	for i := range 200 {
		if _, err := s.Create(ctx, s.Key("a", fmt.Sprint(i)), cm("a", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitFresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Watch(watchcache.WatchOptions{From: from}); err == nil {
		t.Fatal("the window kept more than its size")
	}
	w, err := c.Watch(watchcache.WatchOptions{From: c.Revision() - 150})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if len(w.Initial) != 150 {
		t.Fatalf("replayed %d events, want 150", len(w.Initial))
	}
	for i := 1; i < len(w.Initial); i++ {
		if w.Initial[i].Revision <= w.Initial[i-1].Revision {
			t.Fatalf("events out of order at %d", i)
		}
	}
}

// A watcher that stops reading is dropped once its buffer fills; the others go on unharmed.
func TestSlowWatcherIsDroppedWithoutStallingOthers(t *testing.T) {
	s := newStore(t)
	c := startCache(t, s, watchcache.Options{WatcherBuffer: 4})
	ctx := context.Background()
	slow, err := c.Watch(watchcache.WatchOptions{From: c.Revision()})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := c.Watch(watchcache.WatchOptions{From: c.Revision()})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Stop()
	const n = 20
	got := make(chan int)
	go func() {
		count := 0
		for range fast.Events() {
			count++
			if count == n {
				break
			}
		}
		got <- count
	}()
	for i := range n {
		if _, err := s.Create(ctx, s.Key("a", fmt.Sprint(i)), cm("a", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case count := <-got:
		if count != n {
			t.Fatalf("fast watcher got %d events, want %d", count, n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fast watcher stalled")
	}
	drained := 0
	for range slow.Events() {
		drained++
	}
	if drained > 4 {
		t.Fatalf("slow watcher held %d events, want at most its buffer of 4", drained)
	}
}

func TestListIsSortedAndConsistentReadSeesLatestWrite(t *testing.T) {
	s := newStore(t)
	c := startCache(t, s, watchcache.Options{})
	ctx := context.Background()
	for _, k := range [][2]string{{"b", "2"}, {"a", "9"}, {"a", "1"}} {
		if _, err := s.Create(ctx, s.Key(k[0], k[1]), cm(k[0], k[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitFresh(ctx); err != nil {
		t.Fatal(err)
	}
	objs, _ := c.List(s.KeyPrefix())
	var names []string
	for _, o := range objs {
		m := o.(*corev1.ConfigMap)
		names = append(names, m.Namespace+"/"+m.Name)
	}
	if fmt.Sprint(names) != "[a/1 a/9 b/2]" {
		t.Fatalf("list = %v", names)
	}
}

// Watchers that ask for bookmarks get them at the cache's revision; the others never do.
func TestBookmarksGoOnlyToWatchersThatAskForThem(t *testing.T) {
	s := newStore(t)
	c := startCache(t, s, watchcache.Options{BookmarkInterval: 50 * time.Millisecond})
	ctx := context.Background()
	with, err := c.Watch(watchcache.WatchOptions{From: c.Revision(), Bookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer with.Stop()
	without, err := c.Watch(watchcache.WatchOptions{From: c.Revision()})
	if err != nil {
		t.Fatal(err)
	}
	defer without.Stop()
	if _, err := s.Create(ctx, s.Key("a", "x"), cm("a", "x")); err != nil {
		t.Fatal(err)
	}
	if e := receive(t, with); e.Type != watch.Added {
		t.Fatalf("first event %v, want the creation", e.Type)
	}
	e := receive(t, with)
	if e.Type != watch.Bookmark || e.Revision < c.Revision() {
		t.Fatalf("got %v at %d, want a bookmark at %d or later", e.Type, e.Revision, c.Revision())
	}
	if e := receive(t, without); e.Type != watch.Added {
		t.Fatalf("got %v, want the creation", e.Type)
	}
	select {
	case e := <-without.Events():
		t.Fatalf("a watcher without bookmarks got %v", e.Type)
	case <-time.After(200 * time.Millisecond):
	}
}
