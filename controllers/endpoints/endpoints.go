// Package endpoints is upstream's Endpoints controller: for every Service with a selector it keeps
// an Endpoints object of the same name listing the selected pods, ready ones under addresses and
// the others under notReadyAddresses, grouped into subsets by the ports they serve. The Endpoints
// API is deprecated in favour of EndpointSlices but still served and still read by many clients.
package endpoints

//lint:file-ignore SA1019 the Endpoints API is deprecated but still served and used; keeping it is this code's job.

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	"github.com/keelson/keelson/controllers/podendpoints"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/dump"
	netutils "k8s.io/utils/net"
)

// maxCapacity is the most addresses an Endpoints object holds; beyond it the controller truncates
// and marks the object with the over-capacity annotation, as upstream does.
const maxCapacity = 1000

type controller struct {
	*manager.Loop
	client       kubernetes.Interface
	services     corelisters.ServiceLister
	pods         corelisters.PodLister
	endpoints    corelisters.EndpointsLister
	triggerTimes *podendpoints.TriggerTimes
	// events reports write failures on the Endpoints, as upstream's endpoint-controller does.
	recorder record.EventRecorder

	// replaced holds, by key, the resourceVersion of the Endpoints this controller last replaced
	// with an update: while the informer still shows that version its view is stale, and acting
	// on it could undo the update (upstream's stale-endpoints check).
	mu       sync.Mutex
	replaced map[string]string
}

// managedByLabel marks the Endpoints this controller writes, as upstream's (v1.33+) does.
const (
	managedByLabel = "endpoints.kubernetes.io/managed-by"
	managedByValue = "endpoint-controller"
)

// New returns the Endpoints controller.
func New(c *manager.Context) (manager.Controller, error) {
	svcs := c.Informers.Core().V1().Services()
	pods := c.Informers.Core().V1().Pods()
	eps := c.Informers.Core().V1().Endpoints()
	ctl := &controller{client: c.Client, services: svcs.Lister(), pods: pods.Lister(), endpoints: eps.Lister(),
		triggerTimes: podendpoints.NewTriggerTimes(), replaced: map[string]string{}}
	ctl.recorder = c.Recorder("endpoint-controller")
	ctl.Loop = manager.NewLoop("endpoint-controller", 5, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{svcs.Informer().HasSynced, pods.Informer().HasSynced, eps.Informer().HasSynced}
	enqueue := func(o any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
			ctl.Enqueue(key)
		}
	}
	if _, err := svcs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	}); err != nil {
		return nil, err
	}
	if _, err := eps.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: enqueue}); err != nil {
		return nil, err
	}
	if err := podendpoints.OnPodEvents(pods.Informer(), ctl.services, ctl.Enqueue); err != nil {
		return nil, err
	}
	return ctl, nil
}

// Run first looks at every Endpoints object once, so that those whose Service went while the
// controller was away are deleted, then works the queue.
func (c *controller) Run(ctx context.Context) error {
	if cache.WaitForCacheSync(ctx.Done(), c.Synced...) {
		all, err := c.endpoints.List(labels.Everything())
		if err == nil {
			for _, ep := range all {
				// Leader election once used Endpoints objects without a Service.
				if _, ok := ep.Annotations[resourcelock.LeaderElectionRecordAnnotationKey]; !ok {
					c.Enqueue(ep.Namespace + "/" + ep.Name)
				}
			}
		}
	}
	return c.Loop.Run(ctx)
}

