// Package catalogue lists every resource the API server serves: its Go type, scope, verbs, names,
// subresources and where it lives in etcd. Everything else in the request path is generic and reads
// its per-resource facts from here.
package catalogue

import (
	"strings"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Verbs a resource answers to, in the order upstream discovery lists them.
var (
	AllVerbs         = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	NoCollectionDels = []string{"create", "delete", "get", "list", "patch", "update", "watch"}
	CreateOnly       = []string{"create"}
)

// Subresource is a path below an object, such as pods/status.
type Subresource struct {
	Name  string
	Kind  schema.GroupVersionKind // the kind sent and returned; empty means the parent's kind
	Verbs []string
}

// Resource describes one served group/version/resource.
type Resource struct {
	schema.GroupVersionResource
	Kind         string
	Namespaced   bool
	ShortNames   []string
	Categories   []string
	Verbs        []string
	Subresources []Subresource

	// EtcdPrefix is the key prefix under /registry/, upstream's layout (e.g. "services/specs").
	EtcdPrefix string
	// StorageVersion is the group/version objects are stored as. Resources sharing an EtcdPrefix
	// share one storage version and one watch cache.
	StorageVersion schema.GroupVersion

	// Fields takes the stored object (its StorageVersion type) and returns the field-selectable fields of an object beyond metadata.name and
	// metadata.namespace. Nil means only those two.
	Fields func(obj runtime.Object) fields.Set

	// Virtual resources (the review APIs) are not stored: create answers from Review.
	Virtual bool
}

// GVK is the kind the resource serves.
func (r *Resource) GVK() schema.GroupVersionKind {
	return r.GroupVersion().WithKind(r.Kind)
}

// Singular is the lower-case kind, as discovery reports it.
func (r *Resource) Singular() string { return strings.ToLower(r.Kind) }

// StorageGVK is the kind objects are stored as.
func (r *Resource) StorageGVK() schema.GroupVersionKind {
	return r.StorageVersion.WithKind(r.Kind)
}

// HasSubresource tells whether the resource serves the named subresource.
func (r *Resource) HasSubresource(name string) bool {
	return r.Subresource(name) != nil
}

// Subresource returns the named subresource or nil.
func (r *Resource) Subresource(name string) *Subresource {
	for i := range r.Subresources {
		if r.Subresources[i].Name == name {
			return &r.Subresources[i]
		}
	}
	return nil
}

// HasVerb tells whether the resource answers to verb.
func (r *Resource) HasVerb(verb string) bool {
	for _, v := range r.Verbs {
		if v == verb {
			return true
		}
	}
	return false
}

// Catalogue is the set of served resources, looked up by group/version/resource.
type Catalogue struct {
	resources []*Resource
	byGVR     map[schema.GroupVersionResource]*Resource
	groups    []GroupVersions
}

// GroupVersions is one API group with its served versions, preferred first.
type GroupVersions struct {
	Group    string
	Versions []string
}

// Lookup returns the resource served at gvr, or nil.
func (c *Catalogue) Lookup(gvr schema.GroupVersionResource) *Resource {
	return c.byGVR[gvr]
}

// Resources lists every served resource in catalogue order.
func (c *Catalogue) Resources() []*Resource { return c.resources }

// Groups lists the served groups in discovery order (the legacy core group first).
func (c *Catalogue) Groups() []GroupVersions { return c.groups }

// ForGroupVersion lists the resources of one group/version.
func (c *Catalogue) ForGroupVersion(gv schema.GroupVersion) []*Resource {
	var out []*Resource
	for _, r := range c.resources {
		if r.GroupVersion() == gv {
			out = append(out, r)
		}
	}
	return out
}

// New builds a catalogue from resources, filling defaults: verbs, etcd prefix, storage version.
func New(resources []*Resource) *Catalogue {
	c := &Catalogue{byGVR: map[schema.GroupVersionResource]*Resource{}}
	seenGroup := map[string]int{}
	for _, r := range resources {
		if r.Verbs == nil {
			r.Verbs = AllVerbs
		}
		if r.EtcdPrefix == "" {
			r.EtcdPrefix = r.Resource
		}
		if r.StorageVersion.Empty() && r.StorageVersion.Version == "" {
			r.StorageVersion = r.GroupVersion()
		}
		c.resources = append(c.resources, r)
		c.byGVR[r.GroupVersionResource] = r
		i, ok := seenGroup[r.Group]
		if !ok {
			i = len(c.groups)
			seenGroup[r.Group] = i
			c.groups = append(c.groups, GroupVersions{Group: r.Group})
		}
		g := &c.groups[i]
		found := false
		for _, v := range g.Versions {
			if v == r.Version {
				found = true
			}
		}
		if !found {
			g.Versions = append(g.Versions, r.Version)
		}
	}
	return c
}
