package endpointslice

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	"github.com/keelson/keelson/controllers/podendpoints"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	netutils "k8s.io/utils/net"
)

// changes are the writes that bring a Service's slices to the desired state.
type changes struct {
	create, update, delete []*discoveryv1.EndpointSlice
}

func (c *changes) add(o changes) {
	c.create = append(c.create, o.create...)
	c.update = append(c.update, o.update...)
	c.delete = append(c.delete, o.delete...)
}

// planner computes the changes for a Service from its pods and its current slices; it does no
// writes. It follows upstream's reconciler so as to churn as little as upstream does: endpoints
// stay in the slice they are in and change in place; removals leave holes that new endpoints
// fill, fullest slice first; what remains goes into the unchanged slice it fits best, or into new
// slices; and a slice that would be deleted while another is created is updated instead.
type planner struct {
	maxPerSlice int
	// node returns a node by name, or a NotFound error.
	node func(name string) (*corev1.Node, error)
}

// plan returns the changes for svc. Errors about single pods (a missing node) do not stop the
// plan; they are returned beside it so that the Service is synced again.
func (p planner) plan(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice) (changes, error) {
	supported := addressTypes(svc)
	var all changes
	byType := map[discoveryv1.AddressType][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		if !slices.Contains(supported, s.AddressType) {
			all.delete = append(all.delete, s)
			continue
		}
		byType[s.AddressType] = append(byType[s.AddressType], s)
	}
	var errs []error
	for _, at := range supported {
		c, err := p.planType(svc, pods, byType[at], at)
		if err != nil {
			errs = append(errs, err)
		}
		all.add(c)
	}
	return all, utilerrors.NewAggregate(errs)
}

func (p planner) planType(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice, at discoveryv1.AddressType) (changes, error) {
	var out changes
	var errs []error
	existingByPorts := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		if ownedBy(s, svc) {
			k := PortsKey(s.Ports)
			existingByPorts[k] = append(existingByPorts[k], s)
		} else {
			out.delete = append(out.delete, s)
		}
	}
	desired := map[string]EndpointSet{}
	desiredPorts := map[string][]discoveryv1.EndpointPort{}
	var portKeys []string
	for _, pod := range pods {
		if !podendpoints.Include(pod, true) {
			continue
		}
		ports := endpointPorts(svc, pod)
		k := PortsKey(ports)
		if desired[k] == nil {
			desired[k] = EndpointSet{}
			desiredPorts[k] = ports
			portKeys = append(portKeys, k)
		}
		node, err := p.node(pod.Spec.NodeName)
		if err != nil {
			if !apierrors.IsNotFound(err) {
				return changes{}, err
			}
			node = nil
			// A pod on a node that does not exist is left out until the node shows up (or the pod
			// goes), unless the Service publishes whatever it selects.
			if !svc.Spec.PublishNotReadyAddresses {
				errs = append(errs, fmt.Errorf("skipping Pod %s for Service %s/%s: Node %s Not Found", pod.Name, svc.Namespace, svc.Name, pod.Spec.NodeName))
				continue
			}
		}
		if ep := podToEndpoint(pod, node, svc, at); len(ep.Addresses) > 0 {
			desired[k].Insert(&ep)
		}
	}
	slices.Sort(portKeys)
	for _, k := range portKeys {
		out.add(p.planPorts(svc, existingByPorts[k], desired[k], desiredPorts[k], at))
	}
	for _, k := range slices.Sorted(maps.Keys(existingByPorts)) {
		if _, ok := desired[k]; !ok {
			out.delete = append(out.delete, existingByPorts[k]...)
		}
	}
	// A Service without endpoints still has one (empty) slice.
	if len(existing) == len(out.delete) && len(out.create) == 0 {
		placeholder := newSlice(svc, []discoveryv1.EndpointPort{}, at)
		if len(out.delete) == 1 && samePlaceholder(out.delete[0], placeholder) {
			out.delete = nil
		} else {
			out.create = append(out.create, placeholder)
		}
	}
	planHints(svc, existing, &out)
	// Rather than delete one slice and create another, update the one into the other.
	for i := 0; i < len(out.delete) && len(out.create) > 0; {
		old, fresh := out.delete[i], out.create[len(out.create)-1]
		if old.AddressType != fresh.AddressType || !ownedBy(old, svc) {
			i++
			continue
		}
		fresh.Name = old.Name
		out.create = out.create[:len(out.create)-1]
		out.update = append(out.update, fresh)
		out.delete = slices.Delete(out.delete, i, i+1)
	}
	return out, utilerrors.NewAggregate(errs)
}

