// Package daemonset runs one pod of each DaemonSet on every node that should have one, as
// upstream's daemonset controller does: a node qualifies through the nodeSelector, the required
// node affinity and the taints the pods tolerate (with the tolerations every daemon pod gets);
// pods are pinned to their node with a required node affinity on metadata.name for the scheduler
// to bind; a new template rolls out within maxUnavailable or maxSurge (RollingUpdate) or as the
// user deletes pods (OnDelete). Each template is a ControllerRevision, and pods carry its hash
// and the template generation.
package daemonset

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/keelson/keelson/controllers/history"
	"github.com/keelson/keelson/controllers/manager"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/ptr"
)

// burstReplicas bounds the pods created or deleted in one sync, as upstream's default.
const burstReplicas = 250

// A daemon pod that fails is replaced after a delay per node that starts at failedPodBackoff and
// doubles on each failure up to maxFailedPodBackoff, as upstream's, so that a pod its node keeps
// refusing is not recreated in a tight loop.
const (
	failedPodBackoff    = time.Second
	maxFailedPodBackoff = 15 * time.Minute
)

var kind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// Labels of daemon pods: the template's hash (also on revisions) and its generation.
const (
	hashLabel       = appsv1.DefaultDaemonSetUniqueLabelKey
	generationLabel = "pod-template-generation"
)

type controller struct {
	*manager.Loop
	client       kubernetes.Interface
	history      history.Store
	dsLister     appslisters.DaemonSetLister
	podLister    corelisters.PodLister
	nodeLister   corelisters.NodeLister
	podsByNode   cache.Indexer
	revLister    appslisters.ControllerRevisionLister
	expectations manager.Expectations
	failed       *flowcontrol.Backoff
	recorder     record.EventRecorder
}

// New registers the controller's handlers.
func New(c *manager.Context) (manager.Controller, error) {
	dss := c.Informers.Apps().V1().DaemonSets()
	pods := c.Informers.Core().V1().Pods()
	nodes := c.Informers.Core().V1().Nodes()
	revs := c.Informers.Apps().V1().ControllerRevisions()
	ctl := &controller{client: c.Client, history: history.Store{Client: c.Client}, dsLister: dss.Lister(), podLister: pods.Lister(),
		nodeLister: nodes.Lister(), revLister: revs.Lister(), failed: flowcontrol.NewBackOff(failedPodBackoff, maxFailedPodBackoff),
		recorder: c.Recorder("daemonset-controller")}
	var err error
	if ctl.podsByNode, err = manager.IndexPodsByNode(c); err != nil {
		return nil, err
	}
	ctl.Loop = manager.NewLoop("daemonset-controller", 2, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{dss.Informer().HasSynced, pods.Informer().HasSynced, nodes.Informer().HasSynced, revs.Informer().HasSynced}
	enqueue := func(o any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
			ctl.Enqueue(key)
		}
	}
	if _, err := dss.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue}); err != nil {
		return nil, err
	}
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { ctl.onPod(o.(*corev1.Pod), 1, 0) },
		UpdateFunc: func(old, o any) {
			oldPod, pod := old.(*corev1.Pod), o.(*corev1.Pod)
			if oldPod.ResourceVersion == pod.ResourceVersion {
				return
			}
			if pod.DeletionTimestamp != nil && oldPod.DeletionTimestamp == nil {
				ctl.onPod(pod, 0, 1) // a pod marked for deletion counts as deleted from now on
				return
			}
			ctl.onPod(oldPod, 0, 0)
			ctl.onPod(pod, 0, 0)
			if ref := metav1.GetControllerOfNoCopy(pod); ref != nil && ref.Kind == kind.Kind && !manager.PodReady(oldPod) && manager.PodReady(pod) {
				if ds, err := ctl.dsLister.DaemonSets(pod.Namespace).Get(ref.Name); err == nil && ds.Spec.MinReadySeconds > 0 {
					ctl.Queue.AddAfter(pod.Namespace+"/"+ref.Name, time.Duration(ds.Spec.MinReadySeconds)*time.Second)
				}
			}
		},
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				ctl.onPod(p, 0, 1)
			}
		},
	}); err != nil {
		return nil, err
	}
	enqueueAll := func(any) {
		all, err := ctl.dsLister.List(labels.Everything())
		if err != nil {
			return
		}
		for _, ds := range all {
			ctl.Enqueue(ds.Namespace + "/" + ds.Name)
		}
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueAll,
		UpdateFunc: func(old, o any) {
			oldNode, node := old.(*corev1.Node), o.(*corev1.Node)
			if !apiequality.Semantic.DeepEqual(oldNode.Labels, node.Labels) || !apiequality.Semantic.DeepEqual(oldNode.Spec.Taints, node.Spec.Taints) {
				ctl.onNodeChange(node)
			}
		},
		DeleteFunc: enqueueAll,
	}); err != nil {
		return nil, err
	}
	onRev := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		if r, ok := o.(*appsv1.ControllerRevision); ok {
			if ref := metav1.GetControllerOfNoCopy(r); ref != nil && ref.Kind == kind.Kind {
				ctl.Enqueue(r.Namespace + "/" + ref.Name)
			}
		}
	}
	if _, err := revs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onRev, UpdateFunc: func(_, o any) { onRev(o) }, DeleteFunc: onRev}); err != nil {
		return nil, err
	}
	return ctl, nil
}

