package rest

import (
	"bytes"
	"fmt"
	"net/http"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var scaleGVK = schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}

// replicasOf reads spec.replicas, status.replicas and the selector of a scalable object.
func replicasOf(obj runtime.Object) (spec, status int32, selector string, err error) {
	one := func(p *int32) int32 {
		if p == nil {
			return 1
		}
		return *p
	}
	selectorString := func(s *metav1.LabelSelector) string {
		sel, err := metav1.LabelSelectorAsSelector(s)
		if err != nil {
			return ""
		}
		return sel.String()
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return one(o.Spec.Replicas), o.Status.Replicas, selectorString(o.Spec.Selector), nil
	case *appsv1.ReplicaSet:
		return one(o.Spec.Replicas), o.Status.Replicas, selectorString(o.Spec.Selector), nil
	case *appsv1.StatefulSet:
		return one(o.Spec.Replicas), o.Status.Replicas, selectorString(o.Spec.Selector), nil
	case *corev1.ReplicationController:
		return one(o.Spec.Replicas), o.Status.Replicas, labels.SelectorFromSet(o.Spec.Selector).String(), nil
	}
	return 0, 0, "", fmt.Errorf("%T has no scale subresource", obj)
}

func setReplicas(obj runtime.Object, n int32) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Spec.Replicas = &n
	case *appsv1.ReplicaSet:
		o.Spec.Replicas = &n
	case *appsv1.StatefulSet:
		o.Spec.Replicas = &n
	case *corev1.ReplicationController:
		o.Spec.Replicas = &n
	}
}

func scaleOf(obj runtime.Object) (*autoscalingv1.Scale, error) {
	spec, status, selector, err := replicasOf(obj)
	if err != nil {
		return nil, err
	}
	m, _ := meta.Accessor(obj)
	s := &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp()},
		Spec:   autoscalingv1.ScaleSpec{Replicas: spec},
		Status: autoscalingv1.ScaleStatus{Replicas: status, Selector: selector},
	}
	s.SetGroupVersionKind(scaleGVK)
	return s, nil
}

// serveScale serves the scale subresource: a Scale view of spec.replicas.
func (h *handler) serveScale(w http.ResponseWriter, r *http.Request, out output) {
	ctx := r.Context()
	switch h.info.Verb {
	case "get":
		obj, err := h.st.store.Get(ctx, h.st.store.Key(h.info.Namespace, h.info.Name))
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		s, err := scaleOf(obj)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		h.writeObject(w, out, http.StatusOK, s)
		return
	case "update", "patch":
	default:
		h.writeError(w, r, methodNotSupported(h.res, h.info.Verb))
		return
	}
	var body []byte
	var pt types.PatchType
	var err error
	var want *autoscalingv1.Scale
	if h.info.Verb == "update" {
		obj, err := h.decodeBody(r, scaleGVK)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		want = obj.(*autoscalingv1.Scale)
	} else {
		pt = types.PatchType(r.Header.Get("Content-Type"))
		if body, err = readBody(r); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	jsonInfo, _ := runtime.SerializerInfoForMediaType(h.codecs.SupportedMediaTypes(), mediaJSON)
	var opts metav1.UpdateOptions
	if err := h.decodeParams(r, &opts); err != nil {
		h.writeError(w, r, err)
		return
	}
	isDryRun, err := dryRun(opts.DryRun)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	result, _, err := h.updateObject(ctx, r, updateSpec{
		manager: opts.FieldManager,
		dryRun:  isDryRun,
		next: func(current runtime.Object) (runtime.Object, error) {
			cur, err := scaleOf(current)
			if err != nil {
				return nil, err
			}
			next := want
			if next == nil {
				var buf bytes.Buffer
				if err := jsonInfo.Serializer.Encode(cur, &buf); err != nil {
					return nil, err
				}
				patched, err := h.applyPatch(pt, buf.Bytes(), body, cur)
				if err != nil {
					return nil, err
				}
				obj, err := h.decodeObject(jsonInfo, patched, scaleGVK)
				if err != nil {
					return nil, err
				}
				next = obj.(*autoscalingv1.Scale)
			}
			if next.Spec.Replicas < 0 {
				return nil, apierrors.NewInvalid(scaleGVK.GroupKind(), h.info.Name, field.ErrorList{
					field.Invalid(field.NewPath("spec", "replicas"), next.Spec.Replicas, "must be greater than or equal to 0")})
			}
			obj := current.DeepCopyObject()
			m, _ := meta.Accessor(obj)
			m.SetResourceVersion(next.ResourceVersion)
			setReplicas(obj, next.Spec.Replicas)
			return obj, nil
		},
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	s, err := scaleOf(result)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeObject(w, out, http.StatusOK, s)
}
