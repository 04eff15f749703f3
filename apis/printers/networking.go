package printers

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	discoveryv1beta1 "k8s.io/api/discovery/v1beta1"
	extensionsv1beta1 "k8s.io/api/extensions/v1beta1"
	networkingv1 "k8s.io/api/networking/v1"
	networkingv1beta1 "k8s.io/api/networking/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func registerNetworking(s *Set) {
	net := func(kind string) schema.GroupKind { return schema.GroupKind{Group: networkingv1.GroupName, Kind: kind} }

	s.add(net("Ingress"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
		col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
		col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
		col("Ports", "string", "Ports of TLS configurations that open"),
		ageColumn(),
	}, ingressCells))

	ingressClassColumns := []metav1.TableColumnDefinition{
		nameColumn(),
		col("Controller", "string", "Controller that is responsible for handling this class"),
		col("Parameters", "string", "A reference to a resource with additional parameters"),
		ageColumn(),
	}
	ingressClassParameters := func(apiGroup *string, kind, name string) string {
		p := kind
		if apiGroup != nil {
			p += "." + *apiGroup
		}
		return p + "/" + name
	}
	s.add(net("IngressClass"), printerOf(ingressClassColumns,
		cellsOf(func(o *networkingv1.IngressClass, now time.Time) []interface{} {
			params := "<none>"
			if p := o.Spec.Parameters; p != nil {
				params = ingressClassParameters(p.APIGroup, p.Kind, p.Name)
			}
			return []interface{}{o.Name, o.Spec.Controller, params, age(o, now)}
		})))

	s.add(net("NetworkPolicy"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Pod-Selector", "string", extensionsv1beta1.NetworkPolicySpec{}.SwaggerDoc()["podSelector"]),
		ageColumn(),
	}, func(o *networkingv1.NetworkPolicy, now time.Time) []interface{} {
		return []interface{}{o.Name, metav1.FormatLabelSelector(&o.Spec.PodSelector), age(o, now)}
	}))

	s.add(net("ServiceCIDR"), printerOf([]metav1.TableColumnDefinition{
		nameColumn(),
		col("CIDRs", "string", networkingv1beta1.ServiceCIDRSpec{}.SwaggerDoc()["cidrs"]),
		ageColumn(),
	},
		cellsOf(func(o *networkingv1.ServiceCIDR, now time.Time) []interface{} {
			return []interface{}{o.Name, strings.Join(o.Spec.CIDRs, ","), age(o, now)}
		})))

	parentRef := func(group, resource, namespace, name string) string {
		gr := schema.GroupResource{Group: group, Resource: resource}
		ref := strings.ToLower(gr.String())
		if namespace != "" {
			ref += "/" + namespace
		}
		return ref + "/" + name
	}
	s.add(net("IPAddress"), printerOf([]metav1.TableColumnDefinition{
		nameColumn(),
		col("ParentRef", "string", networkingv1beta1.IPAddressSpec{}.SwaggerDoc()["parentRef"]),
	}, // upstream's rows carry an age cell beyond the two columns; so do ours

		cellsOf(func(o *networkingv1.IPAddress, now time.Time) []interface{} {
			ref := "<none>"
			if p := o.Spec.ParentRef; p != nil {
				ref = parentRef(p.Group, p.Resource, p.Namespace, p.Name)
			}
			return []interface{}{o.Name, ref, age(o, now)}
		})))

	eps := discoveryv1beta1.EndpointSlice{}.SwaggerDoc()
	s.add(schema.GroupKind{Group: discoveryv1.GroupName, Kind: "EndpointSlice"}, typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("AddressType", "string", eps["addressType"]),
		col("Ports", "string", eps["ports"]),
		col("Endpoints", "string", eps["endpoints"]),
		ageColumn(),
	}, func(o *discoveryv1.EndpointSlice, now time.Time) []interface{} {
		ports := make([]string, 0, len(o.Ports))
		for _, p := range o.Ports {
			switch {
			case p.Port != nil:
				ports = append(ports, strconv.Itoa(int(*p.Port)))
			case p.Name != nil:
				ports = append(ports, *p.Name)
			default:
				ports = append(ports, "*")
			}
		}
		var addresses []string
		for _, e := range o.Endpoints {
			addresses = append(addresses, e.Addresses...)
		}
		return []interface{}{o.Name, string(o.AddressType), listWithMore(ports, 3), listWithMore(addresses, 3), age(o, now)}
	}))
}

func ingressCells(o *networkingv1.Ingress, now time.Time) []interface{} {
	const max = 3
	var hosts []string
	more := false
	for _, r := range o.Spec.Rules {
		if len(hosts) == max {
			more = true
			break
		}
		if r.Host != "" {
			hosts = append(hosts, r.Host)
		}
	}
	hostCell := "*"
	if len(hosts) > 0 {
		hostCell = strings.Join(hosts, ",")
		if more {
			hostCell = fmt.Sprintf("%s + %d more...", hostCell, len(o.Spec.Rules)-max)
		}
	}
	ips := make([]string, len(o.Status.LoadBalancer.Ingress))
	names := make([]string, len(o.Status.LoadBalancer.Ingress))
	for i, in := range o.Status.LoadBalancer.Ingress {
		ips[i], names[i] = in.IP, in.Hostname
	}
	ports := "80"
	if len(o.Spec.TLS) != 0 {
		ports = "80, 443"
	}
	return []interface{}{o.Name, deref(o.Spec.IngressClassName, "<none>"), hostCell, loadBalancerAddresses(ips, names), ports, age(o, now)}
}