// Run runs the loop, and forgets old failed-pod backoffs every minute.
func (c *controller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.failed.GC()
			}
		}
	})
	return c.Loop.Run(ctx)
}

// onNodeChange enqueues the DaemonSets a node's new labels or taints concern, as upstream
// decides: those that should now run a pod there and have none, those whose pod there must
// go, and those with misscheduled pods whose count may change. A pod that may stay on a node
// newly tainted NoSchedule does not by itself resync its DaemonSet's status.
func (c *controller) onNodeChange(node *corev1.Node) {
	all, err := c.dsLister.List(labels.Everything())
	if err != nil {
		return
	}
	onNode, err := c.podsByNode.ByIndex(manager.PodsByNode, node.Name)
	if err != nil {
		return
	}
	scheduled := map[string]bool{}
	for _, o := range onNode {
		p := o.(*corev1.Pod)
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil && ref.Kind == kind.Kind {
			scheduled[p.Namespace+"/"+ref.Name] = true
		}
	}
	for _, ds := range all {
		key := ds.Namespace + "/" + ds.Name
		run, keep := placementOf(ds).shouldRun(node)
		if (run && !scheduled[key]) || (!keep && scheduled[key]) || (scheduled[key] && ds.Status.NumberMisscheduled > 0) {
			c.Enqueue(key)
		}
	}
}

// onPod credits a pod's creation or deletion to its DaemonSet and wakes it, or wakes the sets
// that select an orphan.
func (c *controller) onPod(p *corev1.Pod, added, deleted int) {
	if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
		if ref.Kind != kind.Kind || ref.APIVersion != kind.GroupVersion().String() {
			return
		}
		key := p.Namespace + "/" + ref.Name
		c.expectations.Observe(key, added, deleted)
		c.Enqueue(key)
		return
	}
	sets, err := c.dsLister.DaemonSets(p.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, ds := range sets {
		if sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			c.Enqueue(ds.Namespace + "/" + ds.Name)
		}
	}
}

func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	ds, err := c.dsLister.DaemonSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.expectations.Forget(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return 0, err
	}
	selector, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return 0, nil
	}
	if selector.Empty() {
		c.recorder.Event(ds, corev1.EventTypeWarning, "SelectingAll", "This daemon set is selecting all pods. A non-empty selector is required.")
		return 0, nil
	}
	if ds.DeletionTimestamp != nil {
		return 0, nil
	}
	cur, old, err := c.constructHistory(ctx, ds, selector)
	if manager.NamespaceTerminating(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("failed to construct revisions of DaemonSet: %w", err)
	}
	hash := cur.Labels[hashLabel]
	if !c.expectations.Satisfied(key) {
		return c.updateStatus(ctx, ds, selector, nodes, hash, false)
	}
	manageErr := c.manage(ctx, key, ds, selector, nodes, hash)
	if manageErr == nil && c.expectations.Satisfied(key) && ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		manageErr = c.rollingUpdate(ctx, key, ds, selector, nodes, hash)
	}
	if manageErr == nil {
		if err := c.cleanupHistory(ctx, ds, selector, old); err != nil {
			manageErr = fmt.Errorf("failed to clean up revisions of DaemonSet: %w", err)
		}
	}
	after, statusErr := c.updateStatus(ctx, ds, selector, nodes, hash, true)
	if manager.NamespaceTerminating(manageErr) {
		manageErr = nil
	}
	if manageErr != nil {
		return 0, manageErr
	}
	return after, statusErr
}

