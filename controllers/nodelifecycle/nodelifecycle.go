// Package nodelifecycle watches node heartbeats as upstream's node-lifecycle-controller does: a
// node whose kubelet stops renewing its Lease in kube-node-lease and posting its status is marked
// Unknown after the grace period, its pods are marked not ready, and it gets the taints that keep
// new pods off it (NoSchedule) and evict the pods that do not tolerate them (NoExecute, carried
// out by the taint-eviction controller). Node conditions also map to NoSchedule taints.
package nodelifecycle

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	coordinationlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
)

// Upstream's defaults: --node-monitor-period, --node-monitor-grace-period (50s since v1.32) and
// --node-startup-grace-period.
const (
	DefaultMonitorGracePeriod = 50 * time.Second
	monitorPeriod             = 5 * time.Second
	startupGracePeriod        = 60 * time.Second
)

// conditionTaints are the NoSchedule taints that follow node conditions.
var conditionTaints = []struct {
	condition corev1.NodeConditionType
	status    corev1.ConditionStatus
	key       string
}{
	{corev1.NodeReady, corev1.ConditionFalse, corev1.TaintNodeNotReady},
	{corev1.NodeReady, corev1.ConditionUnknown, corev1.TaintNodeUnreachable},
	{corev1.NodeMemoryPressure, corev1.ConditionTrue, corev1.TaintNodeMemoryPressure},
	{corev1.NodeDiskPressure, corev1.ConditionTrue, corev1.TaintNodeDiskPressure},
	{corev1.NodePIDPressure, corev1.ConditionTrue, corev1.TaintNodePIDPressure},
	{corev1.NodeNetworkUnavailable, corev1.ConditionTrue, corev1.TaintNodeNetworkUnavailable},
}

// health is what the controller last saw of a node's heartbeats, and when it saw them change.
type health struct {
	heartbeat metav1.Time
	renew     metav1.MicroTime
	probe     time.Time
}

type controller struct {
	*manager.Loop
	client      kubernetes.Interface
	recorder    record.EventRecorder
	nodes       corelisters.NodeLister
	leases      coordinationlisters.LeaseLister
	pods        cache.Indexer
	gracePeriod time.Duration

	mu     sync.Mutex
	health map[string]*health
}

// New registers the controller; gracePeriod is how long a node may stay silent (0: upstream's
// default).
func New(c *manager.Context, gracePeriod time.Duration) (manager.Controller, error) {
	if gracePeriod <= 0 {
		gracePeriod = DefaultMonitorGracePeriod
	}
	nodes := c.Informers.Core().V1().Nodes()
	leases := c.Informers.Coordination().V1().Leases()
	pods := c.Informers.Core().V1().Pods()
	byNode, err := manager.IndexPodsByNode(c)
	if err != nil {
		return nil, err
	}
	ctl := &controller{client: c.Client, recorder: c.Recorder("node-controller"), nodes: nodes.Lister(), leases: leases.Lister(),
		pods: byNode, gracePeriod: gracePeriod, health: map[string]*health{}}
	ctl.Loop = manager.NewLoop("node-lifecycle-controller", 4, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{nodes.Informer().HasSynced, leases.Informer().HasSynced, pods.Informer().HasSynced}
	enqueue := func(o any) {
		if n, ok := o.(*corev1.Node); ok {
			ctl.Enqueue(n.Name)
		}
	}
	_, err = nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if n, ok := o.(*corev1.Node); ok {
				ctl.mu.Lock()
				delete(ctl.health, n.Name)
				ctl.mu.Unlock()
			}
		}})
	return ctl, err
}

