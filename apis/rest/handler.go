package rest

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/keelson/keelson/apis/catalogue"
	"github.com/keelson/keelson/apis/connect"
	"github.com/keelson/keelson/apis/request"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// handler serves one request for one resource.
type handler struct {
	*API
	res  *catalogue.Resource
	info request.Info
	st   *storage
	rw   http.ResponseWriter
	// fieldValidation is the write's directive for unknown and duplicate fields.
	fieldValidation string
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	if h.connect != nil && connect.Serves(h.info.Resource, h.info.Subresource) && h.res.Group == "" {
		if err := h.connect.ServeHTTP(w, r, h.info); err != nil {
			h.writeError(w, r, err)
		}
		return
	}
	out, err := negotiate(h.codecs, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	switch h.info.Subresource {
	case "", "status", "ephemeralcontainers", "resize", "approval":
	case "scale":
		h.serveScale(w, r, out)
		return
	case "binding":
		h.serveBinding(w, r, out)
		return
	case "token":
		h.serveTokenRequest(w, r, out)
		return
	case "eviction":
		h.serveEviction(w, r, out)
		return
	case "finalize":
		if h.res.Kind == "Namespace" {
			h.update(w, r, out)
			return
		}
		h.writeError(w, r, notFoundPath())
		return
	default:
		h.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("%s/%s is not available on this server yet", h.res.Resource, h.info.Subresource)))
		return
	}
	switch h.info.Verb {
	case "get":
		h.get(w, r, out)
	case "list":
		h.list(w, r, out)
	case "watch":
		h.watch(w, r, out)
	case "create":
		h.create(w, r, out)
	case "update":
		h.update(w, r, out)
	case "patch":
		h.patch(w, r, out)
	case "delete":
		h.delete(w, r, out)
	case "deletecollection":
		h.deleteCollection(w, r, out)
	default:
		h.writeError(w, r, methodNotSupported(h.res, h.info.Verb))
	}
}

func (h *handler) decodeParams(r *http.Request, into runtime.Object) error {
	if err := runtime.NewParameterCodec(h.scheme).DecodeParameters(r.URL.Query(), schema.GroupVersion{Version: "v1"}, into); err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	return nil
}

// newStorageObject returns an empty object of the stored kind.
func (h *handler) newStorageObject() runtime.Object {
	obj, err := h.scheme.New(h.res.StorageGVK())
	if err != nil {
		panic(fmt.Sprintf("catalogue kind %s not in scheme: %v", h.res.StorageGVK(), err))
	}
	return obj
}

// served converts a stored object to the version the request is for. The result may be the
// shared cached object itself: never modify it.
func (h *handler) served(obj runtime.Object) (runtime.Object, error) {
	if h.res.StorageVersion == h.res.GroupVersion() {
		return obj, nil
	}
	return convertObject(h.scheme, obj, h.res.GVK())
}

// stored converts a request's object to the stored version.
func (h *handler) stored(obj runtime.Object) (runtime.Object, error) {
	if h.res.StorageVersion == h.res.GroupVersion() {
		return obj, nil
	}
	return convertObject(h.scheme, obj, h.res.StorageGVK())
}

// respond writes one stored object in the negotiated form.
func (h *handler) respond(w http.ResponseWriter, r *http.Request, out output, code int, obj runtime.Object) {
	obj, err := h.served(obj)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	switch out.target {
	case targetTable:
		t, err := h.table([]runtime.Object{obj}, r, "")
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		h.writeObject(w, out, code, t)
	case targetPartialMetadata:
		h.writeObject(w, out, code, partialMetadata(obj, out.metaVersion))
	case targetPartialMetadataList:
		h.writeError(w, r, errNotAcceptable([]string{mediaJSON, mediaYAML, mediaProtobuf}))
	default:
		h.writeObject(w, out, code, obj)
	}
}

// listResult is a list response before it is shaped for the client.
type listResult struct {
	items    []runtime.Object
	revision int64
	cont     string
}

func (h *handler) respondList(w http.ResponseWriter, r *http.Request, out output, l *listResult) {
	served := make([]runtime.Object, len(l.items))
	for i, o := range l.items {
		s, err := h.served(o)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		served[i] = s
	}
	lm := metav1.ListMeta{ResourceVersion: strconv.FormatInt(l.revision, 10), Continue: l.cont}
	switch out.target {
	case targetTable:
		t, err := h.table(served, r, "")
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		t.ListMeta = lm
		h.writeObject(w, out, http.StatusOK, t)
	case targetPartialMetadataList:
		pl := &metav1.PartialObjectMetadataList{ListMeta: lm, Items: make([]metav1.PartialObjectMetadata, len(served))}
		pl.SetGroupVersionKind(schema.GroupVersionKind{Group: "meta.k8s.io", Version: out.metaVersion, Kind: "PartialObjectMetadataList"})
		for i, o := range served {
			pl.Items[i] = *partialMetadata(o, out.metaVersion)
		}
		h.writeObject(w, out, http.StatusOK, pl)
	case targetPartialMetadata:
		h.writeError(w, r, errNotAcceptable([]string{mediaJSON, mediaYAML, mediaProtobuf}))
	default:
		list, err := h.scheme.New(h.res.GroupVersion().WithKind(h.res.Kind + "List"))
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		list.GetObjectKind().SetGroupVersionKind(h.res.GroupVersion().WithKind(h.res.Kind + "List"))
		if err := meta.SetList(list, served); err != nil {
			h.writeError(w, r, err)
			return
		}
		// Items are copies now; upstream lists carry no apiVersion/kind on their items.
		_ = meta.EachListItem(list, func(o runtime.Object) error {
			o.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
			return nil
		})
		la, _ := meta.ListAccessor(list)
		la.SetResourceVersion(lm.ResourceVersion)
		la.SetContinue(lm.Continue)
		h.writeObject(w, out, http.StatusOK, list)
	}
}

// partialMetadata is the PartialObjectMetadata form of obj.
func partialMetadata(obj runtime.Object, version string) *metav1.PartialObjectMetadata {
	p := &metav1.PartialObjectMetadata{}
	if a, ok := obj.(metav1.ObjectMetaAccessor); ok {
		if om, ok := a.GetObjectMeta().(*metav1.ObjectMeta); ok {
			p.ObjectMeta = *om.DeepCopy()
		}
	}
	p.SetGroupVersionKind(schema.GroupVersionKind{Group: "meta.k8s.io", Version: version, Kind: "PartialObjectMetadata"})
	return p
}
