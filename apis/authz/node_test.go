package authz

import (
	"testing"

	"github.com/keelson/keelson/apis/authn"
	"github.com/keelson/keelson/apis/request"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func res(verb, group, resource, sub, ns, name string) *request.Info {
	return &request.Info{GroupVersionResource: schema.GroupVersionResource{Group: group, Resource: resource}, Subresource: sub, Namespace: ns, Name: name, Verb: verb}
}

func TestJoiningNodes(t *testing.T) {
	node := &authn.User{Name: "system:node:n1", Groups: []string{GroupNodes, authn.GroupAuthenticated}}
	notNode := &authn.User{Name: "system:node:n1", Groups: []string{authn.GroupAuthenticated}}
	boot := &authn.User{Name: "system:bootstrap:abcdef", Groups: []string{authn.GroupBootstrappers, authn.GroupAuthenticated}}
	anon := &authn.User{Name: authn.UserAnonymous, Groups: []string{authn.GroupUnauthenticated}}
	csr := "certificatesigningrequests"
	for _, c := range []struct {
		user    *authn.User
		info    *request.Info
		allowed bool
		reason  string
		err     string
	}{
		{anon, res("get", "", "configmaps", "", "kube-public", "cluster-info"), true, "", ""},
		{anon, res("get", "", "configmaps", "", "kube-public", "other"), false, "", ""},
		{anon, res("list", "", "configmaps", "", "kube-public", ""), false, "", ""},
		{boot, res("create", "certificates.k8s.io", csr, "", "", ""), true, "", ""},
		{boot, res("watch", "certificates.k8s.io", csr, "", "", ""), true, "", ""},
		{boot, res("create", "certificates.k8s.io", csr, "nodeclient", "", ""), true, "", ""},
		{boot, res("create", "certificates.k8s.io", csr, "selfnodeclient", "", ""), false, "", ""},
		{boot, res("update", "certificates.k8s.io", csr, "approval", "", "x"), false, "", ""},
		{boot, res("list", "", "pods", "", "", ""), false, "", ""},
		{node, res("create", "certificates.k8s.io", csr, "selfnodeclient", "", ""), true, "", ""},
		{node, res("create", "certificates.k8s.io", csr, "nodeclient", "", ""), false, "", ""},
		{node, res("get", "", "nodes", "", "", "n2"), true, "", ""},
		{node, res("update", "", "nodes", "status", "", "n1"), true, "", ""},
		{node, res("patch", "", "nodes", "", "", "n2"), false, "", `nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"`},
		{node, res("update", "", "nodes", "status", "", "n2"), false, "", `nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"`},
		{node, res("delete", "", "nodes", "", "", "n1"), false, "", ""},
		{node, res("update", "coordination.k8s.io", "leases", "", "kube-node-lease", "n1"), true, "", ""},
		{node, res("create", "coordination.k8s.io", "leases", "", "kube-node-lease", ""), true, "", ""},
		{node, res("get", "coordination.k8s.io", "leases", "", "kube-node-lease", "n2"), false, "node: can only access node lease with the same name as the requesting node", ""},
		{node, res("get", "coordination.k8s.io", "leases", "", "default", "n1"), false, `node: can only access leases in the "kube-node-lease" system namespace`, ""},
		{node, res("list", "coordination.k8s.io", "leases", "", "kube-node-lease", ""), false, "node: can only get, create, update, patch, or delete a node lease", ""},
		{node, res("watch", "", "secrets", "", "", ""), true, "", ""},
		{node, res("create", "", "secrets", "", "ns", ""), false, "node: can only read resources of this type", ""},
		{node, res("create", "", "serviceaccounts", "token", "ns", "default"), true, "", ""},
		{node, res("patch", "", "pods", "status", "ns", "p"), true, "", ""},
		{node, res("update", "", "pods", "", "ns", "p"), false, "", ""},
		{node, res("create", "", "services", "", "kube-system", ""), true, "", ""},
		{node, res("update", "", "services", "", "kube-system", "kube-dns"), true, "", ""},
		{node, res("update", "", "services", "", "kube-system", "other"), false, "", ""},
		{node, res("update", "discovery.k8s.io", "endpointslices", "", "kube-system", "kube-dns-n1"), true, "", ""},
		{node, res("update", "discovery.k8s.io", "endpointslices", "", "kube-system", "kube-dns-n2"), false, "", ""},
		{node, res("create", "", "namespaces", "", "", ""), false, "", ""},
		{notNode, res("get", "", "nodes", "", "", "n1"), false, "", ""},
	} {
		d := Authorize(Attributes{User: c.user, Resource: c.info})
		if d.Allowed != c.allowed || d.Reason != c.reason {
			t.Errorf("%s %s %+v: got %v %q, want %v %q", c.user.Name, c.info.Verb, *c.info, d.Allowed, d.Reason, c.allowed, c.reason)
		}
		if c.err != "" && (d.Err == nil || d.Err.Error() != c.err) {
			t.Errorf("%s %s %+v: error %v, want %s", c.user.Name, c.info.Verb, *c.info, d.Err, c.err)
		}
	}
	err := ForbiddenError(Attributes{User: node, Resource: res("get", "coordination.k8s.io", "leases", "", "kube-node-lease", "n2")},
		Decision{Reason: "node: can only access node lease with the same name as the requesting node"})
	want := `leases.coordination.k8s.io "n2" is forbidden: User "system:node:n1" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "kube-node-lease": node: can only access node lease with the same name as the requesting node`
	if err.Error() != want {
		t.Errorf("got %s\nwant %s", err, want)
	}
}
