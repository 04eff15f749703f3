package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// staleChainDelay is how long a chain that no longer has a use stays (flushed) before it
// is deleted. Kernels before 6.2 notice only a little later that a map element pointing at
// a chain is gone, and refuse to delete the chain until then; upstream waits one second.
const staleChainDelay = time.Second

// source gives the proxier the Services and EndpointSlices it programs. Run feeds it from
// shared informers; the sync benchmark fills stores directly.
type source interface {
	service(key types.NamespacedName) *corev1.Service
	serviceKeys() []types.NamespacedName
	endpointSlices(key types.NamespacedName) []*discoveryv1.EndpointSlice
}

// proxier programs one nftables table of one family. It is not safe for concurrent use:
// Run's sync loop owns it.
type proxier struct {
	nft   knftables.Interface
	table string
	log   *slog.Logger
	r     renderer
	// serviceCIDRs are the service ranges of this family: traffic to an unallocated
	// address in them is dropped.
	serviceCIDRs []string

	// rendered is what each Service has in the table now.
	rendered map[types.NamespacedName]*rendering
	// current is every element of the fixed sets and maps in the table now, by id, and
	// holders the Services that want each one.
	current map[string]elem
	holders map[string]map[types.NamespacedName]elem
	// stale are flushed per-service chains waiting to be deleted, with when they
	// became stale.
	stale map[string]time.Time
	// setUp is true once a full sync has recreated the base chains.
	setUp bool
	// udpChanged is true when the last sync changed a Service with a UDP port, whose
	// stale conntrack entries should then be cleared.
	udpChanged bool
	// known is true while rendered, current and stale describe the table: from a
	// successful full sync to a failed sync.
	known bool
}

// SyncStats describes one sync of the rules.
type SyncStats struct {
	// Family is "ip" or "ip6".
	Family string
	// Full is true for a full sync (the whole table rewritten), false for a partial one.
	Full bool
	// Duration is the wall time of the sync: computing it and running the transaction.
	Duration time.Duration
	// Services is the number of Services programmed in the table after the sync, and
	// ServicePorts the number of their ports.
	Services     int
	ServicePorts int
	// Endpoints is the number of endpoints programmed after the sync.
	Endpoints int
	// ServicesWritten is the number of Services whose chains this sync rewrote.
	ServicesWritten int
	// Chains, Rules and Elements count the chains flushed and refilled, the rules
	// added, and the set and map elements added or deleted by this sync's transaction.
	Chains   int
	Rules    int
	Elements int
	// Err is the reason the sync failed, or nil.
	Err error
}

func newProxier(nft knftables.Interface, table string, log *slog.Logger, r renderer, serviceCIDRs []string) *proxier {
	return &proxier{
		nft:          nft,
		table:        table,
		log:          log,
		r:            r,
		serviceCIDRs: serviceCIDRs,
		rendered:     map[types.NamespacedName]*rendering{},
		current:      map[string]elem{},
		holders:      map[string]map[types.NamespacedName]elem{},
		stale:        map[string]time.Time{},
	}
}

type baseChain struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority
}

// baseChains hook the table into netfilter, with upstream's hooks and priorities. The
// output-hook priorities are numbers: nft before 1.0.7 accepts "dstnat" only on prerouting.
var baseChains = []baseChain{
	{filterPreroutingPreDNAT, knftables.FilterType, knftables.PreroutingHook, knftables.DNATPriority + "-10"},
	{filterOutputPreDNAT, knftables.FilterType, knftables.OutputHook, "-110"},
	{filterInput, knftables.FilterType, knftables.InputHook, knftables.FilterPriority},
	{filterForward, knftables.FilterType, knftables.ForwardHook, knftables.FilterPriority},
	{filterOutput, knftables.FilterType, knftables.OutputHook, knftables.FilterPriority},
	{natPrerouting, knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority},
	{natOutput, knftables.NATType, knftables.OutputHook, "-100"},
	{natPostrouting, knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority},
}

