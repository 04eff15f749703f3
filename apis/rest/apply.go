package rest

import (
	"context"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// apply serves a server-side apply patch: the field manager merges the applied configuration into
// the live object (or an empty one, creating it), recording ownership and refusing to take fields
// another manager owns unless forced. The result then goes the way of any other write.
func (h *handler) apply(w http.ResponseWriter, r *http.Request, out output, opts *metav1.PatchOptions, isDryRun bool, body []byte) {
	ctx := r.Context()
	if opts.FieldManager == "" {
		h.writeError(w, r, apierrors.NewBadRequest("PATCH requests with apply patches must include fieldManager"))
		return
	}
	patch := &unstructured.Unstructured{Object: map[string]interface{}{}}
	if err := yaml.Unmarshal(body, &patch.Object); err != nil {
		h.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("error decoding YAML: %v", err)))
		return
	}
	if h.info.Subresource == "" || h.info.Subresource == "status" || h.info.Subresource == "approval" {
		if gvk := patch.GroupVersionKind(); gvk.GroupVersion() != h.res.GroupVersion() || gvk.Kind != h.res.Kind {
			h.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", gvk.GroupVersion(), h.res.GroupVersion())))
			return
		}
	}
	if name := patch.GetName(); name != "" && name != h.info.Name {
		h.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", name, h.info.Name)))
		return
	}
	force := opts.Force != nil && *opts.Force
	fm, err := h.fieldManagerFor(h.res.GVK(), strategySubresource(h.info.Subresource))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if h.fieldValidation != metav1.FieldValidationIgnore {
		var strict map[string]interface{}
		if err := yaml.UnmarshalStrict(body, &strict); err != nil {
			if h.fieldValidation == metav1.FieldValidationStrict {
				h.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("error strict decoding YAML: %v", err)))
				return
			}
			h.warn(err.Error())
		}
	}
	applyTo := func(live runtime.Object) (runtime.Object, error) {
		return fm.Apply(live, patch.DeepCopy(), opts.FieldManager, force)
	}
	result, code, err := h.updateObject(ctx, r, updateSpec{
		subresource: h.info.Subresource,
		manager:     opts.FieldManager,
		dryRun:      isDryRun,
		fieldsSet:   true,
		next:        applyTo,
		createApplied: func(ctx context.Context) (runtime.Object, error) {
			empty, err := h.scheme.New(h.res.GVK())
			if err != nil {
				return nil, err
			}
			empty.GetObjectKind().SetGroupVersionKind(h.res.GVK())
			m, _ := meta.Accessor(empty)
			m.SetName(h.info.Name)
			m.SetNamespace(h.info.Namespace)
			return applyTo(empty)
		},
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.respond(w, r, out, code, result)
}

// forceOnlyForApply refuses force on other patches, as upstream validates PatchOptions.
func forceOnlyForApply(opts *metav1.PatchOptions, isApply bool) error {
	if opts.Force != nil && !isApply {
		return apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "PatchOptions"}, "",
			field.ErrorList{field.Forbidden(field.NewPath("force"), "may not be specified for non-apply patch")})
	}
	return nil
}
