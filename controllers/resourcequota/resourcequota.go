// Package resourcequota keeps the status of every ResourceQuota: status.hard from the spec and
// status.used from what the namespace's objects use, as upstream's resourcequota controller does.
// Between its full passes, usage grows through the API server's quota admission, which charges
// each create; this controller gives back what deleted (or finished) objects release.
package resourcequota

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	quota "github.com/keelson/keelson/apis/admission/resourcequota"
	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
)

// resyncPeriod is how often every quota is recomputed in full, upstream's
// --resource-quota-sync-period default.
const resyncPeriod = 5 * time.Minute

var (
	podsGR     = schema.GroupResource{Resource: "pods"}
	servicesGR = schema.GroupResource{Resource: "services"}
	pvcsGR     = schema.GroupResource{Resource: "persistentvolumeclaims"}
	quotasGR   = schema.GroupResource{Resource: "resourcequotas"}
)

// legacyCounts are the older names of some core object counts.
var legacyCounts = map[corev1.ResourceName]schema.GroupResource{
	corev1.ResourceConfigMaps:             {Resource: "configmaps"},
	corev1.ResourceSecrets:                {Resource: "secrets"},
	corev1.ResourceReplicationControllers: {Resource: "replicationcontrollers"},
	corev1.ResourceQuotas:                 quotasGR,
}

type controller struct {
	*manager.Loop
	client   kubernetes.Interface
	meta     metadata.Interface
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	quotas   corelisters.ResourceQuotaLister
	pods     corelisters.PodLister
	services corelisters.ServiceLister
	pvcs     corelisters.PersistentVolumeClaimLister
	now      func() time.Time

	// ctx is the controller's run, for the informers it starts on demand.
	ctx context.Context
	// mu guards counted: the metadata informers of the other resources quotas count, by resource.
	mu      sync.Mutex
	counted map[schema.GroupResource]cache.SharedIndexInformer
}

// New registers the controller on c's informers.
func New(c *manager.Context) (manager.Controller, error) {
	mc, err := metadata.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	quotas := c.Informers.Core().V1().ResourceQuotas()
	pods := c.Informers.Core().V1().Pods()
	services := c.Informers.Core().V1().Services()
	pvcs := c.Informers.Core().V1().PersistentVolumeClaims()
	ctl := &controller{
		client: c.Client, meta: mc,
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client.Discovery())),
		quotas: quotas.Lister(), pods: pods.Lister(), services: services.Lister(), pvcs: pvcs.Lister(),
		now: time.Now, counted: map[schema.GroupResource]cache.SharedIndexInformer{},
	}
	ctl.Loop = manager.NewLoop("resourcequota-controller", 2, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{quotas.Informer().HasSynced, pods.Informer().HasSynced,
		services.Informer().HasSynced, pvcs.Informer().HasSynced}

	enqueue := func(o any) {
		if key, err := cache.MetaNamespaceKeyFunc(o); err == nil {
			ctl.Enqueue(key)
		}
	}
	if _, err := quotas.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(old, cur any) {
			// Status writes are this controller's and the admission's: only a spec change calls
			// for a recount.
			o, n := old.(*corev1.ResourceQuota), cur.(*corev1.ResourceQuota)
			if !apiequality.Semantic.DeepEqual(o.Spec, n.Spec) || !quota.Equal(n.Spec.Hard, n.Status.Hard) {
				enqueue(cur)
			}
		},
		// A deleted quota is also a deleted object that count/resourcequotas counted.
		DeleteFunc: ctl.replenish,
	}); err != nil {
		return nil, err
	}
	for gr, inf := range map[schema.GroupResource]cache.SharedIndexInformer{podsGR: pods.Informer(), servicesGR: services.Informer(), pvcsGR: pvcs.Informer()} {
		if err := ctl.watchReleases(gr, inf); err != nil {
			return nil, err
		}
	}
	return ctl, nil
}

// watchReleases recounts a namespace's quotas when one of its objects goes, or changes so as to
// use less (a pod that finished, a service that is no longer a LoadBalancer). Creates need no
// recount: the admission charged them.
func (c *controller) watchReleases(gr schema.GroupResource, inf cache.SharedIndexInformer) error {
	ev := quota.For(gr)
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(runtime.Object)
			n, ok2 := cur.(runtime.Object)
			if !ok1 || !ok2 {
				return
			}
			now := c.now()
			if !quota.Equal(ev.Usage(o, now), ev.Usage(n, now)) {
				c.replenish(cur)
			}
		},
		DeleteFunc: c.replenish,
	})
	return err
}

// replenish enqueues the quotas of the namespace of an object that released usage.
func (c *controller) replenish(o any) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	m, err := meta.Accessor(o)
	if err != nil || m.GetNamespace() == "" {
		return
	}
	qs, err := c.quotas.ResourceQuotas(m.GetNamespace()).List(labels.Everything())
	if err != nil {
		return
	}
	for _, q := range qs {
		c.Enqueue(q.Namespace + "/" + q.Name)
	}
}

// Run recounts every quota on start and every resyncPeriod.
func (c *controller) Run(ctx context.Context) error {
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
	go func() {
		t := time.NewTicker(resyncPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				qs, err := c.quotas.List(labels.Everything())
				if err != nil {
					continue
				}
				for _, q := range qs {
					c.Enqueue(q.Namespace + "/" + q.Name)
				}
			}
		}
	}()
	return c.Loop.Run(ctx)
}

