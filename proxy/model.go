package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// defaultAffinityTimeout is the ClientIP affinity timeout when a Service sets none
// (corev1.DefaultClientIPServiceAffinitySeconds, three hours).
const defaultAffinityTimeout = int(corev1.DefaultClientIPServiceAffinitySeconds)

// servicePort is one port of a Service as this proxy programs it, for one IP family.
type servicePort struct {
	service  types.NamespacedName
	portName string
	protocol string // "tcp", "udp" or "sctp", as nft spells it

	clusterIP      string
	port           int
	nodePort       int
	externalIPs    []string
	lbIPs          []string // status.loadBalancer.ingress IPs whose ipMode is VIP
	lbSourceRanges []string

	affinityTimeout int // seconds; 0 when the Service has no ClientIP affinity

	internalLocal        bool // internalTrafficPolicy: Local
	externalLocal        bool // externally accessible and externalTrafficPolicy: Local
	externallyAccessible bool // has a NodePort, externalIPs or load-balancer IPs

	// chainBase names this port's chains: "<hash>-<ns>/<name>/<proto>/<port>".
	chainBase string
}

// usesClusterEndpoints: internal traffic with Cluster policy, and any external traffic
// (even with externalTrafficPolicy Local, pods and the node itself short-circuit to the
// Cluster endpoints).
func (sp *servicePort) usesClusterEndpoints() bool {
	return !sp.internalLocal || sp.externallyAccessible
}

func (sp *servicePort) usesLocalEndpoints() bool {
	return sp.internalLocal || (sp.externallyAccessible && sp.externalLocal)
}

// endpoint is one address and port of an EndpointSlice, for one service port.
type endpoint struct {
	ip          string
	port        int
	ready       bool
	serving     bool
	terminating bool
	local       bool // on this node
	zoneHints   []string
	nodeHints   []string
}

func (ep *endpoint) String() string { return net.JoinHostPort(ep.ip, strconv.Itoa(ep.port)) }

// family is what differs between the ip and ip6 tables.
type family struct {
	ipv6 bool
}

func (f family) nft() string {
	if f.ipv6 {
		return "ip6"
	}
	return "ip"
}

func (f family) addrType() string {
	if f.ipv6 {
		return "ipv6_addr"
	}
	return "ipv4_addr"
}

// has reports whether ip (a textual address) belongs to this family; it returns the
// canonical text form of the address.
func (f family) has(s string) (string, bool) {
	ip := net.ParseIP(strings.TrimSpace(s))
	if ip == nil {
		return "", false
	}
	if (ip.To4() == nil) != f.ipv6 {
		return "", false
	}
	return ip.String(), true
}

func (f family) hasCIDR(s string) (string, bool) {
	_, n, err := net.ParseCIDR(strings.TrimSpace(s))
	if err != nil {
		return "", false
	}
	if (n.IP.To4() == nil) != f.ipv6 {
		return "", false
	}
	return n.String(), true
}

