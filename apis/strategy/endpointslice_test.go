package strategy

import (
	"testing"

	"github.com/keelson/keelson/apis/catalogue"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Upstream's EndpointSlice strategy starts generation at 1 and moves it on for any change but
// one of metadata alone; a label change counts (the controllers watch generations).
func TestEndpointSliceGeneration(t *testing.T) {
	res := catalogue.New(catalogue.Builtin()).Lookup(schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"})
	st := For(res, "")
	ready := true
	base := func() *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Labels: map[string]string{"a": "1"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}}}
	}
	created := base()
	st.PrepareForCreate(created)
	if created.Generation != 1 {
		t.Fatalf("generation on create = %d, want 1", created.Generation)
	}
	cases := []struct {
		name   string
		change func(*discoveryv1.EndpointSlice)
		want   int64
	}{
		{"no change", func(*discoveryv1.EndpointSlice) {}, 1},
		{"annotation", func(s *discoveryv1.EndpointSlice) { s.Annotations = map[string]string{"x": "y"} }, 1},
		{"label", func(s *discoveryv1.EndpointSlice) { s.Labels["a"] = "2" }, 2},
		{"endpoint condition", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Conditions.Ready = &ready }, 2},
		{"ports", func(s *discoveryv1.EndpointSlice) { s.Ports = []discoveryv1.EndpointPort{{}} }, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := created.DeepCopy()
			obj := created.DeepCopy()
			tc.change(obj)
			st.PrepareForUpdate(obj, old)
			if obj.Generation != tc.want {
				t.Errorf("generation = %d, want %d", obj.Generation, tc.want)
			}
		})
	}
}
