// Package rest serves the resource URLs of every catalogued resource: get, list, watch, create,
// update, patch, delete and deletecollection, and the status and scale subresources. It runs a
// request in one fixed order: decode, strategy (prepare, validate), admission, store.
package rest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/keelson/keelson/apis/admission/resourcequota"
	"github.com/keelson/keelson/apis/catalogue"
	"github.com/keelson/keelson/apis/connect"
	"github.com/keelson/keelson/apis/printers"
	"github.com/keelson/keelson/apis/request"
	"github.com/keelson/keelson/apis/serviceaccount"
	"github.com/keelson/keelson/registry/store"
	"github.com/keelson/keelson/registry/watchcache"
	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/managedfields"
)

// Config is what the REST layer needs.
type Config struct {
	Catalogue *catalogue.Catalogue
	Scheme    *runtime.Scheme
	Etcd      *clientv3.Client
	Log       *slog.Logger
	// Cache tunes the watch caches.
	Cache watchcache.Options
	// Tokens issues and verifies service-account tokens; nil serves no tokens.
	Tokens *serviceaccount.Issuer
	// ObserveEtcd, if set, is told of every etcd request: operation, resource and duration.
	ObserveEtcd func(operation string, gr schema.GroupResource, d time.Duration)
	// TypeConverter gives managedFields the schema of every kind (from OpenAPI): list-map keys,
	// atomic fields. Nil falls back to a converter that deduces them, which tracks lists whole.
	TypeConverter managedfields.TypeConverter
}

// storage is one etcd prefix with its store and cache; resources that share a prefix share it.
type storage struct {
	store *store.Store
	cache *watchcache.Cache
}

// cached is the object at key as the watch cache last saw it, or nil; writes start from it to
// save a read from etcd.
func (st *storage) cached(key string) runtime.Object {
	if st.cache == nil {
		return nil
	}
	if o, ok, _ := st.cache.Get(key); ok {
		return o
	}
	return nil
}

// API serves resource requests.
type API struct {
	catalogue *catalogue.Catalogue
	scheme    *runtime.Scheme
	codecs    serializer.CodecFactory
	log       *slog.Logger
	storages  map[string]*storage // by etcd prefix
	hooks     map[schema.GroupResource]Hooks
	// warnings are the deprecation warnings of the kinds that have one, worked out once.
	warnings map[schema.GroupVersionKind]string
	printers *printers.Set
	tokens   *serviceaccount.Issuer
	quota    *resourcequota.Admission

	typeConverter managedfields.TypeConverter

	// connect serves the subresources that reach nodes and pods; nil serves them as unavailable.
	connect *connect.Handler

	fieldManagers fieldManagers
}

// New builds the stores and caches of every stored resource in the catalogue.
func New(cfg Config) (*API, error) {
	a := &API{
		catalogue: cfg.Catalogue,
		scheme:    cfg.Scheme,
		codecs:    serializer.NewCodecFactory(cfg.Scheme, serializer.WithStreamingCollectionEncodingToJSON(), serializer.WithStreamingCollectionEncodingToProtobuf()),
		log:       cfg.Log,
		storages:  map[string]*storage{},
		warnings:  map[schema.GroupVersionKind]string{},
		hooks:     map[schema.GroupResource]Hooks{},
		printers:  printers.New(),
		tokens:    cfg.Tokens,

		typeConverter: cfg.TypeConverter,
	}
	a.quota = resourcequota.New(quotaStorage{a})
	codec := protobuf.NewSerializer(cfg.Scheme, cfg.Scheme)
	for _, r := range cfg.Catalogue.Resources() {
		if msg := deprecationWarning(cfg.Scheme, r.GVK()); msg != "" {
			a.warnings[r.GVK()] = msg
		}
		if r.Virtual || a.storages[r.EtcdPrefix] != nil {
			continue
		}
		if !cfg.Scheme.Recognizes(r.StorageGVK()) {
			return nil, fmt.Errorf("rest: %s: kind %s is not in the scheme", r.GroupVersionResource, r.StorageGVK())
		}
		s := store.New(cfg.Etcd, r.GroupResource(), r.EtcdPrefix, codec)
		if cfg.ObserveEtcd != nil {
			gr := r.GroupResource()
			s.SetObserver(func(op string, d time.Duration) { cfg.ObserveEtcd(op, gr, d) })
		}
		a.storages[r.EtcdPrefix] = &storage{store: s, cache: watchcache.New(s, cfg.Cache, cfg.Log)}
	}
	return a, nil
}

// Run feeds every watch cache until ctx is done.
func (a *API) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range a.storages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.cache.Run(ctx)
		}()
	}
	wg.Wait()
}

// WaitReady waits until every cache has its first list.
func (a *API) WaitReady(ctx context.Context) error {
	for _, s := range a.storages {
		if err := s.cache.WaitFor(ctx, 1); err != nil {
			return err
		}
	}
	return nil
}

// Store returns the store of a stored resource, for components of the server that write directly
// (bootstrap objects, allocators).
func (a *API) Store(gr schema.GroupResource) *store.Store {
	if s := a.storageFor(gr); s != nil {
		return s.store
	}
	return nil
}

func (a *API) storageFor(gr schema.GroupResource) *storage {
	for _, r := range a.catalogue.Resources() {
		if r.GroupResource() == gr && !r.Virtual {
			return a.storages[r.EtcdPrefix]
		}
	}
	return nil
}

