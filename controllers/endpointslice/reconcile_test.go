package endpointslice

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func testService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "svc-uid"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.0.0.10", IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}},
	}
}

func testPod(i int, ready bool) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	ip := fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%04d", i), Namespace: "ns", UID: types.UID(fmt.Sprintf("uid-%d", i)), Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "node-1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

func pods(from, to int) []*corev1.Pod {
	var out []*corev1.Pod
	for i := from; i < to; i++ {
		out = append(out, testPod(i, true))
	}
	return out
}

func testPlanner() planner {
	return planner{maxPerSlice: 100, node: func(name string) (*corev1.Node, error) {
		if name != "node-1" {
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "nodes"}, name)
		}
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelTopologyZone: "z1"}}}, nil
	}}
}

// existing turns planned creates into slices as the server would hold them, named s0, s1, ...
func existing(t *testing.T, svc *corev1.Service, ps []*corev1.Pod) []*discoveryv1.EndpointSlice {
	t.Helper()
	ch, err := testPlanner().plan(svc, ps, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range ch.create {
		s.Name = fmt.Sprintf("s%d", i)
	}
	return ch.create
}

func sizes(ss []*discoveryv1.EndpointSlice) []int {
	var out []int
	for _, s := range ss {
		out = append(out, len(s.Endpoints))
	}
	return out
}

func names(ss []*discoveryv1.EndpointSlice) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return out
}

// podsOutside are the pods of ps whose endpoints are not in slice s.
func podsOutside(s *discoveryv1.EndpointSlice, ps []*corev1.Pod) []*corev1.Pod {
	in := map[string]bool{}
	for _, e := range s.Endpoints {
		in[e.TargetRef.Name] = true
	}
	var out []*corev1.Pod
	for _, p := range ps {
		if !in[p.Name] {
			out = append(out, p)
		}
	}
	return out
}

func TestPlan(t *testing.T) {
	svc := testService()
	s150 := existing(t, svc, pods(0, 150))
	// A pod of the second slice turns unready.
	unready := pods(0, 150)
	victim := s150[1].Endpoints[7].TargetRef.Name
	for i, p := range unready {
		if p.Name == victim {
			unready[i] = testPod(i, false)
		}
	}
	cases := []struct {
		name                   string
		svc                    *corev1.Service
		pods                   []*corev1.Pod
		existing               []*discoveryv1.EndpointSlice
		wantCreate             []int
		wantUpdate, wantDelete []string
		wantErr                bool
	}{
		{name: "new service splits at 100", svc: svc, pods: pods(0, 250), wantCreate: []int{100, 100, 50}},
		{name: "nothing changed", svc: svc, pods: pods(0, 150), existing: existing(t, svc, pods(0, 150))},
		{name: "a removal and an addition update one slice in place", svc: svc,
			pods: append(pods(1, 150), testPod(500, true)), existing: existing(t, svc, pods(0, 150)), wantUpdate: []string{"s0"}},
		{name: "new pods go into the unchanged slice with room", svc: svc,
			pods: pods(0, 160), existing: existing(t, svc, pods(0, 150)), wantUpdate: []string{"s1"}},
		{name: "a readiness change updates only its slice", svc: svc,
			pods: unready, existing: s150, wantUpdate: []string{"s1"}},
		{name: "an emptied slice is deleted", svc: svc, pods: podsOutside(s150[1], pods(0, 150)), existing: s150, wantDelete: []string{"s1"}},
		{name: "no pods: a placeholder slice", svc: svc, wantCreate: []int{0}},
		{name: "the placeholder is kept", svc: svc, existing: existing(t, svc, nil)},
		{name: "a deletion and a creation become an update", svc: svc, pods: pods(0, 10),
			existing: existing(t, svc, nil), wantUpdate: []string{"s0"}},
		{name: "a pod on a missing node is left out, and the sync retried", svc: svc,
			pods: []*corev1.Pod{func() *corev1.Pod { p := testPod(0, true); p.Spec.NodeName = "gone"; return p }()}, wantCreate: []int{0}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := testPlanner().plan(tc.svc, tc.pods, tc.existing)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got := sizes(ch.create); fmt.Sprint(got) != fmt.Sprint(tc.wantCreate) {
				t.Errorf("creates of sizes %v, want %v", got, tc.wantCreate)
			}
			if got := names(ch.update); fmt.Sprint(got) != fmt.Sprint(tc.wantUpdate) {
				t.Errorf("updates %v, want %v", got, tc.wantUpdate)
			}
			if got := names(ch.delete); fmt.Sprint(got) != fmt.Sprint(tc.wantDelete) {
				t.Errorf("deletes %v, want %v", got, tc.wantDelete)
			}
			for _, s := range append(ch.create, ch.update...) {
				if len(s.Endpoints) > 100 {
					t.Errorf("slice %q has %d endpoints", s.Name, len(s.Endpoints))
				}
			}
		})
	}
}

