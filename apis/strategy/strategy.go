// Package strategy holds the create and update rules of each kind: what a write may set, defaults,
// validation and immutability. The REST handler calls a Strategy in one fixed order for every kind:
// PrepareForCreate/PrepareForUpdate, then Validate/ValidateUpdate.
package strategy

import (
	"reflect"

	"github.com/keelson/keelson/apis/catalogue"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Strategy is the set of rules for one resource or subresource.
type Strategy interface {
	// PrepareForCreate clears what a client may not set on create and fills defaults, before Validate.
	PrepareForCreate(obj runtime.Object)
	// PrepareForUpdate keeps what this endpoint may not change from old and fills defaults.
	PrepareForUpdate(obj, old runtime.Object)
	// Validate checks a new object; it must not modify it.
	Validate(obj runtime.Object) field.ErrorList
	// ValidateUpdate checks an update, immutable fields included; it must not modify either object.
	ValidateUpdate(obj, old runtime.Object) field.ErrorList
	// AllowCreateOnUpdate tells whether PUT of a missing object creates it.
	AllowCreateOnUpdate() bool
}

// Rules are the kind-specific parts a generic strategy calls.
type Rules struct {
	Default        func(obj runtime.Object)
	Validate       func(obj runtime.Object) field.ErrorList
	ValidateUpdate func(obj, old runtime.Object) field.ErrorList
	// NameFn validates metadata.name; nil means a DNS subdomain.
	NameFn apivalidation.ValidateNameFunc
	// AllowCreateOnUpdate is upstream's per-kind choice.
	AllowCreateOnUpdate bool
	// Generation says whether the kind tracks metadata.generation.
	Generation bool
	// PrepareForCreate sets what the server decides on creation of the main resource.
	PrepareForCreate func(obj runtime.Object)
	// PrepareForUpdate keeps what an update of the main resource may not change, beyond status.
	PrepareForUpdate func(obj, old runtime.Object)
	// PrepareForStatusUpdate keeps what a status write may not change beyond the spec.
	PrepareForStatusUpdate func(obj, old runtime.Object)
	// Subresources are the kind's own subresources that write part of the spec
	// (pods/ephemeralcontainers, pods/resize): Keep reduces a write to that part.
	Subresources map[string]SubresourceRules
}

// SubresourceRules limit a subresource write to its part of the object.
type SubresourceRules struct {
	Keep           func(obj, old runtime.Object)
	ValidateUpdate func(obj, old runtime.Object) field.ErrorList
}

type generic struct {
	res         *catalogue.Resource
	rules       Rules
	subresource string // "" or "status"
}

// For returns the strategy of a resource, or of one of its subresources that writes the object.
func For(res *catalogue.Resource, subresource string) Strategy {
	return &generic{res: res, rules: rulesFor(res), subresource: subresource}
}

func (g *generic) AllowCreateOnUpdate() bool {
	return g.subresource == "" && g.rules.AllowCreateOnUpdate
}

func (g *generic) PrepareForCreate(obj runtime.Object) {
	m, _ := meta.Accessor(obj)
	if g.res.HasSubresource("status") && g.res.Kind != "Node" {
		setField(obj, "Status", reflect.Value{})
	}
	if g.rules.Generation {
		m.SetGeneration(1)
	} else {
		m.SetGeneration(0)
	}
	if g.rules.PrepareForCreate != nil && g.subresource == "" {
		g.rules.PrepareForCreate(obj)
	}
	if g.rules.Default != nil {
		g.rules.Default(obj)
	}
}

func (g *generic) PrepareForUpdate(obj, old runtime.Object) {
	m, _ := meta.Accessor(obj)
	oldMeta, _ := meta.Accessor(old)
	if sub, ok := g.rules.Subresources[g.subresource]; ok {
		sub.Keep(obj, old)
		return
	}
	switch {
	case g.subresource == "status":
		// A status write changes status and nothing of the spec.
		setField(obj, "Spec", fieldOf(old, "Spec"))
		m.SetGeneration(oldMeta.GetGeneration())
		if g.rules.PrepareForStatusUpdate != nil {
			g.rules.PrepareForStatusUpdate(obj, old)
		}
	case g.res.HasSubresource("status"):
		// The main resource never changes status.
		setField(obj, "Status", fieldOf(old, "Status"))
		fallthrough
	default:
		m.SetGeneration(oldMeta.GetGeneration())
		if g.rules.Generation && specChanged(obj, old) {
			m.SetGeneration(oldMeta.GetGeneration() + 1)
		}
		if g.rules.PrepareForUpdate != nil && g.subresource == "" {
			g.rules.PrepareForUpdate(obj, old)
		}
	}
	if g.rules.Default != nil {
		g.rules.Default(obj)
	}
}

func (g *generic) Validate(obj runtime.Object) field.ErrorList {
	m, _ := meta.Accessor(obj)
	nameFn := g.rules.NameFn
	if nameFn == nil {
		nameFn = apivalidation.NameIsDNSSubdomain
	}
	errs := apivalidation.ValidateObjectMetaAccessor(m, g.res.Namespaced, nameFn, field.NewPath("metadata"))
	if g.rules.Validate != nil {
		errs = append(errs, g.rules.Validate(obj)...)
	}
	return errs
}

func (g *generic) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	m, _ := meta.Accessor(obj)
	oldMeta, _ := meta.Accessor(old)
	errs := apivalidation.ValidateObjectMetaAccessorUpdate(m, oldMeta, field.NewPath("metadata"))
	if sub, ok := g.rules.Subresources[g.subresource]; ok && sub.ValidateUpdate != nil {
		errs = append(errs, sub.ValidateUpdate(obj, old)...)
	}
	if g.subresource == "" {
		errs = append(errs, g.Validate(obj)...)
		if g.rules.ValidateUpdate != nil {
			errs = append(errs, g.rules.ValidateUpdate(obj, old)...)
		}
	}
	return errs
}

// specChanged reports a change of the Spec field, or of the whole object less metadata and status
// for kinds without one.
func specChanged(obj, old runtime.Object) bool {
	spec := fieldOf(obj, "Spec")
	if !spec.IsValid() {
		return false
	}
	return !apiequality.Semantic.DeepEqual(spec.Interface(), fieldOf(old, "Spec").Interface())
}

func fieldOf(obj runtime.Object, name string) reflect.Value {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}
	}
	return v.Elem().FieldByName(name)
}

// setField sets obj's field name to value, or to its zero value when value is invalid.
func setField(obj runtime.Object, name string, value reflect.Value) {
	f := fieldOf(obj, name)
	if !f.IsValid() || !f.CanSet() {
		return
	}
	if !value.IsValid() {
		f.Set(reflect.Zero(f.Type()))
		return
	}
	f.Set(value)
}

// nameIsPathSegment is upstream's rule for RBAC and certificate names: anything usable in a URL path.
func nameIsPathSegment(name string, prefix bool) []string {
	if prefix {
		return path.IsValidPathSegmentPrefix(name)
	}
	return path.IsValidPathSegmentName(name)
}
