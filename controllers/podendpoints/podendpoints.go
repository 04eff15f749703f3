// Package podendpoints is what a pod contributes to the endpoints of the Services that select it,
// as upstream's Endpoints and EndpointSlice controllers both see it: which pods count, their
// readiness, the ports a Service's targetPorts resolve to, the hostname of a pod in a headless
// Service's subdomain, which Services a pod change touches, and the last-change trigger time.
package podendpoints

import (
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Include tells whether a pod has a place in a Service's endpoints: it has an IP and is not
// terminal; a terminating pod counts only when includeTerminating.
func Include(pod *corev1.Pod, includeTerminating bool) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if pod.Status.PodIP == "" && len(pod.Status.PodIPs) == 0 {
		return false
	}
	return includeTerminating || pod.DeletionTimestamp == nil
}

// Hostname is the pod's hostname when the pod lives in the Service's subdomain
// (spec.hostname set, spec.subdomain the Service's name).
func Hostname(pod *corev1.Pod, svc *corev1.Service) (string, bool) {
	if pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && pod.Namespace == svc.Namespace {
		return pod.Spec.Hostname, true
	}
	return "", false
}

// FindPort resolves a Service port's targetPort on a pod: a number stands for itself, a name is
// looked up among the named ports, of the same protocol, of the pod's containers and then of its
// sidecars (init containers that restart always).
func FindPort(pod *corev1.Pod, sp *corev1.ServicePort) (int32, error) {
	switch sp.TargetPort.Type {
	case intstr.Int:
		return int32(sp.TargetPort.IntValue()), nil
	case intstr.String:
		name := sp.TargetPort.StrVal
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == name && p.Protocol == sp.Protocol {
					return p.ContainerPort, nil
				}
			}
		}
		for _, c := range pod.Spec.InitContainers {
			if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				continue
			}
			for _, p := range c.Ports {
				if p.Name == name && p.Protocol == sp.Protocol {
					return p.ContainerPort, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no suitable port for manifest: %s", pod.UID)
}

// Headless tells whether the Service has no cluster IP.
func Headless(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone
}

// servicesSelecting returns the keys of the Services in namespace whose selector matches set. A
// nil selector selects nothing.
func servicesSelecting(services corelisters.ServiceLister, namespace string, set labels.Set) (map[string]bool, error) {
	list, err := services.Services(namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for _, svc := range list {
		if svc.Spec.Selector == nil {
			continue
		}
		if labels.ValidatedSetSelector(svc.Spec.Selector).Matches(set) {
			keys[svc.Namespace+"/"+svc.Name] = true
		}
	}
	return keys, nil
}

// changed reports whether an update may change the pod's endpoints (deletion, readiness, IPs) and
// whether it may change which Services select it (labels, hostname or subdomain).
func changed(old, cur *corev1.Pod) (endpoints, membership bool) {
	membership = !maps.Equal(old.Labels, cur.Labels) || old.Spec.Hostname != cur.Spec.Hostname || old.Spec.Subdomain != cur.Spec.Subdomain
	if (old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) || manager.PodReady(old) != manager.PodReady(cur) || len(old.Status.PodIPs) != len(cur.Status.PodIPs) {
		return true, membership
	}
	for i := range old.Status.PodIPs {
		if old.Status.PodIPs[i].IP != cur.Status.PodIPs[i].IP {
			return true, membership
		}
	}
	return false, membership
}

// OnPodEvents calls enqueue with the key of every Service a pod event may concern: on add and
// delete the Services selecting the pod; on update those selecting it before or after, as far as
// the change matters to endpoints (upstream's rule: a relabelled but otherwise unchanged pod
// concerns only the Services it joined or left).
func OnPodEvents(pods cache.SharedIndexInformer, services corelisters.ServiceLister, enqueue func(key string)) error {
	forPod := func(p *corev1.Pod) {
		keys, err := servicesSelecting(services, p.Namespace, p.Labels)
		if err != nil {
			return
		}
		for k := range keys {
			enqueue(k)
		}
	}
	_, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if p, ok := o.(*corev1.Pod); ok {
				forPod(p)
			}
		},
		UpdateFunc: func(o, n any) {
			old, ok1 := o.(*corev1.Pod)
			cur, ok2 := n.(*corev1.Pod)
			if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
				return
			}
			endpoints, membership := changed(old, cur)
			switch {
			case !endpoints && !membership:
				return
			case !membership:
				forPod(cur)
				return
			}
			now, err := servicesSelecting(services, cur.Namespace, cur.Labels)
			if err != nil {
				return
			}
			before, err := servicesSelecting(services, old.Namespace, old.Labels)
			if err != nil {
				return
			}
			for k := range now {
				if endpoints || !before[k] {
					enqueue(k)
				}
			}
			for k := range before {
				if endpoints || !now[k] {
					enqueue(k)
				}
			}
		},
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				forPod(p)
			}
		},
	})
	return err
}

// TriggerTimes computes the endpoints.kubernetes.io/last-change-trigger-time of a Service's
// endpoints: for a Service seen for the first time, its creation; afterwards, the earliest of the
// changes seen since the last successful sync (a pod's Ready transition, the Service's creation).
// As upstream says of its own, a pod that changes twice between syncs is counted once. Unlike
// upstream's, a sync that fails (a conflict, a stale cache) does not count as seen, so that its
// retry still publishes the time of the change it is about.
type TriggerTimes struct {
	mu     sync.Mutex // guards states
	states map[string]triggerState
}

type triggerState struct {
	service time.Time
	pods    map[string]time.Time
}

// NewTriggerTimes returns an empty tracker.
func NewTriggerTimes() *TriggerTimes { return &TriggerTimes{states: map[string]triggerState{}} }

// Compute returns the trigger time to publish for a sync of key that sees svc and pods (zero:
// none), and commit, to be called once the sync has succeeded. It is not to be called
// concurrently for the same key.
func (t *TriggerTimes) Compute(key string, svc *corev1.Service, pods []*corev1.Pod) (at time.Time, commit func()) {
	t.mu.Lock()
	state, known := t.states[key]
	t.mu.Unlock()
	var earliest time.Time
	note := func(at time.Time) {
		if earliest.IsZero() || at.Before(earliest) {
			earliest = at
		}
	}
	podTimes := map[string]time.Time{}
	for _, p := range pods {
		c := manager.PodReadyCondition(p)
		if c == nil || c.LastTransitionTime.IsZero() {
			continue
		}
		at := c.LastTransitionTime.Time
		podTimes[p.Name] = at
		if at.After(state.pods[p.Name]) {
			note(at)
		}
	}
	svcTime := svc.CreationTimestamp.Time
	if svcTime.After(state.service) {
		note(svcTime)
	}
	commit = func() {
		t.mu.Lock()
		t.states[key] = triggerState{service: svcTime, pods: podTimes}
		t.mu.Unlock()
	}
	if !known {
		return svcTime, commit
	}
	return earliest, commit
}

// Forget drops what is known of key.
func (t *TriggerTimes) Forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.states, key)
}