// A slice of another Service of the same name (an older one) is deleted, not reused.
func TestPlanDeletesForeignSlices(t *testing.T) {
	svc := testService()
	old := existing(t, svc, pods(0, 5))
	old[0].OwnerReferences[0].UID = "former-uid"
	ch, err := testPlanner().plan(svc, pods(0, 5), old)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.create) != 1 || len(ch.update) != 0 || len(ch.delete) != 1 {
		t.Fatalf("create %d, update %d, delete %d; want 1, 0, 1", len(ch.create), len(ch.update), len(ch.delete))
	}
}

func TestPodToEndpoint(t *testing.T) {
	svc := testService()
	p := testPod(0, true)
	now := metav1.Now()
	p.DeletionTimestamp = &now
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{corev1.LabelTopologyZone: "z1"}}}
	ep := podToEndpoint(p, node, svc, discoveryv1.AddressTypeIPv4)
	if *ep.Conditions.Ready || !*ep.Conditions.Serving || !*ep.Conditions.Terminating {
		t.Errorf("terminating ready pod: conditions %+v, want ready false, serving true, terminating true", ep.Conditions)
	}
	if *ep.Zone != "z1" || *ep.NodeName != "node-1" {
		t.Errorf("zone %v, node %v", *ep.Zone, *ep.NodeName)
	}
	svc.Spec.PublishNotReadyAddresses = true
	if ep := podToEndpoint(p, node, svc, discoveryv1.AddressTypeIPv4); !*ep.Conditions.Ready {
		t.Error("publishNotReadyAddresses: ready should be true")
	}
	if ep := podToEndpoint(p, node, svc, discoveryv1.AddressTypeIPv6); len(ep.Addresses) != 0 {
		t.Errorf("an IPv4 pod has IPv6 addresses %v", ep.Addresses)
	}
}

// With a trafficDistribution, ready endpoints are hinted for their zone (and node, for
// PreferSameNode); slices already written get their hints too.
func TestPlanHints(t *testing.T) {
	svc := testService()
	ps := append(pods(0, 3), testPod(3, false))
	plain := existing(t, svc, ps)
	for _, tc := range []struct {
		distribution string
		nodes        bool
	}{{corev1.ServiceTrafficDistributionPreferClose, false}, {corev1.ServiceTrafficDistributionPreferSameNode, true}} {
		t.Run(tc.distribution, func(t *testing.T) {
			hinted := testService()
			hinted.Spec.TrafficDistribution = &tc.distribution
			ch, err := testPlanner().plan(hinted, ps, plain)
			if err != nil {
				t.Fatal(err)
			}
			if len(ch.update) != 1 || len(ch.create)+len(ch.delete) != 0 {
				t.Fatalf("create %d, update %d, delete %d; want the one slice updated", len(ch.create), len(ch.update), len(ch.delete))
			}
			for _, e := range ch.update[0].Endpoints {
				switch {
				case !*e.Conditions.Ready:
					if e.Hints != nil {
						t.Errorf("a not-ready endpoint has hints %+v", e.Hints)
					}
				case e.Hints == nil || len(e.Hints.ForZones) != 1 || e.Hints.ForZones[0].Name != "z1":
					t.Errorf("hints %+v, want zone z1", e.Hints)
				case tc.nodes != (len(e.Hints.ForNodes) == 1 && e.Hints.ForNodes[0].Name == "node-1"):
					t.Errorf("node hints %+v, want them: %v", e.Hints.ForNodes, tc.nodes)
				}
			}
			// Once written, the hints are not rewritten.
			again, err := testPlanner().plan(hinted, ps, ch.update)
			if err != nil || len(again.update)+len(again.create)+len(again.delete) != 0 {
				t.Errorf("a second plan changes %+v (err %v)", again, err)
			}
		})
	}
}
