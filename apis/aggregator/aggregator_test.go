package aggregator

import (
	"net/http"
	"sort"
	"testing"

	"github.com/keelson/keelson/apis/authn"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestVersionOrder(t *testing.T) {
	versions := []string{"v1alpha1", "v2", "v1beta1", "v1", "v1beta2", "v10", "foo"}
	sort.Slice(versions, func(i, j int) bool { return versionLess(versions[j], versions[i]) })
	want := []string{"v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"}
	for i := range want {
		if versions[i] != want[i] {
			t.Fatalf("order %v, want %v", versions, want)
		}
	}
}

func TestSetUserHeadersReplacesIdentity(t *testing.T) {
	h := http.Header{}
	h.Set("X-Remote-User", "mallory")
	h.Add("X-Remote-Group", "system:masters")
	h.Set("X-Remote-Extra-Scopes", "all")
	h.Set("Impersonate-User", "root")
	setUserHeaders(h, &authn.User{Name: "alice", UID: "u1", Groups: []string{"dev", "system:authenticated"},
		Extra: map[string][]string{"authentication.kubernetes.io/credential-id": {"JTI=1"}}})
	if got := h.Get("X-Remote-User"); got != "alice" {
		t.Errorf("user %q", got)
	}
	if got := h.Values("X-Remote-Group"); len(got) != 2 || got[0] != "dev" {
		t.Errorf("groups %v", got)
	}
	if got := h.Get("X-Remote-Uid"); got != "u1" {
		t.Errorf("uid %q", got)
	}
	if h.Get("X-Remote-Extra-Scopes") != "" || h.Get("Impersonate-User") != "" {
		t.Errorf("caller's identity headers kept: %v", h)
	}
	if got := h.Get("X-Remote-Extra-Authentication.kubernetes.io%2Fcredential-Id"); got != "JTI=1" {
		t.Errorf("extra: %v", h)
	}
}

func TestToDiscoveryNestsSubresources(t *testing.T) {
	list := &metav1.APIResourceList{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{
		{Name: "widgets", Namespaced: true, Kind: "Widget", Verbs: []string{"get", "list"}},
		{Name: "widgets/status", Namespaced: true, Kind: "Widget", Verbs: []string{"get"}},
		{Name: "gadgets", Kind: "Gadget", Verbs: []string{"get"}},
	}}
	got := toDiscovery(list)
	if len(got) != 2 || got[0].Resource != "widgets" || got[0].Scope != "Namespaced" || got[1].Scope != "Cluster" {
		t.Fatalf("resources %+v", got)
	}
	if len(got[0].Subresources) != 1 || got[0].Subresources[0].Subresource != "status" {
		t.Fatalf("subresources %+v", got[0].Subresources)
	}
}