func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	q, err := c.quotas.ResourceQuotas(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	hard := quota.Add(corev1.ResourceList{}, q.Spec.Hard)
	used := quota.Add(corev1.ResourceList{}, q.Status.Used)
	counted, countErr := c.usage(ctx, q, quota.Names(hard))
	for n, v := range counted {
		used[n] = v
	}
	used = quota.Mask(used, quota.Names(hard))
	dirty := q.Status.Hard == nil || q.Status.Used == nil || !apiequality.Semantic.DeepEqual(q.Spec.Hard, q.Status.Hard) ||
		!quota.Equal(used, q.Status.Used)
	if dirty {
		next := q.DeepCopy()
		next.Status = corev1.ResourceQuotaStatus{Hard: hard, Used: used}
		if _, err := c.client.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, next, metav1.UpdateOptions{}); err != nil {
			return 0, err
		}
	}
	return 0, countErr
}

// usage counts what the namespace's objects use of the named resources, within the quota's
// scopes. Each resource a quota limits starts at zero.
func (c *controller) usage(ctx context.Context, q *corev1.ResourceQuota, names []corev1.ResourceName) (corev1.ResourceList, error) {
	scopes := quota.ScopeSelectors(q)
	out := corev1.ResourceList{}
	now := c.now()
	count := func(gr schema.GroupResource, objs []runtime.Object) error {
		ev := quota.For(gr)
		matched := ev.Matching(names)
		if len(matched) == 0 {
			return nil
		}
		sum := corev1.ResourceList{}
		for _, n := range matched {
			sum[n] = resource.Quantity{Format: resource.DecimalSI}
		}
		for _, o := range objs {
			ok, err := ev.MatchesScopes(o, scopes)
			if err != nil {
				return err
			}
			if ok {
				sum = quota.Add(sum, ev.Usage(o, now))
			}
		}
		for n, v := range quota.Mask(sum, matched) {
			out[n] = v
		}
		return nil
	}
	pods, err := c.pods.Pods(q.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	if err := count(podsGR, objects(pods)); err != nil {
		return nil, err
	}
	services, err := c.services.Services(q.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	if err := count(servicesGR, objects(services)); err != nil {
		return nil, err
	}
	pvcs, err := c.pvcs.PersistentVolumeClaims(q.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	if err := count(pvcsGR, objects(pvcs)); err != nil {
		return nil, err
	}
	// Everything else is an object count.
	var errs []string
	for _, gr := range countedResources(names) {
		objs, err := c.objectsOf(ctx, gr, q.Namespace)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if err := count(gr, objs); err != nil {
			return nil, err
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("counting objects: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

func objects[T runtime.Object](l []T) []runtime.Object {
	out := make([]runtime.Object, len(l))
	for i, o := range l {
		out[i] = o
	}
	return out
}

// countedResources are the resources other than pods, services and claims whose objects the
// names count.
func countedResources(names []corev1.ResourceName) []schema.GroupResource {
	seen := map[schema.GroupResource]bool{}
	var out []schema.GroupResource
	add := func(gr schema.GroupResource) {
		if gr == podsGR || gr == servicesGR || gr == pvcsGR || seen[gr] {
			return
		}
		seen[gr] = true
		out = append(out, gr)
	}
	for _, n := range names {
		if gr, ok := legacyCounts[n]; ok {
			add(gr)
			continue
		}
		rest, ok := strings.CutPrefix(string(n), "count/")
		if !ok || rest == "" {
			continue
		}
		res, group, _ := strings.Cut(rest, ".")
		add(schema.GroupResource{Group: group, Resource: res})
	}
	return out
}

// objectsOf lists a namespace's objects of a resource (as metadata) from an informer started the
// first time a quota counts the resource.
func (c *controller) objectsOf(ctx context.Context, gr schema.GroupResource, namespace string) ([]runtime.Object, error) {
	inf, err := c.informerFor(gr)
	if err != nil {
		return nil, err
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(wait.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("%s: cache not synced", gr)
	}
	items, err := inf.GetIndexer().ByIndex(cache.NamespaceIndex, namespace)
	if err != nil {
		return nil, err
	}
	out := make([]runtime.Object, 0, len(items))
	for _, i := range items {
		if o, ok := i.(runtime.Object); ok {
			out = append(out, o)
		}
	}
	return out, nil
}

func (c *controller) informerFor(gr schema.GroupResource) (cache.SharedIndexInformer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if inf, ok := c.counted[gr]; ok {
		return inf, nil
	}
	gvr, err := c.mapper.ResourceFor(gr.WithVersion(""))
	if err != nil {
		// A resource new since discovery was read (a CRD, say) is found on the next sync.
		c.mapper.Reset()
		return nil, err
	}
	inf := metadatainformer.NewFilteredMetadataInformer(c.meta, gvr, metav1.NamespaceAll, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil).Informer()
	if err := c.watchReleases(gr, inf); err != nil {
		return nil, err
	}
	c.counted[gr] = inf
	go inf.Run(c.ctx.Done())
	return inf, nil
}
