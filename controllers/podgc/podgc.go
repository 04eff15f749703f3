// Package podgc removes pods nobody else will: pods bound to nodes that no longer exist, pods
// being deleted that were never scheduled, and the oldest terminated pods beyond a threshold, as
// upstream's pod-garbage-collector does.
package podgc

import (
	"context"
	"sort"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corev1apply "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

const (
	// key is the loop's only key: every pass looks at all pods.
	key = "pods"
	// period is how often upstream's collector runs.
	period = 20 * time.Second
	// quarantine is how long a node must stay missing before its pods are collected, so that a
	// pod scheduled just before its node appears in the cache is not lost.
	quarantine = 40 * time.Second
	// DefaultTerminatedThreshold is upstream's --terminated-pod-gc-threshold.
	DefaultTerminatedThreshold = 12500
	fieldManager               = "PodGC"
)

type controller struct {
	*manager.Loop
	client    kubernetes.Interface
	pods      corelisters.PodLister
	nodes     corelisters.NodeLister
	threshold int
	// missing records when each absent node was first seen named by a pod. Only the loop's one
	// key touches it, and the loop never runs a key twice at once.
	missing map[string]time.Time
}

// New registers the controller on c's informers; threshold bounds the terminated pods kept
// (0 keeps them all).
func New(c *manager.Context, threshold int) (manager.Controller, error) {
	pods := c.Informers.Core().V1().Pods()
	nodes := c.Informers.Core().V1().Nodes()
	ctl := &controller{client: c.Client, pods: pods.Lister(), nodes: nodes.Lister(), threshold: threshold, missing: map[string]time.Time{}}
	ctl.Loop = manager.NewLoop("pod-garbage-collector", 1, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{pods.Informer().HasSynced, nodes.Informer().HasSynced}
	return ctl, nil
}

// Run starts the periodic pass.
func (c *controller) Run(ctx context.Context) error {
	c.Enqueue(key)
	return c.Loop.Run(ctx)
}

func (c *controller) sync(ctx context.Context, _ string) (time.Duration, error) {
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return 0, err
	}
	if err := c.collectTerminated(ctx, pods); err != nil {
		return 0, err
	}
	next, err := c.collectOrphaned(ctx, pods)
	if err != nil {
		return 0, err
	}
	for _, p := range pods {
		if p.DeletionTimestamp != nil && p.Spec.NodeName == "" {
			if err := c.failAndDelete(ctx, p, nil); err != nil {
				return 0, err
			}
		}
	}
	return min(next, period), nil
}

// collectTerminated deletes the oldest Succeeded and Failed pods beyond the threshold.
func (c *controller) collectTerminated(ctx context.Context, pods []*corev1.Pod) error {
	if c.threshold <= 0 {
		return nil
	}
	var done []*corev1.Pod
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			done = append(done, p)
		}
	}
	if len(done) <= c.threshold {
		return nil
	}
	sort.Slice(done, func(i, j int) bool {
		a, b := done[i].CreationTimestamp, done[j].CreationTimestamp
		return a.Before(&b) || a.Equal(&b) && done[i].Name < done[j].Name
	})
	for _, p := range done[:len(done)-c.threshold] {
		if err := c.failAndDelete(ctx, p, nil); err != nil {
			return err
		}
	}
	return nil
}

// collectOrphaned deletes pods bound to a node that has been missing for the quarantine time,
// and says when the next missing node's quarantine ends.
func (c *controller) collectOrphaned(ctx context.Context, pods []*corev1.Pod) (time.Duration, error) {
	now := time.Now()
	named := map[string]bool{}
	next := period
	for _, p := range pods {
		node := p.Spec.NodeName
		if node == "" || named[node] {
			continue
		}
		named[node] = true
		if _, err := c.nodes.Get(node); err == nil {
			delete(c.missing, node)
			continue
		}
		since, ok := c.missing[node]
		if !ok {
			c.missing[node] = now
			since = now
		}
		if left := since.Add(quarantine).Sub(now); left > 0 {
			next = min(next, left)
			continue
		}
		// The cache may lag: only the server can say the node is gone.
		_, err := c.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err == nil {
			delete(c.missing, node)
			continue
		}
		if !apierrors.IsNotFound(err) {
			return 0, err
		}
	}
	for node := range c.missing {
		if !named[node] {
			delete(c.missing, node)
		}
	}
	gone := corev1apply.PodCondition().WithType(corev1.DisruptionTarget).WithStatus(corev1.ConditionTrue).
		WithReason("DeletionByPodGC").WithMessage("PodGC: node no longer exists").WithLastTransitionTime(metav1.NewTime(now))
	for _, p := range pods {
		since, ok := c.missing[p.Spec.NodeName]
		if !ok || now.Sub(since) < quarantine {
			continue
		}
		if err := c.failAndDelete(ctx, p, gone); err != nil {
			return 0, err
		}
	}
	return next, nil
}

// failAndDelete marks a pod that has not finished as Failed (with the condition, if any) and
// deletes it at once: no kubelet is left to finish it.
func (c *controller) failAndDelete(ctx context.Context, p *corev1.Pod, condition *corev1apply.PodConditionApplyConfiguration) error {
	if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
		status := corev1apply.PodStatus().WithPhase(corev1.PodFailed)
		if condition != nil {
			status.WithConditions(condition)
		}
		_, err := c.client.CoreV1().Pods(p.Namespace).ApplyStatus(ctx, corev1apply.Pod(p.Name, p.Namespace).WithStatus(status),
			metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}