// nodeToPods claims the DaemonSet's pods and maps them by the node each is on or pinned to,
// leaving out pods that ended and are being deleted.
func (c *controller) nodeToPods(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector) (map[string][]*corev1.Pod, error) {
	all, err := c.podLister.Pods(ds.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	owned, err := c.claimPods(ctx, ds, selector, all)
	if err != nil {
		return nil, err
	}
	out := map[string][]*corev1.Pod{}
	for _, p := range owned {
		if p.DeletionTimestamp != nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
			continue
		}
		if node := targetNode(p); node != "" {
			out[node] = append(out[node], p)
		}
	}
	return out, nil
}

func (c *controller) claimPods(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	return manager.ClaimPods(ctx, c.client, kind, ds, pods, func(p *corev1.Pod) bool { return selector.Matches(labels.Set(p.Labels)) })
}

// manage creates the pods missing on nodes that should run one and deletes those on nodes that
// should not, the ended ones, the extras, and unscheduled pods pinned to nodes that are gone.
func (c *controller) manage(ctx context.Context, key string, ds *appsv1.DaemonSet, selector labels.Selector, nodes []*corev1.Node, hash string) error {
	byNode, err := c.nodeToPods(ctx, ds, selector)
	if err != nil {
		return err
	}
	place := placementOf(ds)
	surge := allowsSurge(ds)
	now := time.Now()
	var create, remove []string
	known := map[string]bool{}
	for _, node := range nodes {
		known[node.Name] = true
		run, keep := place.shouldRun(node)
		pods, exists := byNode[node.Name]
		switch {
		case run && !exists:
			create = append(create, node.Name)
		case keep:
			var running []*corev1.Pod
			for _, p := range pods {
				switch {
				case p.DeletionTimestamp != nil:
				case p.Status.Phase == corev1.PodFailed:
					backoffKey := fmt.Sprintf("%s/%d/%s", ds.UID, ds.Status.ObservedGeneration, node.Name)
					if c.failed.IsInBackOffSinceUpdate(backoffKey, now) {
						c.Queue.AddAfter(key, c.failed.Get(backoffKey))
						continue
					}
					c.failed.Next(backoffKey, now)
					c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDaemonPod", "Found failed daemon pod %s/%s on node %s, will try to kill it", p.Namespace, p.Name, node.Name)
					remove = append(remove, p.Name)
				case p.Status.Phase == corev1.PodSucceeded:
					c.recorder.Eventf(ds, corev1.EventTypeNormal, "SucceededDaemonPod", "Found succeeded daemon pod %s/%s on node %s, will try to delete it", p.Namespace, p.Name, node.Name)
					remove = append(remove, p.Name)
				default:
					running = append(running, p)
				}
			}
			sortPods(running)
			if !surge {
				// One pod per node: the oldest stays.
				for _, p := range running[min(1, len(running)):] {
					remove = append(remove, p.Name)
				}
				break
			}
			if len(running) == 0 && run {
				create = append(create, node.Name)
				break
			}
			// With surge, the oldest new and the oldest old pod may both run while the new one
			// becomes available; the old one goes once it has, or once it is not ready.
			var oldestNew, oldestOld *corev1.Pod
			for _, p := range running {
				switch {
				case p.Labels[hashLabel] == hash && oldestNew == nil:
					oldestNew = p
				case p.Labels[hashLabel] != hash && oldestOld == nil:
					oldestOld = p
				default:
					remove = append(remove, p.Name)
				}
			}
			if oldestNew != nil && oldestOld != nil && (!manager.PodReady(oldestOld) || manager.PodAvailable(oldestNew, ds.Spec.MinReadySeconds, now)) {
				remove = append(remove, oldestOld.Name)
			}
		case exists:
			for _, p := range pods {
				if p.DeletionTimestamp == nil {
					remove = append(remove, p.Name)
				}
			}
		}
	}
	for node, pods := range byNode {
		if known[node] {
			continue
		}
		for _, p := range pods {
			if p.Spec.NodeName == "" {
				remove = append(remove, p.Name)
			}
		}
	}
	return c.syncNodes(ctx, key, ds, remove, create, hash)
}

