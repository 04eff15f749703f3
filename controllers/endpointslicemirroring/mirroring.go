// Package endpointslicemirroring is upstream's EndpointSliceMirroring controller: the Endpoints
// that users write for Services without a selector are mirrored into EndpointSlices, so that
// consumers of slices (the service proxy, DNS) see them. Endpoints labelled
// endpointslice.kubernetes.io/skip-mirror=true (the API server's own for the kubernetes Service)
// and leader-election records are left alone.
package endpointslicemirroring

//lint:file-ignore SA1019 the Endpoints API is deprecated but still served and used; keeping it is this code's job.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/keelson/keelson/controllers/endpointslice"
	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	netutils "k8s.io/utils/net"
)

// ControllerName is the value of the managed-by label on mirrored slices.
const ControllerName = "endpointslicemirroring-controller.k8s.io"

// maxEndpointsPerSubset is how many addresses of one Endpoints subset are mirrored (upstream's
// default --mirroring-max-endpoints-per-subset): each subset maps to one slice per address type.
const maxEndpointsPerSubset = 1000

type controller struct {
	*manager.Loop
	client    kubernetes.Interface
	endpoints corelisters.EndpointsLister
	services  corelisters.ServiceLister
	slices    discoverylisters.EndpointSliceLister
	tracker   *endpointslice.Tracker
	// events reports addresses left unmirrored on the Endpoints, as upstream's
	// endpoint-slice-mirroring-controller does.
	recorder record.EventRecorder
}

// New returns the EndpointSliceMirroring controller.
func New(c *manager.Context) (manager.Controller, error) {
	eps := c.Informers.Core().V1().Endpoints()
	svcs := c.Informers.Core().V1().Services()
	sl := c.Informers.Discovery().V1().EndpointSlices()
	ctl := &controller{client: c.Client, endpoints: eps.Lister(), services: svcs.Lister(), slices: sl.Lister(), tracker: endpointslice.NewTracker()}
	ctl.recorder = c.Recorder("endpoint-slice-mirroring-controller")
	ctl.Loop = manager.NewLoop("endpointslicemirroring-controller", 5, c.Log, ctl.sync)
	ctl.Queue = endpointslice.NewQueue("endpoint_slice_mirroring")
	ctl.Synced = []cache.InformerSynced{eps.Informer().HasSynced, svcs.Informer().HasSynced, sl.Informer().HasSynced}
	enqueue := func(o any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
			ctl.Enqueue(key)
		}
	}
	unwrap := func(o any) any {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			return t.Obj
		}
		return o
	}
	if _, err := eps.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if shouldMirror(o.(*corev1.Endpoints)) {
				enqueue(o)
			}
		},
		UpdateFunc: func(o, n any) {
			if shouldMirror(o.(*corev1.Endpoints)) || shouldMirror(n.(*corev1.Endpoints)) {
				enqueue(n)
			}
		},
		DeleteFunc: func(o any) {
			if ep, ok := unwrap(o).(*corev1.Endpoints); ok && shouldMirror(ep) {
				enqueue(o)
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := svcs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if o.(*corev1.Service).Spec.Selector == nil {
				enqueue(o)
			}
		},
		UpdateFunc: func(o, n any) {
			if (o.(*corev1.Service).Spec.Selector == nil) != (n.(*corev1.Service).Spec.Selector == nil) {
				enqueue(n)
			}
		},
		DeleteFunc: func(o any) {
			if svc, ok := unwrap(o).(*corev1.Service); ok && svc.Spec.Selector == nil {
				enqueue(o)
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := sl.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { ctl.sliceEvent(nil, o.(*discoveryv1.EndpointSlice)) },
		UpdateFunc: func(o, n any) { ctl.sliceEvent(o.(*discoveryv1.EndpointSlice), n.(*discoveryv1.EndpointSlice)) },
		DeleteFunc: func(o any) {
			s, ok := unwrap(o).(*discoveryv1.EndpointSlice)
			if ok && managed(s) && ctl.tracker.Has(s) && !ctl.tracker.HandleDeletion(s) {
				ctl.enqueueFor(s)
			}
		},
	}); err != nil {
		return nil, err
	}
	return ctl, nil
}

// shouldMirror tells whether Endpoints are mirrored at all: not when labelled skip-mirror, nor
// when they hold a leader-election record.
func shouldMirror(ep *corev1.Endpoints) bool {
	if ep == nil || ep.Labels[discoveryv1.LabelSkipMirror] == "true" {
		return false
	}
	_, leader := ep.Annotations[resourcelock.LeaderElectionRecordAnnotationKey]
	return !leader
}

func managed(s *discoveryv1.EndpointSlice) bool { return endpointslice.ManagedBy(s, ControllerName) }

func (c *controller) sliceEvent(old, s *discoveryv1.EndpointSlice) {
	for _, changed := range endpointslice.ChangedSlices(old, s, ControllerName, c.tracker) {
		c.enqueueFor(changed)
	}
}

