package rest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/keelson/keelson/registry/watchcache"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
)

// initialEventsEndAnnotation marks the bookmark that ends the initial events of a
// sendInitialEvents watch.
const initialEventsEndAnnotation = "k8s.io/initial-events-end"

// minRequestTimeout is upstream's default --min-request-timeout; a watch without timeoutSeconds
// lasts between one and two of it.
const minRequestTimeout = 1800 * time.Second

func (h *handler) watch(w http.ResponseWriter, r *http.Request, out output) {
	var opts metav1.ListOptions
	if err := h.decodeParams(r, &opts); err != nil {
		h.writeError(w, r, err)
		return
	}
	if h.info.Name != "" {
		// GET .../name?watch=true watches one object.
		if opts.FieldSelector != "" {
			opts.FieldSelector += ","
		}
		opts.FieldSelector += "metadata.name=" + h.info.Name
	}
	f, err := parseFilter(h.res, h.newStorageObject, opts.LabelSelector, opts.FieldSelector)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	sendInitial := opts.SendInitialEvents != nil && *opts.SendInitialEvents
	if opts.SendInitialEvents != nil {
		if opts.ResourceVersionMatch != metav1.ResourceVersionMatchNotOlderThan {
			h.writeError(w, r, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "",
				fieldErrors("resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")))
			return
		}
		if sendInitial && !opts.AllowWatchBookmarks {
			h.writeError(w, r, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "",
				fieldErrors("allowWatchBookmarks", "sendInitialEvents requires setting allowWatchBookmarks to true")))
			return
		}
	} else if opts.ResourceVersionMatch != "" {
		h.writeError(w, r, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "",
			fieldErrors("resourceVersionMatch", "resourceVersionMatch is forbidden for watch")))
		return
	}
	rv, err := parseRV(opts.ResourceVersion)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	wopts := watchcache.WatchOptions{Prefix: h.st.store.NamespacePrefix(h.info.Namespace), Bookmarks: opts.AllowWatchBookmarks}
	if name, ok := f.singleName(); ok && h.info.Namespace != "" {
		wopts.Prefix = h.st.store.Key(h.info.Namespace, name)
	}
	switch {
	case opts.ResourceVersion == "" && (sendInitial || opts.SendInitialEvents == nil):
		// Get the state and start at the most recent: consistent, as upstream.
		if err := h.st.cache.WaitFresh(ctx); err != nil {
			h.writeError(w, r, apierrors.NewServiceUnavailable(err.Error()))
			return
		}
		wopts.InitialState = true
	case rv == 0 && opts.SendInitialEvents == nil:
		wopts.InitialState = true
	case sendInitial:
		if err := h.waitForRV(ctx, rv); err != nil {
			h.writeError(w, r, err)
			return
		}
		wopts.InitialState = true
	default:
		if rv > 0 {
			if err := h.waitForRV(ctx, rv); err != nil {
				h.writeError(w, r, err)
				return
			}
		} else {
			rv = h.st.cache.Revision()
		}
		wopts.From = rv
	}

	timeout := time.Duration(float64(minRequestTimeout) * (1 + rand.Float64()))
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}

	ww, err := h.newWatchWriter(w, out)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	watcher, err := h.st.cache.Watch(wopts)
	var tooOld *watchcache.TooOldError
	if errors.As(err, &tooOld) {
		// Upstream answers a watch from compacted history with an ERROR event, not a failed request.
		ww.start()
		st := apierrors.NewResourceExpired(tooOld.Error()).ErrStatus
		st.SetGroupVersionKind(statusGVK)
		ww.writeEvent(watch.Error, &st)
		return
	}
	if err != nil {
		h.writeError(w, r, apierrors.NewServiceUnavailable(err.Error()))
		return
	}
	defer watcher.Stop()
	ww.start()

	deliver := func(e watchcache.Event) bool {
		typ, obj := h.transition(e, f)
		if typ == "" {
			return true
		}
		served, err := h.served(obj)
		if err != nil {
			h.log.Error("converting watch event", "err", err)
			return false
		}
		return ww.writeEvent(typ, h.watchObject(served, out, r)) == nil
	}
	for _, e := range watcher.Initial {
		if !deliver(e) {
			return
		}
	}
	if sendInitial {
		if ww.writeEvent(watch.Bookmark, h.bookmark(watcher.Revision, true, out)) != nil {
			return
		}
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case e, ok := <-watcher.Events():
			if !ok {
				return // dropped or the cache relisted: the client resumes from its last version
			}
			if e.Type == watch.Bookmark {
				if ww.writeEvent(watch.Bookmark, h.bookmark(e.Revision, false, out)) != nil {
					return
				}
				continue
			}
			if !deliver(e) {
				return
			}
		}
	}
}

