// Package proxy is the node's service proxy: it watches Services and EndpointSlices and
// programs one nftables table per IP family, as upstream kube-proxy's nftables mode does.
//
// The table holds a few fixed chains hooked into netfilter and, per Service port, chains
// that pick an endpoint at random (numgen) and DNAT to it. Shared verdict maps send
// ClusterIP, external IP, load-balancer IP and NodePort traffic to those chains, and
// another pair of maps rejects new connections to Services without usable endpoints.
// Traffic is masqueraded through a mark (bit 0x4000) where upstream does: to a ClusterIP
// from outside the pod network, external traffic with externalTrafficPolicy Cluster, and a
// pod reaching itself through its Service.
//
// A change to one Service rewrites only that Service's chains and map elements, in one
// nft transaction; the whole table is rewritten at start, periodically, and after an
// error. After a UDP Service changes, conntrack entries that no longer lead to one of its
// serving endpoints are deleted, as upstream does.
//
// Not implemented: upstream's health-check node port for externalTrafficPolicy Local,
// ServiceCIDR objects (the service range comes from Options), and NodePorts on localhost
// (which upstream's nftables mode does not serve either).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"
)

// DefaultTableName is the nftables table the proxy programs unless told otherwise.
const DefaultTableName = "keelson"

// Options configure Run.
type Options struct {
	// NodeName is this node: endpoints on it are local (traffic policy Local, hairpin).
	NodeName string
	// NodeIPs are the addresses NodePorts listen on. Empty means the Node's InternalIP
	// (and, lacking one, ExternalIP) addresses, as upstream's "primary" default.
	NodeIPs []net.IP
	// ClusterCIDR is the pod range (comma-separated for dual stack): traffic to a
	// ClusterIP from outside it is masqueraded. Empty turns that masquerade off.
	ClusterCIDR string
	// ServiceCIDR is the service range (comma-separated for dual stack): traffic to an
	// unallocated address in it is dropped. A family with a service range (IPv4 when
	// empty) gets a table.
	ServiceCIDR string
	// TableName is the nftables table (in each family); DefaultTableName when empty.
	TableName string
	// Log receives the proxy's messages; slog.Default() when nil.
	Log *slog.Logger
	// MinSyncPeriod is the least time between two syncs; changes arriving meanwhile are
	// batched. Zero means upstream's default, one second; negative means none.
	MinSyncPeriod time.Duration
	// FullSyncPeriod is the time between full syncs; one hour when zero.
	FullSyncPeriod time.Duration
	// CleanupOnExit makes Run delete its tables when ctx ends. Left in place, the rules
	// keep serving existing and new connections until the next run takes them over.
	CleanupOnExit bool
	// OnSync, when set, is called after each sync of each table, from the sync loop.
	OnSync func(SyncStats)
}

// Labels upstream's proxy honours: Services (and their slices) that name another proxy,
// and headless Services' slices, are not for us.
const (
	labelServiceProxyName = "service.kubernetes.io/service-proxy-name"
	serviceNameIndex      = "service"
)

// Run programs the service rules until ctx ends. It returns an error when nftables cannot
// be used or the informers do not sync; once running, sync failures are logged and
// retried with a full sync.
func Run(ctx context.Context, client kubernetes.Interface, opts Options) error {
	if opts.TableName == "" {
		opts.TableName = DefaultTableName
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MinSyncPeriod == 0 {
		opts.MinSyncPeriod = time.Second
	}
	if opts.FullSyncPeriod <= 0 {
		opts.FullSyncPeriod = time.Hour
	}
	log := opts.Log.With("component", "proxy")

	proxiers, err := newProxiers(opts, log)
	if err != nil {
		return err
	}

	noProxyName, err := labels.NewRequirement(labelServiceProxyName, selection.DoesNotExist, nil)
	if err != nil {
		return err
	}
	noHeadless, err := labels.NewRequirement(corev1.IsHeadlessService, selection.DoesNotExist, nil)
	if err != nil {
		return err
	}
	selector := labels.NewSelector().Add(*noProxyName, *noHeadless).String()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	svcInformer := factory.Core().V1().Services()
	sliceInformer := factory.Discovery().V1().EndpointSlices()
	if err := sliceInformer.Informer().AddIndexers(cache.Indexers{serviceNameIndex: sliceServiceKey}); err != nil {
		return err
	}

	l := &loop{opts: opts, log: log, proxiers: proxiers, kick: make(chan struct{}, 1), dirty: map[types.NamespacedName]bool{}}
	l.src = &informerSource{services: svcInformer.Lister(), slices: sliceInformer.Informer().GetIndexer()}

	if _, err := svcInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { l.serviceChanged(obj) },
		UpdateFunc: func(_, obj any) { l.serviceChanged(obj) },
		DeleteFunc: func(obj any) { l.serviceChanged(obj) },
	}); err != nil {
		return err
	}
	if _, err := sliceInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { l.sliceChanged(obj) },
		UpdateFunc: func(old, obj any) {
			l.sliceChanged(old)
			l.sliceChanged(obj)
		},
		DeleteFunc: func(obj any) { l.sliceChanged(obj) },
	}); err != nil {
		return err
	}
	synced := []cache.InformerSynced{svcInformer.Informer().HasSynced, sliceInformer.Informer().HasSynced}

	var nodeFactory informers.SharedInformerFactory
	if opts.NodeName != "" {
		nodeFactory = informers.NewSharedInformerFactoryWithOptions(client, 0,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", opts.NodeName).String()
			}))
		nodeInformer := nodeFactory.Core().V1().Nodes()
		l.nodes = nodeInformer.Lister()
		if _, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { l.nodeChanged() },
			UpdateFunc: func(any, any) { l.nodeChanged() },
			DeleteFunc: func(any) { l.nodeChanged() },
		}); err != nil {
			return err
		}
		synced = append(synced, nodeInformer.Informer().HasSynced)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	factory.Start(runCtx.Done())
	if nodeFactory != nil {
		nodeFactory.Start(runCtx.Done())
	}
	defer func() {
		cancel()
		factory.Shutdown()
		if nodeFactory != nil {
			nodeFactory.Shutdown()
		}
	}()
	if !cache.WaitForCacheSync(runCtx.Done(), synced...) {
		if ctx.Err() != nil {
			return l.exit()
		}
		return errors.New("proxy: informers did not sync")
	}
	l.run(runCtx)
	return l.exit()
}

