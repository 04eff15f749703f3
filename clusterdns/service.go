package clusterdns

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const (
	// ServiceName and ServiceNamespace name the cluster DNS Service, as upstream's CoreDNS addon does.
	ServiceName      = "kube-dns"
	ServiceNamespace = metav1.NamespaceSystem
	// ManagedBy is the managed-by label value on the EndpointSlices of the kube-dns Service.
	ManagedBy = "clusterdns.keelson.io"
	// Port is where cluster DNS is served, and MetricsPort its metrics (upstream's ports).
	Port        = 53
	MetricsPort = 9153
)

// ServiceIP is the cluster DNS Service's address: the tenth of the service range (the first of
// a comma-separated dual-stack pair), as kubeadm places it (10.96.0.10 for 10.96.0.0/12).
func ServiceIP(serviceCIDR string) (netip.Addr, error) {
	first, _, _ := strings.Cut(serviceCIDR, ",")
	prefix, err := netip.ParsePrefix(strings.TrimSpace(first))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("clusterdns: service range: %w", err)
	}
	ip := prefix.Masked().Addr()
	for range 10 {
		ip = ip.Next()
	}
	if !prefix.Contains(ip) {
		return netip.Addr{}, fmt.Errorf("clusterdns: service range %s has no tenth address", prefix)
	}
	return ip, nil
}

// serviceLabels are upstream's labels on the kube-dns Service.
func serviceLabels() map[string]string {
	return map[string]string{
		"k8s-app":                       "kube-dns",
		"kubernetes.io/cluster-service": "true",
		"kubernetes.io/name":            "CoreDNS",
	}
}

// servicePorts are upstream's ports of the kube-dns Service.
func servicePorts() []corev1.ServicePort {
	return []corev1.ServicePort{
		{Name: "dns", Port: Port, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(Port)},
		{Name: "dns-tcp", Port: Port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(Port)},
		{Name: "metrics", Port: MetricsPort, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(MetricsPort)},
	}
}

// EnsureService creates, or brings back to shape, the kube-dns Service in kube-system at the
// tenth address of serviceCIDR, with upstream's labels, annotations and ports but no selector
// (cluster DNS runs in each node agent, not in pods), and an EndpointSlice per address family
// of node naming the addresses (nodeIPs) where that node's agent serves DNS. A slice is owned by
// its Node when the Node exists, so that it goes away with the Node. It is idempotent: a node
// agent calls it at start and may call it again at will.
func EnsureService(ctx context.Context, client kubernetes.Interface, serviceCIDR, node string, nodeIPs ...string) error {
	ip, err := ServiceIP(serviceCIDR)
	if err != nil {
		return err
	}
	if err := ensureService(ctx, client, ip); err != nil {
		return err
	}
	return ensureSlices(ctx, client, node, nodeIPs)
}

