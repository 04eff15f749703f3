package scheduler

import (
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

// Default requests the scorers assume for containers that request nothing, so that such pods
// still spread out (upstream's non-zero defaults: 100m CPU, 200Mi memory).
const (
	defaultMilliCPURequest int64 = 100
	defaultMemoryRequest   int64 = 200 * 1024 * 1024
)

// resources are amounts in the units the scheduler compares: milli-CPU, bytes, counts.
type resources struct {
	milliCPU, memory, ephemeral int64
	scalar                      map[corev1.ResourceName]int64
}

func (r *resources) add(o *resources, sign int64) {
	r.milliCPU += sign * o.milliCPU
	r.memory += sign * o.memory
	r.ephemeral += sign * o.ephemeral
	for name, v := range o.scalar {
		if r.scalar == nil {
			r.scalar = map[corev1.ResourceName]int64{}
		}
		r.scalar[name] += sign * v
	}
}

func resourcesOf(list corev1.ResourceList) resources {
	var r resources
	for name, q := range list {
		switch name {
		case corev1.ResourceCPU:
			r.milliCPU = q.MilliValue()
		case corev1.ResourceMemory:
			r.memory = q.Value()
		case corev1.ResourceEphemeralStorage:
			r.ephemeral = q.Value()
		case corev1.ResourcePods:
		default:
			if r.scalar == nil {
				r.scalar = map[corev1.ResourceName]int64{}
			}
			r.scalar[name] = q.Value()
		}
	}
	return r
}

// podInfo is a pod with what the scheduler computes from it once.
type podInfo struct {
	pod *corev1.Pod
	// requests are what the pod asks for, as the kubelet admits it: the sum of the containers
	// and sidecars, or the largest init container with the sidecars before it, plus overhead.
	requests resources
	// nonZero are the CPU and memory requests with the scorers' defaults for what is unset.
	nonZeroCPU, nonZeroMemory int64
	// ports are the host ports it uses.
	ports []hostPort
	// terms are its pod affinity and anti-affinity terms.
	terms podTerms
}

type hostPort struct {
	ip       string
	protocol corev1.Protocol
	port     int32
}

func newPodInfo(pod *corev1.Pod) *podInfo {
	p := &podInfo{pod: pod, terms: termsOf(pod)}
	p.requests = resourcesOf(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
	nonZero := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{
		NonMissingContainerRequests: corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewMilliQuantity(defaultMilliCPURequest, resource.DecimalSI),
			corev1.ResourceMemory: *resource.NewQuantity(defaultMemoryRequest, resource.BinarySI),
		}})
	p.nonZeroCPU, p.nonZeroMemory = nonZero.Cpu().MilliValue(), nonZero.Memory().Value()
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, port := range c.Ports {
				if port.HostPort <= 0 {
					continue
				}
				ip := port.HostIP
				if ip == "" {
					ip = "0.0.0.0"
				}
				proto := port.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				p.ports = append(p.ports, hostPort{ip: ip, protocol: proto, port: port.HostPort})
			}
		}
	}
	return p
}

// nodeInfo is one node with the pods bound or assumed to it and what they request.
type nodeInfo struct {
	node        *corev1.Node
	allocatable resources
	allowedPods int64
	pods        map[types.UID]*podInfo
	requested   resources
	// nonZeroCPU and nonZeroMemory sum the pods' requests with the scorers' defaults.
	nonZeroCPU, nonZeroMemory int64
	ports                     map[hostPort]bool
	// images is the sizes of the images the node has, by normalized name.
	images map[string]int64
}

func newNodeInfo() *nodeInfo {
	return &nodeInfo{pods: map[types.UID]*podInfo{}, ports: map[hostPort]bool{}}
}

// emptyCopy is a nodeInfo for the same node without its pods, for trial placements.
func (n *nodeInfo) emptyCopy() *nodeInfo {
	t := newNodeInfo()
	t.setNode(n.node)
	t.images = n.images
	return t
}