// jumps are the base chains' rules: which fixed chain each one runs.
var jumps = []struct{ from, to, match string }{
	// Rejecting is only allowed from the input, forward and output hooks on older
	// kernels, so the no-endpoint checks hang there rather than before DNAT.
	{filterInput, nodePortEndpointsCheckChain, "ct state new"},
	{filterInput, serviceEndpointsCheckChain, "ct state new"},
	{filterForward, serviceEndpointsCheckChain, "ct state new"},
	{filterOutput, serviceEndpointsCheckChain, "ct state new"},
	{filterPreroutingPreDNAT, firewallCheckChain, "ct state new"},
	{filterOutputPreDNAT, firewallCheckChain, "ct state new"},
	{natOutput, servicesChain, ""},
	{natPrerouting, servicesChain, ""},
	{natPostrouting, masqueradingChain, ""},
	{filterForward, clusterIPsCheckChain, "ct state new"},
	{filterOutput, clusterIPsCheckChain, "ct state new"},
}

// writeSetup writes the table's fixed part: base chains, fixed chains and their rules, and
// the shared sets and maps, emptied (the sync refills them).
func (p *proxier) writeSetup(tx *knftables.Transaction, st *SyncStats) {
	f := p.r.fam
	ipX, addr := f.nft(), f.addrType()
	tx.Add(&knftables.Table{Comment: ptr.To("rules for keelson's service proxy")})
	if !p.setUp {
		// Recreate the base chains once, so that a table left by an older version with
		// other hooks or priorities does not make the transaction fail.
		for _, bc := range baseChains {
			c := &knftables.Chain{Name: bc.name}
			tx.Add(c)
			tx.Delete(c)
		}
	}
	for _, bc := range baseChains {
		c := &knftables.Chain{Name: bc.name, Type: ptr.To(bc.typ), Hook: ptr.To(bc.hook), Priority: ptr.To(bc.priority)}
		tx.Add(c)
		tx.Flush(c)
	}
	for _, name := range []string{servicesChain, masqueradingChain, clusterIPsCheckChain, serviceEndpointsCheckChain,
		nodePortEndpointsCheckChain, rejectChain, firewallCheckChain} {
		tx.Add(&knftables.Chain{Name: name})
		tx.Flush(&knftables.Chain{Name: name})
	}
	for _, s := range []*knftables.Set{
		{Name: clusterIPsSet, Type: addr, Comment: ptr.To("active ClusterIPs")},
		{Name: nodePortIPsSet, Type: addr, Comment: ptr.To("IPs that accept NodePort traffic")},
		{Name: hairpinSet, Type: addr + " . " + addr + " . inet_proto . inet_service", Comment: ptr.To("service hairpin connections")},
	} {
		tx.Add(s)
		tx.Flush(s)
	}
	for _, m := range []*knftables.Map{
		{Name: serviceIPsMap, Type: addr + " . inet_proto . inet_service : verdict", Comment: ptr.To("ClusterIP, ExternalIP and LoadBalancer IP traffic")},
		{Name: serviceNodePortsMap, Type: "inet_proto . inet_service : verdict", Comment: ptr.To("NodePort traffic")},
		{Name: noEndpointServicesMap, Type: addr + " . inet_proto . inet_service : verdict", Comment: ptr.To("reject or drop traffic to services with no endpoints")},
		{Name: noEndpointNodePortsMap, Type: "inet_proto . inet_service : verdict", Comment: ptr.To("reject or drop traffic to NodePorts with no endpoints")},
		{Name: firewallIPsMap, Type: addr + " . inet_proto . inet_service : verdict", Comment: ptr.To("destinations subject to loadBalancerSourceRanges")},
	} {
		tx.Add(m)
		tx.Flush(m)
	}

	rule := func(chain, r string) {
		tx.Add(&knftables.Rule{Chain: chain, Rule: r})
		st.Rules++
	}
	for _, j := range jumps {
		rule(j.from, strings.TrimSpace(j.match+" jump "+j.to))
	}
	rule(masqueradingChain, fmt.Sprintf("mark and %s != 0 mark set mark xor %s masquerade fully-random", masqueradeMark, masqueradeMark))
	rule(masqueradingChain, fmt.Sprintf("ct status dnat %s saddr . %s daddr . meta l4proto . th dport @%s masquerade fully-random", ipX, ipX, hairpinSet))
	rule(clusterIPsCheckChain, fmt.Sprintf("%s daddr @%s reject", ipX, clusterIPsSet))
	if len(p.serviceCIDRs) > 0 {
		rule(clusterIPsCheckChain, fmt.Sprintf("%s daddr { %s } drop", ipX, strings.Join(p.serviceCIDRs, ", ")))
	}
	rule(rejectChain, "reject")
	rule(serviceEndpointsCheckChain, fmt.Sprintf("%s daddr . meta l4proto . th dport vmap @%s", ipX, noEndpointServicesMap))
	// NodePorts listen on the node's addresses only (upstream's nftables default,
	// "primary"): not on localhost, which upstream's nftables mode does not serve.
	rule(nodePortEndpointsCheckChain, fmt.Sprintf("%s daddr @%s meta l4proto . th dport vmap @%s", ipX, nodePortIPsSet, noEndpointNodePortsMap))
	rule(firewallCheckChain, fmt.Sprintf("%s daddr . meta l4proto . th dport vmap @%s", ipX, firewallIPsMap))
	if len(p.r.clusterCIDRs) > 0 {
		// Traffic to a ClusterIP from outside the pod network is masqueraded, so that
		// replies from an endpoint on another node come back through this one.
		rule(servicesChain, fmt.Sprintf("%s daddr @%s %s %s", ipX, clusterIPsSet, p.r.ifNotLocal(), markForMasq))
	}
	rule(servicesChain, fmt.Sprintf("%s daddr . meta l4proto . th dport vmap @%s", ipX, serviceIPsMap))
	rule(servicesChain, fmt.Sprintf("%s daddr @%s meta l4proto . th dport vmap @%s", ipX, nodePortIPsSet, serviceNodePortsMap))
	for _, ip := range p.r.nodeIPs {
		tx.Add(&knftables.Element{Set: nodePortIPsSet, Key: []string{ip}})
		st.Elements++
	}
}

