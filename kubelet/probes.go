package kubelet

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type probeKind string

const (
	liveness  probeKind = "Liveness"
	readiness probeKind = "Readiness"
	startup   probeKind = "Startup"
)

// probeResults holds the probes' verdicts for one pod, per container instance.
type probeResults struct {
	mu sync.Mutex
	// runners are the running probes, by container name and kind.
	runners map[string]map[probeKind]*probeRunner
}

// probeRunner probes one container instance periodically until stopped.
type probeRunner struct {
	containerID string
	cancel      context.CancelFunc
	mu          sync.Mutex
	// ok is the latest verdict (after the thresholds); known is false until there is one.
	ok, known bool
}

func (r *probeRunner) result() (ok, known bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok, r.known
}

// syncProbes starts the probes of the pod's running containers and stops those of containers
// that are gone.
func (k *Kubelet) syncProbes(ctx context.Context, w *podWorker, pod *corev1.Pod, state *podState) {
	w.probes.mu.Lock()
	defer w.probes.mu.Unlock()
	if w.probes.runners == nil {
		w.probes.runners = map[string]map[probeKind]*probeRunner{}
	}
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for i := range all {
		c := &all[i]
		st := state.latest(c.Name, "")
		running := st != nil && st.State == runtimeapi.ContainerState_CONTAINER_RUNNING && pod.DeletionTimestamp == nil
		byKind := w.probes.runners[c.Name]
		if byKind == nil {
			byKind = map[probeKind]*probeRunner{}
			w.probes.runners[c.Name] = byKind
		}
		for kind, probe := range map[probeKind]*corev1.Probe{liveness: c.LivenessProbe, readiness: c.ReadinessProbe, startup: c.StartupProbe} {
			r := byKind[kind]
			if r != nil && (!running || r.containerID != st.Id) {
				r.cancel()
				delete(byKind, kind)
				r = nil
			}
			if r == nil && running && probe != nil {
				pctx, cancel := context.WithCancel(ctx)
				r = &probeRunner{containerID: st.Id, cancel: cancel}
				byKind[kind] = r
				go k.runProbe(pctx, w, pod, c, st.Id, firstIP(state.podIPs()), kind, probe, r)
			}
		}
	}
}

// stopProbes stops all of the pod's probes.
func (w *podWorker) stopProbes() {
	w.probes.mu.Lock()
	defer w.probes.mu.Unlock()
	for _, byKind := range w.probes.runners {
		for _, r := range byKind {
			r.cancel()
		}
	}
	w.probes.runners = nil
}

// probeResult is the verdict of one kind of probe of a container instance; ok when there is no
// such probe. known is false while it has not decided yet.
func (w *podWorker) probeResult(name, containerID string, kind probeKind) (ok, known, exists bool) {
	w.probes.mu.Lock()
	r := w.probes.runners[name][kind]
	w.probes.mu.Unlock()
	if r == nil || r.containerID != containerID {
		return false, false, false
	}
	ok, known = r.result()
	return ok, known, true
}

// runProbe probes a container as upstream's prober does: after the initial delay, every
// period, deciding after successThreshold successes or failureThreshold failures in a row.
// A failing liveness (or startup) probe restarts the container.
func (k *Kubelet) runProbe(ctx context.Context, w *podWorker, pod *corev1.Pod, c *corev1.Container, containerID, podIP string, kind probeKind, p *corev1.Probe, r *probeRunner) {
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	success, failure := max(p.SuccessThreshold, 1), max(p.FailureThreshold, 1)
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(p.InitialDelaySeconds) * time.Second):
	}
	if kind == readiness || kind == liveness {
		// Readiness and liveness wait for the startup probe to pass.
		for {
			ok, _, exists := w.probeResult(c.Name, containerID, startup)
			if !exists || ok {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(period):
			}
		}
	}
	var successes, failures int32
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(period)
		out, err := k.probeOnce(ctx, pod, c, containerID, podIP, p, timeout)
		if ctx.Err() != nil {
			return
		}
		if err != nil && !k.containerRunning(ctx, containerID) {
			return // stopped under the probe: its next instance gets a new one
		}
		if err == nil {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
			k.recorder.Eventf(pod, corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", kind, strings.TrimSpace(out+err.Error()))
		}
		r.mu.Lock()
		before, knew := r.ok, r.known
		switch {
		case successes >= success || (kind != readiness && successes >= 1):
			r.ok, r.known = true, true
		case failures >= failure:
			r.ok, r.known = false, true
		}
		changed := r.ok != before || r.known != knew
		failed := r.known && !r.ok
		r.mu.Unlock()
		if changed {
			w.wake()
		}
		if failed && (kind == liveness || kind == startup) {
			k.recorder.Eventf(pod, corev1.EventTypeNormal, "Killing", "Container %s failed %s probe, will be restarted", c.Name, strings.ToLower(string(kind)))
			grace := graceFor(pod)
			if p.TerminationGracePeriodSeconds != nil {
				grace = *p.TerminationGracePeriodSeconds
			}
			k.stopContainer(ctx, pod, c, containerID, grace)
			w.wake()
			return
		}
		if kind == startup && r.ok {
			return // a startup probe stops once it has passed
		}
	}
}

