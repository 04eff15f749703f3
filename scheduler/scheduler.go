// Package scheduler assigns pods to nodes as kube-scheduler does: it watches the pods that name
// it in spec.schedulerName, keeps them in a queue by priority with backoff, filters the nodes
// they fit on, scores those, binds the pod to the best through pods/binding, and preempts
// lower-priority pods when nothing fits. One copy is active under a Lease; others stand by.
package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// DefaultSchedulerName is the scheduler pods get when they name none.
const DefaultSchedulerName = corev1.DefaultSchedulerName

// Scoring strategies of the resource-fit score.
const (
	LeastAllocated = "LeastAllocated"
	MostAllocated  = "MostAllocated"
)

// Options configure a scheduler.
type Options struct {
	// SchedulerName is the spec.schedulerName of the pods it schedules (default
	// default-scheduler).
	SchedulerName string
	// ScoringStrategy is LeastAllocated (the default: spread pods out) or MostAllocated
	// (pack them).
	ScoringStrategy string
	Log             *slog.Logger
	// Election tunes leader election; the Lease is kube-scheduler for the default scheduler
	// and the scheduler's name for others.
	Election manager.Options
}

func (o *Options) defaults() {
	if o.SchedulerName == "" {
		o.SchedulerName = DefaultSchedulerName
	}
	if o.ScoringStrategy == "" {
		o.ScoringStrategy = LeastAllocated
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Election.LeaseName == "" {
		o.Election.LeaseName = "kube-scheduler"
		if o.SchedulerName != DefaultSchedulerName {
			o.Election.LeaseName = o.SchedulerName
		}
	}
	if o.Election.Log == nil {
		o.Election.Log = o.Log
	}
}

// Run schedules pods under leader election until ctx is done.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	opts.defaults()
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kube-scheduler"
	// Binding throughput is the scheduler's throughput: allow it far more than client-go's
	// default 5 requests a second.
	cfg.QPS, cfg.Burst = max(cfg.QPS, 1000), max(cfg.Burst, 2000)
	return manager.Run(ctx, cfg, opts.Election, func(c *manager.Context) ([]manager.Controller, error) {
		s, err := New(c.Client, c.Informers, opts)
		if err != nil {
			return nil, err
		}
		return []manager.Controller{s}, nil
	})
}

// Scheduler is one scheduler profile at work.
type Scheduler struct {
	opts     Options
	client   kubernetes.Interface
	recorder events.EventRecorder
	events   events.EventBroadcaster
	cache    *clusterCache
	queue    *queue
	// nextStart is where the next attempt starts looking, so that attempts that stop early
	// still spread over all nodes.
	nextStart int

	pods         corelisters.PodLister
	namespaces   corelisters.NamespaceLister
	claims       corelisters.PersistentVolumeClaimLister
	volumes      corelisters.PersistentVolumeLister
	classes      storagelisters.StorageClassLister
	services     corelisters.ServiceLister
	rcs          corelisters.ReplicationControllerLister
	replicaSets  appslisters.ReplicaSetLister
	statefulSets appslisters.StatefulSetLister
	budgets      policylisters.PodDisruptionBudgetLister
	synced       []cache.InformerSynced
}