// planPorts reconciles the slices of one set of ports with the endpoints desired under it.
func (p planner) planPorts(svc *corev1.Service, existing []*discoveryv1.EndpointSlice, desired EndpointSet, ports []discoveryv1.EndpointPort, at discoveryv1.AddressType) changes {
	byName := map[string]*discoveryv1.EndpointSlice{}
	var unchanged, updated, deleted []string
	// 1. Keep what is still desired where it is, dropping the rest and refreshing what changed.
	for _, s := range existing {
		byName[s.Name] = s
		var kept []discoveryv1.Endpoint
		changed := false
		for i := range s.Endpoints {
			e := &s.Endpoints[i]
			if want := desired.Get(e); want != nil {
				kept = append(kept, *want)
				changed = changed || !EqualBeyondKey(want, e)
				desired.Delete(e)
			}
		}
		labels, labelsChanged := sliceLabels(s, svc)
		switch {
		case changed || len(kept) != len(s.Endpoints):
			if len(kept) == 0 {
				deleted = append(deleted, s.Name)
				continue
			}
			c := s.DeepCopy()
			c.Endpoints, c.Labels = kept, labels
			byName[s.Name] = c
			updated = append(updated, s.Name)
		case labelsChanged:
			c := s.DeepCopy()
			c.Labels = labels
			byName[s.Name] = c
			updated = append(updated, s.Name)
		default:
			unchanged = append(unchanged, s.Name)
		}
	}
	// 2. Fill the slices being updated anyway, fullest first.
	if len(desired) > 0 && len(updated) > 0 {
		fill := make([]*discoveryv1.EndpointSlice, len(updated))
		for i, n := range updated {
			fill[i] = byName[n]
		}
		slices.SortStableFunc(fill, func(a, b *discoveryv1.EndpointSlice) int { return len(b.Endpoints) - len(a.Endpoints) })
		for _, s := range fill {
			s.Endpoints = append(s.Endpoints, desired.Take(p.maxPerSlice-len(s.Endpoints))...)
		}
	}
	// 3. Put the rest into the unchanged slice they fit best, or into new slices.
	var created []*discoveryv1.EndpointSlice
	for len(desired) > 0 {
		var s *discoveryv1.EndpointSlice
		if len(desired) < p.maxPerSlice && len(unchanged) > 0 {
			candidates := make([]*discoveryv1.EndpointSlice, len(unchanged))
			for i, n := range unchanged {
				candidates[i] = byName[n]
			}
			s = sliceToFill(candidates, len(desired), p.maxPerSlice)
		}
		if s == nil {
			s = newSlice(svc, ports, at)
		} else {
			s = s.DeepCopy()
			byName[s.Name] = s
		}
		s.Endpoints = append(s.Endpoints, desired.Take(p.maxPerSlice-len(s.Endpoints))...)
		if s.Name == "" {
			created = append(created, s)
			continue
		}
		updated = append(updated, s.Name)
		unchanged = slices.DeleteFunc(unchanged, func(n string) bool { return n == s.Name })
	}
	out := changes{create: created}
	for _, n := range updated {
		out.update = append(out.update, byName[n])
	}
	for _, n := range deleted {
		out.delete = append(out.delete, byName[n])
	}
	return out
}

// sliceToFill is the slice that n more endpoints would bring closest to full, or nil if none has
// room for them.
func sliceToFill(candidates []*discoveryv1.EndpointSlice, n, max int) *discoveryv1.EndpointSlice {
	best, bestGap := (*discoveryv1.EndpointSlice)(nil), max
	for _, s := range candidates {
		gap := max - (n + len(s.Endpoints))
		if gap >= 0 && gap < bestGap {
			best, bestGap = s, gap
			if gap == 0 {
				break
			}
		}
	}
	return best
}

// samePlaceholder tells whether an existing slice is the placeholder wanted: no endpoints, no
// ports, the same owner and labels.
func samePlaceholder(s, want *discoveryv1.EndpointSlice) bool {
	if s.Namespace != want.Namespace || s.AddressType != want.AddressType || len(s.Endpoints) != 0 || len(s.Ports) != 0 {
		return false
	}
	return apiequality.Semantic.DeepEqual(s.OwnerReferences, want.OwnerReferences) && apiequality.Semantic.DeepEqual(s.Labels, want.Labels)
}

// apply makes the writes, recording each in the tracker. No slice is created for a Service being
// deleted, not to race the garbage collector.
func apply(ctx context.Context, client kubernetes.Interface, tracker *Tracker, svc *corev1.Service, ch changes, trigger time.Time) error {
	api := client.DiscoveryV1().EndpointSlices(svc.Namespace)
	if svc.DeletionTimestamp == nil {
		for _, s := range ch.create {
			setTriggerTime(s, trigger)
			created, err := api.Create(ctx, s, metav1.CreateOptions{})
			if err != nil {
				if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
					return nil
				}
				return fmt.Errorf("failed to create EndpointSlice for Service %s/%s: %w", svc.Namespace, svc.Name, err)
			}
			tracker.Update(created)
		}
	}
	for _, s := range ch.update {
		setTriggerTime(s, trigger)
		updated, err := api.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("failed to update %s EndpointSlice for Service %s/%s: %w", s.Name, svc.Namespace, svc.Name, err)
		}
		tracker.Update(updated)
	}
	for _, s := range ch.delete {
		if err := api.Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("failed to delete %s EndpointSlice for Service %s/%s: %w", s.Name, svc.Namespace, svc.Name, err)
		}
		tracker.ExpectDeletion(s)
	}
	return nil
}