// Hooks are a resource's steps beyond its strategy: allocation and release of what it holds.
type Hooks struct {
	// BeforeCreate runs after validation and before the object is stored. It may allocate; undo
	// releases what it took if the create then fails. On dry run it must not allocate.
	BeforeCreate func(ctx context.Context, obj runtime.Object, dryRun bool) (undo func(), err error)
	// PrepareUpdate runs before the strategy on an update, with the stored object.
	PrepareUpdate func(obj, old runtime.Object)
	// AfterDelete runs once the object is gone from storage.
	AfterDelete func(ctx context.Context, obj runtime.Object)
}

// Chain runs several BeforeCreate hooks in order, as one; if one fails, what the earlier ones
// took is released.
func Chain(hooks ...func(ctx context.Context, obj runtime.Object, dryRun bool) (func(), error)) func(ctx context.Context, obj runtime.Object, dryRun bool) (func(), error) {
	return func(ctx context.Context, obj runtime.Object, dryRun bool) (func(), error) {
		var undos []func()
		undoAll := func() {
			for i := len(undos) - 1; i >= 0; i-- {
				undos[i]()
			}
		}
		for _, h := range hooks {
			undo, err := h(ctx, obj, dryRun)
			if err != nil {
				undoAll()
				return nil, err
			}
			if undo != nil {
				undos = append(undos, undo)
			}
		}
		return undoAll, nil
	}
}

// SetConnect installs the handler of the subresources that reach nodes and pods (pods/log,
// exec, attach, portforward, the proxies); call before serving.
func (a *API) SetConnect(c *connect.Handler) { a.connect = c }

// SetHooks installs a resource's hooks; call before serving.
func (a *API) SetHooks(gr schema.GroupResource, h Hooks) { a.hooks[gr] = h }

// ServeHTTP handles a resource URL; ok is false when the path is not one.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info, ok := request.From(r)
	if !ok {
		a.writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, ""))
		return
	}
	res := a.catalogue.Lookup(info.GroupVersionResource)
	if res == nil && len(a.catalogue.ForGroupVersion(info.GroupVersionResource.GroupVersion())) == 0 {
		// A group/version nothing serves falls through upstream's handlers to a plain 404,
		// which clients report as "the server could not find the requested resource (get
		// pods.metrics.k8s.io)" (as the HPA controller does without a metrics server).
		http.NotFound(w, r)
		return
	}
	if res == nil {
		a.writeError(w, r, notFoundPath())
		return
	}
	if info.Namespace != "" && !res.Namespaced {
		a.writeError(w, r, notFoundPath())
		return
	}
	verb := info.Verb
	if info.Subresource != "" {
		sub := res.Subresource(info.Subresource)
		if sub == nil {
			a.writeError(w, r, notFoundPath())
			return
		}
		if !contains(sub.Verbs, verb) {
			a.writeError(w, r, methodNotSupported(res, verb))
			return
		}
	} else if !res.HasVerb(verb) {
		a.writeError(w, r, methodNotSupported(res, verb))
		return
	}
	if msg := a.warnings[res.GVK()]; msg != "" {
		w.Header().Add("Warning", "299 - "+strconv.Quote(msg))
	}
	if res.Virtual {
		a.serveVirtual(w, r, res, info)
		return
	}
	h := &handler{API: a, res: res, info: info, st: a.storages[res.EtcdPrefix], rw: w, fieldValidation: metav1.FieldValidationWarn}
	h.serve(w, r)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// notFoundPath is upstream's answer for a URL nothing is served at.
func notFoundPath() error {
	return apierrors.NewGenericServerResponse(http.StatusNotFound, "", schema.GroupResource{}, "", "the server could not find the requested resource", 0, false)
}

func methodNotSupported(res *catalogue.Resource, verb string) error {
	return apierrors.NewMethodNotSupported(res.GroupResource(), verb)
}

// ObjectCounts is the number of stored objects of each resource, as the caches hold them.
func (a *API) ObjectCounts() map[schema.GroupResource]int {
	out := map[schema.GroupResource]int{}
	for _, r := range a.catalogue.Resources() {
		if s := a.storages[r.EtcdPrefix]; s != nil && !r.Virtual {
			out[r.GroupResource()] = s.cache.Len()
		}
	}
	return out
}

// Cached returns the cached objects of a stored resource (all namespaces). They are shared:
// never modify them.
func (a *API) Cached(gr schema.GroupResource) []runtime.Object {
	s := a.storageFor(gr)
	if s == nil {
		return nil
	}
	objs, _ := s.cache.List(s.store.KeyPrefix())
	return objs
}

// CachedObject returns the cached object namespace/name of a stored resource (namespace empty
// for cluster-scoped ones), or nil. It is shared: never modify it.
func (a *API) CachedObject(gr schema.GroupResource, namespace, name string) runtime.Object {
	s := a.storageFor(gr)
	if s == nil {
		return nil
	}
	o, ok, _ := s.cache.Get(s.store.Key(namespace, name))
	if !ok {
		return nil
	}
	return o
}

// CachedIn returns the cached objects of a stored namespaced resource in one namespace. They are
// shared: never modify them.
func (a *API) CachedIn(gr schema.GroupResource, namespace string) []runtime.Object {
	s := a.storageFor(gr)
	if s == nil {
		return nil
	}
	objs, _ := s.cache.List(s.store.NamespacePrefix(namespace))
	return objs
}
