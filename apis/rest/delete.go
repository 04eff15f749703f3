package rest

import (
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var deleteOptionsGVK = schema.GroupVersionKind{Version: "v1", Kind: "DeleteOptions"}

// deleteOptions reads DeleteOptions from the body when there is one, else from the query.
func (h *handler) deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	if err := h.decodeParams(r, opts); err != nil {
		return nil, err
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		info, err := decoderFor(h.codecs, r.Header.Get("Content-Type"))
		if err != nil {
			return nil, err
		}
		obj, gvk, err := info.Serializer.Decode(body, &deleteOptionsGVK, &metav1.DeleteOptions{})
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if gvk.Kind != "DeleteOptions" {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("expected DeleteOptions, got %s", gvk.Kind))
		}
		opts = obj.(*metav1.DeleteOptions)
	}
	if opts.OrphanDependents != nil && opts.PropagationPolicy != nil {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "DeleteOptions"}, "", fieldErrors("propagationPolicy", "orphanDependents and deletionPropagation cannot be both set"))
	}
	if p := opts.PropagationPolicy; p != nil {
		switch *p {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return nil, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "DeleteOptions"}, "",
				fieldErrors("propagationPolicy", fmt.Sprintf("Unsupported value: %q: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"", *p)))
		}
	}
	return opts, nil
}