func newProxiers(opts Options, log *slog.Logger) ([]*proxier, error) {
	var fams []family
	for _, f := range []family{{ipv6: false}, {ipv6: true}} {
		if len(cidrsOf(f, opts.ServiceCIDR)) > 0 || (!f.ipv6 && strings.TrimSpace(opts.ServiceCIDR) == "") {
			fams = append(fams, f)
		}
	}
	var out []*proxier
	for _, f := range fams {
		nftFamily := knftables.IPv4Family
		if f.ipv6 {
			nftFamily = knftables.IPv6Family
		}
		nft, err := knftables.New(nftFamily, opts.TableName)
		if err != nil {
			return nil, fmt.Errorf("proxy: nftables unusable: %w", err)
		}
		r := renderer{fam: f, nodeName: opts.NodeName, clusterCIDRs: cidrsOf(f, opts.ClusterCIDR)}
		out = append(out, newProxier(nft, opts.TableName, log.With("family", f.nft()), r, cidrsOf(f, opts.ServiceCIDR)))
	}
	return out, nil
}

func cidrsOf(f family, list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if c, ok := f.hasCIDR(s); ok {
			out = append(out, c)
		}
	}
	return out
}

func sliceServiceKey(obj any) ([]string, error) {
	slice, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := slice.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nil, nil
	}
	return []string{slice.Namespace + "/" + name}, nil
}

// informerSource reads the informers' caches.
type informerSource struct {
	services corelisters.ServiceLister
	slices   cache.Indexer
}

func (s *informerSource) service(key types.NamespacedName) *corev1.Service {
	svc, err := s.services.Services(key.Namespace).Get(key.Name)
	if err != nil {
		return nil
	}
	return svc
}

func (s *informerSource) serviceKeys() []types.NamespacedName {
	svcs, _ := s.services.List(labels.Everything()) // a cache list cannot fail
	out := make([]types.NamespacedName, 0, len(svcs))
	for _, svc := range svcs {
		out = append(out, types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name})
	}
	return out
}

func (s *informerSource) endpointSlices(key types.NamespacedName) []*discoveryv1.EndpointSlice {
	objs, err := s.slices.ByIndex(serviceNameIndex, key.String())
	if err != nil {
		return nil
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if slice, ok := o.(*discoveryv1.EndpointSlice); ok {
			out = append(out, slice)
		}
	}
	return out
}

// loop batches changes and runs the syncs; one goroutine (run) owns the proxiers.
type loop struct {
	opts     Options
	log      *slog.Logger
	proxiers []*proxier
	src      source
	nodes    corelisters.NodeLister
	kick     chan struct{}

	mu sync.Mutex
	// dirty are the Services changed since the last sync, guarded by mu.
	dirty map[types.NamespacedName]bool

	// node is the Node's state that the rules depend on, as last synced (run only).
	nodeIPs []string
	zone    string
}

func (l *loop) markDirty(key types.NamespacedName) {
	l.mu.Lock()
	l.dirty[key] = true
	l.mu.Unlock()
	l.wake()
}

