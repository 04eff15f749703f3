package simulator

import (
	"context"
	"net/netip"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
)

// Annotations on a pod that tell a simulated node how its run ends. A pod whose restartPolicy
// is Always runs until deleted; the others end after DurationAnnotation (default 1s) with
// ExitCodeAnnotation (default 0): Succeeded on 0, Failed otherwise.
const (
	DurationAnnotation = "simulate.keelson.dev/duration"
	ExitCodeAnnotation = "simulate.keelson.dev/exit-code"
)

const defaultRunDuration = time.Second

// podRunner plays the kubelet's part for the pods bound to the simulated nodes.
type podRunner struct {
	nodes      *Nodes
	lister     corelisters.PodLister
	nodeLister corelisters.NodeLister
	synced     func() bool
	queue      workqueue.TypedRateLimitingInterface[string]

	// ips hands out pod addresses per node.
	mu  sync.Mutex
	ips map[string]uint32
}

func newPodRunner(n *Nodes, factory informers.SharedInformerFactory) (*podRunner, error) {
	inf := factory.Core().V1().Pods()
	nodes := factory.Core().V1().Nodes()
	r := &podRunner{nodes: n, lister: inf.Lister(), nodeLister: nodes.Lister(), ips: map[string]uint32{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "simulated-pods"})}
	enqueue := func(o any) {
		if p, ok := o.(*corev1.Pod); ok {
			if _, ours := n.index[p.Spec.NodeName]; ours {
				r.queue.Add(p.Namespace + "/" + p.Name)
			}
		}
	}
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }})
	r.synced = func() bool { return inf.Informer().HasSynced() && nodes.Informer().HasSynced() }
	return r, err
}

func (r *podRunner) run(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				key, quit := r.queue.Get()
				if quit {
					return
				}
				after, err := r.sync(ctx, key)
				switch {
				case err == nil:
					r.queue.Forget(key)
					if after > 0 {
						r.queue.AddAfter(key, after)
					}
				case apierrors.IsNotFound(err):
					r.queue.Forget(key)
				default:
					r.queue.AddRateLimited(key)
				}
				r.queue.Done(key)
			}
		})
	}
	<-ctx.Done()
	r.queue.ShutDown()
	wg.Wait()
}

// sync moves one pod on: deleted pods are confirmed gone, pending pods start, pods that run to
// completion end when their time is up. It returns when to look again.
func (r *podRunner) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	pod, err := r.lister.Pods(ns).Get(name)
	if err != nil {
		return 0, err
	}
	if r.nodes.isDead(pod.Spec.NodeName) {
		return 0, nil
	}
	pods := r.nodes.client.CoreV1().Pods(ns)
	if pod.DeletionTimestamp != nil {
		// The containers are stopped at once; the kubelet then removes the pod for good.
		return 0, pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0)), Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0, nil
	}
	now := time.Now()
	if pod.Status.Phase != corev1.PodRunning {
		_, err := pods.UpdateStatus(ctx, r.running(pod, metav1.NewTime(now)), metav1.UpdateOptions{})
		if err != nil {
			return 0, err
		}
		if pod.Spec.RestartPolicy == corev1.RestartPolicyAlways {
			return 0, nil
		}
		return runDuration(pod), nil
	}
	if pod.Spec.RestartPolicy == corev1.RestartPolicyAlways || pod.Status.StartTime == nil {
		return 0, nil
	}
	if left := pod.Status.StartTime.Add(runDuration(pod)).Sub(now); left > 0 {
		return left, nil
	}
	_, err = pods.UpdateStatus(ctx, finished(pod, metav1.NewTime(now)), metav1.UpdateOptions{})
	return 0, err
}

func runDuration(pod *corev1.Pod) time.Duration {
	if d, err := time.ParseDuration(pod.Annotations[DurationAnnotation]); err == nil {
		return d
	}
	return defaultRunDuration
}

