// Package garbagecollector deletes objects whose owners are gone and carries out the foreground
// and orphan deletion policies, as upstream's garbage collector does. It watches the metadata of
// every resource that can be listed, watched and deleted, and keeps a graph of owner references.
package garbagecollector

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
)

// node is one object in the ownership graph.
type node struct {
	gvr       schema.GroupVersionResource
	namespace string
	name      string
	uid       types.UID
	owners    []metav1.OwnerReference
	deleting  bool
	// finalizers that matter to the collector
	orphan, foreground bool
}

type collector struct {
	*manager.Loop
	metadata metadata.Interface
	mapper   meta.RESTMapper

	start func(stop <-chan struct{})
	stop  func()

	// mu guards nodes and dependents.
	mu         sync.Mutex
	nodes      map[types.UID]*node
	dependents map[types.UID]map[types.UID]bool
}

// New builds the collector: a metadata informer per deletable resource.
func New(c *manager.Context) (manager.Controller, error) {
	md, err := metadata.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	disc := memory.NewMemCacheClient(c.Client.Discovery())
	gc := &collector{metadata: md, mapper: restmapper.NewDeferredDiscoveryRESTMapper(disc),
		nodes: map[types.UID]*node{}, dependents: map[types.UID]map[types.UID]bool{}}
	gc.Loop = manager.NewLoop("garbage-collector", 5, c.Log, gc.sync)
	factory := metadatainformer.NewSharedInformerFactory(md, 0)
	resources, err := deletableResources(disc)
	if err != nil {
		return nil, err
	}
	for _, gvr := range resources {
		inf := factory.ForResource(gvr).Informer()
		if _, err := inf.AddEventHandler(gc.handler(gvr)); err != nil {
			return nil, err
		}
		gc.Synced = append(gc.Synced, inf.HasSynced)
	}
	gc.start = func(stop <-chan struct{}) { factory.Start(stop) }
	gc.stop = factory.Shutdown
	return gc, nil
}

// deletableResources are the resources whose objects may own or be owned: those that can be
// listed, watched and deleted.
func deletableResources(disc discovery.DiscoveryInterface) ([]schema.GroupVersionResource, error) {
	lists, err := disc.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, err
	}
	var out []schema.GroupVersionResource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			verbs := strings.Join(r.Verbs, ",")
			if strings.Contains(verbs, "list") && strings.Contains(verbs, "watch") && strings.Contains(verbs, "delete") {
				out = append(out, gv.WithResource(r.Name))
			}
		}
	}
	return out, nil
}

// Run starts the informers and works the queue.
func (gc *collector) Run(ctx context.Context) error {
	gc.start(ctx.Done())
	defer gc.stop()
	return gc.Loop.Run(ctx)
}

func (gc *collector) handler(gvr schema.GroupVersionResource) cache.ResourceEventHandler {
	observe := func(o any) {
		m, ok := o.(*metav1.PartialObjectMetadata)
		if !ok {
			return
		}
		n := &node{gvr: gvr, namespace: m.Namespace, name: m.Name, uid: m.UID, owners: m.OwnerReferences, deleting: m.DeletionTimestamp != nil}
		for _, f := range m.Finalizers {
			n.orphan = n.orphan || f == metav1.FinalizerOrphanDependents
			n.foreground = n.foreground || f == metav1.FinalizerDeleteDependents
		}
		gc.mu.Lock()
		gc.nodes[n.uid] = n
		for _, o := range n.owners {
			if gc.dependents[o.UID] == nil {
				gc.dependents[o.UID] = map[types.UID]bool{}
			}
			gc.dependents[o.UID][n.uid] = true
		}
		gc.mu.Unlock()
		gc.Enqueue(string(n.uid))
		for _, o := range n.owners {
			gc.Enqueue(string(o.UID)) // an owner waiting on its dependents looks again
		}
	}
	gone := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		m, ok := o.(*metav1.PartialObjectMetadata)
		if !ok {
			return
		}
		gc.mu.Lock()
		delete(gc.nodes, m.UID)
		deps := make([]types.UID, 0, len(gc.dependents[m.UID]))
		for d := range gc.dependents[m.UID] {
			deps = append(deps, d)
		}
		gc.mu.Unlock()
		for _, d := range deps {
			gc.Enqueue(string(d))
		}
		for _, o := range m.OwnerReferences {
			gc.Enqueue(string(o.UID))
		}
	}
	return cache.ResourceEventHandlerFuncs{AddFunc: observe, UpdateFunc: func(_, o any) { observe(o) }, DeleteFunc: gone}
}

// sync looks at one object: as an owner being deleted with a policy, and as a dependent whose
// owners may be gone.
func (gc *collector) sync(ctx context.Context, key string) (time.Duration, error) {
	uid := types.UID(key)
	gc.mu.Lock()
	n, ok := gc.nodes[uid]
	var copyNode node
	if ok {
		copyNode = *n
	}
	var deps []node
	for d := range gc.dependents[uid] {
		if dn, ok := gc.nodes[d]; ok {
			deps = append(deps, *dn)
		} else {
			delete(gc.dependents[uid], d)
		}
	}
	gc.mu.Unlock()
	if !ok {
		return 0, nil
	}
	n = &copyNode
	if n.deleting && n.orphan {
		return 0, gc.orphan(ctx, n, deps)
	}
	if n.deleting && n.foreground {
		return gc.deleteForeground(ctx, n, deps)
	}
	return 0, gc.collectIfOwnersGone(ctx, n)
}