func (n *nodeInfo) setNode(node *corev1.Node) {
	n.node = node
	n.allocatable = resourcesOf(node.Status.Allocatable)
	n.allowedPods = node.Status.Allocatable.Pods().Value()
}

func (n *nodeInfo) addPod(p *podInfo) {
	n.pods[p.pod.UID] = p
	n.requested.add(&p.requests, 1)
	n.nonZeroCPU += p.nonZeroCPU
	n.nonZeroMemory += p.nonZeroMemory
	for _, port := range p.ports {
		n.ports[port] = true
	}
}

func (n *nodeInfo) removePod(uid types.UID) {
	p, ok := n.pods[uid]
	if !ok {
		return
	}
	delete(n.pods, uid)
	n.requested.add(&p.requests, -1)
	n.nonZeroCPU -= p.nonZeroCPU
	n.nonZeroMemory -= p.nonZeroMemory
	for _, port := range p.ports {
		delete(n.ports, port)
	}
	// Another pod may hold the same port (it would not fit, but the cache takes what it sees).
	for _, other := range n.pods {
		for _, port := range other.ports {
			n.ports[port] = true
		}
	}
}

// clusterCache is the scheduler's view of the nodes and of the pods placed on them, including
// pods it has assumed (decided on, binding not yet seen).
type clusterCache struct {
	mu    sync.RWMutex
	nodes map[string]*nodeInfo
	// order lists the known nodes' names in a stable order for round-robin filtering; it is
	// rebuilt when nodes come or go.
	order      []string
	orderDirty bool
	// podNode is where each placed pod is, by uid; assumed marks those not yet confirmed.
	podNode map[types.UID]string
	assumed map[types.UID]bool
	// withTerms are the placed pods with affinity terms, which every attempt must consult.
	withTerms map[types.UID]bool
	// nominated are the pods waiting for room that preemption made on a node, by node: they
	// hold that room against pods of lower priority.
	nominated map[string]map[types.UID]*podInfo
	// imageNodes counts the known nodes that have each image, by normalized name, for the
	// image locality score.
	imageNodes map[string]int
}

func newClusterCache() *clusterCache {
	return &clusterCache{nodes: map[string]*nodeInfo{}, podNode: map[types.UID]string{}, assumed: map[types.UID]bool{}, withTerms: map[types.UID]bool{},
		nominated: map[string]map[types.UID]*podInfo{}, imageNodes: map[string]int{}}
}

func (c *clusterCache) setNode(node *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni, ok := c.nodes[node.Name]
	if !ok {
		ni = newNodeInfo()
		c.nodes[node.Name] = ni
	}
	c.orderDirty = c.orderDirty || ni.node == nil
	c.countImages(ni, -1)
	ni.setNode(node)
	ni.images = imagesOf(node)
	c.countImages(ni, 1)
}

// countImages adds (or, with -1, takes away) the node's images in imageNodes.
func (c *clusterCache) countImages(ni *nodeInfo, delta int) {
	for name := range ni.images {
		if c.imageNodes[name] += delta; c.imageNodes[name] <= 0 {
			delete(c.imageNodes, name)
		}
	}
}

func (c *clusterCache) removeNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni, ok := c.nodes[name]
	if !ok {
		return
	}
	c.orderDirty = true
	c.countImages(ni, -1)
	ni.images = nil
	if len(ni.pods) > 0 {
		// Pods still point at it: keep their accounting, but the node is gone.
		ni.node = nil
		return
	}
	delete(c.nodes, name)
}

// nodeOrder is the names of the known nodes in a stable order. Callers hold the lock for
// writing when the order may need rebuilding.
func (c *clusterCache) nodeOrder() []string {
	if c.orderDirty {
		c.order = c.order[:0]
		for name, ni := range c.nodes {
			if ni.node != nil {
				c.order = append(c.order, name)
			}
		}
		sort.Strings(c.order)
		c.orderDirty = false
	}
	return c.order
}