// New builds a scheduler on the informers of factory, which the caller starts.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) (*Scheduler, error) {
	opts.defaults()
	s := &Scheduler{opts: opts, client: client, cache: newClusterCache(), queue: newQueue()}
	s.events = events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
	s.recorder = s.events.NewRecorder(scheme.Scheme, opts.SchedulerName)

	core, apps := factory.Core().V1(), factory.Apps().V1()
	s.pods, s.namespaces = core.Pods().Lister(), core.Namespaces().Lister()
	s.claims, s.volumes = core.PersistentVolumeClaims().Lister(), core.PersistentVolumes().Lister()
	s.classes = factory.Storage().V1().StorageClasses().Lister()
	s.services, s.rcs = core.Services().Lister(), core.ReplicationControllers().Lister()
	s.replicaSets, s.statefulSets = apps.ReplicaSets().Lister(), apps.StatefulSets().Lister()
	s.budgets = factory.Policy().V1().PodDisruptionBudgets().Lister()
	for _, inf := range []cache.SharedIndexInformer{core.Pods().Informer(), core.Nodes().Informer(), core.Namespaces().Informer(),
		core.PersistentVolumeClaims().Informer(), core.PersistentVolumes().Informer(), factory.Storage().V1().StorageClasses().Informer(),
		core.Services().Informer(), core.ReplicationControllers().Informer(), apps.ReplicaSets().Informer(), apps.StatefulSets().Informer(),
		factory.Policy().V1().PodDisruptionBudgets().Informer()} {
		s.synced = append(s.synced, inf.HasSynced)
	}
	if _, err := core.Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.onPod(o.(*corev1.Pod)) },
		UpdateFunc: func(_, o any) { s.onPod(o.(*corev1.Pod)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				s.queue.remove(p.UID)
				s.cache.removePod(p.UID)
				s.cache.nominate(p, "")
				if p.Spec.NodeName != "" {
					s.queue.clusterChanged()
				}
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := core.Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { s.cache.setNode(o.(*corev1.Node)); s.queue.clusterChanged() },
		UpdateFunc: func(old, o any) {
			n := o.(*corev1.Node)
			s.cache.setNode(n)
			if nodeSchedulingChanged(old.(*corev1.Node), n) {
				s.queue.clusterChanged()
			}
		},
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if n, ok := o.(*corev1.Node); ok {
				s.cache.removeNode(n.Name)
			}
		},
	}); err != nil {
		return nil, err
	}
	// A claim bound or a volume made may let a waiting pod in.
	changed := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { s.queue.clusterChanged() }, UpdateFunc: func(any, any) { s.queue.clusterChanged() }}
	for _, inf := range []cache.SharedIndexInformer{core.PersistentVolumeClaims().Informer(), core.PersistentVolumes().Informer()} {
		if _, err := inf.AddEventHandler(changed); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// nodeSchedulingChanged tells whether a node update can change where pods fit; heartbeats
// alone cannot.
func nodeSchedulingChanged(old, n *corev1.Node) bool {
	return old.Spec.Unschedulable != n.Spec.Unschedulable || !labels.Equals(old.Labels, n.Labels) ||
		fmt.Sprint(old.Spec.Taints) != fmt.Sprint(n.Spec.Taints) || fmt.Sprint(old.Status.Allocatable) != fmt.Sprint(n.Status.Allocatable)
}

// Name is the scheduler's name in logs.
func (s *Scheduler) Name() string { return s.opts.SchedulerName }

// responsible tells whether the pod waits for this scheduler.
func (s *Scheduler) responsible(p *corev1.Pod) bool {
	return p.Spec.SchedulerName == s.opts.SchedulerName && p.Spec.NodeName == "" && p.DeletionTimestamp == nil &&
		len(p.Spec.SchedulingGates) == 0 && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func (s *Scheduler) onPod(p *corev1.Pod) {
	switch {
	case p.Spec.NodeName != "":
		s.queue.remove(p.UID)
		s.cache.setPod(p)
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			s.queue.clusterChanged()
		}
	case s.responsible(p):
		s.queue.add(p)
		s.cache.nominate(p, p.Status.NominatedNodeName)
		return
	default:
		s.queue.remove(p.UID)
	}
	s.cache.nominate(p, "")
}

// Run schedules until ctx is done.
func (s *Scheduler) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return ctx.Err()
	}
	if err := s.events.StartRecordingToSinkWithContext(ctx); err != nil {
		return err
	}
	defer s.events.Shutdown()
	go func() {
		backoff := time.NewTicker(backoffFlushTick)
		defer backoff.Stop()
		for {
			select {
			case <-ctx.Done():
				s.queue.close()
				return
			case now := <-backoff.C:
				s.queue.flush(now)
			}
		}
	}()
	s.opts.Log.Info("scheduler running", "scheduler", s.opts.SchedulerName)
	for ctx.Err() == nil {
		qp, cycleID := s.queue.pop()
		if qp == nil {
			break
		}
		s.scheduleOne(ctx, qp, cycleID)
	}
	return nil
}

