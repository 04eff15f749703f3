// Package authz decides whether a user may make a request. Until RBAC is served, it grants what a
// fresh upstream cluster grants before any binding exists: everything to system:masters, and to
// every authenticated user only discovery, health, version and the self-review APIs (the bootstrap
// roles system:discovery, system:public-info-viewer and system:basic-user).
//
// Joining nodes get what a kubeadm cluster grants them, and no more:
//
//   - system:anonymous may get the ConfigMap kube-public/cluster-info (kubeadm's
//     kubeadm:bootstrap-signer-clusterinfo Role), from which a joining node learns the cluster CA.
//   - system:bootstrappers (users of bootstrap tokens) may create, get, list and watch
//     certificatesigningrequests (the system:node-bootstrapper role kubeadm binds) and create
//     certificatesigningrequests/nodeclient, the permission the CSR approver checks to
//     auto-approve a kubelet client certificate (kubeadm's kubeadm:node-autoapprove-bootstrap,
//     which it binds to the group of its default tokens; here every bootstrapper holds it).
//   - system:nodes, as the user system:node:<name>, may do what the agent's kubelet, service proxy
//     and cluster DNS do, modelled on upstream's Node authorizer and the system:node and
//     system:node-proxier roles; see nodeRules. Upstream's Node authorizer follows a graph of
//     pods bound to the node and what they reference, and NodeRestriction admission checks the
//     bodies of writes; this authorizer looks at the request's attributes only: a node may
//     read every Node, pod, configmap, secret, PVC, PV, service and slice, write the status of
//     and evict any pod, and request tokens for any service account. Writes to another Node
//     or its status get NodeRestriction's refusal here; node creation and pod creation (mirror
//     pods only) are checked by apis/admission/noderestriction; node Leases are held to the
//     node's name, with the Node authorizer's reasons.
package authz

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/keelson/keelson/apis/authn"
	"github.com/keelson/keelson/apis/request"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Decision is the answer for one request, with upstream's reason wording.
type Decision struct {
	Allowed bool
	Reason  string
	// Err, on a refusal, is the error to answer in place of the authorizer's: what upstream
	// answers for a request its authorizer lets through and its admission refuses before
	// looking at the body (a node writing another Node).
	Err error
}

// nonResourcePaths anyone authenticated may GET.
func publicPath(path string) bool {
	for _, p := range []string{"/api", "/apis", "/healthz", "/livez", "/readyz", "/version", "/openapi"} {
		if path == p || path == p+"/" || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// selfReviews are the resources system:basic-user may create.
var selfReviews = map[schema.GroupResource]bool{
	{Group: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"}: true,
	{Group: "authorization.k8s.io", Resource: "selfsubjectrulesreviews"}:  true,
	{Group: "authentication.k8s.io", Resource: "selfsubjectreviews"}:      true,
}

// Attributes are what a decision looks at.
type Attributes struct {
	User *authn.User
	// Resource is set for resource requests; Path and Verb otherwise.
	Resource *request.Info
	Path     string
	Verb     string
}

// Authorize decides a request.
func Authorize(a Attributes) Decision {
	if a.User == nil {
		return Decision{}
	}
	for _, g := range a.User.Groups {
		if g == authn.GroupMasters {
			return Decision{Allowed: true}
		}
	}
	if a.Resource == nil {
		if (a.Verb == "get" || a.Verb == "head") && publicPath(a.Path) {
			return Decision{Allowed: true}
		}
		return Decision{}
	}
	if a.Resource.Verb == "create" && a.Resource.Subresource == "" && selfReviews[a.Resource.GroupResource()] {
		return Decision{Allowed: true}
	}
	if a.User.Name == authn.UserAnonymous && isClusterInfo(a.Resource) {
		return Decision{Allowed: true}
	}
	if slices.Contains(a.User.Groups, authn.GroupBootstrappers) && bootstrapperMay(a.Resource) {
		return Decision{Allowed: true}
	}
	if node, ok := NodeName(a.User); ok {
		return nodeDecision(node, a.Resource)
	}
	return Decision{}
}

// ForbiddenError is upstream's 403 for a refused request: the decision's error, or "User ...
// cannot ..." followed by the decision's reason.
func ForbiddenError(a Attributes, d Decision) error {
	if d.Err != nil {
		return d.Err
	}
	reason := ""
	if d.Reason != "" {
		reason = ": " + d.Reason
	}
	user := "system:anonymous"
	if a.User != nil {
		user = a.User.Name
	}
	if a.Resource == nil {
		return apierrors.NewForbidden(schema.GroupResource{}, "", fmt.Errorf("User %q cannot %s path %q%s", user, a.Verb, a.Path, reason))
	}
	info := a.Resource
	resource := info.Resource
	if info.Subresource != "" {
		resource += "/" + info.Subresource
	}
	scope := "at the cluster scope"
	if info.Namespace != "" {
		scope = fmt.Sprintf("in the namespace %q", info.Namespace)
	}
	return apierrors.NewForbidden(info.GroupResource(), info.Name,
		fmt.Errorf("User %q cannot %s resource %q in API group %q %s%s", user, info.Verb, resource, info.Group, scope, reason))
}

// Verb is the Kubernetes verb of a non-resource request.
func Verb(r *http.Request) string {
	switch r.Method {
	case http.MethodGet:
		return "get"
	case http.MethodHead:
		return "head"
	case http.MethodPost:
		return "post"
	case http.MethodPut:
		return "put"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(r.Method)
}
