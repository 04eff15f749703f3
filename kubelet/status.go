package kubelet

import (
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxTerminationMessage is upstream's limit on a termination message (4096 bytes).
const maxTerminationMessage = 4096

// podStatus is the pod's status as the runtime shows it.
func (k *Kubelet) podStatus(w *podWorker, pod *corev1.Pod, state *podState) corev1.PodStatus {
	old := pod.Status
	s := corev1.PodStatus{
		QOSClass:                    old.QOSClass,
		NominatedNodeName:           old.NominatedNodeName,
		HostIP:                      k.opts.NodeIP.String(),
		HostIPs:                     []corev1.HostIP{{IP: k.opts.NodeIP.String()}},
		StartTime:                   old.StartTime,
		Resize:                      old.Resize,
		ResourceClaimStatuses:       old.ResourceClaimStatuses,
		ExtendedResourceClaimStatus: old.ExtendedResourceClaimStatus,
	}
	if s.StartTime == nil {
		t := w.started
		s.StartTime = &t
	}
	sb := state.readySandbox()
	if sb != nil {
		for _, ip := range state.podIPs() {
			s.PodIPs = append(s.PodIPs, corev1.PodIP{IP: ip})
		}
		if len(s.PodIPs) > 0 {
			s.PodIP = s.PodIPs[0].IP
		}
	} else if pod.DeletionTimestamp != nil || old.Phase == corev1.PodSucceeded || old.Phase == corev1.PodFailed {
		s.PodIP, s.PodIPs = old.PodIP, old.PodIPs
	}
	if pod.Spec.HostNetwork {
		s.PodIP, s.PodIPs = s.HostIP, []corev1.PodIP{{IP: s.HostIP}}
	}
	s.InitContainerStatuses = k.containerStatuses(w, pod, state, pod.Spec.InitContainers, old.InitContainerStatuses)
	s.ContainerStatuses = k.containerStatuses(w, pod, state, pod.Spec.Containers, old.ContainerStatuses)
	s.Phase = podPhase(pod, s.InitContainerStatuses, s.ContainerStatuses)
	if old.Phase == corev1.PodSucceeded || old.Phase == corev1.PodFailed {
		s.Phase = old.Phase // a finished pod never runs again
	}
	s.Conditions = podConditions(pod, &s, sb != nil)
	return s
}

// containerStatuses reports the containers of one list, in spec order.
func (k *Kubelet) containerStatuses(w *podWorker, pod *corev1.Pod, state *podState, containers []corev1.Container, old []corev1.ContainerStatus) []corev1.ContainerStatus {
	if len(containers) == 0 {
		return nil
	}
	out := make([]corev1.ContainerStatus, 0, len(containers))
	for i := range containers {
		c := &containers[i]
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Started: new(bool)}
		cur := state.latest(c.Name, "")
		if cur != nil {
			cs.RestartCount = int32(cur.Metadata.Attempt)
			cs.ContainerID = "containerd://" + cur.Id
			cs.ImageID = imageID(cur)
		}
		switch {
		case cur == nil:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
			if wt, ok := w.waiting[c.Name]; ok {
				cs.State.Waiting = &wt
			} else if pod.Status.Phase != "" && len(state.sandboxes) > 0 {
				cs.State.Waiting.Reason = "PodInitializing"
			}
		case cur.State == runtimeapi.ContainerState_CONTAINER_RUNNING:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(time.Unix(0, cur.StartedAt))}
			started, _, hasStartup := w.probeResult(c.Name, cur.Id, startup)
			*cs.Started = !hasStartup && c.StartupProbe == nil || started
			ready, _, hasReadiness := w.probeResult(c.Name, cur.Id, readiness)
			if c.ReadinessProbe == nil {
				ready, hasReadiness = true, true
			}
			cs.Ready = pod.DeletionTimestamp == nil && *cs.Started && hasReadiness && ready
		case cur.State == runtimeapi.ContainerState_CONTAINER_CREATED:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		case cur.State == runtimeapi.ContainerState_CONTAINER_EXITED:
			term := k.terminated(pod, c, cur)
			restarting := pod.DeletionTimestamp == nil && shouldRestart(restartPolicyOf(pod, c), cur.ExitCode)
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways && regularContainersDone(pod, state, "") {
				restarting = false // a sidecar stopped because the pod is done
			}
			if restarting {
				cs.LastTerminationState.Terminated = term
				if wt, ok := w.waiting[c.Name]; ok {
					cs.State.Waiting = &wt
				} else if w.inBackOff(c.Name, cur) {
					cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
						Message: "back-off " + w.backOff.Get(c.Name).String() + " restarting failed container=" + c.Name + " pod=" + pod.Name + "_" + pod.Namespace + "(" + string(pod.UID) + ")"}
				} else {
					cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
				}
			} else {
				cs.State.Terminated = term
			}
		default:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		}
		if cs.LastTerminationState.Terminated == nil {
			if prev := state.previous(c.Name); prev != nil && prev.State == runtimeapi.ContainerState_CONTAINER_EXITED {
				cs.LastTerminationState.Terminated = k.terminated(pod, c, prev)
			}
		}
		if cs.State.Running == nil {
			cs.Ready = false
		}
		for _, o := range old {
			if o.Name == c.Name && cs.ImageID == "" {
				cs.ImageID = o.ImageID
			}
		}
		out = append(out, cs)
	}
	return out
}

