package endpointslicemirroring

//lint:file-ignore SA1019 the Endpoints API is deprecated but still served and used; keeping it is this code's job.

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testEndpoints(subsets ...corev1.EndpointSubset) *corev1.Endpoints {
	return &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "ns", UID: "ep-uid", Labels: map[string]string{"a": "b"},
		Annotations: map[string]string{"note": "x", corev1.EndpointsLastChangeTriggerTime: "t"}}, Subsets: subsets}
}

var pg = []corev1.EndpointPort{{Name: "pg", Port: 5432, Protocol: corev1.ProtocolTCP}}

// mirrored turns planned creates into slices as the server would hold them.
func mirrored(ep *corev1.Endpoints) []*discoveryv1.EndpointSlice {
	ch := plan(ep, nil)
	for i, s := range ch.create {
		s.Name = s.GenerateName + string(rune('a'+i))
	}
	return ch.create
}

func TestPlan(t *testing.T) {
	one := testEndpoints(corev1.EndpointSubset{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.1"}}, NotReadyAddresses: []corev1.EndpointAddress{{IP: "192.0.2.2"}}, Ports: pg})
	changed := one.DeepCopy()
	changed.Subsets[0].Addresses = append(changed.Subsets[0].Addresses, corev1.EndpointAddress{IP: "192.0.2.3"})
	relabelled := one.DeepCopy()
	relabelled.Labels["a"] = "c"
	dual := testEndpoints(corev1.EndpointSubset{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.1"}, {IP: "2001:db8::1"}, {IP: "not-an-ip"}}, Ports: pg})
	twice := append(mirrored(one), mirrored(one)...)
	twice[1].Name = "ext-z"
	cases := []struct {
		name                   string
		ep                     *corev1.Endpoints
		existing               []*discoveryv1.EndpointSlice
		create, update, delete int
		wantEndpoints          int
		wantTypes              []discoveryv1.AddressType
	}{
		{name: "new", ep: one, create: 1, wantEndpoints: 2, wantTypes: []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4}},
		{name: "up to date", ep: one, existing: mirrored(one)},
		{name: "an address added", ep: changed, existing: mirrored(one), update: 1, wantEndpoints: 3},
		{name: "labels changed", ep: relabelled, existing: mirrored(one), update: 1, wantEndpoints: 2},
		{name: "duplicates deleted", ep: one, existing: twice, delete: 1},
		{name: "one slice per address type, invalid IPs skipped", ep: dual, create: 2, wantEndpoints: 2,
			wantTypes: []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6}},
		{name: "emptied", ep: testEndpoints(), existing: mirrored(one), delete: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := plan(tc.ep, tc.existing)
			if len(ch.create) != tc.create || len(ch.update) != tc.update || len(ch.delete) != tc.delete {
				t.Fatalf("create %d, update %d, delete %d; want %d, %d, %d", len(ch.create), len(ch.update), len(ch.delete), tc.create, tc.update, tc.delete)
			}
			n := 0
			var types []discoveryv1.AddressType
			for _, s := range append(ch.create, ch.update...) {
				n += len(s.Endpoints)
				types = append(types, s.AddressType)
				if s.Labels[discoveryv1.LabelManagedBy] != ControllerName || s.Labels[discoveryv1.LabelServiceName] != "ext" {
					t.Errorf("labels %v", s.Labels)
				}
				if _, ok := s.Annotations[corev1.EndpointsLastChangeTriggerTime]; ok {
					t.Error("the trigger time annotation is mirrored")
				}
			}
			if tc.wantEndpoints != 0 && n != tc.wantEndpoints {
				t.Errorf("%d endpoints, want %d", n, tc.wantEndpoints)
			}
			if tc.wantTypes != nil && len(types) != len(tc.wantTypes) {
				t.Errorf("address types %v, want %v", types, tc.wantTypes)
			}
			for _, s := range ch.update {
				if s.Name == "" {
					t.Error("an update without a name")
				}
			}
		})
	}
	ready := plan(one, nil).create[0].Endpoints
	if !*ready[0].Conditions.Ready || *ready[1].Conditions.Ready {
		t.Errorf("conditions %+v, %+v: want ready, not ready", ready[0].Conditions, ready[1].Conditions)
	}
}

// Addresses that are not IPs, and those beyond 1000 in a subset, are counted as left out.
func TestPlanCountsSkippedAddresses(t *testing.T) {
	many := make([]corev1.EndpointAddress, 0, 1002)
	for i := range 1001 {
		many = append(many, corev1.EndpointAddress{IP: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)})
	}
	many = append(many, corev1.EndpointAddress{IP: "not-an-ip"})
	cases := []struct {
		name             string
		ep               *corev1.Endpoints
		invalid, skipped int
		endpoints        int
	}{
		{"an invalid address", testEndpoints(corev1.EndpointSubset{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.1"}, {IP: "nope"}}, Ports: pg}), 1, 1, 1},
		{"too many addresses", testEndpoints(corev1.EndpointSubset{Addresses: many, Ports: pg}), 0, 2, 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := plan(tc.ep, nil)
			if ch.invalid != tc.invalid || ch.skipped != tc.skipped {
				t.Errorf("invalid %d, skipped %d; want %d, %d", ch.invalid, ch.skipped, tc.invalid, tc.skipped)
			}
			n := 0
			for _, s := range ch.create {
				n += len(s.Endpoints)
			}
			if n != tc.endpoints {
				t.Errorf("%d endpoints mirrored, want %d", n, tc.endpoints)
			}
		})
	}
}
