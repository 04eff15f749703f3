package rest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keelson/keelson/apis/strategy"
	"github.com/keelson/keelson/registry/store"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxBodyBytes is upstream's limit on a request body (3 MiB).
const maxBodyBytes = 3 * 1024 * 1024

func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if len(body) > maxBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBodyBytes))
	}
	return body, nil
}

// decodeBody reads the request object in its served version, refusing one of another kind.
func (h *handler) decodeBody(r *http.Request, want schema.GroupVersionKind) (runtime.Object, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	info, err := decoderFor(h.codecs, r.Header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	return h.decodeObject(info, body, want)
}

// decodeObject decodes body as want. Unknown and duplicate fields are refused, reported as
// warnings or ignored, as the request's fieldValidation directive says (Warn when unset).
func (h *handler) decodeObject(info runtime.SerializerInfo, body []byte, want schema.GroupVersionKind) (runtime.Object, error) {
	dec := info.Serializer
	if info.StrictSerializer != nil && h.fieldValidation != metav1.FieldValidationIgnore {
		dec = info.StrictSerializer
	}
	obj, gvk, err := dec.Decode(body, &want, nil)
	if strict, ok := runtime.AsStrictDecodingError(err); ok && obj != nil && h.fieldValidation != metav1.FieldValidationStrict {
		for _, e := range strict.Errors() {
			h.warn(e.Error())
		}
		err = nil
	}
	if err != nil {
		// Upstream's wording: name what the body claimed to be when it said, else quote the body.
		if gvk != nil && gvk.Kind != "" {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, want.Kind, err))
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the object provided is unrecognized (must be of type %s): %v (%s)", want.Kind, err, summarize(body)))
	}
	if gvk.Kind != want.Kind {
		// Upstream decodes the other kind, then fails to convert it to the resource's type.
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: converting (%s.%s) to (%s.%s): unknown conversion",
			gvk.Kind, gvk.Version, want.Kind, gvk.Version, gvk.Kind, internalPackage(want.Group), want.Kind))
	}
	if gvk.GroupVersion() != want.GroupVersion() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", gvk.GroupVersion(), want.GroupVersion()))
	}
	obj.GetObjectKind().SetGroupVersionKind(want)
	return obj, nil
}

// internalPackage is the Go package upstream's internal types of a group live in, as its
// conversion errors name them.
func internalPackage(group string) string {
	switch group {
	case "", "events.k8s.io":
		return "core"
	}
	name, _, _ := strings.Cut(group, ".")
	return name
}

// setFieldValidation records a write's fieldValidation directive, refusing unknown ones with
// upstream's 422 on the options kind (CreateOptions, UpdateOptions, PatchOptions).
func (h *handler) setFieldValidation(directive, optionsKind string) error {
	switch directive {
	case "":
		h.fieldValidation = metav1.FieldValidationWarn
	case metav1.FieldValidationIgnore, metav1.FieldValidationWarn, metav1.FieldValidationStrict:
		h.fieldValidation = directive
	default:
		return apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: optionsKind}, "", field.ErrorList{field.NotSupported(field.NewPath("fieldValidation"), directive,
			[]string{"", metav1.FieldValidationIgnore, metav1.FieldValidationStrict, metav1.FieldValidationWarn})})
	}
	return nil
}

// warn adds a Warning header to the response, as upstream reports non-fatal problems.
func (h *handler) warn(msg string) {
	h.rw.Header().Add("Warning", "299 - "+strconv.Quote(msg))
}

// summarize is the start of a body, as upstream quotes it in decode errors.
func summarize(body []byte) string {
	const max = 30
	if len(body) > max {
		return string(body[:max]) + " ..."
	}
	return string(body)
}

func fieldErrors(fieldName, detail string) field.ErrorList {
	return field.ErrorList{field.Forbidden(field.NewPath(fieldName), detail)}
}

func (h *handler) invalid(name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(schema.GroupKind{Group: h.res.Group, Kind: h.res.Kind}, name, errs)
}

func dryRun(values []string) (bool, error) {
	for _, v := range values {
		if v != metav1.DryRunAll {
			return false, apierrors.NewBadRequest(fmt.Sprintf("Invalid dryRun value: %q (supported: %q)", v, metav1.DryRunAll))
		}
	}
	return len(values) > 0, nil
}

