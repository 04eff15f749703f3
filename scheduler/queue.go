package scheduler

import (
	"container/heap"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

// Upstream's queue timings: a pod that failed waits 1s, doubling per attempt up to 10s, before
// it is tried again; a pod found unschedulable waits for a change in the cluster that might
// help, or at most 5 minutes.
const (
	initialBackoff         = time.Second
	maxBackoff             = 10 * time.Second
	maxUnschedulableWait   = 5 * time.Minute
	unschedulableFlushTick = 30 * time.Second
	backoffFlushTick       = time.Second
)

// queuedPod is a pod waiting to be scheduled.
type queuedPod struct {
	pod *corev1.Pod
	// added is when it first entered the queue, the tie-breaker between equal priorities.
	added time.Time
	// attempts counts the scheduling attempts, which lengthen its backoff.
	attempts int
	// backoffUntil is when it may be tried again; unschedulableSince when it was parked.
	backoffUntil, unschedulableSince time.Time
	index                            int
}

func (q *queuedPod) backoff() time.Duration {
	d := initialBackoff
	for i := 1; i < q.attempts && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// activeHeap orders pods by priority, highest first, then by when they arrived.
type activeHeap []*queuedPod

func (h activeHeap) Len() int { return len(h) }
func (h activeHeap) Less(i, j int) bool {
	pi, pj := corev1helpers.PodPriority(h[i].pod), corev1helpers.PodPriority(h[j].pod)
	if pi != pj {
		return pi > pj
	}
	return h[i].added.Before(h[j].added)
}
func (h activeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *activeHeap) Push(x any)   { q := x.(*queuedPod); q.index = len(*h); *h = append(*h, q) }
func (h *activeHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	*h = old[:len(old)-1]
	q.index = -1
	return q
}

// queue holds the pods to schedule: active ones by priority, ones backing off after a failure,
// and unschedulable ones parked until the cluster changes.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	active activeHeap
	// backingOff and unschedulable are keyed by uid, as is every pod the queue knows.
	backingOff    map[types.UID]*queuedPod
	unschedulable map[types.UID]*queuedPod
	all           map[types.UID]*queuedPod
	// inFlight are popped pods being scheduled; a change to them while in flight means the
	// attempt's verdict may be stale, so a failure sends them back at once.
	inFlight map[types.UID]*corev1.Pod
	changed  map[types.UID]bool
	// moveRequest counts cluster changes, so that a pod whose attempt overlapped one is not
	// parked on a verdict the change may have undone.
	moveRequest uint64
	closed      bool
}

func newQueue() *queue {
	q := &queue{backingOff: map[types.UID]*queuedPod{}, unschedulable: map[types.UID]*queuedPod{},
		all: map[types.UID]*queuedPod{}, inFlight: map[types.UID]*corev1.Pod{}, changed: map[types.UID]bool{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// add puts a new pod in the active queue, or updates a pod the queue holds: an updated
// unschedulable pod is tried again, since its change may make it fit.
func (q *queue) add(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if popped, ok := q.inFlight[pod.UID]; ok && schedulingChanged(popped, pod) {
		q.changed[pod.UID] = true
	}
	if qp, ok := q.all[pod.UID]; ok {
		old := qp.pod
		qp.pod = pod
		if qp.index >= 0 {
			heap.Fix(&q.active, qp.index)
		} else if _, parked := q.unschedulable[pod.UID]; parked && schedulingChanged(old, pod) {
			delete(q.unschedulable, pod.UID)
			q.toBackoffOrActive(qp, time.Now())
		}
		return
	}
	if _, ok := q.inFlight[pod.UID]; ok {
		return
	}
	qp := &queuedPod{pod: pod, added: time.Now(), index: -1}
	q.all[pod.UID] = qp
	heap.Push(&q.active, qp)
	q.cond.Signal()
}

// remove forgets a pod that was deleted or scheduled by someone else.
func (q *queue) remove(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	qp, ok := q.all[uid]
	if !ok {
		return
	}
	delete(q.all, uid)
	delete(q.backingOff, uid)
	delete(q.unschedulable, uid)
	if qp.index >= 0 {
		heap.Remove(&q.active, qp.index)
	}
}

// pop waits for the highest-priority active pod; it returns nil once the queue is closed. The
// second value identifies the cluster state the attempt starts from, for requeue.
func (q *queue) pop() (*queuedPod, uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.active) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, 0
	}
	qp := heap.Pop(&q.active).(*queuedPod)
	delete(q.all, qp.pod.UID)
	qp.attempts++
	q.inFlight[qp.pod.UID] = qp.pod
	return qp, q.moveRequest
}

// done ends an attempt that bound the pod (or gave it up).
func (q *queue) done(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inFlight, uid)
	delete(q.changed, uid)
}

// requeue returns a pod whose attempt failed. An unschedulable pod is parked until the
// cluster changes, unless it already changed during the attempt; an error backs off.
func (q *queue) requeue(qp *queuedPod, unschedulable bool, cycle uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	uid := qp.pod.UID
	changed := q.changed[uid]
	delete(q.inFlight, uid)
	delete(q.changed, uid)
	if _, ok := q.all[uid]; ok {
		return
	}
	q.all[uid] = qp
	now := time.Now()
	if unschedulable && !changed && cycle == q.moveRequest {
		qp.unschedulableSince = now
		q.unschedulable[uid] = qp
		return
	}
	q.toBackoffOrActive(qp, now)
}

func (q *queue) toBackoffOrActive(qp *queuedPod, now time.Time) {
	qp.backoffUntil = now.Add(qp.backoff())
	if qp.attempts == 0 {
		heap.Push(&q.active, qp)
		q.cond.Signal()
		return
	}
	q.backingOff[qp.pod.UID] = qp
}

// clusterChanged moves every parked pod out to be tried again: a node came or changed, or a
// pod went away, which may make room.
func (q *queue) clusterChanged() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.moveRequest++
	now := time.Now()
	for uid, qp := range q.unschedulable {
		delete(q.unschedulable, uid)
		q.toBackoffOrActive(qp, now)
	}
}

// flush moves pods whose backoff is over to the active queue, and pods parked too long out of
// the unschedulable set.
func (q *queue) flush(now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for uid, qp := range q.unschedulable {
		if now.Sub(qp.unschedulableSince) >= maxUnschedulableWait {
			delete(q.unschedulable, uid)
			q.toBackoffOrActive(qp, now)
		}
	}
	moved := false
	for uid, qp := range q.backingOff {
		if !now.Before(qp.backoffUntil) {
			delete(q.backingOff, uid)
			heap.Push(&q.active, qp)
			moved = true
		}
	}
	if moved {
		q.cond.Broadcast()
	}
}

func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

// schedulingChanged tells whether an update to a waiting pod can change where it fits: anything
// but its status and bookkeeping (as upstream's queue judges, so that the scheduler's own status
// writes do not send a parked pod round again).
func schedulingChanged(old, pod *corev1.Pod) bool {
	strip := func(p *corev1.Pod) *corev1.Pod {
		c := p.DeepCopy()
		c.ResourceVersion, c.Generation, c.ManagedFields, c.Finalizers = "", 0, nil, nil
		c.Status = corev1.PodStatus{}
		return c
	}
	return !apiequality.Semantic.DeepEqual(strip(old), strip(pod))
}
