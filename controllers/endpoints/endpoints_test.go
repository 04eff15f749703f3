package endpoints

//lint:file-ignore SA1019 the Endpoints API is deprecated but still served and used; keeping it is this code's job.

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func pod(name, ip string, ready bool, ports ...corev1.ContainerPort) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{NodeName: "n", Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

func ips(as []corev1.EndpointAddress) string {
	var out []string
	for _, a := range as {
		out = append(out, a.IP)
	}
	return fmt.Sprint(out)
}

func TestSubsets(t *testing.T) {
	http := corev1.ContainerPort{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}
	metrics := corev1.ContainerPort{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}
	twoPorts := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.1",
		Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")},
			{Name: "metrics", Port: 90, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("metrics")}}}}
	headless := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}}
	terminating := pod("t", "10.1.0.9", true, http)
	terminating.DeletionTimestamp = &metav1.Time{}
	failed := pod("f", "10.1.0.8", true, http)
	failed.Status.Phase = corev1.PodFailed

	cases := []struct {
		name string
		svc  *corev1.Service
		pods []*corev1.Pod
		want string // per subset: ready IPs, not-ready IPs, port names
	}{
		{"ports served by different sets of pods get a subset each", twoPorts,
			[]*corev1.Pod{pod("a", "10.1.0.2", true, http, metrics), pod("b", "10.1.0.1", true, http), pod("c", "10.1.0.3", false, http, metrics)},
			// Subsets and ports come in upstream's order, by hash.
			"[10.1.0.2] [10.1.0.3] [metrics] | [10.1.0.1 10.1.0.2] [10.1.0.3] [http]"},
		{"ports served by the same pods share a subset", twoPorts,
			[]*corev1.Pod{pod("a", "10.1.0.2", true, http, metrics), pod("b", "10.1.0.1", false, http, metrics)},
			"[10.1.0.2] [10.1.0.1] [metrics http]"},
		{"terminating and terminal pods are left out", twoPorts, []*corev1.Pod{terminating, failed, pod("a", "10.1.0.2", true, http)},
			"[10.1.0.2] [] [http]"},
		{"a pod serving none of the ports is left out", twoPorts, []*corev1.Pod{pod("a", "10.1.0.2", true)}, ""},
		{"a headless service without ports lists its pods", headless, []*corev1.Pod{pod("b", "10.1.0.10", true), pod("a", "10.1.0.9", false)},
			"[10.1.0.10] [10.1.0.9] []"},
		{"addresses in upstream's order, by IP as text", headless,
			[]*corev1.Pod{pod("a", "10.1.0.9", true), pod("b", "10.1.0.10", true), pod("c", "10.1.0.1", true)},
			"[10.1.0.1 10.1.0.10 10.1.0.9] [] []"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			for i, ss := range subsetsFor(tc.svc, tc.pods) {
				if i > 0 {
					got += " | "
				}
				var names []string
				for _, p := range ss.Ports {
					names = append(names, p.Name)
				}
				got += fmt.Sprintf("%s %s %v", ips(ss.Addresses), ips(ss.NotReadyAddresses), names)
			}
			if got != tc.want {
				t.Errorf("subsets %q, want %q", got, tc.want)
			}
		})
	}
}

// Beyond 1000 addresses, ready ones are kept first, shared between subsets in proportion.
func TestTruncate(t *testing.T) {
	addrs := func(n int) []corev1.EndpointAddress { return make([]corev1.EndpointAddress, n) }
	cases := []struct {
		name                 string
		subsets              []corev1.EndpointSubset
		cut                  bool
		wantReady, wantUnrdy []int
	}{
		{"at capacity", []corev1.EndpointSubset{{Addresses: addrs(1000)}}, false, []int{1000}, []int{0}},
		{"not-ready addresses go first", []corev1.EndpointSubset{{Addresses: addrs(900), NotReadyAddresses: addrs(200)}}, true, []int{900}, []int{100}},
		{"ready addresses in proportion", []corev1.EndpointSubset{{Addresses: addrs(1500), NotReadyAddresses: addrs(10)}, {Addresses: addrs(500)}},
			true, []int{750, 250}, []int{0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ep := &corev1.Endpoints{Subsets: tc.subsets}
			if got := truncate(ep); got != tc.cut {
				t.Fatalf("truncate = %v, want %v", got, tc.cut)
			}
			for i, ss := range ep.Subsets {
				if len(ss.Addresses) != tc.wantReady[i] || len(ss.NotReadyAddresses) != tc.wantUnrdy[i] {
					t.Errorf("subset %d: %d ready, %d not ready; want %d, %d", i, len(ss.Addresses), len(ss.NotReadyAddresses), tc.wantReady[i], tc.wantUnrdy[i])
				}
			}
		})
	}
}
