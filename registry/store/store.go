// Package store is the generic object store on etcd v3: upstream's key layout and protobuf envelope,
// resourceVersion as the etcd revision, and optimistic concurrency through etcd transactions.
// It knows nothing of HTTP; errors are apimachinery Status errors a handler can return as they are.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Prefix is the root of every key, as upstream.
const Prefix = "/registry/"

// Store reads and writes one resource's objects under one key prefix.
type Store struct {
	client   *clientv3.Client
	prefix   string
	resource schema.GroupResource
	codec    runtime.Codec
	observe  Observer
}

// Observer is told of every etcd request: its operation (get, create, update, delete, list) and
// how long it took.
type Observer func(operation string, d time.Duration)

// SetObserver installs an observer; call before the store is used.
func (s *Store) SetObserver(o Observer) { s.observe = o }

func (s *Store) observed(operation string, begin time.Time) {
	if s.observe != nil {
		s.observe(operation, time.Since(begin))
	}
}

// New returns a store for resource, keeping its objects under Prefix+etcdPrefix+"/" encoded with codec.
func New(client *clientv3.Client, resource schema.GroupResource, etcdPrefix string, codec runtime.Codec) *Store {
	return &Store{client: client, prefix: Prefix + etcdPrefix + "/", resource: resource, codec: codec}
}

// KeyPrefix is the prefix every key of this store starts with.
func (s *Store) KeyPrefix() string { return s.prefix }

// Client is the etcd client behind the store.
func (s *Store) Client() *clientv3.Client { return s.client }

// Resource is the group/resource the store's errors name.
func (s *Store) Resource() schema.GroupResource { return s.resource }

// Key returns the key of an object; namespace is empty for cluster-scoped objects.
func (s *Store) Key(namespace, name string) string {
	if namespace == "" {
		return s.prefix + name
	}
	return s.prefix + namespace + "/" + name
}

// NamespacePrefix returns the prefix of every key in a namespace (the whole store when empty).
func (s *Store) NamespacePrefix(namespace string) string {
	if namespace == "" {
		return s.prefix
	}
	return s.prefix + namespace + "/"
}

// Decode turns stored bytes into an object carrying revision as its resourceVersion.
func (s *Store) Decode(data []byte, revision int64) (runtime.Object, error) {
	obj, gvk, err := s.codec.Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("store: decoding %s: %w", s.resource, err)
	}
	// Objects carry their apiVersion and kind, so that they encode as they are.
	obj.GetObjectKind().SetGroupVersionKind(*gvk)
	if err := setRevision(obj, revision); err != nil {
		return nil, err
	}
	return obj, nil
}

func (s *Store) encode(obj runtime.Object) ([]byte, error) {
	// The revision is etcd's to give; it is never stored inside the value.
	if err := setRevision(obj, 0); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := s.codec.Encode(obj, &buf); err != nil {
		return nil, fmt.Errorf("store: encoding %s: %w", s.resource, err)
	}
	return buf.Bytes(), nil
}

func setRevision(obj runtime.Object, revision int64) error {
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	if revision == 0 {
		m.SetResourceVersion("")
	} else {
		m.SetResourceVersion(strconv.FormatInt(revision, 10))
	}
	return nil
}

func nameOf(key string) string {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return key[i+1:]
		}
	}
	return key
}

// Get reads one object at the newest revision.
func (s *Store) Get(ctx context.Context, key string) (runtime.Object, error) {
	defer s.observed("get", time.Now())
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, s.etcdError(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, apierrors.NewNotFound(s.resource, nameOf(key))
	}
	return s.Decode(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// Create writes obj at key if nothing is there, and returns it with its new resourceVersion.
func (s *Store) Create(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
	data, err := s.encode(obj)
	if err != nil {
		return nil, err
	}
	defer s.observed("create", time.Now())
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data))).
		Commit()
	if err != nil {
		return nil, s.etcdError(err)
	}
	if !resp.Succeeded {
		return nil, apierrors.NewAlreadyExists(s.resource, nameOf(key))
	}
	if err := setRevision(obj, resp.Header.Revision); err != nil {
		return nil, err
	}
	return obj, nil
}

// UpdateFunc computes the new object from a private copy of the current one. Returning the error of
// a precondition (a resourceVersion mismatch, say) ends the update with that error.
type UpdateFunc func(current runtime.Object) (runtime.Object, error)

// ErrNoChange may be returned by an UpdateFunc to end an update without writing.
var ErrNoChange = errors.New("store: no change")

