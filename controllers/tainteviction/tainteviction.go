// Package tainteviction evicts pods from nodes with NoExecute taints, as upstream's
// taint-eviction-controller does: a pod that does not tolerate such a taint is deleted at once;
// one that tolerates it for tolerationSeconds is deleted when that time has passed since the
// taint was added; one that tolerates it forever stays.
package tainteviction

import (
	"context"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

type controller struct {
	*manager.Loop
	client   kubernetes.Interface
	recorder record.EventRecorder
	nodes    corelisters.NodeLister
	pods     corelisters.PodLister
	byNode   cache.Indexer
}

// New registers the controller.
func New(c *manager.Context) (manager.Controller, error) {
	nodes := c.Informers.Core().V1().Nodes()
	pods := c.Informers.Core().V1().Pods()
	inf := pods.Informer()
	byNode, err := manager.IndexPodsByNode(c)
	if err != nil {
		return nil, err
	}
	ctl := &controller{client: c.Client, recorder: c.Recorder("taint-eviction-controller"), nodes: nodes.Lister(), pods: pods.Lister(), byNode: byNode}
	ctl.Loop = manager.NewLoop("taint-eviction-controller", 4, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{nodes.Informer().HasSynced, inf.HasSynced}
	enqueuePod := func(o any) {
		if p, ok := o.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			ctl.Enqueue(p.Namespace + "/" + p.Name)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueuePod, UpdateFunc: func(_, o any) { enqueuePod(o) }}); err != nil {
		return nil, err
	}
	enqueueNode := func(o any) {
		n, ok := o.(*corev1.Node)
		if !ok {
			return
		}
		objs, _ := ctl.byNode.ByIndex(manager.PodsByNode, n.Name)
		for _, p := range objs {
			enqueuePod(p)
		}
	}
	_, err = nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueueNode, UpdateFunc: func(old, o any) {
		if noExecuteChanged(old.(*corev1.Node), o.(*corev1.Node)) {
			enqueueNode(o)
		}
	}})
	return ctl, err
}

func noExecuteChanged(old, n *corev1.Node) bool {
	count := func(n *corev1.Node) (k int) {
		for _, t := range n.Spec.Taints {
			if t.Effect == corev1.TaintEffectNoExecute {
				k++
			}
		}
		return k
	}
	if count(old) != count(n) {
		return true
	}
	for i := range n.Spec.Taints {
		if n.Spec.Taints[i].Effect == corev1.TaintEffectNoExecute && !taintIn(old.Spec.Taints, &n.Spec.Taints[i]) {
			return true
		}
	}
	return false
}

func taintIn(taints []corev1.Taint, t *corev1.Taint) bool {
	for i := range taints {
		if taints[i].MatchTaint(t) {
			return true
		}
	}
	return false
}

// sync decides one pod's fate against its node's NoExecute taints; it returns the time left
// before a tolerated taint's time runs out.
func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	pod, err := c.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if pod.Spec.NodeName == "" || pod.DeletionTimestamp != nil {
		return 0, nil
	}
	node, err := c.nodes.Get(pod.Spec.NodeName)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	now := time.Now()
	var deadline time.Time
	evict := false
	for i := range node.Spec.Taints {
		taint := &node.Spec.Taints[i]
		if taint.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !corev1helpers.TolerationsTolerateTaint(klog.Background(), pod.Spec.Tolerations, taint, false) {
			evict = true
			break
		}
		// The shortest tolerationSeconds among the tolerations of this taint bounds the stay.
		var seconds *int64
		for j := range pod.Spec.Tolerations {
			t := &pod.Spec.Tolerations[j]
			if t.ToleratesTaint(klog.Background(), taint, false) && t.TolerationSeconds != nil && (seconds == nil || *t.TolerationSeconds < *seconds) {
				seconds = t.TolerationSeconds
			}
		}
		if seconds == nil {
			continue
		}
		added := now
		if taint.TimeAdded != nil {
			added = taint.TimeAdded.Time
		}
		at := added.Add(time.Duration(max(*seconds, 0)) * time.Second)
		if deadline.IsZero() || at.Before(deadline) {
			deadline = at
		}
	}
	if !evict && (deadline.IsZero() || now.Before(deadline)) {
		if deadline.IsZero() {
			return 0, nil
		}
		return deadline.Sub(now), nil
	}
	return 0, c.evict(ctx, pod)
}

// evict marks the pod a disruption target and deletes it, telling why in an event.
func (c *controller) evict(ctx context.Context, pod *corev1.Pod) error {
	c.recorder.Eventf(pod, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s/%s", pod.Namespace, pod.Name)
	update := pod.DeepCopy()
	cond := corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "DeletionByTaintManager",
		Message: "Taint manager: deleting due to NoExecute taint", LastTransitionTime: metav1.Now(), ObservedGeneration: pod.Generation}
	replaced := false
	for i := range update.Status.Conditions {
		if update.Status.Conditions[i].Type == corev1.DisruptionTarget {
			update.Status.Conditions[i], replaced = cond, true
		}
	}
	if !replaced {
		update.Status.Conditions = append(update.Status.Conditions, cond)
	}
	if _, err := c.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, update, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}