func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	svc, err := c.services.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.triggerTimes.Forget(key)
		c.setReplaced(key, "")
		err := c.client.CoreV1().Endpoints(namespace).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, err
		}
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	// ExternalName Services and Services without a selector get no endpoints from here; the
	// latter's Endpoints are the user's.
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.Selector == nil {
		return 0, nil
	}
	pods, err := c.pods.Pods(namespace).List(labels.Set(svc.Spec.Selector).AsSelectorPreValidated())
	if err != nil {
		return 0, err
	}
	trigger, seen := c.triggerTimes.Compute(key, svc, pods)
	subsets := subsetsFor(svc, pods)

	cur, err := c.endpoints.Endpoints(namespace).Get(name)
	create := apierrors.IsNotFound(err)
	switch {
	case create:
		cur = &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: svc.Labels}}
	case err != nil:
		return 0, err
	case c.isReplaced(key, cur.ResourceVersion):
		return 0, fmt.Errorf("endpoints informer cache is out of date, resource version %s already processed for endpoints %s", cur.ResourceVersion, key)
	}
	// The Endpoints carry the Service's labels, upstream's managed-by label, and the headless
	// label for a headless Service.
	wantLabels := map[string]string{}
	for k, v := range svc.Labels {
		wantLabels[k] = v
	}
	wantLabels[managedByLabel] = managedByValue
	if podendpoints.Headless(svc) {
		wantLabels[corev1.IsHeadlessService] = ""
	} else {
		delete(wantLabels, corev1.IsHeadlessService)
	}
	if !create && apiequality.Semantic.DeepEqual(cur.Subsets, subsets) && maps.Equal(cur.Labels, wantLabels) &&
		capacityAnnotationRight(cur) {
		seen()
		return 0, nil
	}
	ep := cur.DeepCopy()
	ep.Subsets = subsets
	ep.Labels = wantLabels
	if ep.Annotations == nil {
		ep.Annotations = map[string]string{}
	}
	if trigger.IsZero() {
		delete(ep.Annotations, corev1.EndpointsLastChangeTriggerTime)
	} else {
		ep.Annotations[corev1.EndpointsLastChangeTriggerTime] = trigger.UTC().Format(time.RFC3339Nano)
	}
	if truncate(ep) {
		ep.Annotations[corev1.EndpointsOverCapacity] = "truncated"
	} else {
		delete(ep.Annotations, corev1.EndpointsOverCapacity)
	}
	if create {
		_, err = c.client.CoreV1().Endpoints(namespace).Create(ctx, ep, metav1.CreateOptions{})
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return 0, nil
		}
		if err != nil {
			c.recorder.Eventf(ep, corev1.EventTypeWarning, "FailedToCreateEndpoint", "Failed to create endpoint for service %v/%v: %v", namespace, name, err)
		}
	} else {
		var updated *corev1.Endpoints
		updated, err = c.client.CoreV1().Endpoints(namespace).Update(ctx, ep, metav1.UpdateOptions{})
		switch {
		case err != nil:
			c.recorder.Eventf(ep, corev1.EventTypeWarning, "FailedToUpdateEndpoint", "Failed to update endpoint %v/%v: %v", namespace, name, err)
		case updated.ResourceVersion != cur.ResourceVersion:
			c.setReplaced(key, cur.ResourceVersion)
		}
	}
	if err != nil {
		// A conflict or an AlreadyExists means the informer is behind our own writes: the retry
		// sees the newer object.
		return 0, err
	}
	seen()
	return 0, nil
}

func (c *controller) setReplaced(key, rv string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rv == "" {
		delete(c.replaced, key)
	} else {
		c.replaced[key] = rv
	}
}

func (c *controller) isReplaced(key, rv string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replaced[key] == rv
}

// subsetsFor are the Endpoints subsets of svc over the pods it selects: each pod's address, under
// the ports its targetPorts resolve to, grouped into one subset per distinct set of ports.
func subsetsFor(svc *corev1.Service, pods []*corev1.Pod) []corev1.EndpointSubset {
	var entries []entry
	for _, pod := range pods {
		if !podendpoints.Include(pod, svc.Spec.PublishNotReadyAddresses) {
			continue
		}
		addr, ok := address(svc, pod)
		if !ok {
			continue
		}
		ready := svc.Spec.PublishNotReadyAddresses || manager.PodReady(pod)
		if len(svc.Spec.Ports) == 0 {
			// A headless Service may have no ports; its pods are listed all the same.
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				entries = append(entries, entry{addr: addr, ready: ready})
			}
			continue
		}
		var ports []corev1.EndpointPort
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			n, err := podendpoints.FindPort(pod, sp)
			if err != nil {
				continue
			}
			ports = append(ports, corev1.EndpointPort{Name: sp.Name, Port: n, Protocol: sp.Protocol, AppProtocol: sp.AppProtocol})
		}
		if len(ports) > 0 {
			entries = append(entries, entry{addr: addr, ready: ready, ports: ports})
		}
	}
	return repack(entries)
}

// entry is one pod's address under the ports it serves.
type entry struct {
	addr  corev1.EndpointAddress
	ready bool
	ports []corev1.EndpointPort
}

// addrKey identifies an address: its IP and the pod behind it.
type addrKey struct {
	ip  string
	uid types.UID
}

// repack groups addresses by the exact set of ports they serve, as upstream's RepackSubsets:
// an address serving ports A and B and one serving only A end up in two subsets. Addresses are
// sorted by IP, then UID; an address both ready and not ready counts as ready.
func repack(entries []entry) []corev1.EndpointSubset {
	// Which addresses serve each port (a port-less entry uses a sentinel port).
	sentinel := corev1.EndpointPort{Port: -1}
	addrs := map[addrKey]corev1.EndpointAddress{}
	byPort := map[corev1.EndpointPort]map[addrKey]bool{}
	var portOrder []corev1.EndpointPort
	for _, p := range entries {
		k := addrKey{ip: p.addr.IP}
		if p.addr.TargetRef != nil {
			k.uid = p.addr.TargetRef.UID
		}
		if _, ok := addrs[k]; !ok {
			addrs[k] = p.addr
		}
		ports := p.ports
		if len(ports) == 0 {
			ports = []corev1.EndpointPort{sentinel}
		}
		for _, port := range ports {
			set, ok := byPort[port]
			if !ok {
				set = map[addrKey]bool{}
				byPort[port] = set
				portOrder = append(portOrder, port)
			}
			set[k] = set[k] || p.ready
		}
	}
	// Ports served by the same addresses (with the same readiness) share a subset.
	type group struct {
		set   map[addrKey]bool
		ports []corev1.EndpointPort
	}
	var groups []*group
	for _, port := range portOrder {
		set := byPort[port]
		var g *group
		for _, cand := range groups {
			if maps.Equal(cand.set, set) {
				g = cand
				break
			}
		}
		if g == nil {
			g = &group{set: set}
			groups = append(groups, g)
		}
		if port != sentinel {
			g.ports = append(g.ports, port)
		}
	}
	subsets := []corev1.EndpointSubset{}
	for _, g := range groups {
		var ss corev1.EndpointSubset
		for k, ready := range g.set {
			if ready {
				ss.Addresses = append(ss.Addresses, addrs[k])
			} else {
				ss.NotReadyAddresses = append(ss.NotReadyAddresses, addrs[k])
			}
		}
		sortAddresses(ss.Addresses)
		sortAddresses(ss.NotReadyAddresses)
		sortByHash(g.ports)
		ss.Ports = g.ports
		subsets = append(subsets, ss)
	}
	sortByHash(subsets)
	return subsets
}

