package proxy

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Names of the table's fixed chains, sets and maps. Per-service chains and affinity sets
// have a "/" in their names (see hashName), which none of these has.
const (
	filterPreroutingPreDNAT = "filter-prerouting-pre-dnat"
	filterOutputPreDNAT     = "filter-output-pre-dnat"
	filterInput             = "filter-input"
	filterForward           = "filter-forward"
	filterOutput            = "filter-output"
	natPrerouting           = "nat-prerouting"
	natOutput               = "nat-output"
	natPostrouting          = "nat-postrouting"

	servicesChain               = "services"
	masqueradingChain           = "masquerading"
	clusterIPsCheckChain        = "cluster-ips-check"
	serviceEndpointsCheckChain  = "service-endpoints-check"
	nodePortEndpointsCheckChain = "nodeport-endpoints-check"
	rejectChain                 = "reject-chain"
	firewallCheckChain          = "firewall-check"

	clusterIPsSet          = "cluster-ips"
	nodePortIPsSet         = "nodeport-ips"
	hairpinSet             = "hairpin-connections"
	serviceIPsMap          = "service-ips"
	serviceNodePortsMap    = "service-nodeports"
	noEndpointServicesMap  = "no-endpoint-services"
	noEndpointNodePortsMap = "no-endpoint-nodeports"
	firewallIPsMap         = "firewall-ips"

	clusterChainPrefix  = "service-"
	localChainPrefix    = "local-"
	externalChainPrefix = "external-"
	firewallChainPrefix = "firewall-"
	endpointChainPrefix = "endpoint-"
	affinitySetPrefix   = "affinity-"

	// masqueradeMark is the packet mark bit that asks the masquerading chain to SNAT a
	// connection: bit 14, kube-proxy's default (--masquerade-bit), so that tools which
	// know kube-proxy's marks read ours the same way.
	masqueradeMark = "0x4000"
	markForMasq    = "mark set mark or " + masqueradeMark
)

// elem is one element of one of the fixed sets or maps.
type elem struct {
	container string
	isMap     bool
	key       []string
	value     string // the verdict of a map element; "" in a set
}

func (e elem) id() string { return e.container + "\x00" + strings.Join(e.key, " . ") }

// chain is a per-service chain and its rules, in order.
type chain struct {
	name  string
	rules []string
}

// affinitySet is a per-endpoint set of client addresses that recently used the endpoint.
type affinitySet struct {
	name    string
	timeout int
}

// rendering is everything one Service puts in the table: its chains, its affinity sets,
// and its elements in the shared sets and maps. Two renderings that are equal program the
// same rules, so a Service whose rendering did not change is not rewritten.
type rendering struct {
	ports     int
	endpoints int
	chains    []chain
	sets      []affinitySet
	elems     []elem
	udp       []udpPort
}

// udpPort is a UDP port of a Service as conntrack cleanup needs it: the addresses it is
// reached at ("ip:port"), its NodePort, and its serving endpoints ("ip:port"), whatever
// the traffic policies.
type udpPort struct {
	frontends []string
	nodePort  int
	serving   []string
}

// renderer turns a Service and its EndpointSlices into a rendering for one family.
type renderer struct {
	fam          family
	nodeName     string
	zone         string
	clusterCIDRs []string // pod ranges of this family, for the masquerade decisions
	nodeIPs      []string // this node's addresses of this family
}

// ifLocal and ifNotLocal match traffic from (or not from) pods, by the pod ranges.
func (r *renderer) ifLocal() string {
	return fmt.Sprintf("%s saddr { %s }", r.fam.nft(), strings.Join(r.clusterCIDRs, ", "))
}

func (r *renderer) ifNotLocal() string {
	return fmt.Sprintf("%s saddr != { %s }", r.fam.nft(), strings.Join(r.clusterCIDRs, ", "))
}

func (r *renderer) render(svc *corev1.Service, endpointSlices []*discoveryv1.EndpointSlice) *rendering {
	ports := servicePorts(svc, r.fam)
	if len(ports) == 0 {
		return nil
	}
	out := &rendering{ports: len(ports)}
	seen := map[string]bool{} // element ids, so that ports sharing an element list it once
	add := func(e elem) {
		if !seen[e.id()] {
			seen[e.id()] = true
			out.elems = append(out.elems, e)
		}
	}
	for _, sp := range ports {
		eps := endpointsFor(sp, endpointSlices, r.fam, r.nodeName)
		r.renderPort(out, add, sp, eps)
		if sp.protocol == "udp" {
			u := udpPort{nodePort: sp.nodePort}
			port := strconv.Itoa(sp.port)
			for _, ip := range append(append([]string{sp.clusterIP}, sp.lbIPs...), sp.externalIPs...) {
				u.frontends = append(u.frontends, net.JoinHostPort(ip, port))
			}
			for _, ep := range eps {
				if ep.serving {
					u.serving = append(u.serving, ep.String())
				}
			}
			out.udp = append(out.udp, u)
		}
	}
	return out
}