// syncNodes deletes the named pods and creates a pod on each named node, within the burst, in
// growing batches so that a failing template costs one call.
func (c *controller) syncNodes(ctx context.Context, key string, ds *appsv1.DaemonSet, remove, create []string, hash string) error {
	create = create[:min(len(create), burstReplicas)]
	remove = remove[:min(len(remove), burstReplicas)]
	c.expectations.Expect(key, len(create), len(remove))
	template := podTemplate(ds, hash)
	var mu sync.Mutex // guards errs
	var errs []error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	for pos, batch := 0, 1; pos < len(create); pos, batch = pos+batch, batch*2 {
		batch = min(batch, len(create)-pos)
		before := len(errs) // no creates run between batches
		var wg sync.WaitGroup
		for _, node := range create[pos : pos+batch] {
			wg.Go(func() {
				if err := c.createPod(ctx, ds, template, node); err != nil {
					c.expectations.Observe(key, 1, 0)
					if !manager.NamespaceTerminating(err) {
						fail(err)
					}
				}
			})
		}
		wg.Wait()
		if len(errs) > before {
			// The rest would fail alike: they will not show up.
			if skipped := len(create) - pos - batch; skipped > 0 {
				c.expectations.Observe(key, skipped, 0)
			}
			break
		}
	}
	var wg sync.WaitGroup
	for _, name := range remove {
		wg.Go(func() {
			err := c.client.CoreV1().Pods(ds.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
			switch {
			case err == nil:
				c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", name)
			case apierrors.IsNotFound(err):
				c.expectations.Observe(key, 0, 1)
			default:
				c.expectations.Observe(key, 0, 1)
				c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
				fail(err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// podTemplate is the DaemonSet's template as its pods get it: with the default tolerations and
// labelled with the template's hash and generation.
func podTemplate(ds *appsv1.DaemonSet, hash string) *corev1.PodTemplateSpec {
	t := ds.Spec.Template.DeepCopy()
	addDefaultTolerations(&t.Spec)
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	if g, ok := ds.Annotations[appsv1.DeprecatedTemplateGeneration]; ok {
		t.Labels[generationLabel] = g
	}
	if hash != "" {
		t.Labels[hashLabel] = hash
	}
	return t
}

func (c *controller) createPod(ctx context.Context, ds *appsv1.DaemonSet, template *corev1.PodTemplateSpec, node string) error {
	t := template.DeepCopy()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: ds.Name + "-", Namespace: ds.Namespace, Labels: t.Labels, Annotations: t.Annotations, Finalizers: t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, kind)},
		},
		Spec: t.Spec,
	}
	pod.Spec.Affinity = nodeAffinityFor(pod.Spec.Affinity, node)
	created, err := c.client.CoreV1().Pods(ds.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		return err
	}
	c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", created.Name)
	return nil
}

// updated tells whether a pod runs the DaemonSet's current template: by hash or by template
// generation.
func updated(ds *appsv1.DaemonSet, pod *corev1.Pod, hash string) bool {
	g, ok := ds.Annotations[appsv1.DeprecatedTemplateGeneration]
	return hash != "" && pod.Labels[hashLabel] == hash || ok && pod.Labels[generationLabel] == g
}

// scheduled counts the nodes that should run the DaemonSet, and resolves maxSurge and
// maxUnavailable against that number (both zero means one unavailable).
func counts(ds *appsv1.DaemonSet, nodes []*corev1.Node, byNode map[string][]*corev1.Pod) (maxSurge, maxUnavailable, desired int, err error) {
	place := placementOf(ds)
	for _, node := range nodes {
		if run, _ := place.shouldRun(node); run {
			desired++
			if _, ok := byNode[node.Name]; !ok {
				byNode[node.Name] = nil
			}
		}
	}
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType && ru != nil {
		if ru.MaxUnavailable != nil {
			if maxUnavailable, err = intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, desired, true); err != nil {
				return 0, 0, 0, err
			}
		}
		if ru.MaxSurge != nil {
			if maxSurge, err = intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, desired, true); err != nil {
				return 0, 0, 0, err
			}
		}
	}
	if desired > 0 && maxUnavailable == 0 && maxSurge == 0 {
		maxUnavailable = 1
	}
	return maxSurge, maxUnavailable, desired, nil
}

func allowsSurge(ds *appsv1.DaemonSet) bool {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ru == nil || ru.MaxSurge == nil {
		return false
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, 1, true)
	return err == nil && n > 0
}

// splitPods finds the one updated and the one old pod on a node; ok is false when there are
// more, which manage sorts out first.
func splitPods(ds *appsv1.DaemonSet, pods []*corev1.Pod, hash string) (newPod, oldPod *corev1.Pod, ok bool) {
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if updated(ds, p, hash) {
			if newPod != nil {
				return nil, nil, false
			}
			newPod = p
		} else {
			if oldPod != nil {
				return nil, nil, false
			}
			oldPod = p
		}
	}
	return newPod, oldPod, true
}

