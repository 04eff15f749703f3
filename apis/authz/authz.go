// Package authz decides whether a user may make a request. Until RBAC is served, it grants what a
// fresh upstream cluster grants before any binding exists: everything to system:masters, and to
// every authenticated user only discovery, health, version and the self-review APIs (the bootstrap
// roles system:discovery, system:public-info-viewer and system:basic-user).
package authz

import (
	"fmt"
	"net/http"
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
	return Decision{}
}

// ForbiddenError is upstream's 403 for a refused request.
func ForbiddenError(a Attributes) error {
	user := "system:anonymous"
	if a.User != nil {
		user = a.User.Name
	}
	if a.Resource == nil {
		return apierrors.NewForbidden(schema.GroupResource{}, "", fmt.Errorf("User %q cannot %s path %q", user, a.Verb, a.Path))
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
		fmt.Errorf("User %q cannot %s resource %q in API group %q %s", user, info.Verb, resource, info.Group, scope))
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