// sync brings the table up to date for the Services in dirty (every Service when full).
// It runs one transaction; on failure nothing changed, and the caller does a full sync.
func (p *proxier) sync(ctx context.Context, src source, dirty map[types.NamespacedName]bool, full bool) SyncStats {
	start := time.Now()
	st := SyncStats{Family: p.r.fam.nft(), Full: full}
	st.Err = p.syncTx(ctx, src, dirty, full, start, &st)
	st.Duration = time.Since(start)
	for _, r := range p.rendered {
		st.Services++
		st.ServicePorts += r.ports
		st.Endpoints += r.endpoints
	}
	return st
}

func (p *proxier) syncTx(ctx context.Context, src source, dirty map[types.NamespacedName]bool, full bool, start time.Time, st *SyncStats) error {
	tx := p.nft.NewTransaction()
	if full {
		p.writeSetup(tx, st)
		dirty = map[types.NamespacedName]bool{}
		for _, k := range src.serviceKeys() {
			dirty[k] = true
		}
		for k := range p.rendered {
			dirty[k] = true
		}
	}

	// Render the dirty Services; keep only those whose rules change (all of them in a
	// full sync, which rewrites everything).
	changed := map[types.NamespacedName]*rendering{}
	for k := range dirty {
		var r *rendering
		if svc := src.service(k); svc != nil {
			r = p.r.render(svc, src.endpointSlices(k))
		}
		old, had := p.rendered[k]
		if !full && (had || r != nil) && reflect.DeepEqual(old, r) {
			continue
		}
		if !had && r == nil {
			continue
		}
		changed[k] = r
	}
	keys := make([]types.NamespacedName, 0, len(changed))
	for k := range changed {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })

	// Chains: the changed Services' chains are created or emptied, then refilled; their
	// affinity sets are created before the rules that use them.
	wanted := map[string]bool{}   // chains of the changed Services after this sync
	unwanted := map[string]bool{} // chains of the changed Services before it
	wantedSets := map[string]bool{}
	unwantedSets := map[string]bool{}
	for _, k := range keys {
		if old := p.rendered[k]; old != nil {
			for _, c := range old.chains {
				unwanted[c.name] = true
			}
			for _, s := range old.sets {
				unwantedSets[s.name] = true
			}
		}
		if r := changed[k]; r != nil {
			st.ServicesWritten++
			for _, c := range r.chains {
				wanted[c.name] = true
				tx.Add(&knftables.Chain{Name: c.name})
				tx.Flush(&knftables.Chain{Name: c.name})
				st.Chains++
			}
			for _, s := range r.sets {
				wantedSets[s.name] = true
				tx.Add(&knftables.Set{
					Name: s.name, Type: p.r.fam.addrType(),
					// "dynamic" is what the kernel turns a set updated from the packet
					// path into anyway; saying so keeps a later add identical.
					Flags:   []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
					Timeout: ptr.To(time.Duration(s.timeout) * time.Second),
				})
			}
		}
	}
	for _, k := range keys {
		if r := changed[k]; r != nil {
			for _, c := range r.chains {
				for _, rule := range c.rules {
					tx.Add(&knftables.Rule{Chain: c.name, Rule: rule})
					st.Rules++
				}
			}
		}
	}

	// Elements: only those the changed Services had or want are looked at. Several
	// Services may want one element (a hairpin entry for a shared endpoint, or the same
	// address by mistake): it stays while one does, with the value of the first by name.
	// Deletions go first so that an element whose verdict changed is deleted and added
	// again. A full sync starts from the emptied sets and maps.
	holders, current := p.holders, p.current
	if full {
		holders, current = nil, nil
	}
	affected := map[string]map[types.NamespacedName]elem{}
	for _, k := range keys {
		if old := p.rendered[k]; old != nil && !full {
			for _, e := range old.elems {
				affected[e.id()] = nil
			}
		}
		if r := changed[k]; r != nil {
			for _, e := range r.elems {
				affected[e.id()] = nil
			}
		}
	}
	for id := range affected {
		h := map[types.NamespacedName]elem{}
		for k, e := range holders[id] {
			if _, ok := changed[k]; !ok {
				h[k] = e
			}
		}
		affected[id] = h
	}
	for _, k := range keys {
		if r := changed[k]; r != nil {
			for _, e := range r.elems {
				affected[e.id()][k] = e
			}
		}
	}
	want := make(map[string]*elem, len(affected))
	var adds []*knftables.Element
	for id, h := range affected {
		w := firstHolder(h)
		want[id] = w
		cur, had := current[id]
		if had && (w == nil || w.value != cur.value) {
			tx.Delete(cur.object())
			st.Elements++
		}
		if w != nil && (!had || w.value != cur.value) {
			adds = append(adds, w.object())
		}
	}
	for _, o := range adds {
		tx.Add(o)
		st.Elements++
	}

	// Chains and sets nobody wants any more: chains are emptied now and deleted later,
	// sets (referenced only from the chains just emptied) are deleted now.
	newStale := map[string]bool{}
	for name := range unwanted {
		if !wanted[name] {
			newStale[name] = true
		}
	}
	staleSets := map[string]bool{}
	for name := range unwantedSets {
		if !wantedSets[name] {
			staleSets[name] = true
		}
	}
	if full {
		// Also whatever an earlier run of the proxy left that no Service wants now.
		all := map[string]bool{}
		allSets := map[string]bool{}
		for _, k := range keys {
			if r := changed[k]; r != nil {
				for _, c := range r.chains {
					all[c.name] = true
				}
				for _, s := range r.sets {
					allSets[s.name] = true
				}
			}
		}
		// Listing a large table costs as much as a partial sync, so only a proxier that
		// does not know the table (at start, after a failure) looks.
		if !p.known {
			existing, err := p.nft.ListAll(ctx)
			if err != nil && !knftables.IsNotFound(err) {
				return fmt.Errorf("listing the table: %w", err)
			}
			for _, name := range existing["chain"] {
				if strings.Contains(name, "/") && !all[name] {
					newStale[name] = true
				}
			}
			for _, name := range existing["set"] {
				if strings.HasPrefix(name, affinitySetPrefix) && !allSets[name] {
					staleSets[name] = true
				}
			}
		}
		for name := range p.stale {
			if !all[name] {
				newStale[name] = true
			}
		}
	}
	for name := range newStale {
		tx.Flush(&knftables.Chain{Name: name})
	}
	for name := range staleSets {
		tx.Delete(&knftables.Set{Name: name})
	}

	if err := p.nft.Run(ctx, tx); err != nil {
		p.known = false
		return fmt.Errorf("nftables transaction (%d operations) failed: %w", tx.NumOperations(), err)
	}

	// The table now matches: record it.
	p.setUp = p.setUp || full
	p.udpChanged = false
	for _, k := range keys {
		if old := p.rendered[k]; (old != nil && len(old.udp) > 0) || (changed[k] != nil && len(changed[k].udp) > 0) {
			p.udpChanged = true
		}
	}
	p.known = p.known || full
	for _, k := range keys {
		if r := changed[k]; r != nil {
			p.rendered[k] = r
		} else {
			delete(p.rendered, k)
		}
	}
	if full {
		p.holders, p.current = map[string]map[types.NamespacedName]elem{}, map[string]elem{}
	}
	for id, h := range affected {
		if w := want[id]; w != nil {
			p.holders[id], p.current[id] = h, *w
		} else {
			delete(p.holders, id)
			delete(p.current, id)
		}
	}
	for name := range newStale {
		if _, ok := p.stale[name]; !ok {
			p.stale[name] = start
		}
	}
	for name := range wanted {
		delete(p.stale, name)
	}
	return nil
}

