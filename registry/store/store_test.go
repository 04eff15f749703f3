package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/keelson/keelson/apis/scheme"
	"github.com/keelson/keelson/registry/etcd"
	"github.com/keelson/keelson/registry/store"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
)

func newStore(t *testing.T) (*store.Store, *etcd.Backend) {
	t.Helper()
	b, err := etcd.StartEmbedded(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	return store.New(b.Client, schema.GroupResource{Resource: "configmaps"}, "configmaps", protobuf.NewSerializer(s, s)), b
}

func cm(name string, data map[string]string) *corev1.ConfigMap {
	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Data: data}
	obj.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	return obj
}

func TestKeysAndEnvelopeAreUpstreams(t *testing.T) {
	s, b := newStore(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, s.Key("ns", "a"), cm("a", nil)); err != nil {
		t.Fatal(err)
	}
	resp, err := b.Client.Get(ctx, "/registry/configmaps/ns/a")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("no value at upstream's key: %v", err)
	}
	if v := resp.Kvs[0].Value; string(v[:4]) != "k8s\x00" {
		t.Fatalf("value starts %q, want the protobuf envelope k8s\\x00", v[:4])
	}
	got, err := s.Get(ctx, s.Key("ns", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if rv := got.(*corev1.ConfigMap).ResourceVersion; rv != fmt.Sprint(resp.Kvs[0].ModRevision) {
		t.Fatalf("resourceVersion %s, want the mod revision %d", rv, resp.Kvs[0].ModRevision)
	}
}

func TestCreateIsOnlyIfAbsent(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, s.Key("ns", "a"), cm("a", map[string]string{"v": "1"})); err != nil {
		t.Fatal(err)
	}
	_, err := s.Create(ctx, s.Key("ns", "a"), cm("a", map[string]string{"v": "2"}))
	if !apierrors.IsAlreadyExists(err) {
		t.Fatalf("err = %v, want AlreadyExists", err)
	}
	got, _ := s.Get(ctx, s.Key("ns", "a"))
	if got.(*corev1.ConfigMap).Data["v"] != "1" {
		t.Fatal("the second create overwrote the first")
	}
}

// Concurrent read-modify-write updates are retried on conflict inside the store, so none is lost,
// even when every writer starts from the same soon-stale suggestion, as from a cache.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	created, err := s.Create(ctx, s.Key("ns", "counter"), cm("counter", map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	const writers = 10
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			suggestion := created
			if i%2 == 0 {
				suggestion = nil
			}
			_, err := s.Update(ctx, s.Key("ns", "counter"), suggestion, func(cur runtime.Object) (runtime.Object, error) {
				c := cur.(*corev1.ConfigMap)
				if c.Data == nil {
					c.Data = map[string]string{}
				}
				c.Data[fmt.Sprint(i)] = "x"
				return c, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ := s.Get(ctx, s.Key("ns", "counter"))
	if n := len(got.(*corev1.ConfigMap).Data); n != writers {
		t.Fatalf("%d writes survived, want %d", n, writers)
	}
}

func TestUpdateWithoutChangeDoesNotWrite(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	created, _ := s.Create(ctx, s.Key("ns", "a"), cm("a", map[string]string{"v": "1"}))
	same, err := s.Update(ctx, s.Key("ns", "a"), created, func(cur runtime.Object) (runtime.Object, error) { return cur, nil })
	if err != nil {
		t.Fatal(err)
	}
	if same.(*corev1.ConfigMap).ResourceVersion != created.(*corev1.ConfigMap).ResourceVersion {
		t.Fatal("a no-op update wrote a new revision")
	}
}

// An update that is a no-op against a stale suggestion is decided on the current object: here it
// is not a no-op, and a precondition that fails on the stale object holds on the current one.
func TestUpdateDecidesOnTheCurrentObjectWhenTheSuggestionIsStale(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	key := s.Key("ns", "a")
	stale, _ := s.Create(ctx, key, cm("a", map[string]string{"v": "1"}))
	current, err := s.Update(ctx, key, nil, func(cur runtime.Object) (runtime.Object, error) {
		cur.(*corev1.ConfigMap).Data["v"] = "2"
		return cur, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantRV := current.(*corev1.ConfigMap).ResourceVersion
	got, err := s.Update(ctx, key, stale, func(cur runtime.Object) (runtime.Object, error) {
		c := cur.(*corev1.ConfigMap)
		if c.ResourceVersion != wantRV {
			return nil, errors.New("conflict")
		}
		c.Data["v"] = "1"
		return c, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := got.(*corev1.ConfigMap).Data["v"]; v != "1" {
		t.Fatalf("v = %s", v)
	}
}

func TestDeleteChecksTheCurrentObject(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, s.Key("ns", "a"), cm("a", nil)); err != nil {
		t.Fatal(err)
	}
	refuse := errors.New("no")
	if _, err := s.Delete(ctx, s.Key("ns", "a"), func(runtime.Object) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("err = %v", err)
	}
	deleted, err := s.Delete(ctx, s.Key("ns", "a"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if deleted.(*corev1.ConfigMap).Name != "a" {
		t.Fatal("delete did not return the object")
	}
	if _, err := s.Get(ctx, s.Key("ns", "a")); !apierrors.IsNotFound(err) {
		t.Fatalf("err = %v, want NotFound", err)
	}
}

func TestPagesReadOneRevisionUntilCompacted(t *testing.T) {
	s, b := newStore(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := s.Create(ctx, s.Key("ns", fmt.Sprint(i)), cm(fmt.Sprint(i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := s.ListPage(ctx, s.KeyPrefix(), "", 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Objects) != 2 || first.NextKey == "" {
		t.Fatalf("first page: %d objects, next %q", len(first.Objects), first.NextKey)
	}
	if _, err := s.Create(ctx, s.Key("ns", "00-late"), cm("00-late", nil)); err != nil {
		t.Fatal(err)
	}
	rest, err := s.ListPage(ctx, s.KeyPrefix(), first.NextKey, first.Revision, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.Objects) != 3 {
		t.Fatalf("rest of the list at the first page's revision: %d objects, want 3", len(rest.Objects))
	}
	cur, _ := s.CurrentRevision(ctx)
	if _, err := b.Client.Compact(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListPage(ctx, s.KeyPrefix(), first.NextKey, first.Revision, 0); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("err = %v, want ErrCompacted", err)
	}
}