// running is the pod's status once its containers have started and are ready.
func (r *podRunner) running(pod *corev1.Pod, now metav1.Time) *corev1.Pod {
	p := pod.DeepCopy()
	hostIP := r.nodes.nodeIP(p.Spec.NodeName).String()
	podIP := hostIP
	if !p.Spec.HostNetwork {
		podIP = r.podIP(p.Spec.NodeName).String()
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.HostIP, p.Status.HostIPs = hostIP, []corev1.HostIP{{IP: hostIP}}
	p.Status.PodIP, p.Status.PodIPs = podIP, []corev1.PodIP{{IP: podIP}}
	p.Status.StartTime = &now
	for _, t := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled} {
		setCondition(p, t, now)
	}
	p.Status.InitContainerStatuses = nil
	for _, c := range p.Spec.InitContainers {
		st := containerStatus(p, c, now)
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			st.Ready, st.Started = false, ptr.To(false)
			st.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed", StartedAt: now, FinishedAt: now, ContainerID: st.ContainerID}}
		}
		p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, st)
	}
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, containerStatus(p, c, now))
	}
	return p
}

// finished is the pod's status once its containers have exited.
func finished(pod *corev1.Pod, now metav1.Time) *corev1.Pod {
	p := pod.DeepCopy()
	code, _ := strconv.Atoi(p.Annotations[ExitCodeAnnotation])
	reason := "Completed"
	p.Status.Phase = corev1.PodSucceeded
	if code != 0 {
		p.Status.Phase, reason = corev1.PodFailed, "Error"
	}
	for i := range p.Status.ContainerStatuses {
		st := &p.Status.ContainerStatuses[i]
		started := now
		if st.State.Running != nil {
			started = st.State.Running.StartedAt
		}
		st.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: reason, StartedAt: started, FinishedAt: now, ContainerID: st.ContainerID}}
		st.Ready, st.Started = false, ptr.To(false)
	}
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		if c.Type == corev1.PodReady || c.Type == corev1.ContainersReady || c.Type == corev1.PodReadyToStartContainers {
			c.Status, c.LastTransitionTime = corev1.ConditionFalse, now
			if c.Type != corev1.PodReadyToStartContainers {
				c.Reason = "PodCompleted"
			}
		}
	}
	return p
}

func containerStatus(p *corev1.Pod, c corev1.Container, now metav1.Time) corev1.ContainerStatus {
	id := "simulated://" + string(p.UID) + "/" + c.Name
	return corev1.ContainerStatus{
		Name: c.Name, Image: c.Image, ImageID: "simulated://" + c.Image, ContainerID: id,
		Ready: true, Started: ptr.To(true),
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
	}
}

func setCondition(p *corev1.Pod, t corev1.PodConditionType, now metav1.Time) {
	for i := range p.Status.Conditions {
		if c := &p.Status.Conditions[i]; c.Type == t {
			if c.Status != corev1.ConditionTrue {
				c.Status, c.Reason, c.Message, c.LastTransitionTime = corev1.ConditionTrue, "", "", now
			}
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
}

// podIP hands out the next address of the node's pod range: its podCIDR when node IPAM gave it
// one, else 10.128.0.0/9 cut into a /24 per node by index.
func (r *podRunner) podIP(node string) netip.Addr {
	r.mu.Lock()
	next := r.ips[node]%250 + 1
	r.ips[node] = next
	r.mu.Unlock()
	if n, err := r.nodeLister.Get(node); err == nil && n.Spec.PodCIDR != "" {
		if prefix, err := netip.ParsePrefix(n.Spec.PodCIDR); err == nil && prefix.Addr().Is4() {
			b := prefix.Masked().Addr().As4()
			v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			v += next
			return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		}
	}
	i := r.nodes.index[node]
	return netip.AddrFrom4([4]byte{10, byte(128 + i>>8), byte(i), byte(next)})
}