// probeOnce runs a probe's handler once; a nil error is success. out is any output of an exec
// probe, for the event.
func (k *Kubelet) probeOnce(ctx context.Context, pod *corev1.Pod, c *corev1.Container, containerID, podIP string, p *corev1.Probe, timeout time.Duration) (string, error) {
	if pod.Spec.HostNetwork {
		podIP = k.opts.NodeIP.String()
	}
	switch {
	case p.Exec != nil:
		resp, err := k.runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: containerID, Cmd: p.Exec.Command, Timeout: int64(timeout / time.Second)})
		if err != nil {
			return "", err
		}
		out := string(resp.Stdout) + string(resp.Stderr)
		if resp.ExitCode != 0 {
			if out == "" {
				return "", fmt.Errorf("command %q exited with %d", strings.Join(p.Exec.Command, " "), resp.ExitCode)
			}
			return "", fmt.Errorf("%s", out)
		}
		return out, nil
	case p.HTTPGet != nil:
		return "", httpCheck(ctx, pod, c, p.HTTPGet, podIP, timeout)
	case p.TCPSocket != nil:
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return "", err
		}
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), timeout)
		if err != nil {
			return "", err
		}
		return "", conn.Close()
	case p.GRPC != nil:
		gctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		conn, err := grpc.NewClient(net.JoinHostPort(podIP, strconv.Itoa(int(p.GRPC.Port))), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return "", err
		}
		defer conn.Close()
		service := ""
		if p.GRPC.Service != nil {
			service = *p.GRPC.Service
		}
		resp, err := healthpb.NewHealthClient(conn).Check(gctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return "", fmt.Errorf("timeout: failed to connect service %q within %v: %v", net.JoinHostPort(podIP, strconv.Itoa(int(p.GRPC.Port))), timeout, err)
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return "", fmt.Errorf("service unhealthy (responded with %q)", resp.Status.String())
		}
		return "", nil
	}
	return "", fmt.Errorf("probe has no handler")
}

// httpCheck is an HTTP GET that succeeds with a status from 200 to 399.
func httpCheck(ctx context.Context, pod *corev1.Pod, c *corev1.Container, h *corev1.HTTPGetAction, podIP string, timeout time.Duration) error {
	host := h.Host
	if host == "" {
		host = podIP
	}
	port, err := resolvePort(h.Port, c)
	if err != nil {
		return err
	}
	scheme := strings.ToLower(string(h.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	path, query, _ := strings.Cut(h.Path, "?")
	u.Path, u.RawQuery = path, query
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.37")
	req.Header.Set("Accept", "*/*")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return nil
	}
	return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
}

// resolvePort is a probe's or hook's port: a number, or the name of a container port.
func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("couldn't find port: %v in %v", p.StrVal, c.Name)
}

// graceFor is the pod's termination grace period.
func graceFor(pod *corev1.Pod) int64 {
	if pod.DeletionGracePeriodSeconds != nil {
		return *pod.DeletionGracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return corev1.DefaultTerminationGracePeriodSeconds
}

// containerRunning tells whether the runtime has the container running.
func (k *Kubelet) containerRunning(ctx context.Context, id string) bool {
	resp, err := k.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	return err == nil && resp.Status != nil && resp.Status.State == runtimeapi.ContainerState_CONTAINER_RUNNING
}

func firstIP(ips []string) string {
	if len(ips) == 0 {
		return ""
	}
	return ips[0]
}