// scheduleOne makes one attempt at placing one pod.
func (s *Scheduler) scheduleOne(ctx context.Context, qp *queuedPod, cycleID uint64) {
	pod, err := s.pods.Pods(qp.pod.Namespace).Get(qp.pod.Name)
	if err != nil || pod.UID != qp.pod.UID || !s.responsible(pod) {
		s.queue.done(qp.pod.UID)
		return
	}
	qp.pod = pod

	s.cache.mu.Lock()
	c, prefilterMsg := s.prepare(pod)
	var (
		node      string
		reasons   map[string]int
		nodeCount int
		plan      *preemptionPlan
	)
	if prefilterMsg == "" {
		var verdicts map[string]verdict
		node, verdicts, nodeCount = s.findNode(c)
		if node == "" {
			reasons = map[string]int{}
			for _, v := range verdicts {
				for _, r := range v.reasons {
					reasons[r]++
				}
			}
			plan = s.preempt(c, verdicts, nodeCount)
		} else {
			s.cache.assumeLocked(c.pi, node)
		}
	} else {
		nodeCount = len(s.cache.nodeOrder())
	}
	s.cache.mu.Unlock()

	if node != "" {
		go s.bind(ctx, qp, node, cycleID)
		return
	}
	msg := fitErrorMessage(nodeCount, prefilterMsg, reasons, plan)
	s.recorder.Eventf(pod, nil, corev1.EventTypeWarning, "FailedScheduling", "Scheduling", msg)
	nominated := ""
	if plan != nil && plan.node != "" {
		nominated = plan.node
		s.cache.nominate(pod, nominated)
		s.evict(ctx, pod, plan)
	}
	s.markUnschedulable(ctx, pod, msg, nominated)
	s.queue.requeue(qp, true, cycleID)
}

// bind writes the decision through pods/binding; a failure undoes the assumption and sends
// the pod back to the queue.
func (s *Scheduler) bind(ctx context.Context, qp *queuedPod, node string, cycleID uint64) {
	pod := qp.pod
	err := s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}, metav1.CreateOptions{})
	if err != nil {
		s.cache.forget(pod.UID)
		if ctx.Err() != nil {
			return
		}
		s.opts.Log.Info("binding failed", "pod", pod.Namespace+"/"+pod.Name, "node", node, "err", err)
		s.recorder.Eventf(pod, nil, corev1.EventTypeWarning, "FailedScheduling", "Scheduling", "Binding rejected: %v", err)
		if apierrors.IsNotFound(err) {
			s.queue.done(pod.UID)
			return
		}
		s.queue.requeue(qp, false, cycleID)
		return
	}
	s.queue.done(pod.UID)
	s.recorder.Eventf(pod, nil, corev1.EventTypeNormal, "Scheduled", "Binding", "Successfully assigned %v/%v to %v", pod.Namespace, pod.Name, node)
}

// markUnschedulable records the failure on the pod: PodScheduled False, Unschedulable, with
// the message, and the node nominated for it if preemption made room there.
func (s *Scheduler) markUnschedulable(ctx context.Context, pod *corev1.Pod, msg, nominated string) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable &&
			c.Message == msg && (nominated == "" || pod.Status.NominatedNodeName == nominated) {
			return
		}
	}
	cond := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: msg, LastTransitionTime: metav1.Now()}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			cond.LastTransitionTime = c.LastTransitionTime
		}
	}
	patch := map[string]any{"status": map[string]any{"conditions": []corev1.PodCondition{cond}}}
	if nominated != "" {
		patch["status"].(map[string]any)["nominatedNodeName"] = nominated
	}
	if err := s.patchStatus(ctx, pod, patch); err != nil && !apierrors.IsNotFound(err) {
		s.opts.Log.Info("updating pod status failed", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}

// prepare computes what the attempt needs to know about the pod before looking at nodes. A
// non-empty message says the pod cannot be placed anywhere as things are.
func (s *Scheduler) prepare(pod *corev1.Pod) (*cycle, string) {
	c := &cycle{pi: newPodInfo(pod), requiredAffinity: nodeaffinity.GetRequiredNodeAffinity(pod)}
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		claim, err := s.claims.PersistentVolumeClaims(pod.Namespace).Get(v.PersistentVolumeClaim.ClaimName)
		if err != nil {
			return c, fmt.Sprintf("persistentvolumeclaim %q not found", v.PersistentVolumeClaim.ClaimName)
		}
		if claim.DeletionTimestamp != nil {
			return c, fmt.Sprintf("persistentvolumeclaim %q is being deleted", claim.Name)
		}
		if claim.Spec.VolumeName == "" {
			if s.waitsForConsumer(claim) {
				continue
			}
			return c, "pod has unbound immediate PersistentVolumeClaims"
		}
		pv, err := s.volumes.Get(claim.Spec.VolumeName)
		if err != nil {
			return c, fmt.Sprintf("persistentvolume %q not found", claim.Spec.VolumeName)
		}
		if pv.Spec.NodeAffinity != nil && pv.Spec.NodeAffinity.Required != nil {
			if sel, err := nodeaffinity.NewNodeSelector(pv.Spec.NodeAffinity.Required); err == nil {
				c.pvNodeAffinity = append(c.pvNodeAffinity, sel)
			}
		}
	}
	c.interPod = s.interPodStateFor(pod, s.cache.placedFor(!c.pi.terms.empty()))
	c.spread = s.spreadStateFor(c, nil)
	return c, ""
}