func (r *renderer) renderPort(out *rendering, add func(elem), sp *servicePort, eps []*endpoint) {
	ipX := r.fam.nft()
	proto, port := sp.protocol, strconv.Itoa(sp.port)
	clusterEPs, localEPs, reachable, any := categorize(eps, sp, r.nodeName, r.zone)
	out.endpoints += len(reachable)
	affinity := sp.affinityTimeout > 0

	epChain := map[*endpoint]string{}
	epSet := map[*endpoint]string{}
	for _, ep := range reachable {
		base := fmt.Sprintf("%s/%s/%s/%s__%s/%d", sp.service.Namespace, sp.service.Name, proto, sp.portName,
			strings.ReplaceAll(ep.ip, ":", "."), ep.port)
		epChain[ep] = endpointChainPrefix + hashName(base)
		// The timeout is part of the set's identity: nft cannot change the timeout of a
		// set in place, so a new timeout makes a new set (and the old one goes away).
		epSet[ep] = affinitySetPrefix + hashNameSalted(base, "\x00"+strconv.Itoa(sp.affinityTimeout))
		if ep.local {
			// A pod reaching itself through the Service must be masqueraded, or it would
			// see its own address as the source and drop the reply.
			add(elem{container: hairpinSet, key: []string{ep.ip, ep.ip, proto, strconv.Itoa(ep.port)}})
		}
	}

	clusterChain := clusterChainPrefix + sp.chainBase
	localChain := localChainPrefix + sp.chainBase
	externalChain := externalChainPrefix + sp.chainBase
	firewallChain := firewallChainPrefix + sp.chainBase
	usesClusterChain := len(clusterEPs) > 0 && sp.usesClusterEndpoints()
	usesLocalChain := len(localEPs) > 0 && sp.usesLocalEndpoints()

	internalChain, hasInternal := clusterChain, any
	if sp.internalLocal {
		internalChain = localChain
		hasInternal = hasInternal && len(localEPs) > 0
	}
	externalPolicyChain, hasExternal := clusterChain, any
	if sp.externalLocal {
		externalPolicyChain = localChain
		hasExternal = hasExternal && len(localEPs) > 0
	}
	// The external chain is needed whenever there are endpoints anywhere: with
	// externalTrafficPolicy Local and none here, it still short-circuits pod and node
	// traffic to the cluster-wide endpoints.
	usesExternalChain := any && sp.externallyAccessible

	// A Service without any usable endpoint rejects new connections (ICMP port
	// unreachable), as upstream does; with endpoints elsewhere but none here for a Local
	// policy, traffic that is not short-circuited is dropped.
	var internalVerdict, externalVerdict string
	if !any {
		internalVerdict, externalVerdict = "goto "+rejectChain, "goto "+rejectChain
	} else {
		if !hasInternal {
			internalVerdict = "drop"
		}
		if !hasExternal {
			externalVerdict = "drop"
		}
	}

	add(elem{container: clusterIPsSet, key: []string{sp.clusterIP}})
	if hasInternal {
		add(elem{container: serviceIPsMap, isMap: true, key: []string{sp.clusterIP, proto, port}, value: "goto " + internalChain})
	} else {
		add(elem{container: noEndpointServicesMap, isMap: true, key: []string{sp.clusterIP, proto, port}, value: internalVerdict})
	}
	for _, ip := range sp.externalIPs {
		if any {
			add(elem{container: serviceIPsMap, isMap: true, key: []string{ip, proto, port}, value: "goto " + externalChain})
		}
		if !hasExternal {
			add(elem{container: noEndpointServicesMap, isMap: true, key: []string{ip, proto, port}, value: externalVerdict})
		}
	}
	usesFirewall := len(sp.lbIPs) > 0 && len(sp.lbSourceRanges) > 0
	for _, ip := range sp.lbIPs {
		if any {
			add(elem{container: serviceIPsMap, isMap: true, key: []string{ip, proto, port}, value: "goto " + externalChain})
		}
		if usesFirewall {
			add(elem{container: firewallIPsMap, isMap: true, key: []string{ip, proto, port}, value: "goto " + firewallChain})
		}
		if !hasExternal {
			add(elem{container: noEndpointServicesMap, isMap: true, key: []string{ip, proto, port}, value: externalVerdict})
		}
	}
	if sp.nodePort != 0 {
		np := strconv.Itoa(sp.nodePort)
		if any {
			add(elem{container: serviceNodePortsMap, isMap: true, key: []string{proto, np}, value: "goto " + externalChain})
		}
		if !hasExternal {
			add(elem{container: noEndpointNodePortsMap, isMap: true, key: []string{proto, np}, value: externalVerdict})
		}
	}

	if usesExternalChain {
		c := chain{name: externalChain}
		if !sp.externalLocal {
			// Endpoints may be on other nodes: masquerade so that replies come back here.
			c.rules = append(c.rules, markForMasq)
		} else {
			if len(r.clusterCIDRs) > 0 {
				// Pods reaching an external address of the Service are not subject to
				// the external policy: as if they went out to a load balancer and back.
				c.rules = append(c.rules, r.ifLocal()+" goto "+clusterChain)
			}
			// The node itself uses the external address as its source: masquerade it,
			// and send it to any endpoint too.
			c.rules = append(c.rules, "fib saddr type local "+markForMasq)
			c.rules = append(c.rules, "fib saddr type local goto "+clusterChain)
		}
		if hasExternal {
			c.rules = append(c.rules, "goto "+externalPolicyChain)
		}
		out.chains = append(out.chains, c)
	}

	if usesFirewall {
		sources := append([]string(nil), sp.lbSourceRanges...)
		allowNode := false
		for _, cidr := range sp.lbSourceRanges {
			_, n, err := net.ParseCIDR(cidr)
			if err != nil {
				continue
			}
			for _, ip := range r.nodeIPs {
				if n.Contains(net.ParseIP(ip)) {
					allowNode = true
				}
			}
		}
		if allowNode {
			// A node reaching a load-balancer address it holds itself loops back with
			// that address as the source.
			sources = append(sources, sp.lbIPs...)
		}
		out.chains = append(out.chains, chain{name: firewallChain,
			rules: []string{fmt.Sprintf("%s saddr != { %s } drop", ipX, strings.Join(sources, ", "))}})
	}

	if affinity {
		for _, ep := range reachable {
			out.sets = append(out.sets, affinitySet{name: epSet[ep], timeout: sp.affinityTimeout})
		}
	}
	write := func(name string, eps []*endpoint) {
		if affinity {
			out.chains = append(out.chains, chain{name: name, rules: endpointJumps(ipX, eps, epChain, epSet)})
		} else {
			out.chains = append(out.chains, chain{name: name, rules: endpointDNATs(ipX, proto, eps)})
		}
	}
	if usesClusterChain {
		write(clusterChain, clusterEPs)
	}
	if usesLocalChain {
		write(localChain, localEPs)
	}
	if affinity {
		for _, ep := range reachable {
			out.chains = append(out.chains, chain{name: epChain[ep], rules: []string{
				fmt.Sprintf("update @%s { %s saddr }", epSet[ep], ipX),
				fmt.Sprintf("meta l4proto %s dnat to %s", proto, ep),
			}})
		}
	}
}