func restartPolicyOf(pod *corev1.Pod, c *corev1.Container) corev1.RestartPolicy {
	if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
		return corev1.RestartPolicyAlways
	}
	for _, ic := range pod.Spec.InitContainers {
		if ic.Name == c.Name && pod.Spec.RestartPolicy == corev1.RestartPolicyAlways {
			// Regular init containers of an Always pod restart on failure.
			return corev1.RestartPolicyOnFailure
		}
	}
	return pod.Spec.RestartPolicy
}

// terminated is an exited container's terminated state, with its termination message.
func (k *Kubelet) terminated(pod *corev1.Pod, c *corev1.Container, st *runtimeapi.ContainerStatus) *corev1.ContainerStateTerminated {
	t := &corev1.ContainerStateTerminated{
		ExitCode:    st.ExitCode,
		StartedAt:   metav1.NewTime(time.Unix(0, st.StartedAt)),
		FinishedAt:  metav1.NewTime(time.Unix(0, st.FinishedAt)),
		ContainerID: "containerd://" + st.Id,
		Reason:      st.Reason,
	}
	switch {
	case t.Reason == "OOMKilled":
	case st.ExitCode == 0:
		t.Reason = "Completed"
	default:
		t.Reason = "Error"
	}
	if b, err := os.ReadFile(k.terminationLogPath(pod, c.Name)); err == nil && len(b) > 0 {
		if len(b) > maxTerminationMessage {
			b = b[:maxTerminationMessage]
		}
		t.Message = string(b)
	} else if c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError && st.ExitCode != 0 && st.LogPath != "" {
		t.Message = tailLog(st.LogPath, 80, 2048)
	}
	return t
}

// tailLog is the last lines of a CRI log file's messages, at most maxBytes.
func tailLog(path string, lines, maxBytes int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		// CRI log lines: time stream tag message.
		parts := strings.SplitN(line, " ", 4)
		if len(parts) == 4 {
			msgs = append(msgs, parts[3])
		}
	}
	if len(msgs) > lines {
		msgs = msgs[len(msgs)-lines:]
	}
	out := strings.Join(msgs, "\n") + "\n"
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
	}
	return out
}

func imageID(st *runtimeapi.ContainerStatus) string {
	if st.ImageRef != "" {
		return st.ImageRef
	}
	if st.Image != nil {
		return st.Image.Image
	}
	return ""
}

// podPhase is upstream's phase for the containers' states.
func podPhase(pod *corev1.Pod, inits, containers []corev1.ContainerStatus) corev1.PodPhase {
	// Init containers not all done: Pending, unless one failed for good.
	for i, cs := range inits {
		sidecar := pod.Spec.InitContainers[i].RestartPolicy != nil && *pod.Spec.InitContainers[i].RestartPolicy == corev1.ContainerRestartPolicyAlways
		if sidecar {
			if cs.State.Running == nil && len(containers) > 0 && allWaiting(containers) {
				return corev1.PodPending
			}
			continue
		}
		if t := cs.State.Terminated; t != nil {
			if t.ExitCode == 0 {
				continue
			}
			if pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
				return corev1.PodFailed
			}
		}
		return corev1.PodPending
	}
	var running, waiting, succeeded, failed, stopped int
	for _, cs := range containers {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			} else {
				failed++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++ // restarting: counts as having run
			} else {
				waiting++
			}
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped == len(containers) && stopped > 0:
		if pod.Spec.RestartPolicy == corev1.RestartPolicyAlways {
			return corev1.PodRunning
		}
		if failed > 0 {
			if pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure {
				return corev1.PodRunning
			}
			return corev1.PodFailed
		}
		return corev1.PodSucceeded
	}
	return corev1.PodPending
}

