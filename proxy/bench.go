package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// SyncFigures are the sync times of one MeasureSync run.
type SyncFigures struct {
	Services, EndpointsPerService int
	// Initial is the first full sync into an empty table; Resync a full sync of the same
	// rules again (what the periodic full sync costs); Partial a sync after one Service's
	// endpoints changed.
	Initial, Resync, Partial SyncStats
}

// MeasureSync programs services Services of endpointsPerService endpoints each (one in
// ten a NodePort Service, one in ten with ClientIP affinity) into a table of a private
// network namespace, and returns the sync figures. It needs root and nft. The Services
// come from memory rather than an API server: only the proxy's own work is measured.
func MeasureSync(ctx context.Context, services, endpointsPerService int) (SyncFigures, error) {
	figs := SyncFigures{Services: services, EndpointsPerService: endpointsPerService}
	done := make(chan error, 1)
	go func() {
		// The namespace belongs to this thread only; the thread is never unlocked, so
		// Go retires it (and the namespace) when the goroutine ends. nft runs as a
		// child of this thread and so inherits the namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("proxy: creating a network namespace: %w", err)
			return
		}
		done <- measure(ctx, services, endpointsPerService, &figs)
	}()
	return figs, <-done
}

func measure(ctx context.Context, services, perService int, figs *SyncFigures) error {
	nft, err := knftables.New(knftables.IPv4Family, "keelson-bench")
	if err != nil {
		return err
	}
	r := renderer{fam: family{}, nodeName: "bench-node", clusterCIDRs: []string{"10.244.0.0/16"}, nodeIPs: []string{"198.19.255.254"}}
	p := newProxier(nft, "keelson-bench", slog.New(slog.DiscardHandler), r, []string{"198.18.0.0/15"})
	src := newMemorySource()
	for i := range services {
		src.add(benchService(i), benchSlice(i, perService, 0))
	}
	defer func() { _ = p.cleanup(context.Background()) }()
	if figs.Initial = p.sync(ctx, src, nil, true); figs.Initial.Err != nil {
		return figs.Initial.Err
	}
	if figs.Resync = p.sync(ctx, src, nil, true); figs.Resync.Err != nil {
		return figs.Resync.Err
	}
	src.add(benchService(0), benchSlice(0, perService, 1))
	figs.Partial = p.sync(ctx, src, map[types.NamespacedName]bool{{Namespace: "bench", Name: "svc-0"}: true}, false)
	return figs.Partial.Err
}

// memorySource is a source filled directly, for the benchmark.
type memorySource struct {
	services map[types.NamespacedName]*corev1.Service
	slices   map[types.NamespacedName][]*discoveryv1.EndpointSlice
}

func newMemorySource() *memorySource {
	return &memorySource{services: map[types.NamespacedName]*corev1.Service{}, slices: map[types.NamespacedName][]*discoveryv1.EndpointSlice{}}
}

func (m *memorySource) add(svc *corev1.Service, slice *discoveryv1.EndpointSlice) {
	k := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	m.services[k] = svc
	m.slices[k] = []*discoveryv1.EndpointSlice{slice}
}

func (m *memorySource) service(k types.NamespacedName) *corev1.Service { return m.services[k] }

func (m *memorySource) serviceKeys() []types.NamespacedName {
	out := make([]types.NamespacedName, 0, len(m.services))
	for k := range m.services {
		out = append(out, k)
	}
	return out
}

func (m *memorySource) endpointSlices(k types.NamespacedName) []*discoveryv1.EndpointSlice {
	return m.slices[k]
}

func benchService(i int) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "svc-" + strconv.Itoa(i)},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: fmt.Sprintf("198.18.%d.%d", i/250, i%250+1),
			Ports:     []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
		},
	}
	if i%10 == 0 {
		svc.Spec.Type = corev1.ServiceTypeNodePort
		svc.Spec.Ports[0].NodePort = int32(30000 + i/10%2768)
	}
	if i%10 == 5 {
		svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	}
	return svc
}

func benchSlice(i, n, generation int) *discoveryv1.EndpointSlice {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "bench", Name: "svc-" + strconv.Itoa(i) + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: "svc-" + strconv.Itoa(i)}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
	}
	for j := range n {
		ep := i*n + j + generation
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", 100+ep/62500, ep/250%250, ep%250+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			NodeName:   ptr.To("bench-node"),
		})
	}
	return slice
}