// setPod records a pod the informer shows bound to a node (confirming an assumption), or
// forgets it when it is no longer placed (terminal, or its node cleared).
func (c *clusterCache) setPod(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(pod.UID)
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return
	}
	c.placeLocked(newPodInfo(pod), pod.Spec.NodeName)
}

// assumeLocked places a pod the scheduler has decided on before its binding is seen; the
// caller holds the cache's lock.
func (c *clusterCache) assumeLocked(p *podInfo, node string) {
	c.removeLocked(p.pod.UID)
	bound := p.pod.DeepCopy()
	bound.Spec.NodeName = node
	assumed := *p
	assumed.pod = bound
	c.placeLocked(&assumed, node)
	c.assumed[p.pod.UID] = true
}

// forget drops an assumption whose binding failed.
func (c *clusterCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.assumed[uid] {
		c.removeLocked(uid)
	}
}

func (c *clusterCache) removePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(uid)
}

func (c *clusterCache) placeLocked(p *podInfo, node string) {
	ni, ok := c.nodes[node]
	if !ok {
		// The pod's node is not known yet: account for it under a node to come.
		ni = newNodeInfo()
		c.nodes[node] = ni
	}
	ni.addPod(p)
	c.podNode[p.pod.UID] = node
	if !p.terms.empty() {
		c.withTerms[p.pod.UID] = true
	}
}

func (c *clusterCache) removeLocked(uid types.UID) {
	node, ok := c.podNode[uid]
	if !ok {
		return
	}
	delete(c.podNode, uid)
	delete(c.assumed, uid)
	delete(c.withTerms, uid)
	if ni := c.nodes[node]; ni != nil {
		ni.removePod(uid)
		if ni.node == nil && len(ni.pods) == 0 {
			delete(c.nodes, node)
		}
	}
}

// placedPod is a placed pod with its node, for the affinity computations.
type placedPod struct {
	pi   *podInfo
	node *corev1.Node
}

// placedFor lists the placed pods an attempt for a pod with (or without) terms of its own
// must look at: all of them, or only those with terms. Callers hold the lock.
func (c *clusterCache) placedFor(withTerms bool) []*placedPod {
	var out []*placedPod
	add := func(uid types.UID) {
		ni := c.nodes[c.podNode[uid]]
		if ni != nil && ni.node != nil {
			out = append(out, &placedPod{pi: ni.pods[uid], node: ni.node})
		}
	}
	if withTerms {
		for uid := range c.podNode {
			add(uid)
		}
		return out
	}
	for uid := range c.withTerms {
		add(uid)
	}
	return out
}

// nominate records that pod waits for room on node ("" forgets it).
func (c *clusterCache) nominate(pod *corev1.Pod, node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nominateLocked(pod, node)
}

func (c *clusterCache) nominateLocked(pod *corev1.Pod, node string) {
	for n, pods := range c.nominated {
		if _, ok := pods[pod.UID]; ok && n != node {
			delete(pods, pod.UID)
			if len(pods) == 0 {
				delete(c.nominated, n)
			}
		}
	}
	if node == "" {
		return
	}
	if c.nominated[node] == nil {
		c.nominated[node] = map[types.UID]*podInfo{}
	}
	c.nominated[node][pod.UID] = newPodInfo(pod)
}

// withNominated is ni with the pods nominated to it that pod must not take room from (those of
// at least its priority) added, or ni itself when there are none. Callers hold the lock.
func (c *clusterCache) withNominated(ni *nodeInfo, pod *corev1.Pod) *nodeInfo {
	if ni.node == nil {
		return ni
	}
	var ahead []*podInfo
	for uid, p := range c.nominated[ni.node.Name] {
		if uid != pod.UID && corev1helpers.PodPriority(p.pod) >= corev1helpers.PodPriority(pod) {
			ahead = append(ahead, p)
		}
	}
	if len(ahead) == 0 {
		return ni
	}
	trial := ni.emptyCopy()
	for _, p := range ni.pods {
		trial.addPod(p)
	}
	for _, p := range ahead {
		trial.addPod(p)
	}
	return trial
}