// Update applies tryUpdate to the current object and writes the result if the object was not
// changed in between; otherwise it reads again and retries. A result that encodes to the same
// bytes is not written, and the current object is returned with its resourceVersion unchanged.
//
// suggestion, if not nil, is the object as a cache last saw it. The first attempt starts from it
// and so saves a read from etcd; it commits only if the object is still at that revision, and any
// other outcome (a conflict, an error from tryUpdate, no change) is decided again on a fresh read.
func (s *Store) Update(ctx context.Context, key string, suggestion runtime.Object, tryUpdate UpdateFunc) (runtime.Object, error) {
	defer s.observed("update", time.Now())
	if suggestion != nil {
		if updated, ok := s.updateSuggested(ctx, key, suggestion, tryUpdate); ok {
			return updated, nil
		}
	}
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, s.etcdError(err)
	}
	for {
		if len(resp.Kvs) == 0 {
			return nil, apierrors.NewNotFound(s.resource, nameOf(key))
		}
		kv := resp.Kvs[0]
		current, err := s.Decode(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, err
		}
		updated, err := tryUpdate(current.DeepCopyObject())
		if errors.Is(err, ErrNoChange) {
			return current, nil
		}
		if err != nil {
			return nil, err
		}
		data, err := s.encode(updated)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(data, kv.Value) {
			return current, nil
		}
		txn, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpPut(key, string(data))).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return nil, s.etcdError(err)
		}
		if txn.Succeeded {
			if err := setRevision(updated, txn.Header.Revision); err != nil {
				return nil, err
			}
			return updated, nil
		}
		// Someone wrote in between: start again from what is there now.
		resp = (*clientv3.GetResponse)(txn.Responses[0].GetResponseRange())
	}
}

// updateSuggested makes the first attempt of an update from a cached object; ok says it wrote.
func (s *Store) updateSuggested(ctx context.Context, key string, suggestion runtime.Object, tryUpdate UpdateFunc) (runtime.Object, bool) {
	m, err := meta.Accessor(suggestion)
	if err != nil {
		return nil, false
	}
	rev, err := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
	if err != nil || rev == 0 {
		return nil, false
	}
	updated, err := tryUpdate(suggestion.DeepCopyObject())
	if err != nil {
		return nil, false
	}
	data, err := s.encode(updated)
	if err != nil {
		return nil, false
	}
	// (encode clears the revision, so it gets a copy: the suggestion belongs to a cache.)
	if old, err := s.encode(suggestion.DeepCopyObject()); err != nil || bytes.Equal(data, old) {
		return nil, false
	}
	txn, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(data))).
		Commit()
	if err != nil || !txn.Succeeded {
		return nil, false
	}
	if err := setRevision(updated, txn.Header.Revision); err != nil {
		return nil, false
	}
	return updated, true
}

// Delete removes the object at key after check accepts the current object, retrying if it changes
// in between. It returns the object as it was, carrying the revision of its deletion.
func (s *Store) Delete(ctx context.Context, key string, check func(current runtime.Object) error) (runtime.Object, error) {
	defer s.observed("delete", time.Now())
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, s.etcdError(err)
	}
	for {
		if len(resp.Kvs) == 0 {
			return nil, apierrors.NewNotFound(s.resource, nameOf(key))
		}
		kv := resp.Kvs[0]
		current, err := s.Decode(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, err
		}
		if check != nil {
			if err := check(current); err != nil {
				return nil, err
			}
		}
		txn, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(key)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return nil, s.etcdError(err)
		}
		if txn.Succeeded {
			if err := setRevision(current, txn.Header.Revision); err != nil {
				return nil, err
			}
			return current, nil
		}
		resp = (*clientv3.GetResponse)(txn.Responses[0].GetResponseRange())
	}
}

// Page is one chunk of a list read from etcd.
type Page struct {
	Objects  []runtime.Object
	Revision int64
	// NextKey is the key to continue from, empty when the range is exhausted.
	NextKey string
}

// ListPage reads up to limit objects (0: all) whose keys lie in [from, end of prefix), at revision
// (0: the newest). A revision that was compacted gives 410 Expired.
func (s *Store) ListPage(ctx context.Context, prefix, from string, revision, limit int64) (*Page, error) {
	if from == "" {
		from = prefix
	}
	opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix))}
	if revision > 0 {
		opts = append(opts, clientv3.WithRev(revision))
	}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(limit))
	}
	defer s.observed("list", time.Now())
	resp, err := s.client.Get(ctx, from, opts...)
	if err != nil {
		return nil, s.etcdError(err)
	}
	page := &Page{Revision: resp.Header.Revision, Objects: make([]runtime.Object, 0, len(resp.Kvs))}
	if revision > 0 {
		page.Revision = revision
	}
	for _, kv := range resp.Kvs {
		obj, err := s.Decode(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, err
		}
		page.Objects = append(page.Objects, obj)
	}
	if resp.More && len(resp.Kvs) > 0 {
		page.NextKey = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return page, nil
}

// CurrentRevision is etcd's newest revision: what a consistent read must at least see.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, s.prefix, clientv3.WithCountOnly(), clientv3.WithLimit(1))
	if err != nil {
		return 0, s.etcdError(err)
	}
	return resp.Header.Revision, nil
}

// ErrCompacted reports a read of history etcd no longer has.
var ErrCompacted = errors.New("store: revision compacted")

func (s *Store) etcdError(err error) error {
	if errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("%w: %v", ErrCompacted, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return apierrors.NewTimeoutError(fmt.Sprintf("etcd request for %s: %v", s.resource, err), 1)
	}
	return apierrors.NewInternalError(fmt.Errorf("etcd: %w", err))
}