func setTriggerTime(s *discoveryv1.EndpointSlice, at time.Time) {
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	if at.IsZero() {
		delete(s.Annotations, corev1.EndpointsLastChangeTriggerTime)
	} else {
		s.Annotations[corev1.EndpointsLastChangeTriggerTime] = at.UTC().Format(time.RFC3339Nano)
	}
}

// podToEndpoint is the pod as an endpoint of svc. Ready is never true for a terminating pod
// unless the Service publishes not-ready addresses; serving is the pod's readiness regardless.
func podToEndpoint(pod *corev1.Pod, node *corev1.Node, svc *corev1.Service, at discoveryv1.AddressType) discoveryv1.Endpoint {
	serving := manager.PodReady(pod)
	terminating := pod.DeletionTimestamp != nil
	ready := svc.Spec.PublishNotReadyAddresses || (serving && !terminating)
	ep := discoveryv1.Endpoint{
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
	}
	for _, ip := range pod.Status.PodIPs {
		parsed := netutils.ParseIPSloppy(ip.IP)
		if parsed == nil {
			continue
		}
		if netutils.IsIPv6(parsed) == (at == discoveryv1.AddressTypeIPv6) {
			ep.Addresses = append(ep.Addresses, parsed.String())
		}
	}
	if pod.Spec.NodeName != "" {
		ep.NodeName = &pod.Spec.NodeName
	}
	if node != nil && node.Labels[corev1.LabelTopologyZone] != "" {
		zone := node.Labels[corev1.LabelTopologyZone]
		ep.Zone = &zone
	}
	if h, ok := podendpoints.Hostname(pod, svc); ok {
		ep.Hostname = &h
	}
	return ep
}

// endpointPorts are the Service's ports as the pod serves them; a port whose targetPort the pod
// does not have is left out.
func endpointPorts(svc *corev1.Service, pod *corev1.Pod) []discoveryv1.EndpointPort {
	ports := []discoveryv1.EndpointPort{}
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		n, err := podendpoints.FindPort(pod, sp)
		if err != nil {
			continue
		}
		name, proto := sp.Name, sp.Protocol
		ports = append(ports, discoveryv1.EndpointPort{Name: &name, Port: &n, Protocol: &proto, AppProtocol: sp.AppProtocol})
	}
	SortPorts(ports)
	return ports
}

// newSlice is an empty slice for svc.
func newSlice(svc *corev1.Service, ports []discoveryv1.EndpointPort, at discoveryv1.AddressType) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    slicePrefix(svc.Name),
			Namespace:       svc.Namespace,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))},
		},
		AddressType: at,
		Ports:       ports,
		Endpoints:   []discoveryv1.Endpoint{},
	}
	s.Labels, _ = sliceLabels(s, svc)
	return s
}

// slicePrefix is "<name>-", or the name alone if the dash would make an invalid prefix.
func slicePrefix(name string) string {
	if len(apivalidation.NameIsDNSSubdomain(name+"-", true)) != 0 {
		return name
	}
	return name + "-"
}

func ownedBy(s *discoveryv1.EndpointSlice, svc *corev1.Service) bool {
	for _, o := range s.OwnerReferences {
		if o.UID == svc.UID && o.Kind == "Service" && o.APIVersion == "v1" {
			return true
		}
	}
	return false
}

func reservedLabel(key string) bool {
	return key == discoveryv1.LabelServiceName || key == discoveryv1.LabelManagedBy || key == corev1.IsHeadlessService
}

// sliceLabels are the labels a slice of svc wants: the Service's own (less the reserved ones),
// the headless label for a headless Service, the service name and this controller. It also tells
// whether the slice's non-reserved labels differ from the Service's.
func sliceLabels(s *discoveryv1.EndpointSlice, svc *corev1.Service) (map[string]string, bool) {
	have, want := map[string]string{}, map[string]string{}
	for k, v := range s.Labels {
		if !reservedLabel(k) {
			have[k] = v
		}
	}
	for k, v := range svc.Labels {
		if !reservedLabel(k) {
			want[k] = v
		}
	}
	changed := !apiequality.Semantic.DeepEqual(have, want)
	if podendpoints.Headless(svc) {
		want[corev1.IsHeadlessService] = ""
	}
	want[discoveryv1.LabelServiceName] = svc.Name
	want[discoveryv1.LabelManagedBy] = ControllerName
	return want, changed
}

// addressTypes are the address types of svc's slices: one per IP family. Without families (an
// old API server) a Service with a cluster IP takes that IP's family, a headless one both.
func addressTypes(svc *corev1.Service) []discoveryv1.AddressType {
	var out []discoveryv1.AddressType
	for _, f := range svc.Spec.IPFamilies {
		at := discoveryv1.AddressTypeIPv4
		if f == corev1.IPv6Protocol {
			at = discoveryv1.AddressTypeIPv6
		}
		if !slices.Contains(out, at) {
			out = append(out, at)
		}
	}
	if len(out) > 0 {
		return out
	}
	if !podendpoints.Headless(svc) {
		if netutils.IsIPv6String(svc.Spec.ClusterIP) {
			return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv6}
		}
		return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4}
	}
	return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6}
}