func (h *handler) delete(w http.ResponseWriter, r *http.Request, out output) {
	opts, err := h.deleteOptions(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	isDryRun, err := dryRun(opts.DryRun)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	obj, immediate, err := h.deleteObject(r.Context(), h.info.Name, opts, isDryRun)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if immediate && !returnsDeletedObject(h.res.Kind) {
		m, _ := meta.Accessor(obj)
		st := &metav1.Status{Status: metav1.StatusSuccess, Details: &metav1.StatusDetails{
			Name: m.GetName(), Group: h.res.Group, Kind: h.res.Resource, UID: m.GetUID()}}
		st.SetGroupVersionKind(statusGVK)
		h.writeObject(w, out, http.StatusOK, st)
		return
	}
	h.respond(w, r, out, http.StatusOK, obj)
}

// returnsDeletedObject lists the kinds whose delete answers with the object rather than a Status,
// as upstream's registries choose.
func returnsDeletedObject(kind string) bool {
	switch kind {
	case "Pod", "Service", "Namespace", "PersistentVolume", "PersistentVolumeClaim", "Node":
		return true
	}
	return false
}

// deleteObject deletes one object, or marks it for deletion when finalizers or a grace period
// must run first. immediate tells whether it is gone from storage.
func (h *handler) deleteObject(ctx context.Context, name string, opts *metav1.DeleteOptions, isDryRun bool) (runtime.Object, bool, error) {
	key := h.st.store.Key(h.info.Namespace, name)
	current, err := h.st.store.Get(ctx, key)
	if err != nil {
		return nil, false, err
	}
	if err := h.checkPreconditions(name, current, opts.Preconditions); err != nil {
		return nil, false, err
	}
	grace := h.gracePeriod(current, opts)
	if ns, ok := current.(*corev1.Namespace); ok {
		// A namespace's first delete only marks it Terminating; once marked and finalized, the
		// next delete removes it, as upstream's namespace registry does.
		if ns.DeletionTimestamp != nil && len(ns.Spec.Finalizers) == 0 && len(ns.Finalizers) == 0 {
			return h.removeObject(ctx, key, name, opts, isDryRun)
		}
	}
	if h.mustMarkForDeletion(current, opts, grace) {
		var marked runtime.Object
		var result runtime.Object
		result, err := h.st.store.Update(ctx, key, h.st.cached(key), func(obj runtime.Object) (runtime.Object, error) {
			if err := h.checkPreconditions(name, obj, opts.Preconditions); err != nil {
				return nil, err
			}
			h.markForDeletion(obj, opts, grace)
			if isDryRun {
				marked = obj
				return nil, errNoWrite
			}
			return obj, nil
		})
		if marked != nil {
			return marked, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		m, _ := meta.Accessor(result)
		if len(m.GetFinalizers()) == 0 && !isNamespace(result) && grace == 0 {
			// Nothing left to wait for (a second delete with grace 0, say): remove it now.
			return h.removeObject(ctx, key, name, opts, isDryRun)
		}
		return result, false, nil
	}
	return h.removeObject(ctx, key, name, opts, isDryRun)
}

func (h *handler) removeObject(ctx context.Context, key, name string, opts *metav1.DeleteOptions, isDryRun bool) (runtime.Object, bool, error) {
	if isDryRun {
		obj, err := h.st.store.Get(ctx, key)
		return obj, true, err
	}
	deleted, err := h.st.store.Delete(ctx, key, func(current runtime.Object) error {
		return h.checkPreconditions(name, current, opts.Preconditions)
	})
	if err != nil {
		return nil, false, err
	}
	h.afterDelete(ctx, deleted)
	return deleted, true, nil
}

// checkPreconditions refuses a delete whose preconditions do not hold, worded as upstream's
// registry words it (naming the kind, not the resource).
func (h *handler) checkPreconditions(name string, obj runtime.Object, p *metav1.Preconditions) error {
	if p == nil {
		return nil
	}
	m, _ := meta.Accessor(obj)
	kind := schema.GroupResource{Group: h.res.Group, Resource: h.res.Kind}
	if p.UID != nil && *p.UID != m.GetUID() {
		return apierrors.NewConflict(kind, name, fmt.Errorf("the UID in the precondition (%s) does not match the UID in record (%s). The object might have been deleted and then recreated", *p.UID, m.GetUID()))
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
		return apierrors.NewConflict(kind, name, fmt.Errorf("the ResourceVersion in the precondition (%s) does not match the ResourceVersion in record (%s). The object might have been modified", *p.ResourceVersion, m.GetResourceVersion()))
	}
	return nil
}

// gracePeriod is how long the object may take to go: pods on a node get their termination grace
// period; everything else goes at once.
func (h *handler) gracePeriod(obj runtime.Object, opts *metav1.DeleteOptions) int64 {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return 0
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0
	}
	if opts.GracePeriodSeconds != nil {
		return *opts.GracePeriodSeconds
	}
	if pod.DeletionGracePeriodSeconds != nil {
		return *pod.DeletionGracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return 30
}

func propagationFinalizer(opts *metav1.DeleteOptions) string {
	switch {
	case opts.PropagationPolicy != nil && *opts.PropagationPolicy == metav1.DeletePropagationOrphan,
		opts.PropagationPolicy == nil && opts.OrphanDependents != nil && *opts.OrphanDependents:
		return metav1.FinalizerOrphanDependents
	case opts.PropagationPolicy != nil && *opts.PropagationPolicy == metav1.DeletePropagationForeground:
		return metav1.FinalizerDeleteDependents
	}
	return ""
}

func (h *handler) mustMarkForDeletion(obj runtime.Object, opts *metav1.DeleteOptions, grace int64) bool {
	m, _ := meta.Accessor(obj)
	return len(m.GetFinalizers()) > 0 || propagationFinalizer(opts) != "" || grace > 0 || isNamespace(obj)
}

// markForDeletion sets deletionTimestamp and the propagation finalizer, as upstream records a
// delete that cannot complete yet.
func (h *handler) markForDeletion(obj runtime.Object, opts *metav1.DeleteOptions, grace int64) {
	m, _ := meta.Accessor(obj)
	if f := propagationFinalizer(opts); f != "" {
		fins := m.GetFinalizers()
		kept := fins[:0:0]
		for _, existing := range fins {
			// Orphan and foreground are exclusive: the newer request wins.
			if existing == metav1.FinalizerOrphanDependents || existing == metav1.FinalizerDeleteDependents {
				continue
			}
			kept = append(kept, existing)
		}
		m.SetFinalizers(append(kept, f))
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	if m.GetDeletionTimestamp() == nil && m.GetGeneration() > 0 {
		// Marking an object for deletion is a change of its desired state, as upstream counts it.
		m.SetGeneration(m.GetGeneration() + 1)
	}
	if ns, ok := obj.(*corev1.Namespace); ok {
		// Namespaces carry no grace period: their deletion waits on finalizers only.
		if ns.DeletionTimestamp == nil {
			ns.DeletionTimestamp = &now
		}
		ns.Status.Phase = corev1.NamespaceTerminating
		return
	}
	if m.GetDeletionTimestamp() == nil {
		deadline := metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
		m.SetDeletionTimestamp(&deadline)
		m.SetDeletionGracePeriodSeconds(&grace)
	} else if old := m.GetDeletionGracePeriodSeconds(); old != nil && grace < *old {
		// A later delete may only shorten the grace period.
		deadline := metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
		m.SetDeletionTimestamp(&deadline)
		m.SetDeletionGracePeriodSeconds(&grace)
	}
}

func (h *handler) deleteCollection(w http.ResponseWriter, r *http.Request, out output) {
	ctx := r.Context()
	opts, err := h.deleteOptions(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	isDryRun, err := dryRun(opts.DryRun)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var listOpts metav1.ListOptions
	if err := h.decodeParams(r, &listOpts); err != nil {
		h.writeError(w, r, err)
		return
	}
	f, err := parseFilter(h.res, h.newStorageObject, listOpts.LabelSelector, listOpts.FieldSelector)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.st.cache.WaitFresh(ctx); err != nil {
		h.writeError(w, r, apierrors.NewServiceUnavailable(err.Error()))
		return
	}
	all, rv := h.st.cache.List(h.st.store.NamespacePrefix(h.info.Namespace))
	var deleted []runtime.Object
	for _, o := range all {
		if !f.matches(o) {
			continue
		}
		m, _ := meta.Accessor(o)
		obj, _, err := h.deleteObject(ctx, m.GetName(), opts, isDryRun)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		deleted = append(deleted, obj)
	}
	h.respondList(w, r, out, &listResult{items: deleted, revision: rv})
}