func allWaiting(cs []corev1.ContainerStatus) bool {
	for _, c := range cs {
		if c.State.Waiting == nil {
			return false
		}
	}
	return true
}

// podConditions are the kubelet's conditions: ready to start containers, initialized,
// containers ready and ready, keeping other writers' conditions and unchanged transition times.
func podConditions(pod *corev1.Pod, s *corev1.PodStatus, sandboxReady bool) []corev1.PodCondition {
	now := metav1.Now()
	initialized := true
	for i, cs := range s.InitContainerStatuses {
		sidecar := pod.Spec.InitContainers[i].RestartPolicy != nil && *pod.Spec.InitContainers[i].RestartPolicy == corev1.ContainerRestartPolicyAlways
		if sidecar {
			if cs.State.Running == nil && !(cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil) {
				initialized = false
			}
			continue
		}
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			initialized = false
		}
	}
	var notReady []string
	for _, cs := range s.ContainerStatuses {
		if !cs.Ready {
			notReady = append(notReady, cs.Name)
		}
	}
	for i, cs := range s.InitContainerStatuses {
		if pod.Spec.InitContainers[i].RestartPolicy != nil && !cs.Ready {
			notReady = append(notReady, cs.Name)
		}
	}
	terminal := s.Phase == corev1.PodSucceeded || s.Phase == corev1.PodFailed
	cond := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg, LastTransitionTime: now}
		if ok {
			c.Status, c.Reason, c.Message = corev1.ConditionTrue, "", ""
		}
		return c
	}
	ready := cond(corev1.PodReady, len(notReady) == 0 && !terminal, "ContainersNotReady", "containers with unready status: ["+strings.Join(notReady, " ")+"]")
	containersReady := cond(corev1.ContainersReady, len(notReady) == 0 && !terminal, "ContainersNotReady", "containers with unready status: ["+strings.Join(notReady, " ")+"]")
	if terminal {
		reason := "PodCompleted"
		if s.Phase == corev1.PodFailed {
			reason = "PodFailed"
		}
		ready.Reason, ready.Message, containersReady.Reason, containersReady.Message = reason, "", reason, ""
	}
	// Readiness gates: other writers' conditions decide.
	for _, g := range pod.Spec.ReadinessGates {
		found := false
		for _, c := range pod.Status.Conditions {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				found = true
			}
		}
		if !found && ready.Status == corev1.ConditionTrue {
			ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, "ReadinessGatesNotReady", "corresponding condition of pod readiness gate \""+string(g.ConditionType)+"\" does not exist."
		}
	}
	initCond := cond(corev1.PodInitialized, initialized, "ContainersNotInitialized", "")
	if !initialized {
		var pending []string
		for i, cs := range s.InitContainerStatuses {
			if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
				if pod.Spec.InitContainers[i].RestartPolicy == nil || cs.State.Running == nil {
					pending = append(pending, cs.Name)
				}
			}
		}
		initCond.Message = "containers with incomplete status: [" + strings.Join(pending, " ") + "]"
	}
	// As upstream: a succeeded pod completed its init containers, and one whose regular
	// containers started was initialized even if a sidecar restarts; a pod that failed in an
	// init container was not.
	if s.Phase == corev1.PodSucceeded && len(pod.Spec.InitContainers) > 0 {
		initCond.Status, initCond.Reason, initCond.Message = corev1.ConditionTrue, "PodCompleted", ""
	} else if !initialized && anyStarted(s.ContainerStatuses) {
		initCond.Status, initCond.Reason, initCond.Message = corev1.ConditionTrue, "", ""
	}
	mine := []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, sandboxReady, "", ""),
		initCond, ready, containersReady,
	}
	var out []corev1.PodCondition
	kept := map[corev1.PodConditionType]bool{}
	for _, c := range mine {
		kept[c.Type] = true
	}
	for _, c := range pod.Status.Conditions {
		if !kept[c.Type] {
			out = append(out, c)
		}
	}
	for _, c := range mine {
		for _, o := range pod.Status.Conditions {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
				c.LastProbeTime = o.LastProbeTime
			}
		}
		out = append(out, c)
	}
	order := map[corev1.PodConditionType]int{corev1.PodReadyToStartContainers: 0, corev1.PodInitialized: 1, corev1.PodReady: 2, corev1.ContainersReady: 3, corev1.PodScheduled: 4}
	sort.SliceStable(out, func(i, j int) bool {
		oi, iok := order[out[i].Type]
		oj, jok := order[out[j].Type]
		if !iok {
			oi = 10
		}
		if !jok {
			oj = 10
		}
		return oi < oj
	})
	return out
}