func (c *controller) enqueueFor(s *discoveryv1.EndpointSlice) {
	if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
		c.Enqueue(s.Namespace + "/" + name)
	}
}

func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	owner := types.NamespacedName{Namespace: namespace, Name: name}
	ep, err := c.endpoints.Endpoints(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, c.deleteMirrored(ctx, owner)
	}
	if err != nil {
		return 0, err
	}
	if !shouldMirror(ep) {
		return 0, c.deleteMirrored(ctx, owner)
	}
	svc, err := c.services.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, c.deleteMirrored(ctx, owner)
	}
	if err != nil {
		return 0, err
	}
	// A Service with a selector has its slices from the EndpointSlice controller.
	if svc.Spec.Selector != nil {
		return 0, c.deleteMirrored(ctx, owner)
	}
	existing, err := c.mirrored(owner)
	if err != nil {
		return 0, err
	}
	if c.tracker.Stale(owner, svc.UID, existing) {
		return 0, endpointslice.ErrStale
	}
	ch := plan(ep, existing)
	if ch.invalid > 0 {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, "InvalidIPAddress", "Skipped %d invalid IP addresses when mirroring to EndpointSlices", ch.invalid)
	}
	if ch.skipped > ch.invalid {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, "TooManyAddressesToMirror",
			"A max of %d addresses can be mirrored to EndpointSlices per Endpoints subset. %d addresses were skipped", maxEndpointsPerSubset, ch.skipped)
	}
	return 0, c.apply(ctx, ep, ch)
}

func (c *controller) mirrored(owner types.NamespacedName) ([]*discoveryv1.EndpointSlice, error) {
	return c.slices.EndpointSlices(owner.Namespace).List(labels.Set{
		discoveryv1.LabelServiceName: owner.Name, discoveryv1.LabelManagedBy: ControllerName}.AsSelectorPreValidated())
}

func (c *controller) deleteMirrored(ctx context.Context, owner types.NamespacedName) error {
	c.tracker.Forget(owner)
	existing, err := c.mirrored(owner)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range existing {
		if err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("deleting %d/%d EndpointSlices mirrored for %s Endpoints: %w", len(errs), len(existing), owner, errors.Join(errs...))
	}
	return nil
}

// changes are the writes that bring the mirrored slices to the desired state.
type changes struct {
	create, update, delete []*discoveryv1.EndpointSlice
	// invalid counts addresses that are not IPs; skipped counts every address left out, those
	// beyond maxEndpointsPerSubset included.
	invalid, skipped int
}

// plan maps each subset of ep to one slice per address type (holding at most
// maxEndpointsPerSubset of its addresses, ready ones first): an existing slice of the same ports
// and address type is rewritten if anything differs, its duplicates deleted, and a slice that
// would be deleted while another is created is updated instead.
func plan(ep *corev1.Endpoints, existing []*discoveryv1.EndpointSlice) changes {
	type group struct {
		at    discoveryv1.AddressType
		ports []discoveryv1.EndpointPort
		set   endpointslice.EndpointSet
	}
	desired := map[string]*group{}
	var keys []string
	var out changes
	for _, ss := range ep.Subsets {
		ports := mirrorPorts(ss.Ports)
		byType := map[discoveryv1.AddressType]*group{}
		for _, at := range []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6} {
			k := string(at) + "|" + endpointslice.PortsKey(ports)
			if desired[k] == nil {
				desired[k] = &group{at: at, ports: ports, set: endpointslice.EndpointSet{}}
				keys = append(keys, k)
			}
			byType[at] = desired[k]
		}
		added := 0
		add := func(addrs []corev1.EndpointAddress, ready bool) {
			for _, a := range addrs {
				if added >= maxEndpointsPerSubset {
					return
				}
				e, at, ok := addressToEndpoint(a, ready)
				if !ok {
					out.invalid++ // not an IP: not mirrored
					continue
				}
				byType[at].set.Insert(e)
				added++
			}
		}
		add(ss.Addresses, true)
		add(ss.NotReadyAddresses, false)
		out.skipped += len(ss.Addresses) + len(ss.NotReadyAddresses) - added
	}
	existingByKey := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		k := string(s.AddressType) + "|" + endpointslice.PortsKey(s.Ports)
		existingByKey[k] = append(existingByKey[k], s)
	}
	slices.Sort(keys)
	for _, k := range keys {
		g, have := desired[k], existingByKey[k]
		if len(g.set) == 0 {
			out.delete = append(out.delete, have...)
			continue
		}
		name := ""
		if len(have) > 0 {
			out.delete = append(out.delete, have[1:]...)
			if upToDate(ep, have[0], g.set) {
				continue
			}
			name = have[0].Name
		}
		s := newSlice(ep, g.ports, g.at, name)
		s.Endpoints = g.set.Take(maxEndpointsPerSubset)
		if name == "" {
			out.create = append(out.create, s)
		} else {
			out.update = append(out.update, s)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(existingByKey)) {
		if _, ok := desired[k]; !ok {
			out.delete = append(out.delete, existingByKey[k]...)
		}
	}
	// Rather than delete one slice and create another of the same address type, update.
	for i := 0; i < len(out.create); {
		j := slices.IndexFunc(out.delete, func(d *discoveryv1.EndpointSlice) bool { return d.AddressType == out.create[i].AddressType })
		if j < 0 {
			i++
			continue
		}
		s := out.create[i]
		s.Name, s.GenerateName = out.delete[j].Name, ""
		out.update = append(out.update, s)
		out.create = slices.Delete(out.create, i, i+1)
		out.delete = slices.Delete(out.delete, j, j+1)
	}
	return out
}