// orphan removes the owner's references from its dependents, then its orphan finalizer.
func (gc *collector) orphan(ctx context.Context, owner *node, deps []node) error {
	for _, d := range deps {
		if err := gc.removeOwnerRefs(ctx, &d, map[types.UID]bool{owner.uid: true}); err != nil {
			return err
		}
	}
	return gc.removeFinalizer(ctx, owner, metav1.FinalizerOrphanDependents)
}

// deleteForeground deletes the dependents, then, once none blocks it, the owner's finalizer.
func (gc *collector) deleteForeground(ctx context.Context, owner *node, deps []node) (time.Duration, error) {
	blocking := 0
	for _, d := range deps {
		ref := refTo(d.owners, owner.uid)
		if ref == nil {
			continue
		}
		if ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
			blocking++
		}
		if !d.deleting {
			policy := metav1.DeletePropagationForeground
			err := gc.metadata.Resource(d.gvr).Namespace(d.namespace).Delete(ctx, d.name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &d.uid}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return 0, err
			}
		}
	}
	if blocking > 0 {
		return time.Second, nil
	}
	return 0, gc.removeFinalizer(ctx, owner, metav1.FinalizerDeleteDependents)
}

func refTo(refs []metav1.OwnerReference, uid types.UID) *metav1.OwnerReference {
	for i := range refs {
		if refs[i].UID == uid {
			return &refs[i]
		}
	}
	return nil
}

// collectIfOwnersGone deletes a dependent all of whose owners are gone, or drops the references
// to the owners that are gone when some remain.
func (gc *collector) collectIfOwnersGone(ctx context.Context, n *node) error {
	if len(n.owners) == 0 || n.deleting {
		return nil
	}
	absent := map[types.UID]bool{}
	waitingForeground := false
	for _, ref := range n.owners {
		exists, owner, err := gc.ownerExists(ctx, n.namespace, ref)
		if err != nil {
			return err
		}
		if !exists {
			absent[ref.UID] = true
		} else if owner.deleting && owner.foreground {
			waitingForeground = true
		}
	}
	switch {
	case len(absent) == len(n.owners):
		policy := metav1.DeletePropagationBackground
		if waitingForeground {
			policy = metav1.DeletePropagationForeground
		}
		err := gc.metadata.Resource(n.gvr).Namespace(n.namespace).Delete(ctx, n.name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &n.uid}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	case len(absent) > 0:
		return gc.removeOwnerRefs(ctx, n, absent)
	}
	return nil
}

// ownerExists looks the owner up by uid in the graph, then asks the API server by name: an owner
// of another uid under that name is a different object, so the reference is dangling.
func (gc *collector) ownerExists(ctx context.Context, namespace string, ref metav1.OwnerReference) (bool, node, error) {
	gc.mu.Lock()
	if o, ok := gc.nodes[ref.UID]; ok {
		found := *o
		gc.mu.Unlock()
		return true, found, nil
	}
	gc.mu.Unlock()
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return false, node{}, nil
	}
	mapping, err := gc.mapper.RESTMapping(gv.WithKind(ref.Kind).GroupKind(), gv.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return false, node{}, nil
		}
		return false, node{}, err
	}
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
		namespace = ""
	}
	got, err := gc.metadata.Resource(mapping.Resource).Namespace(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, node{}, nil
	}
	if err != nil {
		return false, node{}, err
	}
	if got.UID != ref.UID {
		return false, node{}, nil
	}
	return true, node{uid: got.UID, deleting: got.DeletionTimestamp != nil}, nil
}

func (gc *collector) removeOwnerRefs(ctx context.Context, n *node, remove map[types.UID]bool) error {
	var kept []metav1.OwnerReference
	for _, r := range n.owners {
		if !remove[r.UID] {
			kept = append(kept, r)
		}
	}
	if len(kept) == len(n.owners) {
		return nil
	}
	if kept == nil {
		kept = []metav1.OwnerReference{}
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"ownerReferences": kept, "uid": n.uid}})
	if err != nil {
		return err
	}
	_, err = gc.metadata.Resource(n.gvr).Namespace(n.namespace).Patch(ctx, n.name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func (gc *collector) removeFinalizer(ctx context.Context, n *node, finalizer string) error {
	res := gc.metadata.Resource(n.gvr).Namespace(n.namespace)
	current, err := res.Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var kept []string
	for _, f := range current.Finalizers {
		if f != finalizer {
			kept = append(kept, f)
		}
	}
	if len(kept) == len(current.Finalizers) {
		return nil
	}
	if kept == nil {
		kept = []string{}
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": kept, "resourceVersion": current.ResourceVersion}})
	if err != nil {
		return err
	}
	_, err = res.Patch(ctx, n.name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if apierrors.IsConflict(err) {
		return fmt.Errorf("removing finalizer %s from %s: %w", finalizer, n.name, err)
	}
	return err
}
