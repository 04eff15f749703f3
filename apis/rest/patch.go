package rest

import (
	"bytes"
	"fmt"
	"mime"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/mergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/yaml"
)

func (h *handler) patch(w http.ResponseWriter, r *http.Request, out output) {
	var opts metav1.PatchOptions
	if err := h.decodeParams(r, &opts); err != nil {
		h.writeError(w, r, err)
		return
	}
	isDryRun, err := dryRun(opts.DryRun)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.setFieldValidation(opts.FieldValidation, "PatchOptions"); err != nil {
		h.writeError(w, r, err)
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	pt := types.PatchType(mt)
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyYAMLPatchType:
	default:
		h.writeError(w, r, unsupportedMediaType(string(types.JSONPatchType), string(types.MergePatchType), string(types.StrategicMergePatchType), string(types.ApplyYAMLPatchType)))
		return
	}
	if err := forceOnlyForApply(&opts, pt == types.ApplyYAMLPatchType); err != nil {
		h.writeError(w, r, err)
		return
	}
	body, err := readBody(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if pt == types.ApplyYAMLPatchType {
		h.apply(w, r, out, &opts, isDryRun, body)
		return
	}
	if pt != types.JSONPatchType {
		// Merge patches may come as YAML, as kubectl sometimes sends them.
		if body, err = yaml.ToJSON(body); err != nil {
			h.writeError(w, r, apierrors.NewBadRequest(err.Error()))
			return
		}
	}
	jsonInfo, _ := runtime.SerializerInfoForMediaType(h.codecs.SupportedMediaTypes(), mediaJSON)
	result, code, err := h.updateObject(r.Context(), r, updateSpec{
		subresource: h.info.Subresource,
		manager:     opts.FieldManager,
		dryRun:      isDryRun,
		next: func(current runtime.Object) (runtime.Object, error) {
			var buf bytes.Buffer
			if err := jsonInfo.Serializer.Encode(current, &buf); err != nil {
				return nil, err
			}
			patched, err := h.applyPatch(pt, buf.Bytes(), body, current)
			if err != nil {
				return nil, err
			}
			obj, err := h.decodeObject(jsonInfo, patched, h.res.GVK())
			if err != nil {
				return nil, err
			}
			m, _ := meta.Accessor(obj)
			if m.GetName() != h.info.Name {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), h.info.Name))
			}
			return obj, nil
		},
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.respond(w, r, out, code, result)
}

func (h *handler) applyPatch(pt types.PatchType, original, patch []byte, schemaObj runtime.Object) ([]byte, error) {
	switch pt {
	case types.JSONPatchType:
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		out, err := p.Apply(original)
		if err != nil {
			return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
		}
		return out, nil
	case types.MergePatchType:
		out, err := jsonpatch.MergePatch(original, patch)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		return out, nil
	default:
		out, err := strategicpatch.StrategicMergePatch(original, patch, schemaObj)
		if err != nil {
			switch err {
			case mergepatch.ErrBadJSONDoc, mergepatch.ErrBadPatchFormatForPrimitiveList, mergepatch.ErrBadPatchFormatForRetainKeys,
				mergepatch.ErrBadPatchFormatForSetElementOrderList, mergepatch.ErrUnsupportedStrategicMergePatchFormat:
				return nil, apierrors.NewBadRequest(err.Error())
			}
			return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
		}
		return out, nil
	}
}