// sync checks one node's heartbeats and sets its conditions and taints; it looks again after
// the monitor period.
func (c *controller) sync(ctx context.Context, name string) (time.Duration, error) {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	wasReady, _ := readyStatus(node)
	if node, err = c.checkHeartbeats(ctx, node); err != nil {
		return 0, err
	}
	ready, reported := readyStatus(node)
	if wasReady == corev1.ConditionTrue && ready != corev1.ConditionTrue {
		c.recorder.Eventf(&corev1.ObjectReference{Kind: "Node", Name: node.Name, UID: node.UID}, corev1.EventTypeNormal, "NodeNotReady",
			"Node %s status is now: %s", node.Name, "NodeNotReady")
	}
	// A node that has not reported yet (in its startup grace) leaves its pods alone.
	if reported && ready != corev1.ConditionTrue {
		if err := c.markPodsNotReady(ctx, node.Name); err != nil {
			return 0, err
		}
	}
	if err := c.setTaints(ctx, node); err != nil {
		return 0, err
	}
	return monitorPeriod, nil
}

// checkHeartbeats marks the node's conditions Unknown when neither its Lease nor its Ready
// condition's heartbeat moved within the grace period.
func (c *controller) checkHeartbeats(ctx context.Context, node *corev1.Node) (*corev1.Node, error) {
	now := time.Now()
	var heartbeat metav1.Time
	var readyCond *corev1.NodeCondition
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == corev1.NodeReady {
			readyCond = &node.Status.Conditions[i]
			heartbeat = readyCond.LastHeartbeatTime
		}
	}
	var renew metav1.MicroTime
	if lease, err := c.leases.Leases(corev1.NamespaceNodeLease).Get(node.Name); err == nil && lease.Spec.RenewTime != nil {
		renew = *lease.Spec.RenewTime
	}
	c.mu.Lock()
	h, seen := c.health[node.Name]
	if !seen {
		h = &health{heartbeat: heartbeat, renew: renew, probe: now}
		c.health[node.Name] = h
	}
	if !heartbeat.Equal(&h.heartbeat) || renew.After(h.renew.Time) {
		h.heartbeat, h.renew, h.probe = heartbeat, renew, now
	}
	probe := h.probe
	c.mu.Unlock()

	grace := c.gracePeriod
	if readyCond == nil {
		grace = startupGracePeriod
	}
	if now.Before(probe.Add(grace)) {
		return node, nil
	}
	update := node.DeepCopy()
	changed := false
	for _, t := range []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		i := slices.IndexFunc(update.Status.Conditions, func(c corev1.NodeCondition) bool { return c.Type == t })
		switch {
		case i < 0:
			update.Status.Conditions = append(update.Status.Conditions, corev1.NodeCondition{Type: t, Status: corev1.ConditionUnknown,
				Reason: "NodeStatusNeverUpdated", Message: "Kubelet never posted node status.",
				LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: metav1.NewTime(now)})
			changed = true
		case update.Status.Conditions[i].Status != corev1.ConditionUnknown:
			cond := &update.Status.Conditions[i]
			cond.Status, cond.Reason, cond.Message, cond.LastTransitionTime = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status.", metav1.NewTime(now)
			changed = true
		}
	}
	if !changed {
		return node, nil
	}
	updated, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, update, metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	// Our own write is not a heartbeat.
	c.mu.Lock()
	for _, cond := range updated.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			h.heartbeat = cond.LastHeartbeatTime
		}
	}
	c.mu.Unlock()
	return updated, nil
}

// markPodsNotReady turns the Ready condition of the node's pods False, as upstream does when a
// node stops being ready.
func (c *controller) markPodsNotReady(ctx context.Context, node string) error {
	objs, err := c.pods.ByIndex(manager.PodsByNode, node)
	if err != nil {
		return err
	}
	for _, o := range objs {
		pod := o.(*corev1.Pod)
		i := slices.IndexFunc(pod.Status.Conditions, func(c corev1.PodCondition) bool { return c.Type == corev1.PodReady })
		if i < 0 || pod.Status.Conditions[i].Status == corev1.ConditionFalse {
			continue
		}
		update := pod.DeepCopy()
		update.Status.Conditions[i].Status = corev1.ConditionFalse
		update.Status.Conditions[i].LastTransitionTime = metav1.Now()
		if _, err := c.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, update, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return err
		}
		c.recorder.Event(pod, corev1.EventTypeWarning, "NodeNotReady", "Node is not ready")
	}
	return nil
}

