package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/flowcontrol"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// Upstream's container restart back-off: 10 s doubling to 5 minutes, forgotten after a
// container has run for 10 minutes.
const (
	backOffInitial = 10 * time.Second
	backOffMax     = 300 * time.Second
)

// podWorker keeps one pod's containers in line with its spec and reports their status.
type podWorker struct {
	k         *Kubelet
	uid       types.UID
	namespace string
	name      string
	signal    chan struct{}
	done      chan struct{}
	backOff   *flowcontrol.Backoff
	// started is when this kubelet first saw the pod (its status.startTime).
	started metav1.Time
	// terminating is set once the containers are being stopped for the pod's deletion.
	terminating bool
	// lastStatus is the status last written, to write only changes.
	lastStatus *corev1.PodStatus
	// waiting holds, per container name, why its last start failed (an image pull, a bad
	// configuration), until one succeeds.
	waiting map[string]corev1.ContainerStateWaiting
	// pullFailure is the last pull error per image, for the back-off's message.
	pullFailure map[string]string
	probes      probeResults
}

func newPodWorker(k *Kubelet, uid types.UID, ns, name string) *podWorker {
	return &podWorker{k: k, uid: uid, namespace: ns, name: name, signal: make(chan struct{}, 1), done: make(chan struct{}),
		backOff: flowcontrol.NewBackOff(backOffInitial, backOffMax), waiting: map[string]corev1.ContainerStateWaiting{}, pullFailure: map[string]string{}}
}

func (w *podWorker) wake() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// wakeAfter wakes the worker after d, for a wait (a back-off) that no event ends.
func (w *podWorker) wakeAfter(d time.Duration) {
	time.AfterFunc(d, w.wake)
}

func (w *podWorker) stop() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
}

func (w *podWorker) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.done:
			return
		case <-w.signal:
		}
		if finished := w.sync(ctx); finished {
			w.k.forget(w.uid)
			return
		}
	}
}

// sync brings the runtime in line with the pod; it returns true once the pod is gone from
// both the API and the runtime.
func (w *podWorker) sync(ctx context.Context) bool {
	pod, err := w.k.pods.Pods(w.namespace).Get(w.name)
	if apierrors.IsNotFound(err) || (err == nil && pod.UID != w.uid) {
		pod = nil
	} else if err != nil {
		return false
	}
	state, err := w.k.observe(ctx, w.uid)
	if err != nil {
		w.k.log.Warn("reading pod state from the runtime", "pod", w.namespace+"/"+w.name, "err", err)
		return false
	}
	switch {
	case pod == nil:
		w.stopProbes()
		// Gone from the API: whatever still runs is stopped and removed at once.
		w.k.killPod(ctx, nil, state, 0)
		w.k.removePod(ctx, w.uid, state)
		return true
	case pod.DeletionTimestamp != nil:
		w.stopProbes()
		w.terminate(ctx, pod, state)
		return false
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		// Finished: nothing restarts; sidecars still running are stopped, with their final
		// status reported, and the sandbox's resources are freed.
		w.stopProbes()
		if running(state) {
			w.k.killContainers(ctx, pod, state, ptr.Deref(pod.Spec.TerminationGracePeriodSeconds, corev1.DefaultTerminationGracePeriodSeconds))
			if fresh, err := w.k.observe(ctx, w.uid); err == nil {
				state = fresh
			}
			w.writeStatus(ctx, pod, state)
		}
		w.k.stopSandboxes(ctx, state)
		return false
	}
	w.k.syncPod(ctx, w, pod, state)
	return false
}

// terminate stops the pod's containers within its grace period, reports their final status,
// and then deletes the pod for good, as the kubelet confirms termination upstream.
func (w *podWorker) terminate(ctx context.Context, pod *corev1.Pod, state *podState) {
	if !w.terminating {
		w.terminating = true
		w.k.killPod(ctx, pod, state, graceFor(pod))
		if fresh, err := w.k.observe(ctx, w.uid); err == nil {
			state = fresh
		}
	}
	w.writeStatus(ctx, pod, state)
	w.k.removePod(ctx, w.uid, state)
	err := w.k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &w.uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		w.k.log.Warn("deleting terminated pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}

// writeStatus writes the pod's status as the runtime shows it, when it changed.
func (w *podWorker) writeStatus(ctx context.Context, pod *corev1.Pod, state *podState) {
	for attempt := 0; attempt < 3; attempt++ {
		status := w.k.podStatus(w, pod, state)
		if w.lastStatus != nil && statusEqual(w.lastStatus, &status) && statusEqual(&pod.Status, &status) {
			return
		}
		updated := pod.DeepCopy()
		updated.Status = status
		got, err := w.k.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
		if err == nil {
			w.lastStatus = got.Status.DeepCopy()
			return
		}
		w.lastStatus = nil
		if !apierrors.IsConflict(err) {
			if !apierrors.IsNotFound(err) {
				w.k.log.Warn("writing pod status", "pod", pod.Namespace+"/"+pod.Name, "err", err)
			}
			return
		}
		// Another writer (the scheduler, a controller) came first: merge with what it wrote.
		fresh, err := w.k.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil || fresh.UID != w.uid {
			return
		}
		pod = fresh
	}
}

// removePod removes the pod's containers, sandboxes and files.
func (k *Kubelet) removePod(ctx context.Context, uid types.UID, state *podState) {
	for _, c := range state.containers {
		_, _ = k.runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id})
	}
	for _, sb := range state.sandboxes {
		_, _ = k.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
		_, _ = k.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id})
	}
	unmountAll(k.podDir(uid))
	_ = os.RemoveAll(k.podDir(uid))
}

// podDir holds one pod's volumes and generated files.
func (k *Kubelet) podDir(uid types.UID) string {
	return filepath.Join(k.opts.RootDir, "pods", string(uid))
}

// running tells whether any of the pod's containers runs or is created.
func running(state *podState) bool {
	for _, c := range state.containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING || c.State == runtimeapi.ContainerState_CONTAINER_CREATED {
			return true
		}
	}
	return false
}