// rollingUpdate replaces old pods: without surge by deleting up to maxUnavailable available old
// pods (unavailable ones always go), with surge by starting new pods beside up to maxSurge old
// ones (manage deletes each old pod once its new one is available).
func (c *controller) rollingUpdate(ctx context.Context, key string, ds *appsv1.DaemonSet, selector labels.Selector, nodes []*corev1.Node, hash string) error {
	byNode, err := c.nodeToPods(ctx, ds, selector)
	if err != nil {
		return err
	}
	maxSurge, maxUnavailable, desired, err := counts(ds, nodes, byNode)
	if err != nil {
		return fmt.Errorf("couldn't get unavailable numbers: %w", err)
	}
	now := time.Now()
	names := make([]string, 0, len(byNode))
	for n := range byNode {
		names = append(names, n)
	}
	sort.Strings(names)
	if maxSurge == 0 {
		numUnavailable := 0
		var replace, candidates []string
		for _, n := range names {
			newPod, oldPod, ok := splitPods(ds, byNode[n], hash)
			switch {
			case !ok, oldPod == nil && newPod == nil, oldPod != nil && newPod != nil:
				numUnavailable++
			case newPod != nil:
				if !manager.PodAvailable(newPod, ds.Spec.MinReadySeconds, now) {
					numUnavailable++
				}
			case !manager.PodAvailable(oldPod, ds.Spec.MinReadySeconds, now):
				replace = append(replace, oldPod.Name)
				numUnavailable++
			case numUnavailable < maxUnavailable:
				candidates = append(candidates, oldPod.Name)
			}
		}
		room := min(max(maxUnavailable-numUnavailable, 0), len(candidates))
		return c.syncNodes(ctx, key, ds, append(replace, candidates[:room]...), nil, hash)
	}
	place := placementOf(ds)
	var remove, sunset, candidates, allowed []string
	numSurge, numAvailable := 0, 0
	for _, n := range names {
		newPod, oldPod, ok := splitPods(ds, byNode[n], hash)
		if !ok {
			numSurge++
			continue
		}
		switch {
		case oldPod != nil && manager.PodAvailable(oldPod, ds.Spec.MinReadySeconds, now), oldPod == nil && newPod != nil && manager.PodAvailable(newPod, ds.Spec.MinReadySeconds, now):
			numAvailable++
		}
		switch {
		case oldPod == nil:
		case newPod == nil:
			node, err := c.nodeLister.Get(n)
			if err != nil {
				return fmt.Errorf("couldn't get node for nodeName %q: %w", n, err)
			}
			run, _ := place.shouldRun(node)
			switch {
			case !manager.PodAvailable(oldPod, ds.Spec.MinReadySeconds, now) && !run:
				remove = append(remove, oldPod.Name)
			case !manager.PodAvailable(oldPod, ds.Spec.MinReadySeconds, now):
				allowed = append(allowed, n)
			case !run:
				sunset = append(sunset, oldPod.Name)
			case numSurge < maxSurge:
				candidates = append(candidates, n)
			}
		default:
			if !manager.PodAvailable(newPod, ds.Spec.MinReadySeconds, now) {
				numSurge++
				continue
			}
			remove = append(remove, oldPod.Name)
		}
	}
	if deletable := numAvailable - desired; deletable > 0 {
		remove = append(remove, sunset[:min(deletable, len(sunset))]...)
	}
	room := min(max(maxSurge-numSurge, 0), len(candidates))
	return c.syncNodes(ctx, key, ds, remove, append(allowed, candidates[:room]...), hash)
}