// fieldManager is the manager a write is recorded under: the fieldManager parameter, or the
// start of the User-Agent as upstream.
func fieldManager(r *http.Request, explicit string) string {
	if explicit != "" {
		return explicit
	}
	ua := r.Header.Get("User-Agent")
	if i := strings.IndexByte(ua, '/'); i >= 0 {
		ua = ua[:i]
	}
	if len(ua) > 128 {
		ua = ua[:128]
	}
	return ua
}

// checkNamespace refuses content in a namespace that is missing or terminating, as upstream's
// NamespaceLifecycle admission does.
func (h *handler) checkNamespace(ctx context.Context, name string) error {
	if !h.res.Namespaced {
		return nil
	}
	ns := h.API.storageFor(schema.GroupResource{Resource: "namespaces"})
	obj, ok, _ := ns.cache.Get(ns.store.Key("", h.info.Namespace))
	if !ok {
		var err error
		obj, err = ns.store.Get(ctx, ns.store.Key("", h.info.Namespace))
		if err != nil {
			return err
		}
	}
	m, _ := meta.Accessor(obj)
	if m.GetDeletionTimestamp() != nil {
		err := apierrors.NewForbidden(h.res.GroupResource(), name,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", h.info.Namespace))
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: "NamespaceTerminating", Message: fmt.Sprintf("namespace %s is being terminated", h.info.Namespace), Field: "metadata.namespace"})
		return err
	}
	return nil
}

func (h *handler) create(w http.ResponseWriter, r *http.Request, out output) {
	ctx := r.Context()
	var opts metav1.CreateOptions
	if err := h.decodeParams(r, &opts); err != nil {
		h.writeError(w, r, err)
		return
	}
	isDryRun, err := dryRun(opts.DryRun)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.setFieldValidation(opts.FieldValidation, "CreateOptions"); err != nil {
		h.writeError(w, r, err)
		return
	}
	obj, err := h.decodeBody(r, h.res.GVK())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	created, err := h.createObject(ctx, r, obj, opts.FieldManager, isDryRun, false)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.respond(w, r, out, http.StatusCreated, created)
}

// createObject runs a create from a decoded served object to the stored result. fieldsSet says
// the object's managedFields are already recorded (a create by server-side apply).
func (h *handler) createObject(ctx context.Context, r *http.Request, obj runtime.Object, manager string, isDryRun, fieldsSet bool) (runtime.Object, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if h.res.Namespaced {
		if m.GetNamespace() == "" {
			m.SetNamespace(h.info.Namespace)
		} else if m.GetNamespace() != h.info.Namespace {
			return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
	} else {
		m.SetNamespace("")
	}
	if h.info.Name != "" && m.GetName() != h.info.Name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), h.info.Name))
	}
	if m.GetResourceVersion() != "" {
		return nil, apierrors.NewBadRequest("resourceVersion should not be set on objects to be created")
	}
	if m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(m.GetGenerateName() + utilrand.String(5))
	}
	obj, err = h.stored(obj)
	if err != nil {
		return nil, err
	}
	m, _ = meta.Accessor(obj)
	// System fields are the server's to set.
	m.SetUID(uuid.NewUUID())
	m.SetCreationTimestamp(metav1.NewTime(time.Now().Truncate(time.Second)))
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetSelfLink("")
	strat := strategy.For(h.res, "")
	strat.PrepareForCreate(obj)
	if errs := strat.Validate(obj); len(errs) > 0 {
		return nil, h.invalid(m.GetName(), errs)
	}
	if err := h.checkNamespace(ctx, m.GetName()); err != nil {
		return nil, err
	}
	if !fieldsSet {
		if obj, err = h.trackFields(nil, obj, fieldManager(r, manager)); err != nil {
			return nil, err
		}
	}
	if err = h.quota.Admit(ctx, h.res.GroupResource(), m.GetNamespace(), m.GetName(), obj, isDryRun); err != nil {
		return nil, err
	}
	hooks := h.hooks[h.res.GroupResource()]
	if hooks.BeforeCreate != nil {
		undo, err := hooks.BeforeCreate(ctx, obj, isDryRun)
		if err != nil {
			return nil, err
		}
		if undo != nil {
			defer func() {
				if err != nil {
					undo()
				}
			}()
		}
	}
	if isDryRun {
		return obj, nil
	}
	var created runtime.Object
	created, err = h.st.store.Create(ctx, h.st.store.Key(m.GetNamespace(), m.GetName()), obj)
	return created, err
}