// deleteStale deletes the chains that have been stale long enough, and reports whether
// some remain to delete later.
func (p *proxier) deleteStale(ctx context.Context, now time.Time) (pending bool, err error) {
	tx := p.nft.NewTransaction()
	var names []string
	for name, since := range p.stale {
		if now.Sub(since) >= staleChainDelay {
			tx.Delete(&knftables.Chain{Name: name})
			names = append(names, name)
		} else {
			pending = true
		}
	}
	if len(names) == 0 {
		return pending, nil
	}
	for _, name := range names {
		delete(p.stale, name)
	}
	if err := p.nft.Run(ctx, tx); err != nil {
		// Those still there are found again by the next full sync, which lists the table.
		p.known = false
		return pending, fmt.Errorf("deleting %d stale chains: %w", len(names), err)
	}
	return pending, nil
}

// cleanup deletes the whole table.
func (p *proxier) cleanup(ctx context.Context) error {
	tx := p.nft.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	return p.nft.Run(ctx, tx)
}

func (e elem) object() *knftables.Element {
	o := &knftables.Element{Key: e.key}
	if e.isMap {
		o.Map = e.container
		o.Value = []string{e.value}
	} else {
		o.Set = e.container
	}
	return o
}

// firstHolder is the element wanted by the first Service by name, or nil if none wants it.
func firstHolder(h map[types.NamespacedName]elem) *elem {
	var first *elem
	var firstKey string
	for k, e := range h {
		if first == nil || k.String() < firstKey {
			first, firstKey = &e, k.String()
		}
	}
	return first
}