// statusEqual tells whether two pod statuses say the same, ignoring the timestamps' precision.
func statusEqual(a, b *corev1.PodStatus) bool {
	return apiequality.Semantic.DeepEqual(a, b)
}

// podStartTime is when the kubelet took the pod on: its recorded start or now.
func podStartTime(pod *corev1.Pod) metav1.Time {
	if pod.Status.StartTime != nil {
		return *pod.Status.StartTime
	}
	return metav1.NewTime(time.Now().Truncate(time.Second))
}

// serviceEnv is the docker-links style variables of the services a pod sees: those of its
// namespace (when enableServiceLinks is on) and the master service.
func (k *Kubelet) serviceEnv(pod *corev1.Pod) map[string]string {
	env := map[string]string{}
	if k.services == nil {
		return env
	}
	var svcs []*corev1.Service
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		svcs, _ = k.services.Services(pod.Namespace).List(labels.Everything())
	}
	if pod.Namespace != metav1.NamespaceDefault || (pod.Spec.EnableServiceLinks != nil && !*pod.Spec.EnableServiceLinks) {
		if master, err := k.services.Services(metav1.NamespaceDefault).Get("kubernetes"); err == nil {
			svcs = append(svcs, master)
		}
	}
	for _, svc := range svcs {
		ip := svc.Spec.ClusterIP
		if ip == "" || ip == corev1.ClusterIPNone || len(svc.Spec.Ports) == 0 {
			continue
		}
		prefix := strings.ToUpper(strings.ReplaceAll(svc.Name, "-", "_"))
		env[prefix+"_SERVICE_HOST"] = ip
		env[prefix+"_SERVICE_PORT"] = strconv.Itoa(int(svc.Spec.Ports[0].Port))
		for _, p := range svc.Spec.Ports {
			if p.Name != "" {
				env[prefix+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))] = strconv.Itoa(int(p.Port))
			}
		}
		first := svc.Spec.Ports[0]
		env[prefix+"_PORT"] = strings.ToLower(string(first.Protocol)) + "://" + ip + ":" + strconv.Itoa(int(first.Port))
		for _, p := range svc.Spec.Ports {
			proto := strings.ToUpper(string(p.Protocol))
			base := prefix + "_PORT_" + strconv.Itoa(int(p.Port)) + "_" + proto
			env[base] = strings.ToLower(proto) + "://" + ip + ":" + strconv.Itoa(int(p.Port))
			env[base+"_PROTO"] = strings.ToLower(proto)
			env[base+"_PORT"] = strconv.Itoa(int(p.Port))
			env[base+"_ADDR"] = ip
		}
	}
	return env
}

func numCPU() int { return runtime.NumCPU() }

// sortImages orders images largest first, as upstream reports them.
func sortImages(images []corev1.ContainerImage) {
	sort.SliceStable(images, func(i, j int) bool { return images[i].SizeBytes > images[j].SizeBytes })
}

// anyStarted tells whether a regular container has run.
func anyStarted(statuses []corev1.ContainerStatus) bool {
	for _, cs := range statuses {
		if cs.State.Running != nil || cs.State.Terminated != nil {
			return true
		}
	}
	return false
}