// upToDate tells whether a mirrored slice already holds exactly the desired endpoints and the
// Endpoints' labels and annotations.
func upToDate(ep *corev1.Endpoints, s *discoveryv1.EndpointSlice, want endpointslice.EndpointSet) bool {
	if len(s.Endpoints) != len(want) {
		return false
	}
	for i := range s.Endpoints {
		w := want.Get(&s.Endpoints[i])
		if w == nil || !endpointslice.EqualBeyondKey(w, &s.Endpoints[i]) {
			return false
		}
	}
	wantSlice := newSlice(ep, nil, s.AddressType, s.Name)
	return apiequality.Semantic.DeepEqual(s.Labels, wantSlice.Labels) && apiequality.Semantic.DeepEqual(s.Annotations, wantSlice.Annotations)
}

func (c *controller) apply(ctx context.Context, ep *corev1.Endpoints, ch changes) error {
	api := c.client.DiscoveryV1().EndpointSlices(ep.Namespace)
	if ep.DeletionTimestamp == nil {
		for _, s := range ch.create {
			created, err := api.Create(ctx, s, metav1.CreateOptions{})
			if err != nil {
				if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
					return nil
				}
				return fmt.Errorf("failed to create EndpointSlice for Endpoints %s/%s: %w", ep.Namespace, ep.Name, err)
			}
			c.tracker.Update(created)
		}
	}
	for _, s := range ch.update {
		updated, err := api.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("failed to update %s EndpointSlice for Endpoints %s/%s: %w", s.Name, ep.Namespace, ep.Name, err)
		}
		c.tracker.Update(updated)
	}
	for _, s := range ch.delete {
		if err := api.Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("failed to delete %s EndpointSlice for Endpoints %s/%s: %w", s.Name, ep.Namespace, ep.Name, err)
		}
		c.tracker.ExpectDeletion(s)
	}
	return nil
}

// newSlice is a mirrored slice of ep: owned by the Endpoints, with its labels (plus the service
// name and this controller) and annotations (less the trigger time and kubectl's last applied
// configuration).
func newSlice(ep *corev1.Endpoints, ports []discoveryv1.EndpointPort, at discoveryv1.AddressType, name string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       ep.Namespace,
			Labels:          map[string]string{},
			Annotations:     map[string]string{},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ep, corev1.SchemeGroupVersion.WithKind("Endpoints"))},
		},
		AddressType: at,
		Ports:       ports,
		Endpoints:   []discoveryv1.Endpoint{},
	}
	for k, v := range ep.Labels {
		s.Labels[k] = v
	}
	s.Labels[discoveryv1.LabelServiceName] = ep.Name
	s.Labels[discoveryv1.LabelManagedBy] = ControllerName
	for k, v := range ep.Annotations {
		if k != corev1.EndpointsLastChangeTriggerTime && k != corev1.LastAppliedConfigAnnotation {
			s.Annotations[k] = v
		}
	}
	if name == "" {
		s.GenerateName = ep.Name + "-"
		if len(apivalidation.NameIsDNSSubdomain(s.GenerateName, true)) != 0 {
			s.GenerateName = ep.Name
		}
	}
	return s
}

// addressToEndpoint mirrors one address; it fails for an address that is not an IP.
func addressToEndpoint(a corev1.EndpointAddress, ready bool) (*discoveryv1.Endpoint, discoveryv1.AddressType, bool) {
	ip := netutils.ParseIPSloppy(a.IP)
	if ip == nil {
		return nil, "", false
	}
	at := discoveryv1.AddressTypeIPv4
	if ip.To4() == nil {
		at = discoveryv1.AddressTypeIPv6
	}
	e := &discoveryv1.Endpoint{Addresses: []string{ip.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		TargetRef: a.TargetRef, NodeName: a.NodeName}
	if a.Hostname != "" {
		h := a.Hostname
		e.Hostname = &h
	}
	return e, at, true
}

func mirrorPorts(ports []corev1.EndpointPort) []discoveryv1.EndpointPort {
	out := []discoveryv1.EndpointPort{}
	for _, p := range ports {
		out = append(out, discoveryv1.EndpointPort{Name: &p.Name, Port: &p.Port, Protocol: &p.Protocol, AppProtocol: p.AppProtocol})
	}
	endpointslice.SortPorts(out)
	return out
}