// updateSpec describes one update: where the new object comes from, given the current one.
type updateSpec struct {
	subresource string
	manager     string
	dryRun      bool
	// next computes the new served-version object from the current served-version object.
	next func(current runtime.Object) (runtime.Object, error)
	// createIfMissing is the object to create when none exists and the strategy allows it.
	createIfMissing runtime.Object
	// createApplied builds the object a server-side apply creates when none exists.
	createApplied func(ctx context.Context) (runtime.Object, error)
	// fieldsSet says next already recorded the write in managedFields (server-side apply).
	fieldsSet bool
}

func (h *handler) update(w http.ResponseWriter, r *http.Request, out output) {
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
	if err := h.setFieldValidation(opts.FieldValidation, "UpdateOptions"); err != nil {
		h.writeError(w, r, err)
		return
	}
	obj, err := h.decodeBody(r, h.res.GVK())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	m, _ := meta.Accessor(obj)
	if m.GetName() != h.info.Name {
		h.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), h.info.Name)))
		return
	}
	if h.res.Namespaced && m.GetNamespace() != "" && m.GetNamespace() != h.info.Namespace {
		h.writeError(w, r, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request"))
		return
	}
	result, code, err := h.updateObject(r.Context(), r, updateSpec{
		subresource: h.info.Subresource,
		manager:     opts.FieldManager,
		dryRun:      isDryRun,
		next: func(current runtime.Object) (runtime.Object, error) {
			return obj.DeepCopyObject(), nil
		},
		createIfMissing: obj,
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.respond(w, r, out, code, result)
}

// updateObject runs an update with optimistic concurrency: a resourceVersion in the new object
// must match the stored one, otherwise the update is retried on a newer object until it applies.
func (h *handler) updateObject(ctx context.Context, r *http.Request, spec updateSpec) (runtime.Object, int, error) {
	strat := strategy.For(h.res, strategySubresource(spec.subresource))
	key := h.st.store.Key(h.info.Namespace, h.info.Name)
	var dryRunResult runtime.Object
	result, err := h.st.store.Update(ctx, key, h.st.cached(key), func(current runtime.Object) (runtime.Object, error) {
		servedCurrent, err := h.served(current)
		if err != nil {
			return nil, err
		}
		if servedCurrent == current {
			servedCurrent = current.DeepCopyObject()
		}
		next, err := spec.next(servedCurrent)
		if err != nil {
			return nil, err
		}
		obj, err := h.stored(next)
		if err != nil {
			return nil, err
		}
		m, _ := meta.Accessor(obj)
		old, _ := meta.Accessor(current)
		switch rv := m.GetResourceVersion(); {
		case rv == "":
			// An update without resourceVersion is unconditional, as upstream allows for every
			// built-in kind: it applies to whatever is stored now.
			m.SetResourceVersion(old.GetResourceVersion())
		case rv != old.GetResourceVersion():
			return nil, apierrors.NewConflict(h.res.GroupResource(), h.info.Name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		if m.GetNamespace() == "" {
			m.SetNamespace(old.GetNamespace())
		}
		if m.GetUID() == "" {
			m.SetUID(old.GetUID())
		}
		if created := old.GetCreationTimestamp(); !created.IsZero() {
			m.SetCreationTimestamp(created)
		}
		m.SetDeletionTimestamp(old.GetDeletionTimestamp())
		if old.GetDeletionGracePeriodSeconds() != nil && m.GetDeletionGracePeriodSeconds() == nil {
			m.SetDeletionGracePeriodSeconds(old.GetDeletionGracePeriodSeconds())
		}
		if old.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) > len(old.GetFinalizers()) {
			for _, f := range m.GetFinalizers() {
				if !contains(old.GetFinalizers(), f) {
					return nil, h.invalid(h.info.Name, field.ErrorList{field.Forbidden(field.NewPath("metadata", "finalizers"),
						fmt.Sprintf("no new finalizers can be added if the object is being deleted, found new finalizers %q", []string{f}))})
				}
			}
		}
		if spec.subresource == "finalize" {
			keepOnlyFinalizers(obj, current)
		}
		if hooks := h.hooks[h.res.GroupResource()]; hooks.PrepareUpdate != nil {
			hooks.PrepareUpdate(obj, current)
		}
		strat.PrepareForUpdate(obj, current)
		if errs := strat.ValidateUpdate(obj, current); len(errs) > 0 {
			return nil, h.invalid(h.info.Name, errs)
		}
		if err := h.quota.AdmitUpdate(ctx, h.res.GroupResource(), spec.subresource, h.info.Namespace, h.info.Name, obj, current, spec.dryRun); err != nil {
			return nil, err
		}
		if !spec.fieldsSet {
			if obj, err = h.trackFields(current, obj, fieldManager(r, spec.manager)); err != nil {
				return nil, err
			}
		}
		if spec.dryRun {
			m, _ := meta.Accessor(obj)
			m.SetResourceVersion(old.GetResourceVersion())
			dryRunResult = obj
			return nil, errNoWrite
		}
		return obj, nil
	})
	if apierrors.IsNotFound(err) && spec.createApplied != nil && h.info.Subresource == "" {
		obj, err := spec.createApplied(ctx)
		if err != nil {
			return nil, 0, err
		}
		created, err := h.createObject(ctx, r, obj, spec.manager, spec.dryRun, true)
		return created, http.StatusCreated, err
	}
	if apierrors.IsNotFound(err) && spec.createIfMissing != nil && strat.AllowCreateOnUpdate() {
		created, err := h.createObject(ctx, r, spec.createIfMissing, spec.manager, spec.dryRun, false)
		return created, http.StatusCreated, err
	}
	if err != nil {
		return nil, 0, err
	}
	if dryRunResult != nil {
		return dryRunResult, http.StatusOK, nil
	}
	// An update that removes the last finalizer of an object whose deletion waits only for its
	// finalizers (grace period 0) completes the deletion, as upstream's store does.
	if m, _ := meta.Accessor(result); m.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) == 0 && zeroGrace(m.GetDeletionGracePeriodSeconds()) && !isNamespace(result) {
		deleted, err := h.st.store.Delete(ctx, key, func(current runtime.Object) error {
			cm, _ := meta.Accessor(current)
			if cm.GetResourceVersion() != m.GetResourceVersion() {
				return errNotReady
			}
			return nil
		})
		if err == nil {
			h.afterDelete(ctx, deleted)
			return deleted, http.StatusOK, nil
		}
		if !errors.Is(err, errNotReady) && !apierrors.IsNotFound(err) {
			return nil, 0, err
		}
	}
	return result, http.StatusOK, nil
}

var errNotReady = errors.New("object changed")

// strategySubresource is the strategy a subresource write runs: status, finalize and the like
// have their own; scale writes through the main resource's.
func strategySubresource(sub string) string {
	switch sub {
	case "status", "finalize", "ephemeralcontainers", "resize", "approval":
		return sub
	}
	return ""
}

// keepOnlyFinalizers makes a namespaces/finalize update change nothing but spec.finalizers.
func keepOnlyFinalizers(obj, current runtime.Object) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return
	}
	kept := current.(*corev1.Namespace).DeepCopy()
	kept.Spec.Finalizers = ns.Spec.Finalizers
	*ns = *kept
}

func zeroGrace(g *int64) bool { return g != nil && *g == 0 }

func isNamespace(obj runtime.Object) bool {
	_, ok := obj.(*corev1.Namespace)
	return ok
}

func (h *handler) afterDelete(ctx context.Context, obj runtime.Object) {
	if hooks := h.hooks[h.res.GroupResource()]; hooks.AfterDelete != nil {
		hooks.AfterDelete(ctx, obj)
	}
}

// trackFields records the write in managedFields.
func (h *handler) trackFields(live, obj runtime.Object, manager string) (runtime.Object, error) {
	fm, err := h.fieldManagerFor(h.res.StorageGVK(), strategySubresource(h.info.Subresource))
	if err != nil {
		return nil, err
	}
	if live == nil {
		live = h.newStorageObject()
	}
	return fm.UpdateNoErrors(live, obj, manager), nil
}

// errNoWrite ends a store update without writing (dry run).
var errNoWrite = store.ErrNoChange
