package strategy

import (
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	supportedServiceTypes     = []corev1.ServiceType{corev1.ServiceTypeClusterIP, corev1.ServiceTypeExternalName, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort}
	supportedSessionAffinity  = []corev1.ServiceAffinity{corev1.ServiceAffinityClientIP, corev1.ServiceAffinityNone}
	supportedExternalTraffic  = []corev1.ServiceExternalTrafficPolicy{corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal}
	supportedInternalTraffic  = []corev1.ServiceInternalTrafficPolicy{corev1.ServiceInternalTrafficPolicyCluster, corev1.ServiceInternalTrafficPolicyLocal}
	supportedIPFamilyPolicies = []corev1.IPFamilyPolicy{corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack, corev1.IPFamilyPolicySingleStack}
)

// defaultService fills upstream's Service defaults and the IP family fields the service REST
// layer sets on a single-stack IPv4 cluster. Allocation of cluster IPs and node ports is not here.
func defaultService(obj runtime.Object) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	spec := &svc.Spec
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	if spec.SessionAffinity == corev1.ServiceAffinityNone {
		spec.SessionAffinityConfig = nil
	}
	if spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		if c := spec.SessionAffinityConfig; c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil {
			spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptrTo(corev1.DefaultClientIPServiceAffinitySeconds)}}
		}
	}
	if spec.Type == "" {
		spec.Type = corev1.ServiceTypeClusterIP
	}
	for i := range spec.Ports {
		p := &spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == intstr.FromInt32(0) || p.TargetPort == intstr.FromString("") {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	externallyAccessible := spec.Type == corev1.ServiceTypeLoadBalancer || spec.Type == corev1.ServiceTypeNodePort ||
		(spec.Type == corev1.ServiceTypeClusterIP && len(spec.ExternalIPs) > 0)
	if externallyAccessible && spec.ExternalTrafficPolicy == "" {
		spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if spec.InternalTrafficPolicy == nil && spec.Type != corev1.ServiceTypeExternalName {
		spec.InternalTrafficPolicy = ptrTo(corev1.ServiceInternalTrafficPolicyCluster)
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer {
		if spec.AllocateLoadBalancerNodePorts == nil {
			spec.AllocateLoadBalancerNodePorts = ptrTo(true)
		}
		for i, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IP != "" && ing.IPMode == nil {
				svc.Status.LoadBalancer.Ingress[i].IPMode = ptrTo(corev1.LoadBalancerIPModeVIP)
			}
		}
	}

	// clusterIP and clusterIPs mirror each other.
	if len(spec.ClusterIPs) == 0 && spec.ClusterIP != "" {
		spec.ClusterIPs = []string{spec.ClusterIP}
	} else if spec.ClusterIP == "" && len(spec.ClusterIPs) > 0 {
		spec.ClusterIP = spec.ClusterIPs[0]
	}

	if spec.Type == corev1.ServiceTypeExternalName {
		return
	}
	headlessSelectorless := spec.ClusterIP == corev1.ClusterIPNone && len(spec.Selector) == 0
	if spec.IPFamilyPolicy == nil {
		if headlessSelectorless {
			spec.IPFamilyPolicy = ptrTo(corev1.IPFamilyPolicyRequireDualStack)
		} else {
			spec.IPFamilyPolicy = ptrTo(corev1.IPFamilyPolicySingleStack)
		}
	}
	for i, ip := range spec.ClusterIPs {
		if ip == corev1.ClusterIPNone {
			break
		}
		if i < len(spec.IPFamilies) {
			continue
		}
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			break
		}
		if addr.Is4() {
			spec.IPFamilies = append(spec.IPFamilies, corev1.IPv4Protocol)
		} else {
			spec.IPFamilies = append(spec.IPFamilies, corev1.IPv6Protocol)
		}
	}
	if len(spec.IPFamilies) == 0 {
		spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	if headlessSelectorless && len(spec.IPFamilies) == 1 && *spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack {
		if spec.IPFamilies[0] == corev1.IPv4Protocol {
			spec.IPFamilies = append(spec.IPFamilies, corev1.IPv6Protocol)
		} else {
			spec.IPFamilies = append(spec.IPFamilies, corev1.IPv4Protocol)
		}
	}
}

// ServiceKeepAllocated copies what was allocated to old (cluster IPs, IP families and policy,
// node ports, health check node port) into an update that left them empty, as upstream's
// service REST update does before validation.
func ServiceKeepAllocated(obj, old runtime.Object) {
	svc, ok1 := obj.(*corev1.Service)
	oldSvc, ok2 := old.(*corev1.Service)
	if !ok1 || !ok2 {
		return
	}
	spec, oldSpec := &svc.Spec, &oldSvc.Spec
	if needsClusterIP(oldSvc) && needsClusterIP(svc) {
		if spec.ClusterIP == "" {
			spec.ClusterIP = oldSpec.ClusterIP
		}
		if len(spec.ClusterIPs) == 0 && len(oldSpec.ClusterIPs) > 0 {
			spec.ClusterIPs = append([]string(nil), oldSpec.ClusterIPs...)
		}
		if len(spec.IPFamilies) == 0 && len(oldSpec.IPFamilies) > 0 {
			spec.IPFamilies = append([]corev1.IPFamily(nil), oldSpec.IPFamilies...)
		}
		if spec.IPFamilyPolicy == nil && oldSpec.IPFamilyPolicy != nil {
			spec.IPFamilyPolicy = ptrTo(*oldSpec.IPFamilyPolicy)
		}
	}
	if needsNodePort(oldSvc) && needsNodePort(svc) {
		used := sets.New[int32]()
		for _, p := range spec.Ports {
			if p.NodePort != 0 {
				used.Insert(p.NodePort)
			}
		}
		for i := range spec.Ports {
			p := &spec.Ports[i]
			if p.NodePort != 0 {
				continue
			}
			np := oldNodePort(oldSpec.Ports, p.Port, p.Protocol)
			if np != 0 && !used.Has(np) {
				p.NodePort = np
				used.Insert(np)
			}
		}
	}
	if needsHealthCheckNodePort(oldSvc) && needsHealthCheckNodePort(svc) && spec.HealthCheckNodePort == 0 {
		spec.HealthCheckNodePort = oldSpec.HealthCheckNodePort
	}
}

// oldNodePort finds the node port old gave to port/protocol, falling back to the port number alone.
func oldNodePort(ports []corev1.ServicePort, port int32, protocol corev1.Protocol) int32 {
	var byNumber int32
	for _, p := range ports {
		if p.Port != port {
			continue
		}
		if p.Protocol == protocol {
			return p.NodePort
		}
		if byNumber == 0 {
			byNumber = p.NodePort
		}
	}
	return byNumber
}

func needsClusterIP(svc *corev1.Service) bool {
	t := svc.Spec.Type
	return t == "" || t == corev1.ServiceTypeClusterIP || t == corev1.ServiceTypeNodePort || t == corev1.ServiceTypeLoadBalancer
}

func needsNodePort(svc *corev1.Service) bool {
	switch svc.Spec.Type {
	case corev1.ServiceTypeNodePort:
		return true
	case corev1.ServiceTypeLoadBalancer:
		return svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts
	}
	return false
}

func needsHealthCheckNodePort(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

func isHeadlessService(svc *corev1.Service) bool {
	return len(svc.Spec.ClusterIPs) == 1 && svc.Spec.ClusterIPs[0] == corev1.ClusterIPNone
}

func validateService(obj runtime.Object) field.ErrorList {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil
	}
	var allErrs field.ErrorList
	specPath := field.NewPath("spec")
	spec := &svc.Spec

	if len(spec.Ports) == 0 && !isHeadlessService(svc) && spec.Type != corev1.ServiceTypeExternalName {
		allErrs = append(allErrs, field.Required(specPath.Child("ports"), ""))
	}
	switch spec.Type {
	case corev1.ServiceTypeLoadBalancer:
		if isHeadlessService(svc) {
			allErrs = append(allErrs, field.Invalid(specPath.Child("clusterIPs").Index(0), spec.ClusterIPs[0], "may not be set to 'None' for LoadBalancer services"))
		}
	case corev1.ServiceTypeNodePort:
		if isHeadlessService(svc) {
			allErrs = append(allErrs, field.Invalid(specPath.Child("clusterIPs").Index(0), spec.ClusterIPs[0], "may not be set to 'None' for NodePort services"))
		}
	case corev1.ServiceTypeExternalName:
		if len(spec.ClusterIPs) > 0 {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if len(spec.IPFamilies) > 0 {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("ipFamilies"), "may not be set for ExternalName services"))
		}
		if spec.IPFamilyPolicy != nil {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("ipFamilyPolicy"), "may not be set for ExternalName services"))
		}
		cname := strings.TrimSuffix(spec.ExternalName, ".")
		if cname != "" {
			for _, msg := range validation.IsDNS1123Subdomain(cname) {
				allErrs = append(allErrs, field.Invalid(specPath.Child("externalName"), cname, msg))
			}
		} else {
			allErrs = append(allErrs, field.Required(specPath.Child("externalName"), ""))
		}
	}

	portsPath := specPath.Child("ports")
	names := sets.New[string]()
	requireName := len(spec.Ports) > 1
	for i := range spec.Ports {
		allErrs = append(allErrs, validateServicePort(&spec.Ports[i], requireName, names, portsPath.Index(i))...)
	}

	if spec.Selector != nil {
		allErrs = append(allErrs, validateSelectorLabels(spec.Selector, specPath.Child("selector"))...)
	}
	if spec.SessionAffinity == "" {
		allErrs = append(allErrs, field.Required(specPath.Child("sessionAffinity"), ""))
	} else if spec.SessionAffinity != corev1.ServiceAffinityNone && spec.SessionAffinity != corev1.ServiceAffinityClientIP {
		allErrs = append(allErrs, field.NotSupported(specPath.Child("sessionAffinity"), spec.SessionAffinity, supportedSessionAffinity))
	}

	ipPath := specPath.Child("externalIPs")
	for i, ip := range spec.ExternalIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			allErrs = append(allErrs, field.Invalid(ipPath.Index(i), ip, "must be a valid IP address"))
		}
	}

	if spec.Type == "" {
		allErrs = append(allErrs, field.Required(specPath.Child("type"), ""))
	} else if !containsValue(supportedServiceTypes, spec.Type) {
		allErrs = append(allErrs, field.NotSupported(specPath.Child("type"), spec.Type, supportedServiceTypes))
	}
	if spec.Type == corev1.ServiceTypeClusterIP {
		for i, p := range spec.Ports {
			if p.NodePort != 0 {
				allErrs = append(allErrs, field.Forbidden(portsPath.Index(i).Child("nodePort"), "may not be used when `type` is 'ClusterIP'"))
			}
		}
	}

	// (protocol, port) pairs and node ports must be unique.
	type protoPort struct {
		proto corev1.Protocol
		port  int32
	}
	seen := map[protoPort]bool{}
	seenNode := map[protoPort]bool{}
	for i, p := range spec.Ports {
		key := protoPort{p.Protocol, p.Port}
		if seen[key] {
			allErrs = append(allErrs, field.Duplicate(portsPath.Index(i), corev1.ServicePort{Protocol: p.Protocol, Port: p.Port}))
		}
		seen[key] = true
		if p.NodePort == 0 {
			continue
		}
		nkey := protoPort{p.Protocol, p.NodePort}
		if seenNode[nkey] {
			allErrs = append(allErrs, field.Duplicate(portsPath.Index(i).Child("nodePort"), p.NodePort))
		}
		seenNode[nkey] = true
	}

	if spec.ExternalTrafficPolicy != "" && !containsValue(supportedExternalTraffic, spec.ExternalTrafficPolicy) {
		allErrs = append(allErrs, field.NotSupported(specPath.Child("externalTrafficPolicy"), spec.ExternalTrafficPolicy, supportedExternalTraffic))
	}
	if spec.InternalTrafficPolicy != nil && !containsValue(supportedInternalTraffic, *spec.InternalTrafficPolicy) {
		allErrs = append(allErrs, field.NotSupported(specPath.Child("internalTrafficPolicy"), *spec.InternalTrafficPolicy, supportedInternalTraffic))
	}
	if spec.IPFamilyPolicy != nil && !containsValue(supportedIPFamilyPolicies, *spec.IPFamilyPolicy) {
		allErrs = append(allErrs, field.NotSupported(specPath.Child("ipFamilyPolicy"), *spec.IPFamilyPolicy, supportedIPFamilyPolicies))
	}
	for i, ip := range spec.ClusterIPs {
		if ip == corev1.ClusterIPNone {
			if i > 0 || len(spec.ClusterIPs) > 1 {
				allErrs = append(allErrs, field.Invalid(specPath.Child("clusterIPs").Index(i), ip, "'None' must be the first and only value"))
			}
			continue
		}
		if ip == "" {
			continue
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			allErrs = append(allErrs, field.Invalid(specPath.Child("clusterIPs").Index(i), ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
		}
	}
	if len(spec.ClusterIPs) > 0 && spec.ClusterIP != spec.ClusterIPs[0] {
		allErrs = append(allErrs, field.Invalid(specPath.Child("clusterIPs"), spec.ClusterIPs, "first value must match `clusterIP`"))
	}
	return allErrs
}

func validateServicePort(sp *corev1.ServicePort, requireName bool, names sets.Set[string], fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if requireName && sp.Name == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("name"), ""))
	} else if sp.Name != "" {
		for _, msg := range validation.IsDNS1123Label(sp.Name) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("name"), sp.Name, msg))
		}
		if names.Has(sp.Name) {
			allErrs = append(allErrs, field.Duplicate(fldPath.Child("name"), sp.Name))
		} else {
			names.Insert(sp.Name)
		}
	}
	for _, msg := range validation.IsValidPortNum(int(sp.Port)) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("port"), sp.Port, msg))
	}
	allErrs = append(allErrs, validateProtocol(sp.Protocol, fldPath.Child("protocol"))...)
	allErrs = append(allErrs, validatePortNumOrName(sp.TargetPort, fldPath.Child("targetPort"))...)
	if sp.NodePort != 0 {
		for _, msg := range validation.IsValidPortNum(int(sp.NodePort)) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("nodePort"), sp.NodePort, msg))
		}
	}
	return allErrs
}