// sortAddresses orders addresses as upstream: by IP, compared as text, then by UID.
func sortAddresses(as []corev1.EndpointAddress) {
	slices.SortStableFunc(as, func(a, b corev1.EndpointAddress) int {
		if c := strings.Compare(a.IP, b.IP); c != 0 {
			return c
		}
		switch {
		case a.TargetRef == nil && b.TargetRef == nil:
			return 0
		case a.TargetRef == nil:
			return -1
		case b.TargetRef == nil:
			return 1
		}
		return strings.Compare(string(a.TargetRef.UID), string(b.TargetRef.UID))
	})
}

// sortByHash orders ports or subsets as upstream does, by the MD5 of their dump: an arbitrary
// order, but the one clients see from upstream.
func sortByHash[T any](items []T) {
	sum := func(v T) []byte {
		h := md5.Sum([]byte(dump.ForHash(v)))
		return h[:]
	}
	slices.SortStableFunc(items, func(a, b T) int { return bytes.Compare(sum(a), sum(b)) })
}

// address is the pod's address for svc: its first IP of the Service's (first) family.
func address(svc *corev1.Service, pod *corev1.Pod) (corev1.EndpointAddress, bool) {
	v6 := false
	switch {
	case len(svc.Spec.IPFamilies) > 0:
		v6 = svc.Spec.IPFamilies[0] == corev1.IPv6Protocol
	case !podendpoints.Headless(svc):
		v6 = netutils.IsIPv6String(svc.Spec.ClusterIP)
	default:
		v6 = netutils.IsIPv6String(pod.Status.PodIP)
	}
	for _, ip := range pod.Status.PodIPs {
		if netutils.IsIPv6String(ip.IP) == v6 {
			addr := corev1.EndpointAddress{IP: ip.IP, NodeName: &pod.Spec.NodeName,
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}}
			if h, ok := podendpoints.Hostname(pod, svc); ok {
				addr.Hostname = h
			}
			return addr, true
		}
	}
	return corev1.EndpointAddress{}, false
}

func count(subsets []corev1.EndpointSubset) (ready, notReady int) {
	for _, ss := range subsets {
		ready += len(ss.Addresses)
		notReady += len(ss.NotReadyAddresses)
	}
	return ready, notReady
}

// capacityAnnotationRight tells whether the over-capacity annotation is as the subsets want it:
// absent, and no truncation needed.
func capacityAnnotationRight(ep *corev1.Endpoints) bool {
	r, n := count(ep.Subsets)
	if r+n > maxCapacity {
		return false
	}
	_, ok := ep.Annotations[corev1.EndpointsOverCapacity]
	return !ok
}

// truncate cuts ep down to maxCapacity addresses, as upstream does: ready addresses are kept
// before not-ready ones, and each subset keeps a share in proportion to its size (rounded up, so
// the last subsets may get less). It reports whether it cut anything.
func truncate(ep *corev1.Endpoints) bool {
	ready, notReady := count(ep.Subsets)
	if ready+notReady <= maxCapacity {
		return false
	}
	cutReady := ready > maxCapacity
	budget, total := maxCapacity-ready, notReady
	if cutReady {
		budget, total = maxCapacity, ready
	}
	left := budget
	for i := range ep.Subsets {
		ss := &ep.Subsets[i]
		n := len(ss.NotReadyAddresses)
		if cutReady {
			n = len(ss.Addresses)
		}
		share := min(int(math.Ceil(float64(n)/float64(total)*float64(budget))), left)
		if cutReady {
			ss.Addresses = ss.Addresses[:min(len(ss.Addresses), share)]
			ss.NotReadyAddresses = []corev1.EndpointAddress{}
			left -= len(ss.Addresses)
		} else {
			ss.NotReadyAddresses = ss.NotReadyAddresses[:min(len(ss.NotReadyAddresses), share)]
			left -= len(ss.NotReadyAddresses)
		}
	}
	return true
}
