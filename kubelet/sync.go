package kubelet

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// syncPod starts what the pod lacks: its sandbox, then its init containers one by one, then its
// containers, restarting exited ones as the restart policy says, and writes its status.
func (k *Kubelet) syncPod(ctx context.Context, w *podWorker, pod *corev1.Pod, state *podState) {
	if w.started.IsZero() {
		w.started = podStartTime(pod)
	}
	defer func() { w.writeStatus(ctx, pod, state) }()
	if err := k.syncVolumes(ctx, pod); err != nil {
		k.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedMount", "%v", err)
		w.wakeAfter(2 * time.Second)
		return
	}
	sb := state.readySandbox()
	if sb == nil {
		if len(state.sandboxes) > 0 && !podMayRestart(pod, state) {
			return
		}
		// A new sandbox starts the pod's containers afresh.
		for _, c := range state.containers {
			if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				_, _ = k.runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id})
			}
		}
		for _, old := range state.sandboxes {
			_, _ = k.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: old.Id})
		}
		cfg := k.sandboxConfig(pod, uint32(len(state.sandboxes)))
		if _, err := k.runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg}); err != nil {
			k.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
			w.wakeAfter(time.Second)
			return
		}
		fresh, err := k.observe(ctx, w.uid)
		if err != nil {
			return
		}
		*state = *fresh
		if sb = state.readySandbox(); sb == nil {
			return
		}
	}
	if err := k.writeHosts(pod, state.podIPs()); err != nil {
		k.log.Warn("writing hosts file", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}

	// Once the regular containers have all run to an end that the restart policy keeps, the
	// pod is done: as upstream, its sidecars stop, the last started first, and stay stopped.
	if len(pod.Spec.InitContainers) > 0 && regularContainersDone(pod, state, sb.Id) {
		grace := ptr.Deref(pod.Spec.TerminationGracePeriodSeconds, corev1.DefaultTerminationGracePeriodSeconds)
		for i := len(pod.Spec.InitContainers) - 1; i >= 0; i-- {
			c := &pod.Spec.InitContainers[i]
			st := state.latest(c.Name, sb.Id)
			if st != nil && (st.State == runtimeapi.ContainerState_CONTAINER_RUNNING || st.State == runtimeapi.ContainerState_CONTAINER_CREATED) {
				k.recorder.Eventf(pod, corev1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
				k.stopContainer(ctx, pod, c, st.Id, grace)
			}
		}
		if fresh, err := k.observe(ctx, w.uid); err == nil {
			*state = *fresh
		}
		return
	}

	// Init containers run in order, each to success; restartable ones (sidecars) are started
	// and left running.
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		st := state.latest(c.Name, sb.Id)
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		switch {
		case st == nil:
			k.startContainer(ctx, w, pod, c, sb, state)
			if !sidecar {
				return
			}
		case st.State == runtimeapi.ContainerState_CONTAINER_RUNNING || st.State == runtimeapi.ContainerState_CONTAINER_CREATED:
			if !sidecar {
				return
			}
		case st.State == runtimeapi.ContainerState_CONTAINER_EXITED:
			if !sidecar && st.ExitCode == 0 {
				continue
			}
			if !sidecar && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
				return // the pod has failed
			}
			k.restartContainer(ctx, w, pod, c, sb, state, st)
			if !sidecar {
				return
			}
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		st := state.latest(c.Name, sb.Id)
		switch {
		case st == nil:
			k.startContainer(ctx, w, pod, c, sb, state)
		case st.State == runtimeapi.ContainerState_CONTAINER_EXITED && shouldRestart(pod.Spec.RestartPolicy, st.ExitCode):
			k.restartContainer(ctx, w, pod, c, sb, state, st)
		}
	}
	if fresh, err := k.observe(ctx, w.uid); err == nil {
		*state = *fresh
	}
	k.syncProbes(ctx, w, pod, state)
}

func shouldRestart(policy corev1.RestartPolicy, exitCode int32) bool {
	return policy == corev1.RestartPolicyAlways || (policy == corev1.RestartPolicyOnFailure && exitCode != 0)
}

// podMayRestart tells whether a pod whose sandbox is gone gets a new one: not when its
// containers have all run and would not be restarted.
func podMayRestart(pod *corev1.Pod, state *podState) bool {
	if pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		return true
	}
	for _, c := range pod.Spec.Containers {
		if state.latest(c.Name, "") == nil {
			return true
		}
	}
	return false
}