// updateStatus writes the DaemonSet's counts, and says when to look again for pods that become
// available with time.
func (c *controller) updateStatus(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector, nodes []*corev1.Node, hash string, observed bool) (time.Duration, error) {
	byNode, err := c.nodeToPods(ctx, ds, selector)
	if err != nil {
		return 0, err
	}
	place := placementOf(ds)
	now := time.Now()
	var s appsv1.DaemonSetStatus
	for _, node := range nodes {
		run, _ := place.shouldRun(node)
		pods := byNode[node.Name]
		if !run {
			if len(pods) > 0 {
				s.NumberMisscheduled++
			}
			continue
		}
		s.DesiredNumberScheduled++
		if len(pods) == 0 {
			continue
		}
		s.CurrentNumberScheduled++
		sorted := append([]*corev1.Pod(nil), pods...)
		sortPods(sorted)
		p := sorted[0]
		if manager.PodReady(p) {
			s.NumberReady++
			if manager.PodAvailable(p, ds.Spec.MinReadySeconds, now) {
				s.NumberAvailable++
			}
		}
		if updated(ds, p, hash) {
			s.UpdatedNumberScheduled++
		}
	}
	s.NumberUnavailable = s.DesiredNumberScheduled - s.NumberAvailable
	var after time.Duration
	if ds.Spec.MinReadySeconds > 0 && s.NumberReady != s.NumberAvailable {
		after = time.Duration(ds.Spec.MinReadySeconds) * time.Second
	}
	was := ds.Status
	if was.DesiredNumberScheduled == s.DesiredNumberScheduled && was.CurrentNumberScheduled == s.CurrentNumberScheduled &&
		was.NumberMisscheduled == s.NumberMisscheduled && was.NumberReady == s.NumberReady && was.UpdatedNumberScheduled == s.UpdatedNumberScheduled &&
		was.NumberAvailable == s.NumberAvailable && was.NumberUnavailable == s.NumberUnavailable && (was.ObservedGeneration >= ds.Generation || !observed) {
		return after, nil
	}
	update := ds.DeepCopy()
	if observed {
		update.Status.ObservedGeneration = ds.Generation
	}
	update.Status.DesiredNumberScheduled, update.Status.CurrentNumberScheduled, update.Status.NumberMisscheduled = s.DesiredNumberScheduled, s.CurrentNumberScheduled, s.NumberMisscheduled
	update.Status.NumberReady, update.Status.UpdatedNumberScheduled = s.NumberReady, s.UpdatedNumberScheduled
	update.Status.NumberAvailable, update.Status.NumberUnavailable = s.NumberAvailable, s.NumberUnavailable
	_, err = c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, update, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return 0, nil // gone, or changed meanwhile: the change brings another sync
	}
	return after, err
}

// constructHistory finds the revision of the DaemonSet's template among those it owns (making
// it if there is none, and keeping it the newest) and returns it with the older ones.
func (c *controller) constructHistory(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector) (cur *appsv1.ControllerRevision, old []*appsv1.ControllerRevision, err error) {
	all, err := c.revLister.ControllerRevisions(ds.Namespace).List(labels.Everything())
	if err != nil {
		return nil, nil, err
	}
	owned, err := c.history.Claim(ctx, ds, kind, selector, all)
	if err != nil {
		return nil, nil, err
	}
	patch, err := history.TemplatePatch(ds)
	if err != nil {
		return nil, nil, err
	}
	var current []*appsv1.ControllerRevision
	for _, r := range owned {
		if _, ok := r.Labels[hashLabel]; !ok {
			update := r.DeepCopy()
			if update.Labels == nil {
				update.Labels = map[string]string{}
			}
			update.Labels[hashLabel] = update.Name
			if r, err = c.client.AppsV1().ControllerRevisions(ds.Namespace).Update(ctx, update, metav1.UpdateOptions{}); err != nil {
				return nil, nil, err
			}
		}
		if string(r.Data.Raw) == string(patch) {
			current = append(current, r)
		} else {
			old = append(old, r)
		}
	}
	next := history.MaxRevision(old) + 1
	if len(current) == 0 {
		cur, err = c.snapshot(ctx, ds, patch, next)
		return cur, old, err
	}
	if cur, err = c.dedup(ctx, ds, selector, current); err != nil {
		return nil, nil, err
	}
	if cur.Revision < next {
		if cur, err = c.history.SetRevision(ctx, cur, next); err != nil {
			return nil, nil, err
		}
	}
	return cur, old, nil
}

