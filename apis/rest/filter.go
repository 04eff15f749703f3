package rest

import (
	"fmt"

	"github.com/keelson/keelson/apis/catalogue"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// filter is a request's label and field selectors over stored objects.
type filter struct {
	label  labels.Selector
	field  fields.Selector
	fields func(runtime.Object) fields.Set
}

func (f *filter) empty() bool { return f.label.Empty() && f.field.Empty() }

func (f *filter) matches(obj runtime.Object) bool {
	if f.empty() {
		return true
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	if !f.label.Empty() && !f.label.Matches(labels.Set(m.GetLabels())) {
		return false
	}
	if f.field.Empty() {
		return true
	}
	set := fields.Set{"metadata.name": m.GetName(), "metadata.namespace": m.GetNamespace()}
	if f.fields != nil {
		for k, v := range f.fields(obj) {
			set[k] = v
		}
	}
	return f.field.Matches(set)
}

// parseFilter reads labelSelector and fieldSelector, refusing fields the resource does not
// support as upstream does.
func parseFilter(res *catalogue.Resource, newObj func() runtime.Object, labelSel, fieldSel string) (*filter, error) {
	ls, err := labels.Parse(labelSel)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	fs, err := fields.ParseSelector(fieldSel)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	f := &filter{label: ls, field: fs, fields: res.Fields}
	if !fs.Empty() {
		allowed := fields.Set{"metadata.name": "", "metadata.namespace": ""}
		if res.Fields != nil {
			for k := range res.Fields(newObj()) {
				allowed[k] = ""
			}
		}
		for _, req := range fs.Requirements() {
			if _, ok := allowed[req.Field]; ok {
				continue
			}
			// Kinds with fields of their own have a field-label conversion upstream, with its
			// wording; the rest fall to the scheme's default, with another.
			if res.Fields != nil {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
			}
			return nil, apierrors.NewBadRequest(fmt.Sprintf("%q is not a known field selector: only %q, %q", req.Field, "metadata.name", "metadata.namespace"))
		}
	}
	return f, nil
}

// singleName returns the name a field selector pins with metadata.name=..., if any.
func (f *filter) singleName() (string, bool) {
	return f.field.RequiresExactMatch("metadata.name")
}
