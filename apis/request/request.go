// Package request reads what a URL names: the resource, namespace, name, subresource and verb
// of a resource request, as the authorizer and the REST handlers both need it.
package request

import (
	"context"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Info is what a resource URL names: /api/v1/namespaces/{ns}/{resource}/{name}/{subresource}
// or /apis/{group}/{version}/....
type Info struct {
	schema.GroupVersionResource
	Namespace   string
	Name        string
	Subresource string
	// Verb is the Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
	Verb string
}

// Parse splits a resource URL. ok is false when the path is not a resource path (discovery
// documents, health, unknown roots).
func Parse(r *http.Request) (info Info, ok bool) {
	parts := splitPath(r.URL.Path)
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		info.Version = parts[1]
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		info.Group, info.Version = parts[1], parts[2]
		parts = parts[3:]
	default:
		return info, false
	}
	watchPath := false
	if parts[0] == "watch" {
		// The deprecated /watch/ prefix is still served by upstream.
		watchPath = true
		parts = parts[1:]
		if len(parts) == 0 {
			return info, false
		}
	}
	// namespaces/{ns}/{resource}... ; a bare namespaces/{name}[/{sub}] names the namespace itself.
	// namespaces/{name}/status and /finalize are the namespace's own subresources; no resource
	// has those names.
	namespaceSubresource := len(parts) == 3 && parts[0] == "namespaces" && (parts[2] == "status" || parts[2] == "finalize")
	if parts[0] == "namespaces" && len(parts) >= 3 && !namespaceSubresource {
		info.Namespace = parts[1]
		parts = parts[2:]
	}
	info.Resource = parts[0]
	if len(parts) > 1 {
		info.Name = parts[1]
	}
	if len(parts) > 2 {
		info.Subresource = parts[2]
	}
	if len(parts) > 3 && parts[2] != "proxy" {
		// Only proxy subresources take a longer path: the rest is the path proxied to. Any
		// other names no subresource.
		info.Subresource = strings.Join(parts[2:], "/")
	}
	isWatch := watchPath || r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1"
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case info.Name == "" && isWatch:
			info.Verb = "watch"
		case info.Name == "":
			info.Verb = "list"
		case isWatch:
			// A watch of one object: a field selector on its name.
			info.Verb = "watch"
		default:
			info.Verb = "get"
		}
	case http.MethodPost:
		info.Verb = "create"
	case http.MethodPut:
		info.Verb = "update"
	case http.MethodPatch:
		info.Verb = "patch"
	case http.MethodDelete:
		if info.Name == "" {
			info.Verb = "deletecollection"
		} else {
			info.Verb = "delete"
		}
	default:
		info.Verb = strings.ToLower(r.Method)
	}
	return info, true
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

type infoKey struct{}

type parsed struct {
	info Info
	ok   bool
}

// WithInfo parses r once and returns it carrying the result, for From to return to later links of
// the request chain.
func WithInfo(r *http.Request) *http.Request {
	info, ok := Parse(r)
	return r.WithContext(context.WithValue(r.Context(), infoKey{}, parsed{info, ok}))
}

// From returns what WithInfo recorded, or parses r when nothing was.
func From(r *http.Request) (Info, bool) {
	if p, ok := r.Context().Value(infoKey{}).(parsed); ok {
		return p.info, p.ok
	}
	return Parse(r)
}