func ensureService(ctx context.Context, client kubernetes.Interface, ip netip.Addr) error {
	services := client.CoreV1().Services(ServiceNamespace)
	want := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: ServiceName, Namespace: ServiceNamespace, Labels: serviceLabels(),
			Annotations: map[string]string{"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
		},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: ip.String(),
			Ports:     servicePorts(),
		},
	}
	for {
		have, err := services.Get(ctx, ServiceName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = services.Create(ctx, want, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("clusterdns: creating Service %s/%s: %w", ServiceNamespace, ServiceName, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("clusterdns: reading Service %s/%s: %w", ServiceNamespace, ServiceName, err)
		}
		if have.Spec.ClusterIP != ip.String() {
			return fmt.Errorf("clusterdns: Service %s/%s has cluster IP %s, not %s", ServiceNamespace, ServiceName, have.Spec.ClusterIP, ip)
		}
		updated := have.DeepCopy()
		if updated.Labels == nil {
			updated.Labels = map[string]string{}
		}
		if updated.Annotations == nil {
			updated.Annotations = map[string]string{}
		}
		maps.Copy(updated.Labels, want.Labels)
		maps.Copy(updated.Annotations, want.Annotations)
		updated.Spec.Ports = mergePorts(updated.Spec.Ports, want.Spec.Ports)
		updated.Spec.Selector = nil
		if apiequality.Semantic.DeepEqual(have, updated) {
			return nil
		}
		_, err = services.Update(ctx, updated, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("clusterdns: updating Service %s/%s: %w", ServiceNamespace, ServiceName, err)
		}
		return nil
	}
}

// mergePorts returns want's ports, keeping the server-set fields (none for a ClusterIP Service
// but the defaults) of the ports in have that want also names.
func mergePorts(have, want []corev1.ServicePort) []corev1.ServicePort {
	out := make([]corev1.ServicePort, 0, len(want))
	for _, w := range want {
		p := w
		for _, h := range have {
			if h.Name == w.Name && h.Port == w.Port && h.Protocol == w.Protocol && h.TargetPort == w.TargetPort {
				p = h
			}
		}
		out = append(out, p)
	}
	return out
}

// ensureSlices writes one EndpointSlice per address family of nodeIPs for node.
func ensureSlices(ctx context.Context, client kubernetes.Interface, node string, nodeIPs []string) error {
	if node == "" {
		return fmt.Errorf("clusterdns: no node name for the kube-dns endpoints")
	}
	byFamily := map[discoveryv1.AddressType][]string{}
	for _, s := range nodeIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("clusterdns: node address: %w", err)
		}
		family := discoveryv1.AddressTypeIPv4
		if a.Is6() && !a.Is4In6() {
			family = discoveryv1.AddressTypeIPv6
		}
		byFamily[family] = append(byFamily[family], a.Unmap().String())
	}
	var owners []metav1.OwnerReference
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	switch {
	case err == nil:
		owners = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}}
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("clusterdns: reading Node %s: %w", node, err)
	}
	slices := client.DiscoveryV1().EndpointSlices(ServiceNamespace)
	for _, family := range []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6} {
		name := ServiceName + "-" + node
		if family == discoveryv1.AddressTypeIPv6 {
			name += "-ipv6"
		}
		if len(byFamily[family]) == 0 {
			err := slices.Delete(ctx, name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("clusterdns: deleting EndpointSlice %s: %w", name, err)
			}
			continue
		}
		labels := serviceLabels()
		labels[discoveryv1.LabelServiceName] = ServiceName
		labels[discoveryv1.LabelManagedBy] = ManagedBy
		want := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: ServiceNamespace, Labels: labels, OwnerReferences: owners},
			AddressType: family,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses: byFamily[family],
				Conditions: discoveryv1.EndpointConditions{
					Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false),
				},
				NodeName: ptr.To(node),
			}},
		}
		for _, p := range servicePorts() {
			want.Ports = append(want.Ports, discoveryv1.EndpointPort{Name: ptr.To(p.Name), Port: ptr.To(p.Port), Protocol: ptr.To(p.Protocol)})
		}
		if err := ensureSlice(ctx, client, want); err != nil {
			return err
		}
	}
	return nil
}

func ensureSlice(ctx context.Context, client kubernetes.Interface, want *discoveryv1.EndpointSlice) error {
	slices := client.DiscoveryV1().EndpointSlices(want.Namespace)
	for {
		have, err := slices.Get(ctx, want.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = slices.Create(ctx, want, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("clusterdns: creating EndpointSlice %s: %w", want.Name, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("clusterdns: reading EndpointSlice %s: %w", want.Name, err)
		}
		updated := have.DeepCopy()
		updated.Labels, updated.OwnerReferences = want.Labels, want.OwnerReferences
		updated.AddressType, updated.Endpoints, updated.Ports = want.AddressType, want.Endpoints, want.Ports
		if len(want.OwnerReferences) == 0 {
			updated.OwnerReferences = have.OwnerReferences
		}
		if apiequality.Semantic.DeepEqual(have, updated) {
			return nil
		}
		_, err = slices.Update(ctx, updated, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("clusterdns: updating EndpointSlice %s: %w", want.Name, err)
		}
		return nil
	}
}
