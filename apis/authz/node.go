package authz

import (
	"fmt"
	"slices"
	"strings"

	"github.com/keelson/keelson/apis/authn"
	"github.com/keelson/keelson/apis/request"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Node identities, as upstream's node identifier reads them.
const (
	GroupNodes     = "system:nodes"
	NodeUserPrefix = "system:node:"
)

// NodeName is the node a user is the kubelet of: users named system:node:<name> in the group
// system:nodes.
func NodeName(u *authn.User) (string, bool) {
	if u == nil || !strings.HasPrefix(u.Name, NodeUserPrefix) || !slices.Contains(u.Groups, GroupNodes) {
		return "", false
	}
	name := strings.TrimPrefix(u.Name, NodeUserPrefix)
	return name, name != ""
}

// isClusterInfo is the ConfigMap kube-public/cluster-info, read.
func isClusterInfo(info *request.Info) bool {
	return info.Group == "" && info.Resource == "configmaps" && info.Subresource == "" &&
		info.Namespace == "kube-public" && info.Name == "cluster-info" && info.Verb == "get"
}

// rule grants verbs on a resource (and subresource) of a group, in a namespace when namespace
// is set, to objects whose name names accepts when names is set (names also sees requests
// without a name, such as create).
type rule struct {
	group, resource, subresource string
	verbs                        []string
	namespace                    string
	names                        func(node, name string) bool
}

var read = []string{"get", "list", "watch"}

func (r rule) allows(node string, info *request.Info) bool {
	if info.Group != r.group || info.Resource != r.resource || info.Subresource != r.subresource {
		return false
	}
	if !slices.Contains(r.verbs, info.Verb) {
		return false
	}
	if r.namespace != "" && info.Namespace != r.namespace {
		return false
	}
	return r.names == nil || r.names(node, info.Name)
}

// bootstrapperRules are system:node-bootstrapper's, with the nodeclient auto-approval.
var bootstrapperRules = []rule{
	{group: "certificates.k8s.io", resource: "certificatesigningrequests", verbs: []string{"create", "get", "list", "watch"}},
	{group: "certificates.k8s.io", resource: "certificatesigningrequests", subresource: "nodeclient", verbs: []string{"create"}},
}

func bootstrapperMay(info *request.Info) bool {
	for _, r := range bootstrapperRules {
		if r.allows("", info) {
			return true
		}
	}
	return false
}

// kubeDNSSlice accepts the kube-dns EndpointSlices the node's cluster DNS writes: kube-dns-<node>
// and kube-dns-<node>-ipv6.
func kubeDNSSlice(node, name string) bool {
	return name == "" || name == "kube-dns-"+node || name == "kube-dns-"+node+"-ipv6"
}

func kubeDNSService(_, name string) bool { return name == "" || name == "kube-dns" }

// nodeRules are what a node's agent may do: the kubelet's (upstream's system:node role, as the
// Node authorizer grants it), the service proxy's (system:node-proxier) and the cluster DNS's
// (system:coredns, plus writing the kube-dns Service and this node's slices of it).
var nodeRules = []rule{
	// The node's own Node object and its status (writes to other Nodes are refused in
	// nodeDecision, create in admission); all Nodes read, as the proxy and CoreDNS do.
	{resource: "nodes", verbs: append([]string{"create", "update", "patch"}, read...)},
	{resource: "nodes", subresource: "status", verbs: []string{"update", "patch"}},
	// Pods: read, mirror pods, status, eviction.
	{resource: "pods", verbs: append([]string{"create", "delete"}, read...)},
	{resource: "pods", subresource: "status", verbs: []string{"update", "patch"}},
	{resource: "pods", subresource: "eviction", verbs: []string{"create"}},
	{resource: "events", verbs: []string{"create", "update", "patch"}},
	{group: "events.k8s.io", resource: "events", verbs: []string{"create", "update", "patch"}},
	// What pods reference.
	{resource: "configmaps", verbs: read},
	{resource: "secrets", verbs: read},
	{resource: "persistentvolumeclaims", verbs: read},
	{resource: "persistentvolumes", verbs: read},
	{resource: "serviceaccounts", subresource: "token", verbs: []string{"create"}},
	// Services for the proxy, the pods' environment and the cluster DNS.
	{resource: "services", verbs: read},
	{resource: "endpoints", verbs: read},
	{group: "discovery.k8s.io", resource: "endpointslices", verbs: read},
	{resource: "namespaces", verbs: read},
	{resource: "services", namespace: "kube-system", verbs: []string{"create", "update", "patch"}, names: kubeDNSService},
	{group: "discovery.k8s.io", resource: "endpointslices", namespace: "kube-system", verbs: []string{"create", "update", "patch", "delete"}, names: kubeDNSSlice},
	// Client certificate renewal, and its auto-approval (kubeadm's selfnodeclient binding).
	{group: "certificates.k8s.io", resource: "certificatesigningrequests", verbs: []string{"create", "get", "list", "watch"}},
	{group: "certificates.k8s.io", resource: "certificatesigningrequests", subresource: "selfnodeclient", verbs: []string{"create"}},
}

// nodeReasons are the Node authorizer's reasons for refusing a verb on the resources it
// subdivides, named as upstream's union authorizer names them ("node: ...").
var nodeReasons = map[string]string{
	"secrets":                "can only read resources of this type",
	"configmaps":             "can only read resources of this type",
	"persistentvolumeclaims": "can only get individual resources of this type",
	"persistentvolumes":      "can only get individual resources of this type",
	"serviceaccounts":        "can only create tokens for individual service accounts",
}

// nodeDecision is upstream's Node authorizer's answer, with its reasons, for leases; for
// writes to another Node it is the refusal upstream's NodeRestriction admission gives them;
// otherwise nodeRules decide.
func nodeDecision(node string, info *request.Info) Decision {
	deny := func(reason string) Decision { return Decision{Reason: "node: " + reason} }
	switch {
	case info.Group == "coordination.k8s.io" && info.Resource == "leases":
		switch info.Verb {
		case "get", "create", "update", "patch", "delete":
		default:
			return deny("can only get, create, update, patch, or delete a node lease")
		}
		if info.Namespace != "kube-node-lease" {
			return deny(`can only access leases in the "kube-node-lease" system namespace`)
		}
		// The name of a lease being created is in its body, which the authorizer does not see.
		if info.Verb != "create" && info.Name != node {
			return deny("can only access node lease with the same name as the requesting node")
		}
		return Decision{Allowed: true}
	case info.Group == "" && info.Resource == "nodes" && (info.Verb == "update" || info.Verb == "patch") &&
		(info.Subresource == "" || info.Subresource == "status") && info.Name != node:
		return Decision{Err: NodeRestrictionError(node, info.Name)}
	}
	for _, r := range nodeRules {
		if r.allows(node, info) {
			return Decision{Allowed: true}
		}
	}
	if reason, ok := nodeReasons[info.Resource]; ok && info.Group == "" {
		return deny(reason)
	}
	return Decision{}
}

// NodeRestrictionError is upstream's NodeRestriction refusal of a node writing another Node.
func NodeRestrictionError(node, name string) error {
	return apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, name, fmt.Errorf("node %q is not allowed to modify node %q", node, name))
}