// restartContainer starts a new instance of an exited container once its back-off has passed.
func (k *Kubelet) restartContainer(ctx context.Context, w *podWorker, pod *corev1.Pod, c *corev1.Container, sb *runtimeapi.PodSandbox,
	state *podState, exited *runtimeapi.ContainerStatus) {
	key := c.Name
	finished := time.Unix(0, exited.FinishedAt)
	started := time.Unix(0, exited.StartedAt)
	if finished.Sub(started) > 10*time.Minute {
		w.backOff.Reset(key)
	}
	if w.backOff.IsInBackOffSince(key, finished) {
		k.recorder.Eventf(pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", c.Name, pod.Name, pod.Namespace, pod.UID)
		w.wakeAfter(time.Until(finished.Add(w.backOff.Get(key))) + 10*time.Millisecond)
		return
	}
	w.backOff.Next(key, finished)
	k.startContainer(ctx, w, pod, c, sb, state)
}

// inBackOff tells whether an exited container waits for its back-off, for its status.
func (w *podWorker) inBackOff(name string, exited *runtimeapi.ContainerStatus) bool {
	return w.backOff.IsInBackOffSince(name, time.Unix(0, exited.FinishedAt))
}

// startContainer pulls the image if needed, then creates and starts the container, with the
// upstream events for each step.
func (k *Kubelet) startContainer(ctx context.Context, w *podWorker, pod *corev1.Pod, c *corev1.Container, sb *runtimeapi.PodSandbox,
	state *podState) {
	imageRef, ok := k.ensureImage(ctx, w, pod, c)
	if !ok {
		return
	}
	cfg, err := k.containerConfig(pod, c, imageRef, state.attempts(c.Name), state.podIPs())
	if err != nil {
		w.waiting[c.Name] = corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: err.Error()}
		k.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		w.wakeAfter(2 * time.Second)
		return
	}
	created, err := k.runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.Id, Config: cfg,
		SandboxConfig: k.sandboxConfig(pod, sb.Metadata.Attempt)})
	if err != nil {
		w.waiting[c.Name] = corev1.ContainerStateWaiting{Reason: "CreateContainerError", Message: err.Error()}
		k.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		w.wakeAfter(2 * time.Second)
		return
	}
	delete(w.waiting, c.Name)
	k.recorder.Eventf(pod, corev1.EventTypeNormal, "Created", "Created container: %s", c.Name)
	if _, err := k.runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		k.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		return
	}
	k.recorder.Eventf(pod, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
	k.runPostStart(ctx, pod, c, created.ContainerId)
}

// ensureImage makes sure the container's image is present, pulling it as the pull policy says,
// with upstream's events and waiting reasons. It returns the image reference to create the
// container from.
func (k *Kubelet) ensureImage(ctx context.Context, w *podWorker, pod *corev1.Pod, c *corev1.Container) (string, bool) {
	spec := &runtimeapi.ImageSpec{Image: c.Image}
	st, err := k.images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec})
	present := err == nil && st.Image != nil
	if present && c.ImagePullPolicy != corev1.PullAlways {
		k.recorder.Eventf(pod, corev1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.Image)
		return st.Image.Id, true
	}
	if c.ImagePullPolicy == corev1.PullNever {
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		w.waiting[c.Name] = corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: msg}
		k.recorder.Eventf(pod, corev1.EventTypeWarning, "ErrImageNeverPull", "%s", msg)
		return "", false
	}
	key := "pull/" + c.Image
	if w.backOff.IsInBackOffSinceUpdate(key, w.backOff.Clock.Now()) {
		msg := fmt.Sprintf("Back-off pulling image %q", c.Image)
		k.recorder.Eventf(pod, corev1.EventTypeNormal, "BackOff", "%s", msg)
		k.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Error: ImagePullBackOff")
		if prev, ok := w.pullFailure[c.Image]; ok {
			msg += ": ErrImagePull: " + prev
		}
		w.waiting[c.Name] = corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: msg}
		w.wakeAfter(time.Second)
		return "", false
	}
	k.recorder.Eventf(pod, corev1.EventTypeNormal, "Pulling", "Pulling image %q", c.Image)
	begin := time.Now()
	resp, err := k.images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec})
	if err != nil {
		w.backOff.Next(key, w.backOff.Clock.Now())
		w.pullFailure[c.Image] = err.Error()
		w.waiting[c.Name] = corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: err.Error()}
		k.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", c.Image, err)
		k.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		w.wakeAfter(time.Second)
		return "", false
	}
	delete(w.pullFailure, c.Image)
	var size uint64
	if st, err := k.images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec}); err == nil && st.Image != nil {
		size = st.Image.Size
	}
	took := time.Since(begin).Truncate(time.Millisecond)
	k.recorder.Eventf(pod, corev1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %v (%v including waiting). Image size: %v bytes.", c.Image, took, took, size)
	return resp.ImageRef, true
}

// killPod stops the pod's running containers, each with its preStop hook and the grace
// period, then stops the sandboxes.
func (k *Kubelet) killPod(ctx context.Context, pod *corev1.Pod, state *podState, grace int64) {
	k.killContainers(ctx, pod, state, grace)
	k.stopSandboxes(ctx, state)
}

// stopSandboxes stops the pod's ready sandboxes, freeing their network.
func (k *Kubelet) stopSandboxes(ctx context.Context, state *podState) {
	for _, sb := range state.sandboxes {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			_, _ = k.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
		}
	}
}

// regularContainersDone tells whether every regular container of the pod has exited in the
// sandbox and will not be restarted.
func regularContainersDone(pod *corev1.Pod, state *podState, sandboxID string) bool {
	for i := range pod.Spec.Containers {
		st := state.latest(pod.Spec.Containers[i].Name, sandboxID)
		if st == nil || st.State != runtimeapi.ContainerState_CONTAINER_EXITED || shouldRestart(pod.Spec.RestartPolicy, st.ExitCode) {
			return false
		}
	}
	return true
}