// without is the cycle as if the excluded pods were gone, for preemption's trials: the pod
// affinity and spreading counts leave them out. It is c itself when neither can change.
func (s *Scheduler) without(c *cycle, excluded map[types.UID]bool) *cycle {
	if len(excluded) == 0 || (c.pi.terms.empty() && len(s.cache.withTerms) == 0 && c.spread == nil) {
		return c
	}
	trial := *c
	var placed []*placedPod
	for _, p := range s.cache.placedFor(!c.pi.terms.empty()) {
		if !excluded[p.pi.pod.UID] {
			placed = append(placed, p)
		}
	}
	trial.interPod = s.interPodStateFor(c.pi.pod, placed)
	trial.spread = s.spreadStateFor(c, excluded)
	return &trial
}

// waitsForConsumer tells whether an unbound claim's class binds it only once a pod using it
// is scheduled.
func (s *Scheduler) waitsForConsumer(claim *corev1.PersistentVolumeClaim) bool {
	if claim.Spec.StorageClassName == nil || *claim.Spec.StorageClassName == "" {
		return false
	}
	class, err := s.classes.Get(*claim.Spec.StorageClassName)
	return err == nil && class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer
}

func (s *Scheduler) namespaceLabels(name string) labels.Set {
	ns, err := s.namespaces.Get(name)
	if err != nil {
		return nil
	}
	return ns.Labels
}

// numFeasibleNodesToFind is how many fitting nodes an attempt looks for before it stops
// filtering: all of a small cluster, an adaptive share of a large one (upstream's
// percentageOfNodesToScore default).
func numFeasibleNodesToFind(all int) int {
	const minFeasible = 100
	if all < minFeasible {
		return all
	}
	pct := max(50-all/125, 5)
	return max(all*pct/100, minFeasible)
}

// findNode filters the nodes, round robin from where the last attempt stopped, scores those
// that fit and returns the best. With no fit it returns every node's verdict.
func (s *Scheduler) findNode(c *cycle) (string, map[string]verdict, int) {
	order := s.cache.nodeOrder()
	n := len(order)
	if n == 0 {
		return "", nil, 0
	}
	want := numFeasibleNodesToFind(n)
	var feasible []*nodeInfo
	verdicts := map[string]verdict{}
	processed := 0
	for ; processed < n && len(feasible) < want; processed++ {
		ni := s.cache.nodes[order[(s.nextStart+processed)%n]]
		if v := s.filter(c, ni); v.ok() {
			feasible = append(feasible, ni)
		} else {
			verdicts[ni.node.Name] = v
		}
	}
	s.nextStart = (s.nextStart + processed) % n
	if len(feasible) == 0 {
		return "", verdicts, n
	}
	if len(feasible) == 1 {
		return feasible[0].node.Name, nil, n
	}
	return s.best(c, feasible), nil, n
}

// fitErrorMessage words a failure as upstream's FitError does: nodes counted by reason,
// sorted, then what preemption found.
func fitErrorMessage(nodes int, prefilter string, reasons map[string]int, plan *preemptionPlan) string {
	if nodes == 0 && prefilter == "" {
		return "no nodes available to schedule pods"
	}
	msg := fmt.Sprintf("0/%d nodes are available:", nodes)
	if prefilter != "" {
		msg += " " + prefilter + "."
	} else {
		msg += " " + histogram(reasons) + "."
	}
	switch {
	case plan == nil:
		msg += fmt.Sprintf(" preemption: 0/%d nodes are available: %d %s.", nodes, nodes, reasonPreemptionNotHelpful)
	case plan.message != "":
		msg += " " + plan.message
	}
	return msg
}

func histogram(reasons map[string]int) string {
	var parts []string
	for r, n := range reasons {
		if n == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// best scores the feasible nodes and returns the highest, breaking ties at random.
func (s *Scheduler) best(c *cycle, feasible []*nodeInfo) string {
	totals := s.score(c, feasible)
	bestIdx, bestScore, ties := 0, int64(-1), 0
	for i, t := range totals {
		switch {
		case t > bestScore:
			bestIdx, bestScore, ties = i, t, 1
		case t == bestScore:
			ties++
			if rand.IntN(ties) == 0 {
				bestIdx = i
			}
		}
	}
	return feasible[bestIdx].node.Name
}

func (s *Scheduler) patchStatus(ctx context.Context, pod *corev1.Pod, patch map[string]any) error {
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	_, err = s.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status")
	return err
}