// transition maps a change to what a watcher with filter f sees: an object entering the selection
// is ADDED, leaving it is DELETED, as upstream.
func (h *handler) transition(e watchcache.Event, f *filter) (watch.EventType, runtime.Object) {
	switch e.Type {
	case watch.Added:
		if f.matches(e.Object) {
			return watch.Added, e.Object
		}
	case watch.Deleted:
		if f.matches(e.Object) {
			return watch.Deleted, e.Object
		}
	case watch.Modified:
		cur := f.matches(e.Object)
		prev := e.Prev != nil && f.matches(e.Prev)
		switch {
		case cur && prev:
			return watch.Modified, e.Object
		case cur:
			return watch.Added, e.Object
		case prev:
			// Upstream sends the object as the watcher last saw it, at the new revision.
			gone := e.Prev.DeepCopyObject()
			if m, err := meta.Accessor(gone); err == nil {
				m.SetResourceVersion(strconv.FormatInt(e.Revision, 10))
			}
			return watch.Deleted, gone
		}
	}
	return "", nil
}

// bookmark is an empty object of the served kind carrying only a resourceVersion.
func (h *handler) bookmark(rv int64, initialEnd bool, out output) runtime.Object {
	var obj runtime.Object
	switch out.target {
	case targetPartialMetadata, targetPartialMetadataList:
		obj = &metav1.PartialObjectMetadata{}
		obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: "meta.k8s.io", Version: out.metaVersion, Kind: "PartialObjectMetadata"})
	default:
		o, err := h.scheme.New(h.res.GVK())
		if err != nil {
			return nil
		}
		o.GetObjectKind().SetGroupVersionKind(h.res.GVK())
		obj = o
	}
	m, _ := meta.Accessor(obj)
	m.SetResourceVersion(strconv.FormatInt(rv, 10))
	if initialEnd {
		m.SetAnnotations(map[string]string{initialEventsEndAnnotation: "true"})
	}
	return obj
}

// watchObject shapes an event's object for the client.
func (h *handler) watchObject(obj runtime.Object, out output, r *http.Request) runtime.Object {
	switch out.target {
	case targetPartialMetadata, targetPartialMetadataList:
		return partialMetadata(obj, out.metaVersion)
	case targetTable:
		t, err := h.table([]runtime.Object{obj}, r, "")
		if err != nil {
			return obj
		}
		return t
	}
	return obj
}

// watchWriter frames watch events in the negotiated stream encoding.
type watchWriter struct {
	w       http.ResponseWriter
	flusher http.Flusher
	out     output
	enc     runtime.Encoder
	frame   interface{ Write([]byte) (int, error) }
	buf     bytes.Buffer
}

func (h *handler) newWatchWriter(w http.ResponseWriter, out output) (*watchWriter, error) {
	if out.info.StreamSerializer == nil {
		return nil, errNotAcceptable([]string{mediaJSON, mediaProtobuf})
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		return nil, apierrors.NewInternalError(errors.New("response cannot be streamed"))
	}
	return &watchWriter{w: w, flusher: flusher, out: out, enc: out.info.StreamSerializer.Serializer,
		frame: out.info.StreamSerializer.Framer.NewFrameWriter(w)}, nil
}

func (ww *watchWriter) start() {
	ct := ww.out.mediaType
	if ct == mediaProtobuf {
		ct += ";stream=watch"
	}
	ww.w.Header().Set("Content-Type", ct)
	ww.w.Header().Set("Cache-Control", "no-cache, private")
	ww.w.WriteHeader(http.StatusOK)
	ww.flusher.Flush()
}

func (ww *watchWriter) writeEvent(typ watch.EventType, obj runtime.Object) error {
	ww.buf.Reset()
	if err := ww.out.info.Serializer.Encode(obj, &ww.buf); err != nil {
		return err
	}
	ev := &metav1.WatchEvent{Type: string(typ), Object: runtime.RawExtension{Raw: ww.buf.Bytes()}}
	var frame bytes.Buffer
	if err := ww.enc.Encode(ev, &frame); err != nil {
		return err
	}
	if _, err := ww.frame.Write(frame.Bytes()); err != nil {
		return err
	}
	ww.flusher.Flush()
	return nil
}
