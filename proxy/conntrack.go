package proxy

import (
	"net"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
)

// staleUDPFlows matches the conntrack entries of UDP Services that no longer lead to a
// serving endpoint, as upstream's proxy clears them: a UDP "connection" lives as long as
// packets keep coming, so without this a client that keeps its socket would keep talking
// to an endpoint that is gone (or keep missing a Service that now has endpoints).
type staleUDPFlows struct {
	// frontends maps a Service address ("ip:port") to its serving endpoints.
	frontends map[string]map[string]bool
	// nodePorts maps a NodePort to its Service's serving endpoints; a NodePort of a
	// Service without any is left alone, since matching on the port alone could catch
	// flows that are not the Service's.
	nodePorts map[int]map[string]bool
}

var _ netlink.CustomConntrackFilter = (*staleUDPFlows)(nil)

func newStaleUDPFlows(renderings map[types.NamespacedName]*rendering) *staleUDPFlows {
	f := &staleUDPFlows{frontends: map[string]map[string]bool{}, nodePorts: map[int]map[string]bool{}}
	for _, r := range renderings {
		for _, u := range r.udp {
			serving := map[string]bool{}
			for _, ep := range u.serving {
				serving[ep] = true
			}
			for _, fe := range u.frontends {
				f.frontends[fe] = serving
			}
			if u.nodePort != 0 && len(serving) > 0 {
				f.nodePorts[u.nodePort] = serving
			}
		}
	}
	return f
}

// MatchConntrackFlow is true for a UDP flow to a Service address or NodePort whose reply
// does not come from one of the Service's serving endpoints.
func (f *staleUDPFlows) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if flow.Forward.Protocol != unix.IPPROTO_UDP {
		return false
	}
	reply := net.JoinHostPort(flow.Reverse.SrcIP.String(), strconv.Itoa(int(flow.Reverse.SrcPort)))
	if serving, ok := f.frontends[net.JoinHostPort(flow.Forward.DstIP.String(), strconv.Itoa(int(flow.Forward.DstPort)))]; ok {
		return !serving[reply]
	}
	if serving, ok := f.nodePorts[int(flow.Forward.DstPort)]; ok {
		return !serving[reply]
	}
	return false
}

// clearStaleUDPFlows deletes the stale UDP conntrack entries of the family's Services.
func (p *proxier) clearStaleUDPFlows() (uint, error) {
	filter := newStaleUDPFlows(p.rendered)
	if len(filter.frontends) == 0 {
		return 0, nil
	}
	fam := netlink.InetFamily(unix.AF_INET)
	if p.r.fam.ipv6 {
		fam = unix.AF_INET6
	}
	return netlink.ConntrackDeleteFilters(netlink.ConntrackTable, fam, filter)
}
