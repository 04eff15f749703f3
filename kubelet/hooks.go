package kubelet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runHook runs a lifecycle handler (exec, HTTP GET or sleep) against a container, within
// timeout.
func (k *Kubelet) runHook(ctx context.Context, pod *corev1.Pod, c *corev1.Container, containerID string, h *corev1.LifecycleHandler, timeout time.Duration) error {
	switch {
	case h.Exec != nil:
		resp, err := k.runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: containerID, Cmd: h.Exec.Command, Timeout: int64(max(timeout/time.Second, 1))})
		if err != nil {
			return err
		}
		if resp.ExitCode != 0 {
			return fmt.Errorf("command '%s' exited with %d: %s", strings.Join(h.Exec.Command, " "), resp.ExitCode, string(resp.Stdout)+string(resp.Stderr))
		}
		return nil
	case h.HTTPGet != nil:
		podIP := pod.Status.PodIP
		if podIP == "" {
			if st, err := k.observe(ctx, pod.UID); err == nil && len(st.podIPs()) > 0 {
				podIP = st.podIPs()[0]
			}
		}
		return httpCheck(ctx, pod, c, h.HTTPGet, podIP, timeout)
	case h.Sleep != nil:
		select {
		case <-ctx.Done():
		case <-time.After(min(time.Duration(h.Sleep.Seconds)*time.Second, timeout)):
		}
		return nil
	}
	return nil
}

// runPostStart runs the container's postStart hook; a failure kills the container, as upstream.
func (k *Kubelet) runPostStart(ctx context.Context, pod *corev1.Pod, c *corev1.Container, containerID string) {
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return
	}
	if err := k.runHook(ctx, pod, c, containerID, c.Lifecycle.PostStart, time.Duration(graceFor(pod))*time.Second); err != nil {
		k.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed")
		k.recorder.Eventf(pod, corev1.EventTypeNormal, "Killing", "FailedPostStartHook")
		_, _ = k.runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: containerID, Timeout: graceFor(pod)})
	}
}

// stopContainer runs the container's preStop hook, then stops it with what is left of the
// grace period.
func (k *Kubelet) stopContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, containerID string, grace int64) {
	begin := time.Now()
	if c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil && grace > 0 {
		hctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
		if err := k.runHook(hctx, pod, c, containerID, c.Lifecycle.PreStop, time.Duration(grace)*time.Second); err != nil {
			k.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed")
		}
		cancel()
		grace -= int64(time.Since(begin) / time.Second)
		grace = max(grace, 2) // upstream leaves at least 2 s after the hook
	}
	_, _ = k.runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: containerID, Timeout: grace})
}

// killContainers stops the given running containers at once, each with its preStop hook and
// the grace period, with the Killing event.
func (k *Kubelet) killContainers(ctx context.Context, pod *corev1.Pod, state *podState, grace int64) {
	var wg sync.WaitGroup
	for _, rc := range state.containers {
		if rc.State != runtimeapi.ContainerState_CONTAINER_RUNNING && rc.State != runtimeapi.ContainerState_CONTAINER_CREATED {
			continue
		}
		var spec *corev1.Container
		if pod != nil && rc.Metadata != nil {
			spec = containerSpec(pod, rc.Metadata.Name)
			k.recorder.Eventf(pod, corev1.EventTypeNormal, "Killing", "Stopping container %s", rc.Metadata.Name)
		}
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			k.stopContainer(ctx, pod, spec, id, grace)
		}(rc.Id)
	}
	wg.Wait()
}

// containerSpec finds a container of the pod by name, init containers included.
func containerSpec(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}