// numgenMapMin is the number of endpoints from which a Service's chain picks one with a
// single numgen lookup in an anonymous map, as upstream does for every Service. Below it,
// the chain has one rule per endpoint, each taking its share of what the rules before it
// left (numgen random mod k == 0, for k = n, n-1, ... 2; the last rule takes the rest):
// the same uniform choice, without an anonymous map per Service. The kernel names and
// finds a table's sets by walking a list, so with one anonymous map per Service a full
// sync grows quadratically: 23 s for 10,000 Services here, against 3 s with rules.
const numgenMapMin = 9

// endpointDNATs picks an endpoint at random with numgen and DNATs to it.
func endpointDNATs(ipX, proto string, eps []*endpoint) []string {
	if len(eps) >= numgenMapMin {
		parts := make([]string, len(eps))
		for i, ep := range eps {
			parts[i] = fmt.Sprintf("%d : %s . %d", i, ep.ip, ep.port)
		}
		return []string{fmt.Sprintf("meta l4proto %s dnat %s addr . port to numgen random mod %d map { %s }",
			proto, ipX, len(eps), strings.Join(parts, ", "))}
	}
	rules := make([]string, len(eps))
	for i, ep := range eps {
		rules[i] = fmt.Sprintf("meta l4proto %s dnat to %s", proto, ep)
		if left := len(eps) - i; left > 1 {
			rules[i] = fmt.Sprintf("numgen random mod %d 0 %s", left, rules[i])
		}
	}
	return rules
}

// endpointJumps sends a client that used an endpoint recently back to it, and any other to
// a random endpoint's chain, which records the client in its affinity set.
func endpointJumps(ipX string, eps []*endpoint, epChain, epSet map[*endpoint]string) []string {
	var rules []string
	for _, ep := range eps {
		rules = append(rules, fmt.Sprintf("%s saddr @%s goto %s", ipX, epSet[ep], epChain[ep]))
	}
	if len(eps) >= numgenMapMin {
		parts := make([]string, len(eps))
		for i, ep := range eps {
			parts[i] = fmt.Sprintf("%d : goto %s", i, epChain[ep])
		}
		return append(rules, fmt.Sprintf("numgen random mod %d vmap { %s }", len(eps), strings.Join(parts, ", ")))
	}
	for i, ep := range eps {
		r := "goto " + epChain[ep]
		if left := len(eps) - i; left > 1 {
			r = fmt.Sprintf("numgen random mod %d 0 %s", left, r)
		}
		rules = append(rules, r)
	}
	return rules
}
