package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

// Filter failure reasons, as upstream's plugins word them; the FailedScheduling message
// counts nodes by these.
const (
	reasonUnschedulable       = "node(s) were unschedulable"
	reasonNodeName            = "node(s) didn't match the requested node name"
	reasonUntoleratedTaint    = "node(s) had untolerated taint(s)"
	reasonNodeAffinity        = "node(s) didn't match Pod's node affinity/selector"
	reasonPorts               = "node(s) didn't have free ports for the requested pod ports"
	reasonTooManyPods         = "Too many pods"
	reasonVolumeNodeAffinity  = "node(s) didn't match PersistentVolume's node affinity"
	reasonSpread              = "node(s) didn't match pod topology spread constraints"
	reasonSpreadMissingLabel  = "node(s) didn't match pod topology spread constraints (missing required label)"
	reasonAffinity            = "node(s) didn't match pod affinity rules"
	reasonAntiAffinity        = "node(s) didn't match pod anti-affinity rules"
	reasonExistingAntiAffinty = "node(s) didn't satisfy existing pods anti-affinity rules"
	reasonNodeNotFound        = "node(s) not found"
)

// verdict is one node's filter result: the reasons it does not fit, and whether evicting pods
// could change that (preemption only tries nodes where it could).
type verdict struct {
	reasons      []string
	unresolvable bool
}

func fits() verdict { return verdict{} }

func (v verdict) ok() bool { return len(v.reasons) == 0 }

func unresolvable(reason string) verdict {
	return verdict{reasons: []string{reason}, unresolvable: true}
}

func resolvable(reasons ...string) verdict { return verdict{reasons: reasons} }

// cycle is what one scheduling attempt computes about its pod before looking at nodes.
type cycle struct {
	pi               *podInfo
	requiredAffinity nodeaffinity.RequiredNodeAffinity
	// pvNodeAffinity are the node affinities of the persistent volumes the pod's claims are
	// bound to; a node must match every one.
	pvNodeAffinity []*nodeaffinity.NodeSelector
	interPod       *interPodState
	spread         *spreadState
}

// filter runs the filters on one node in upstream's order and returns the first failure.
func (s *Scheduler) filter(c *cycle, ni *nodeInfo) verdict {
	pod, node := c.pi.pod, ni.node
	if node == nil {
		return unresolvable(reasonNodeNotFound)
	}
	if node.Spec.Unschedulable && !corev1helpers.TolerationsTolerateTaint(klog.Background(), pod.Spec.Tolerations,
		&corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}, false) {
		return unresolvable(reasonUnschedulable)
	}
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != node.Name {
		return unresolvable(reasonNodeName)
	}
	if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, pod.Spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	}, false); untolerated {
		return unresolvable(reasonUntoleratedTaint)
	}
	if ok, _ := c.requiredAffinity.Match(node); !ok {
		return unresolvable(reasonNodeAffinity)
	}
	// Room that preemption made for a pod of at least this one's priority is not this one's.
	held := s.cache.withNominated(ni, pod)
	if v := fitsPorts(c.pi, held); !v.ok() {
		return v
	}
	if v := fitsResources(c.pi, held); !v.ok() {
		return v
	}
	for _, sel := range c.pvNodeAffinity {
		if !sel.Match(node) {
			return unresolvable(reasonVolumeNodeAffinity)
		}
	}
	if v := c.spread.filter(node); !v.ok() {
		return v
	}
	return c.interPod.filter(node)
}

func fitsPorts(p *podInfo, ni *nodeInfo) verdict {
	for _, want := range p.ports {
		for used := range ni.ports {
			if used.port == want.port && used.protocol == want.protocol &&
				(used.ip == want.ip || used.ip == "0.0.0.0" || want.ip == "0.0.0.0") {
				return resolvable(reasonPorts)
			}
		}
	}
	return fits()
}

// fitsResources checks the pod's requests against what the node has left, naming every
// resource that is short.
func fitsResources(p *podInfo, ni *nodeInfo) verdict {
	var reasons []string
	if int64(len(ni.pods))+1 > ni.allowedPods {
		reasons = append(reasons, reasonTooManyPods)
	}
	r, alloc, used := p.requests, ni.allocatable, ni.requested
	if r.milliCPU > 0 && r.milliCPU > alloc.milliCPU-used.milliCPU {
		reasons = append(reasons, "Insufficient cpu")
	}
	if r.memory > 0 && r.memory > alloc.memory-used.memory {
		reasons = append(reasons, "Insufficient memory")
	}
	if r.ephemeral > 0 && r.ephemeral > alloc.ephemeral-used.ephemeral {
		reasons = append(reasons, "Insufficient ephemeral-storage")
	}
	for name, v := range r.scalar {
		if v > 0 && v > alloc.scalar[name]-used.scalar[name] {
			reasons = append(reasons, "Insufficient "+string(name))
		}
	}
	return verdict{reasons: reasons}
}