// setTaints makes the node's condition taints what its conditions say: NoSchedule for each
// condition in conditionTaints and for a cordoned node, NoExecute for not-ready and
// unreachable.
func (c *controller) setTaints(ctx context.Context, node *corev1.Node) error {
	want := map[string]bool{}
	for _, ct := range conditionTaints {
		for _, cond := range node.Status.Conditions {
			if cond.Type == ct.condition && cond.Status == ct.status {
				want[ct.key] = true
			}
		}
	}
	if node.Spec.Unschedulable {
		want[corev1.TaintNodeUnschedulable] = true
	}
	noExecute := map[string]bool{corev1.TaintNodeNotReady: want[corev1.TaintNodeNotReady], corev1.TaintNodeUnreachable: want[corev1.TaintNodeUnreachable]}
	if sameTaints(node.Spec.Taints, want, noExecute) {
		return nil
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		current, err := c.client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		current.Spec.Taints = desiredTaints(current.Spec.Taints, want, noExecute)
		_, err = c.client.CoreV1().Nodes().Update(ctx, current, metav1.UpdateOptions{})
		return err
	})
}

// managed tells whether the controller owns a taint: the condition taints with NoSchedule, and
// not-ready and unreachable with NoExecute.
func managed(t corev1.Taint) bool {
	switch t.Effect {
	case corev1.TaintEffectNoSchedule:
		if t.Key == corev1.TaintNodeUnschedulable {
			return true
		}
		for _, ct := range conditionTaints {
			if ct.key == t.Key {
				return true
			}
		}
	case corev1.TaintEffectNoExecute:
		return t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable
	}
	return false
}

func sameTaints(taints []corev1.Taint, noSchedule, noExecute map[string]bool) bool {
	haveNS, haveNE := map[string]bool{}, map[string]bool{}
	for _, t := range taints {
		if !managed(t) {
			continue
		}
		if t.Effect == corev1.TaintEffectNoSchedule {
			haveNS[t.Key] = true
		} else {
			haveNE[t.Key] = true
		}
	}
	return equalSets(haveNS, noSchedule) && equalSets(haveNE, noExecute)
}

func equalSets(have, want map[string]bool) bool {
	n := 0
	for k, v := range want {
		if v {
			n++
			if !have[k] {
				return false
			}
		}
	}
	return n == len(have)
}

// desiredTaints keeps the taints the controller does not manage and those it wants that are
// already there (with their time), and adds the missing ones.
func desiredTaints(taints []corev1.Taint, noSchedule, noExecute map[string]bool) []corev1.Taint {
	var out []corev1.Taint
	have := map[corev1.TaintEffect]map[string]bool{corev1.TaintEffectNoSchedule: {}, corev1.TaintEffectNoExecute: {}}
	for _, t := range taints {
		if managed(t) {
			wanted := noSchedule
			if t.Effect == corev1.TaintEffectNoExecute {
				wanted = noExecute
			}
			if !wanted[t.Key] {
				continue
			}
			have[t.Effect][t.Key] = true
		}
		out = append(out, t)
	}
	now := metav1.Now()
	for key, on := range noSchedule {
		if on && !have[corev1.TaintEffectNoSchedule][key] {
			out = append(out, corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	for key, on := range noExecute {
		if on && !have[corev1.TaintEffectNoExecute][key] {
			out = append(out, corev1.Taint{Key: key, Effect: corev1.TaintEffectNoExecute, TimeAdded: &now})
		}
	}
	return out
}

// readyStatus is the node's Ready condition status, and whether it has one.
func readyStatus(node *corev1.Node) (corev1.ConditionStatus, bool) {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status, true
		}
	}
	return corev1.ConditionUnknown, false
}
