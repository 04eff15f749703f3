// Package namespace empties namespaces being deleted, as upstream's namespace controller does:
// it deletes every namespaced resource found through discovery, waits until none is left, removes
// the "kubernetes" finalizer and deletes the namespace, reporting progress in its conditions.
package namespace

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
)

// recheck is how soon a namespace whose content is still going is looked at again.
const recheck = 2 * time.Second

type controller struct {
	*manager.Loop
	client    kubernetes.Interface
	metadata  metadata.Interface
	discovery discovery.DiscoveryInterface
}

// New registers the controller's handlers.
func New(c *manager.Context) (manager.Controller, error) {
	md, err := metadata.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	ns := c.Informers.Core().V1().Namespaces()
	ctl := &controller{client: c.Client, metadata: md, discovery: c.Client.Discovery()}
	ctl.Loop = manager.NewLoop("namespace-controller", 5, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{ns.Informer().HasSynced}
	enqueue := func(o any) {
		if n, ok := o.(*corev1.Namespace); ok && n.DeletionTimestamp != nil {
			ctl.Enqueue(n.Name)
		}
	}
	if _, err := ns.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, o any) { enqueue(o) },
	}); err != nil {
		return nil, err
	}
	return ctl, nil
}

func (c *controller) sync(ctx context.Context, name string) (time.Duration, error) {
	ns, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if ns.DeletionTimestamp == nil {
		return 0, nil
	}
	remaining, finalizers, discoveryErr := c.deleteContent(ctx, name)
	if ns, err = c.setConditions(ctx, ns, remaining, finalizers, discoveryErr); err != nil {
		if apierrors.IsNotFound(err) {
			return 0, nil
		}
		return 0, err
	}
	if discoveryErr != nil || len(remaining) > 0 {
		return recheck, nil
	}
	if hasKubernetesFinalizer(ns) {
		ns = ns.DeepCopy()
		var kept []corev1.FinalizerName
		for _, f := range ns.Spec.Finalizers {
			if f != corev1.FinalizerKubernetes {
				kept = append(kept, f)
			}
		}
		ns.Spec.Finalizers = kept
		if ns, err = c.client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return 0, nil
			}
			return 0, err
		}
	}
	if len(ns.Spec.Finalizers) > 0 || len(ns.Finalizers) > 0 {
		return recheck, nil // other finalizers are someone else's to remove
	}
	err = c.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &ns.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return 0, nil
	}
	return 0, err
}

func hasKubernetesFinalizer(ns *corev1.Namespace) bool {
	for _, f := range ns.Spec.Finalizers {
		if f == corev1.FinalizerKubernetes {
			return true
		}
	}
	return false
}

// deleteContent deletes every namespaced object in the namespace and returns how many of each
// resource remain, and the finalizers they still carry.
func (c *controller) deleteContent(ctx context.Context, namespace string) (map[string]int, map[string]int, error) {
	lists, err := c.discovery.ServerPreferredNamespacedResources()
	if err != nil && len(lists) == 0 {
		return nil, nil, err
	}
	remaining, finalizers := map[string]int{}, map[string]int{}
	for _, list := range lists {
		gv, perr := schema.ParseGroupVersion(list.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") || !has(r.Verbs, "list") || !has(r.Verbs, "delete") {
				continue
			}
			gvr := gv.WithResource(r.Name)
			res := c.metadata.Resource(gvr).Namespace(namespace)
			if has(r.Verbs, "deletecollection") {
				if err := res.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
					return nil, nil, fmt.Errorf("deleting %s: %w", gvr, err)
				}
			}
			left, err := res.List(ctx, metav1.ListOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
					continue
				}
				return nil, nil, fmt.Errorf("listing %s: %w", gvr, err)
			}
			for _, item := range left.Items {
				if item.DeletionTimestamp == nil {
					if err := res.Delete(ctx, item.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
						return nil, nil, fmt.Errorf("deleting %s %s: %w", gvr, item.Name, err)
					}
				}
				for _, f := range item.Finalizers {
					finalizers[f]++
				}
			}
			if n := len(left.Items); n > 0 {
				// Upstream names a resource "<resource>.<group>", with the dot even for the core group.
				remaining[gvr.Resource+"."+gvr.Group] += n
			}
		}
	}
	return remaining, finalizers, nil
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// setConditions records the deletion's progress in upstream's namespace conditions.
func (c *controller) setConditions(ctx context.Context, ns *corev1.Namespace, remaining, finalizers map[string]int, discoveryErr error) (*corev1.Namespace, error) {
	now := metav1.Now()
	cond := func(t corev1.NamespaceConditionType, status bool, reason, message string) corev1.NamespaceCondition {
		s := corev1.ConditionFalse
		if status {
			s = corev1.ConditionTrue
		}
		return corev1.NamespaceCondition{Type: t, Status: s, LastTransitionTime: now, Reason: reason, Message: message}
	}
	discovery := cond(corev1.NamespaceDeletionDiscoveryFailure, false, "ResourcesDiscovered", "All resources successfully discovered")
	if discoveryErr != nil {
		discovery = cond(corev1.NamespaceDeletionDiscoveryFailure, true, "DiscoveryFailed", discoveryErr.Error())
	}
	content := cond(corev1.NamespaceContentRemaining, false, "ContentRemoved", "All content successfully removed")
	if len(remaining) > 0 {
		content = cond(corev1.NamespaceContentRemaining, true, "SomeResourcesRemain", "Some resources are remaining: "+summary(remaining, "%s has %d resource instances"))
	}
	fin := cond(corev1.NamespaceFinalizersRemaining, false, "ContentHasNoFinalizers", "All content-preserving finalizers finished")
	if len(finalizers) > 0 {
		fin = cond(corev1.NamespaceFinalizersRemaining, true, "SomeFinalizersRemain", "Some content in the namespace has finalizers remaining: "+summary(finalizers, "%s in %d resource instances"))
	}
	want := []corev1.NamespaceCondition{discovery,
		cond(corev1.NamespaceDeletionGVParsingFailure, false, "ParsedGroupVersions", "All legacy kube types successfully parsed"),
		cond(corev1.NamespaceDeletionContentFailure, false, "ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
		content, fin}
	if sameConditions(ns.Status.Conditions, want) {
		return ns, nil
	}
	update := ns.DeepCopy()
	update.Status.Conditions = mergeConditions(ns.Status.Conditions, want)
	return c.client.CoreV1().Namespaces().UpdateStatus(ctx, update, metav1.UpdateOptions{})
}

// summary lists counts in key order, each as format says, upstream's way.
func summary(counts map[string]int, format string) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf(format, k, counts[k])
	}
	return strings.Join(parts, ", ")
}

// sameConditions tells whether want is already recorded, ignoring transition times.
func sameConditions(have, want []corev1.NamespaceCondition) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if h.Type == w.Type && h.Status == w.Status && h.Reason == w.Reason && h.Message == w.Message {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// mergeConditions sets want over have, keeping a condition's transition time when its status holds.
func mergeConditions(have, want []corev1.NamespaceCondition) []corev1.NamespaceCondition {
	out := make([]corev1.NamespaceCondition, 0, len(want))
	for _, w := range want {
		for _, h := range have {
			if h.Type == w.Type && h.Status == w.Status {
				w.LastTransitionTime = h.LastTransitionTime
			}
		}
		out = append(out, w)
	}
	return out
}