// snapshot creates the revision of the DaemonSet's template; a name taken by another template
// raises the collision count, and the sync is retried with it.
func (c *controller) snapshot(ctx context.Context, ds *appsv1.DaemonSet, patch []byte, revision int64) (*appsv1.ControllerRevision, error) {
	hash := history.TemplateHash(&ds.Spec.Template, ds.Status.CollisionCount)
	rev := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name: history.Name(ds.Name, hash), Namespace: ds.Namespace, Labels: map[string]string{}, Annotations: ds.Annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, kind)},
		},
		Revision: revision,
	}
	rev.Data.Raw = patch
	for k, v := range ds.Spec.Template.Labels {
		rev.Labels[k] = v
	}
	rev.Labels[hashLabel] = hash
	created, err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Create(ctx, rev, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return created, err
	}
	existing, getErr := c.client.AppsV1().ControllerRevisions(ds.Namespace).Get(ctx, rev.Name, metav1.GetOptions{})
	if getErr != nil {
		return nil, getErr
	}
	if string(existing.Data.Raw) == string(patch) {
		return existing, nil
	}
	fresh, getErr := c.client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
	if getErr != nil {
		return nil, getErr
	}
	if ptr.Deref(fresh.Status.CollisionCount, 0) != ptr.Deref(ds.Status.CollisionCount, 0) {
		return nil, fmt.Errorf("found a stale collision count (%d, expected %d) of DaemonSet %q while processing; will retry until it is updated",
			ptr.Deref(ds.Status.CollisionCount, 0), ptr.Deref(fresh.Status.CollisionCount, 0), ds.Name)
	}
	fresh.Status.CollisionCount = ptr.To(ptr.Deref(fresh.Status.CollisionCount, 0) + 1)
	if _, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, fresh, metav1.UpdateOptions{}); err != nil {
		return nil, err
	}
	return nil, err
}

// dedup keeps the newest of several revisions of the current template, relabels the pods of the
// others with its hash and deletes them.
func (c *controller) dedup(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector, revs []*appsv1.ControllerRevision) (*appsv1.ControllerRevision, error) {
	if len(revs) == 1 {
		return revs[0], nil
	}
	keep := revs[0]
	for _, r := range revs {
		if r.Revision >= keep.Revision {
			keep = r
		}
	}
	byNode, err := c.nodeToPods(ctx, ds, selector)
	if err != nil {
		return nil, err
	}
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q}}}`, hashLabel, keep.Labels[hashLabel])
	for _, pods := range byNode {
		for _, p := range pods {
			if p.Labels[hashLabel] != keep.Labels[hashLabel] {
				if _, err := c.client.CoreV1().Pods(ds.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
					return nil, err
				}
			}
		}
	}
	for _, r := range revs {
		if r.Name != keep.Name {
			if err := c.history.Delete(ctx, r); err != nil {
				return nil, err
			}
		}
	}
	return keep, nil
}

// cleanupHistory deletes the oldest old revisions beyond revisionHistoryLimit that no pod uses.
func (c *controller) cleanupHistory(ctx context.Context, ds *appsv1.DaemonSet, selector labels.Selector, old []*appsv1.ControllerRevision) error {
	toKill := len(old) - int(ptr.Deref(ds.Spec.RevisionHistoryLimit, 10))
	if toKill <= 0 {
		return nil
	}
	all, err := c.podLister.Pods(ds.Namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, p := range all {
		if metav1.IsControlledBy(p, ds) {
			if h := p.Labels[hashLabel]; h != "" {
				live[h] = true
			}
		}
	}
	sorted := append([]*appsv1.ControllerRevision(nil), old...)
	history.Sort(sorted)
	for _, r := range sorted {
		if toKill <= 0 {
			break
		}
		if live[r.Labels[hashLabel]] {
			continue
		}
		if err := c.history.Delete(ctx, r); err != nil {
			return err
		}
		toKill--
	}
	return nil
}

// sortPods orders a node's pods as upstream ranks them: scheduled first, then oldest, then by name.
func sortPods(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		a, b := pods[i], pods[j]
		if (a.Spec.NodeName != "") != (b.Spec.NodeName != "") {
			return a.Spec.NodeName != ""
		}
		if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.Name < b.Name
		}
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	})
}