// validateSelectorLabels validates a map-form selector like labels.
func validateSelectorLabels(sel map[string]string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for k, v := range sel {
		for _, msg := range validation.IsQualifiedName(k) {
			allErrs = append(allErrs, field.Invalid(fldPath, k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			allErrs = append(allErrs, field.Invalid(fldPath, v, msg))
		}
	}
	return allErrs
}

func containsValue[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// validateServiceUpdate holds upstream's rules on changing cluster IPs and IP families.
func validateServiceUpdate(obj, old runtime.Object) field.ErrorList {
	svc, ok1 := obj.(*corev1.Service)
	oldSvc, ok2 := old.(*corev1.Service)
	if !ok1 || !ok2 {
		return nil
	}
	var allErrs field.ErrorList
	ipsPath := field.NewPath("spec", "clusterIPs")
	if svc.Spec.Type == corev1.ServiceTypeExternalName || oldSvc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	newIPs, oldIPs := svc.Spec.ClusterIPs, oldSvc.Spec.ClusterIPs
	if !(isHeadlessService(svc) && isHeadlessService(oldSvc)) {
		switch {
		case len(oldIPs) == len(newIPs):
			for i, ip := range oldIPs {
				if ip != newIPs[i] {
					allErrs = append(allErrs, field.Invalid(ipsPath.Index(i), newIPs, "may not change once set"))
				}
			}
		case len(oldIPs) > len(newIPs):
			if len(newIPs) == 0 {
				allErrs = append(allErrs, field.Invalid(ipsPath.Index(0), newIPs, "primary clusterIP can not be unset"))
			}
			if len(oldIPs) > 0 && len(newIPs) > 0 && newIPs[0] != oldIPs[0] {
				allErrs = append(allErrs, field.Invalid(ipsPath.Index(0), newIPs, "may not change once set"))
			}
			if len(newIPs) == 1 && (svc.Spec.IPFamilyPolicy == nil || *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack) {
				allErrs = append(allErrs, field.Invalid(ipsPath.Index(0), newIPs, "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP"))
			}
		default:
			if len(oldIPs) > 0 && newIPs[0] != oldIPs[0] {
				allErrs = append(allErrs, field.Invalid(ipsPath.Index(0), newIPs, "may not change once set"))
			}
		}
	}

	famPath := field.NewPath("spec", "ipFamilies")
	newFam, oldFam := svc.Spec.IPFamilies, oldSvc.Spec.IPFamilies
	if !(isHeadlessService(svc) && isHeadlessService(oldSvc)) {
		switch {
		case len(oldFam) == len(newFam):
			for i, f := range oldFam {
				if f != newFam[i] {
					allErrs = append(allErrs, field.Invalid(famPath.Index(i), newFam, "may not change once set"))
				}
			}
		case len(oldFam) > len(newFam):
			if len(oldFam) > 0 && len(newFam) > 0 && newFam[0] != oldFam[0] {
				allErrs = append(allErrs, field.Invalid(famPath.Index(0), newFam, "may not change once set"))
			}
			if len(newFam) == 1 && (svc.Spec.IPFamilyPolicy == nil || *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack) {
				allErrs = append(allErrs, field.Invalid(famPath, newFam, "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary ipFamily"))
			}
		default:
			if len(oldFam) > 0 && newFam[0] != oldFam[0] {
				allErrs = append(allErrs, field.Invalid(famPath.Index(0), newFam, "may not change once set"))
			}
		}
	}
	return allErrs
}
