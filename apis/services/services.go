// Package services allocates what a Service holds — its cluster IP and node ports — when it is
// created, and frees them when it is deleted.
package services

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/keelson/keelson/apis/rest"
	"github.com/keelson/keelson/apis/strategy"
	"github.com/keelson/keelson/registry/allocator"
	"github.com/keelson/keelson/registry/store"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var serviceKind = schema.GroupKind{Kind: "Service"}

// ipAddresses keeps IPAddress objects in their store.
type ipAddresses struct{ s *store.Store }

func (ia ipAddresses) Claim(ctx context.Context, ip, namespace, service string) error {
	obj := &networkingv1.IPAddress{
		ObjectMeta: metav1.ObjectMeta{
			Name: ip, UID: uuid.NewUUID(), CreationTimestamp: metav1.Now(),
			Labels: map[string]string{"ipaddress.kubernetes.io/ip-family": "IPv4", "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"},
		},
		Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Resource: "services", Namespace: namespace, Name: service}},
	}
	obj.SetGroupVersionKind(networkingv1.SchemeGroupVersion.WithKind("IPAddress"))
	_, err := ia.s.Create(ctx, ia.s.Key("", ip), obj)
	if apierrors.IsAlreadyExists(err) {
		// The address may be held by this very service, which then already exists.
		if cur, gerr := ia.s.Get(ctx, ia.s.Key("", ip)); gerr == nil {
			if ref := cur.(*networkingv1.IPAddress).Spec.ParentRef; ref != nil && ref.Resource == "services" && ref.Namespace == namespace && ref.Name == service {
				return apierrors.NewAlreadyExists(schema.GroupResource{Resource: "services"}, service)
			}
		}
		return errTaken
	}
	return err
}

// errTaken means another service holds the address.
var errTaken = apierrors.NewAlreadyExists(schema.GroupResource{Group: "networking.k8s.io", Resource: "ipaddresses"}, "")

func (ia ipAddresses) Release(ctx context.Context, ip string) error {
	_, err := ia.s.Delete(ctx, ia.s.Key("", ip), nil)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// Allocators are the ranges services draw from.
type Allocators struct {
	IPs       *allocator.ServiceIPs
	NodePorts *allocator.NodePorts
}

// NewAllocators builds the allocators over the API's stores.
func NewAllocators(api *rest.API, serviceCIDR string) (*Allocators, error) {
	ips, err := allocator.NewServiceIPs(serviceCIDR, ipAddresses{api.Store(schema.GroupResource{Group: "networking.k8s.io", Resource: "ipaddresses"})})
	if err != nil {
		return nil, err
	}
	ports := allocator.NewNodePorts(30000, 2768, func() []int32 {
		var used []int32
		for _, o := range api.Cached(schema.GroupResource{Resource: "services"}) {
			for _, p := range o.(*corev1.Service).Spec.Ports {
				if p.NodePort != 0 {
					used = append(used, p.NodePort)
				}
			}
		}
		return used
	})
	return &Allocators{IPs: ips, NodePorts: ports}, nil
}

// Hooks returns the service hooks of the REST layer.
func (al *Allocators) Hooks() rest.Hooks {
	return rest.Hooks{
		BeforeCreate:  al.beforeCreate,
		PrepareUpdate: strategy.ServiceKeepAllocated,
		AfterDelete:   al.afterDelete,
	}
}

func (al *Allocators) beforeCreate(ctx context.Context, obj runtime.Object, dryRun bool) (func(), error) {
	svc := obj.(*corev1.Service)
	var undo []func()
	rollback := func() {
		for _, u := range undo {
			u()
		}
	}
	fail := func(err error) (func(), error) {
		rollback()
		return nil, err
	}
	if svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		ipPath := field.NewPath("spec", "clusterIPs")
		switch {
		case svc.Spec.ClusterIP == "" && !dryRun:
			ip, err := al.IPs.Allocate(ctx, svc.Namespace, svc.Name)
			if errors.Is(err, allocator.ErrFull) {
				return fail(apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: range is full")))
			}
			if err != nil {
				return fail(err)
			}
			svc.Spec.ClusterIP = ip.String()
			undo = append(undo, func() { _ = al.IPs.Release(context.WithoutCancel(ctx), ip) })
		case svc.Spec.ClusterIP != "":
			ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
			if err != nil {
				return fail(apierrors.NewInvalid(serviceKind, svc.Name, field.ErrorList{field.Invalid(ipPath, []string{svc.Spec.ClusterIP}, "must be a valid IP address")}))
			}
			if !al.IPs.Contains(ip) {
				return fail(apierrors.NewInvalid(serviceKind, svc.Name, field.ErrorList{field.Invalid(ipPath, []string{svc.Spec.ClusterIP},
					fmt.Sprintf("failed to allocate IP %s: the provided IP (%s) is not in the valid range. The range of valid IPs is %s", ip, ip, al.IPs.CIDR()))}))
			}
			if !dryRun {
				err := al.IPs.AllocateAddr(ctx, ip, svc.Namespace, svc.Name)
				if apierrors.IsAlreadyExists(err) && err != errTaken {
					return fail(err)
				}
				if apierrors.IsAlreadyExists(err) {
					return fail(apierrors.NewInvalid(serviceKind, svc.Name, field.ErrorList{field.Invalid(ipPath, []string{svc.Spec.ClusterIP},
						fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", ip))}))
				}
				if err != nil {
					return fail(err)
				}
				undo = append(undo, func() { _ = al.IPs.Release(context.WithoutCancel(ctx), ip) })
			}
		}
		if svc.Spec.ClusterIP != "" {
			svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		}
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		svc.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
	}
	if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.AllocateLoadBalancerNodePorts != nil && !*svc.Spec.AllocateLoadBalancerNodePorts && p.NodePort == 0 {
				continue
			}
			portPath := field.NewPath("spec", "ports").Index(i).Child("nodePort")
			if p.NodePort == 0 {
				if dryRun {
					continue
				}
				port := al.NodePorts.Allocate()
				if port == 0 {
					return fail(apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: range is full")))
				}
				p.NodePort = port
				undo = append(undo, func() { al.NodePorts.Release(port) })
				continue
			}
			if !al.NodePorts.InRange(p.NodePort) {
				return fail(apierrors.NewInvalid(serviceKind, svc.Name, field.ErrorList{field.Invalid(portPath, p.NodePort,
					fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", al.NodePorts.Base, al.NodePorts.Base+al.NodePorts.Size-1))}))
			}
			if !dryRun && !al.NodePorts.AllocatePort(p.NodePort) {
				return fail(apierrors.NewInvalid(serviceKind, svc.Name, field.ErrorList{field.Invalid(portPath, p.NodePort, "provided port is already allocated")}))
			}
		}
	}
	return rollback, nil
}

func (al *Allocators) afterDelete(ctx context.Context, obj runtime.Object) {
	svc := obj.(*corev1.Service)
	for _, s := range svc.Spec.ClusterIPs {
		if ip, err := netip.ParseAddr(s); err == nil {
			_ = al.IPs.Release(context.WithoutCancel(ctx), ip)
		}
	}
}