// servicePorts returns the ports of svc that this proxy programs for family f, or nil when
// it programs none (headless and ExternalName Services, or no cluster IP of family f).
func servicePorts(svc *corev1.Service, f family) []*servicePort {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	clusterIP := ""
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, ip := range ips {
		if s, ok := f.has(ip); ok {
			clusterIP = s
			break
		}
	}
	if clusterIP == "" { // headless ("None"), or not of this family
		return nil
	}
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}

	var externalIPs, lbIPs, sourceRanges []string
	for _, ip := range svc.Spec.ExternalIPs {
		if s, ok := f.has(ip); ok {
			externalIPs = append(externalIPs, s)
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			// An ingress whose ipMode is Proxy is reached through the load balancer,
			// which sends traffic to the node itself; upstream does not capture it.
			if ing.IP == "" || (ing.IPMode != nil && *ing.IPMode == corev1.LoadBalancerIPModeProxy) {
				continue
			}
			if s, ok := f.has(ing.IP); ok {
				lbIPs = append(lbIPs, s)
			}
		}
		for _, r := range svc.Spec.LoadBalancerSourceRanges {
			for _, part := range strings.Split(r, ",") {
				if s, ok := f.hasCIDR(part); ok {
					sourceRanges = append(sourceRanges, s)
				}
			}
		}
	}
	affinity := 0
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		affinity = defaultAffinityTimeout
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			affinity = int(*c.ClientIP.TimeoutSeconds)
		}
	}
	externallyAccessible := svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer ||
		len(svc.Spec.ExternalIPs) > 0
	internalLocal := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
	externalLocal := externallyAccessible && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal

	var out []*servicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		proto := strings.ToLower(string(p.Protocol))
		if proto == "" {
			proto = "tcp"
		}
		sp := &servicePort{
			service:              key,
			portName:             p.Name,
			protocol:             proto,
			clusterIP:            clusterIP,
			port:                 int(p.Port),
			externalIPs:          externalIPs,
			lbIPs:                lbIPs,
			lbSourceRanges:       sourceRanges,
			affinityTimeout:      affinity,
			internalLocal:        internalLocal,
			externalLocal:        externalLocal,
			externallyAccessible: externallyAccessible,
			chainBase:            hashName(fmt.Sprintf("%s/%s/%s/%s", key.Namespace, key.Name, proto, p.Name)),
		}
		if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			sp.nodePort = int(p.NodePort)
		}
		out = append(out, sp)
	}
	return out
}

// hashName prefixes name with a short hash of itself, so that chains of different services
// that differ in a digit are still told apart at a glance, and truncates it to fit nft's
// limit on names. Names keep a "/" (namespace and service names never have one, our fixed
// chain names never do), which is how the proxy recognises its per-service chains.
func hashName(name string) string { return hashNameSalted(name, "") }

// hashNameSalted is hashName with salt mixed into the hash only.
func hashNameSalted(name, salt string) string {
	sum := sha256.Sum256([]byte(name + salt))
	name = base32.StdEncoding.EncodeToString(sum[:])[:8] + "-" + name
	const max = 240 // leaves room for the longest prefix ("external-") within nft's 256
	if len(name) > max {
		name = name[:max-3] + "..."
	}
	return name
}

// endpointsFor gathers the endpoints of port sp from a Service's EndpointSlices, merging
// duplicates (the same address and port in two slices: the more usable one wins).
func endpointsFor(sp *servicePort, epSlices []*discoveryv1.EndpointSlice, f family, nodeName string) []*endpoint {
	want := discoveryv1.AddressTypeIPv4
	if f.ipv6 {
		want = discoveryv1.AddressTypeIPv6
	}
	byAddr := map[string]*endpoint{}
	var order []string
	for _, slice := range epSlices {
		if slice.AddressType != want {
			continue
		}
		portNum := -1
		for _, p := range slice.Ports {
			name := ptr.Deref(p.Name, "")
			proto := strings.ToLower(string(ptr.Deref(p.Protocol, corev1.ProtocolTCP)))
			if name == sp.portName && proto == sp.protocol && p.Port != nil {
				portNum = int(*p.Port)
				break
			}
		}
		if portNum <= 0 {
			continue
		}
		for i := range slice.Endpoints {
			e := &slice.Endpoints[i]
			if len(e.Addresses) == 0 {
				continue
			}
			ip, ok := f.has(e.Addresses[0])
			if !ok {
				continue
			}
			// Unset conditions mean ready and serving, as the API documents.
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			serving := ready
			if e.Conditions.Serving != nil {
				serving = *e.Conditions.Serving
			}
			ep := &endpoint{
				ip:          ip,
				port:        portNum,
				ready:       ready,
				serving:     serving,
				terminating: ptr.Deref(e.Conditions.Terminating, false),
				local:       nodeName != "" && ptr.Deref(e.NodeName, "") == nodeName,
			}
			if e.Hints != nil {
				for _, z := range e.Hints.ForZones {
					ep.zoneHints = append(ep.zoneHints, z.Name)
				}
				for _, n := range e.Hints.ForNodes {
					ep.nodeHints = append(ep.nodeHints, n.Name)
				}
			}
			k := ep.String()
			if old, ok := byAddr[k]; ok {
				if !old.ready && ep.ready {
					byAddr[k] = ep
				}
				continue
			}
			byAddr[k] = ep
			order = append(order, k)
		}
	}
	slices.Sort(order)
	out := make([]*endpoint, 0, len(order))
	for _, k := range order {
		out = append(out, byAddr[k])
	}
	return out
}