func (l *loop) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *loop) serviceChanged(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if svc, ok := obj.(*corev1.Service); ok {
		l.markDirty(types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name})
	}
}

func (l *loop) sliceChanged(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if slice, ok := obj.(*discoveryv1.EndpointSlice); ok && slice.Labels[discoveryv1.LabelServiceName] != "" {
		l.markDirty(types.NamespacedName{Namespace: slice.Namespace, Name: slice.Labels[discoveryv1.LabelServiceName]})
	}
}

// nodeChanged wakes the loop, which does a full sync if the Node's addresses or zone
// changed (and nothing for the periodic status updates that change neither).
func (l *loop) nodeChanged() { l.wake() }

// nodeState returns the NodePort addresses and the zone the rules should use now.
func (l *loop) nodeState() (ips []string, zone string) {
	var node *corev1.Node
	if l.nodes != nil {
		node, _ = l.nodes.Get(l.opts.NodeName) // absent until the kubelet registers it
	}
	if node != nil {
		zone = node.Labels[corev1.LabelTopologyZone]
	}
	for _, ip := range l.opts.NodeIPs {
		ips = append(ips, ip.String())
	}
	if len(ips) == 0 && node != nil {
		for _, typ := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
			for _, a := range node.Status.Addresses {
				if a.Type == typ {
					ips = append(ips, a.Address)
				}
			}
			if len(ips) > 0 {
				break
			}
		}
	}
	return ips, zone
}

func (l *loop) run(ctx context.Context) {
	full := true
	var lastSync, lastFull time.Time
	retry := time.Second
	const maxRetry = 30 * time.Second
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		// Wait for a change, a timer (full sync, stale chains, retry), or the end.
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		case <-timer.C:
		}
		if wait := l.opts.MinSyncPeriod - time.Since(lastSync); !lastSync.IsZero() && wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		l.mu.Lock()
		dirty := l.dirty
		l.dirty = map[types.NamespacedName]bool{}
		full = full || time.Since(lastFull) >= l.opts.FullSyncPeriod
		l.mu.Unlock()

		if full {
			ips, zone := l.nodeState()
			l.nodeIPs, l.zone = ips, zone
		} else if ips, zone := l.nodeState(); !equality.Semantic.DeepEqual(ips, l.nodeIPs) || zone != l.zone {
			full = true
			l.nodeIPs, l.zone = ips, zone
		}

		lastSync = time.Now()
		failed, stalePending := false, false
		for _, p := range l.proxiers {
			if full {
				p.r.nodeIPs, p.r.zone = nil, l.zone
				for _, ip := range l.nodeIPs {
					if s, ok := p.r.fam.has(ip); ok && !net.ParseIP(s).IsLoopback() {
						p.r.nodeIPs = append(p.r.nodeIPs, s)
					}
				}
			}
			if len(dirty) > 0 || full {
				st := p.sync(ctx, l.src, dirty, full)
				if st.Err != nil {
					failed = true
					l.log.Error("sync failed; retrying with a full sync", "family", st.Family, "full", st.Full, "err", st.Err)
				} else {
					l.log.Debug("synced", "family", st.Family, "full", st.Full, "duration", st.Duration,
						"services", st.Services, "written", st.ServicesWritten, "rules", st.Rules)
				}
				if st.Err == nil && p.udpChanged {
					if n, err := p.clearStaleUDPFlows(); err != nil {
						l.log.Error("clearing stale UDP conntrack entries", "family", st.Family, "err", err)
					} else if n > 0 {
						l.log.Debug("cleared stale UDP conntrack entries", "family", st.Family, "entries", n)
					}
				}
				if l.opts.OnSync != nil {
					l.opts.OnSync(st)
				}
			}
			pending, err := p.deleteStale(ctx, time.Now())
			if err != nil {
				failed = true
				l.log.Error("deleting stale chains failed", "err", err)
			}
			stalePending = stalePending || pending
		}
		if ctx.Err() != nil {
			return
		}

		next := l.opts.FullSyncPeriod
		if failed {
			// The changes are lost with the failed transaction: only a full sync
			// recovers, after a growing pause.
			full = true
			next, retry = retry, min(2*retry, maxRetry)
		} else {
			if full {
				lastFull = lastSync
			}
			full = false
			retry = time.Second
			if stalePending {
				next = staleChainDelay
			} else if until := l.opts.FullSyncPeriod - time.Since(lastFull); until < next {
				next = max(until, 0)
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// exit deletes the tables if asked to.
func (l *loop) exit() error {
	if !l.opts.CleanupOnExit {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, p := range l.proxiers {
		if err := p.cleanup(ctx); err != nil {
			errs = append(errs, fmt.Errorf("proxy: deleting table %s %s: %w", p.r.fam.nft(), p.table, err))
		}
	}
	return errors.Join(errs...)
}
