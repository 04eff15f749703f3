// Package nodenet connects the nodes of a cluster that share a host: it routes each node's
// podCIDR to that node (RunRoutes), and runs a node agent in a network namespace of its own,
// joined to the host by a veth pair (RunAgent), so that several nodes can run on one machine.
package nodenet

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// RouteProtocol marks the routes this package installs (the rtm_protocol of `ip route show
// proto 77`), so that it can tell them from everyone else's and remove the stale ones.
const RouteProtocol = netlink.RouteProtocol(77)

// resync is how often the routes are checked even when no Node changes: a node's network
// (a veth appearing or going) can change without a Node event.
const resync = 10 * time.Second

// RoutesOptions configure RunRoutes.
type RoutesOptions struct {
	// ForgetOnExit are gateways whose routes RunRoutes removes when it ends: a node leaving
	// takes the routes to it along.
	ForgetOnExit []net.IP
	Log          *slog.Logger
}

// RunRoutes keeps, in this network namespace, a route to every Node's podCIDR via the Node's
// InternalIP when that address is a neighbour (on a network of one of this namespace's
// interfaces, not one of its own addresses), and removes the routes it installed for Nodes
// that went or moved, until ctx ends. Nodes elsewhere are reached through the default route.
func RunRoutes(ctx context.Context, client kubernetes.Interface, opts RoutesOptions) error {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	nodes := factory.Core().V1().Nodes()
	kick := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, DeleteFunc: poke, UpdateFunc: func(_, n any) { poke(n) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced) {
		return ctx.Err()
	}
	tick := time.NewTicker(resync)
	defer tick.Stop()
	for {
		list, err := nodes.Lister().List(labels.Everything())
		if err == nil {
			err = SyncRoutes(list, opts.Log)
		}
		if err != nil {
			opts.Log.Warn("syncing pod routes", "err", err)
		}
		select {
		case <-ctx.Done():
			for _, gw := range opts.ForgetOnExit {
				removeRoutesVia(gw)
			}
			return nil
		case <-kick:
		case <-tick.C:
		}
	}
}

// SyncRoutes makes this namespace's routes of RouteProtocol exactly the routes to the given
// Nodes' podCIDRs via their neighbouring InternalIPs (log may be nil).
func SyncRoutes(nodes []*corev1.Node, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	local, connected, err := interfaceNetworks()
	if err != nil {
		return err
	}
	want := map[string]net.IP{}
	for _, n := range nodes {
		ip := internalIP(n)
		if ip == nil || slices.ContainsFunc(local, ip.Equal) || !slices.ContainsFunc(connected, func(c *net.IPNet) bool { return c.Contains(ip) }) {
			continue
		}
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, c := range cidrs {
			_, dst, err := net.ParseCIDR(c)
			if err != nil || dst.IP.To4() == nil {
				continue
			}
			want[dst.String()] = ip
		}
	}
	have, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range have {
		if r.Dst != nil && want[r.Dst.String()] != nil && want[r.Dst.String()].Equal(r.Gw) {
			delete(want, r.Dst.String())
			continue
		}
		if err := netlink.RouteDel(&r); err != nil {
			errs = append(errs, err)
		} else {
			log.Info("removed pod route", "dst", r.Dst, "via", r.Gw)
		}
	}
	for dst, gw := range want {
		_, n, _ := net.ParseCIDR(dst)
		if err := netlink.RouteReplace(&netlink.Route{Dst: n, Gw: gw, Protocol: RouteProtocol}); err != nil {
			errs = append(errs, err)
		} else {
			log.Info("added pod route", "dst", dst, "via", gw)
		}
	}
	return errors.Join(errs...)
}

// removeRoutesVia removes this package's routes through a gateway.
func removeRoutesVia(gw net.IP) {
	have, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: RouteProtocol, Gw: gw},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_GW)
	if err != nil {
		return
	}
	for _, r := range have {
		_ = netlink.RouteDel(&r)
	}
}

// interfaceNetworks are this namespace's IPv4 addresses and the networks they are on.
func interfaceNetworks() (local []net.IP, connected []*net.IPNet, err error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, nil, err
	}
	for _, a := range addrs {
		local = append(local, a.IP)
		if ones, bits := a.Mask.Size(); ones < bits && !a.IP.IsLoopback() {
			connected = append(connected, &net.IPNet{IP: a.IP.Mask(a.Mask), Mask: a.Mask})
		}
	}
	return local, connected, nil
}

func internalIP(n *corev1.Node) net.IP {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip := net.ParseIP(a.Address); ip != nil && ip.To4() != nil {
				return ip
			}
		}
	}
	return nil
}