// categorize splits endpoints as upstream's proxy does: the endpoints Cluster traffic
// policy uses (ready ones, narrowed by topology hints when they apply, else serving and
// terminating ones), those Local policy uses (this node's ready ones, else this node's
// serving and terminating ones), every endpoint reachable from this node, and whether the
// Service has a usable endpoint anywhere in the cluster.
func categorize(eps []*endpoint, sp *servicePort, nodeName, zone string) (cluster, local, reachable []*endpoint, any bool) {
	if len(eps) == 0 {
		return nil, nil, nil, false
	}
	useTerminatingLocal := false
	mode := ""
	if sp.usesClusterEndpoints() {
		mode = topologyMode(eps, nodeName, zone)
		for _, ep := range eps {
			if ep.ready && availableForTopology(ep, mode, nodeName, zone) {
				cluster = append(cluster, ep)
			}
		}
		if len(cluster) == 0 {
			for _, ep := range eps {
				if ep.serving && ep.terminating {
					cluster = append(cluster, ep)
				}
			}
		}
		any = len(cluster) > 0
	}
	if !sp.usesLocalEndpoints() {
		return cluster, nil, cluster, any
	}
	var localReady, localTerminating bool
	for _, ep := range eps {
		switch {
		case ep.ready:
			any = true
			localReady = localReady || ep.local
		case ep.serving && ep.terminating:
			any = true
			localTerminating = localTerminating || ep.local
		}
	}
	switch {
	case localReady:
		for _, ep := range eps {
			if ep.local && ep.ready {
				local = append(local, ep)
			}
		}
	case localTerminating:
		useTerminatingLocal = true
		for _, ep := range eps {
			if ep.local && ep.serving && ep.terminating {
				local = append(local, ep)
			}
		}
	}
	if !sp.usesClusterEndpoints() {
		return nil, local, local, any
	}
	if mode == "" && !useTerminatingLocal {
		// cluster holds every ready endpoint, so it holds every local ready one too.
		return cluster, local, cluster, any
	}
	seen := map[string]bool{}
	for _, list := range [][]*endpoint{cluster, local} {
		for _, ep := range list {
			if !seen[ep.String()] {
				seen[ep.String()] = true
				reachable = append(reachable, ep)
			}
		}
	}
	return cluster, local, reachable, any
}

// topologyMode is "PreferSameNode" when every ready endpoint has a node hint and one names
// this node, else "PreferSameZone" when every ready endpoint has a zone hint and one names
// this node's zone, else "" (no topology narrowing).
func topologyMode(eps []*endpoint, nodeName, zone string) string {
	anyReady, allNode, forNode, allZone, forZone := false, true, false, true, false
	for _, ep := range eps {
		if !ep.ready {
			continue
		}
		anyReady = true
		if len(ep.nodeHints) == 0 {
			allNode = false
		} else if slices.Contains(ep.nodeHints, nodeName) {
			forNode = true
		}
		if len(ep.zoneHints) == 0 {
			allZone = false
		} else if slices.Contains(ep.zoneHints, zone) {
			forZone = true
		}
	}
	switch {
	case !anyReady:
		return ""
	case allNode && forNode:
		return corev1.ServiceTrafficDistributionPreferSameNode
	case allZone && forZone:
		return corev1.ServiceTrafficDistributionPreferSameZone
	}
	return ""
}

func availableForTopology(ep *endpoint, mode, nodeName, zone string) bool {
	switch mode {
	case "":
		return true
	case corev1.ServiceTrafficDistributionPreferSameNode:
		return slices.Contains(ep.nodeHints, nodeName)
	case corev1.ServiceTrafficDistributionPreferSameZone:
		return slices.Contains(ep.zoneHints, zone)
	}
	return false
}
