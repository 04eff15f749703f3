package rest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/keelson/keelson/registry/store"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// get serves one object: from etcd when no resourceVersion is given (a consistent read), else
// from the cache once it has reached that version.
func (h *handler) get(w http.ResponseWriter, r *http.Request, out output) {
	var opts metav1.GetOptions
	if err := h.decodeParams(r, &opts); err != nil {
		h.writeError(w, r, err)
		return
	}
	obj, err := h.read(r.Context(), opts.ResourceVersion)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.respond(w, r, out, http.StatusOK, obj)
}

// read returns the stored object named by the request.
func (h *handler) read(ctx context.Context, resourceVersion string) (runtime.Object, error) {
	key := h.st.store.Key(h.info.Namespace, h.info.Name)
	if resourceVersion == "" {
		return h.st.store.Get(ctx, key)
	}
	rv, err := parseRV(resourceVersion)
	if err != nil {
		return nil, err
	}
	if rv > 0 {
		if err := h.waitForRV(ctx, rv); err != nil {
			return nil, err
		}
	}
	obj, ok, _ := h.st.cache.Get(key)
	if !ok {
		return nil, apierrors.NewNotFound(h.res.GroupResource(), h.info.Name)
	}
	return obj, nil
}

func parseRV(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	rv, err := strconv.ParseInt(s, 10, 64)
	if err != nil || rv < 0 {
		return 0, apierrors.NewBadRequest(fmt.Sprintf("invalid resource version: %s", s))
	}
	return rv, nil
}

// waitForRV waits for the cache to reach rv, answering as upstream when it does not in time.
func (h *handler) waitForRV(ctx context.Context, rv int64) error {
	if err := h.st.cache.WaitFor(ctx, rv); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return tooLargeRV(rv, h.st.cache.Revision())
	}
	return nil
}

func tooLargeRV(requested, current int64) error {
	err := apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %d, current: %d", requested, current), 1)
	err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}
	return err
}

// continueToken is upstream's opaque list continuation: the revision of the first page and the
// key to go on from, relative to the resource's prefix.
type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion int64  `json:"rv"`
	StartKey        string `json:"start"`
}

func encodeContinue(rv int64, startKey string) string {
	b, _ := json.Marshal(continueToken{APIVersion: "meta.k8s.io/v1", ResourceVersion: rv, StartKey: startKey})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.APIVersion != "meta.k8s.io/v1" || t.ResourceVersion <= 0 || strings.Contains(t.StartKey, "..") {
		return t, apierrors.NewBadRequest(fmt.Sprintf("continue key is not valid: %s", "incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))
	}
	return t, nil
}

const continueExpiredMessage = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."

// list serves a collection. Paginated and exact-revision lists read etcd at a fixed revision;
// everything else is served from the watch cache.
func (h *handler) list(w http.ResponseWriter, r *http.Request, out output) {
	var opts metav1.ListOptions
	if err := h.decodeParams(r, &opts); err != nil {
		h.writeError(w, r, err)
		return
	}
	f, err := parseFilter(h.res, h.newStorageObject, opts.LabelSelector, opts.FieldSelector)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	items, rv, next, err := h.listObjects(r.Context(), &opts, f)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.respondList(w, r, out, &listResult{items: items, revision: rv, cont: next})
}

func (h *handler) listObjects(ctx context.Context, opts *metav1.ListOptions, f *filter) ([]runtime.Object, int64, string, error) {
	prefix := h.st.store.NamespacePrefix(h.info.Namespace)
	match := opts.ResourceVersionMatch
	switch match {
	case "", metav1.ResourceVersionMatchExact, metav1.ResourceVersionMatchNotOlderThan:
	default:
		return nil, 0, "", invalidListOptions(field.NotSupported(field.NewPath("resourceVersionMatch"), match,
			[]metav1.ResourceVersionMatch{metav1.ResourceVersionMatchExact, metav1.ResourceVersionMatchNotOlderThan}))
	}
	if match != "" && opts.ResourceVersion == "" {
		return nil, 0, "", invalidListOptions(field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch is forbidden unless resourceVersion is provided"))
	}
	if opts.Continue != "" {
		if opts.ResourceVersion != "" && opts.ResourceVersion != "0" {
			return nil, 0, "", invalidListOptions(field.Forbidden(field.NewPath("resourceVersion"), "specifying resource version is not allowed when using continue"))
		}
		tok, err := decodeContinue(opts.Continue)
		if err != nil {
			return nil, 0, "", err
		}
		return h.listFromEtcd(ctx, prefix, h.st.store.KeyPrefix()+tok.StartKey, tok.ResourceVersion, opts.Limit, f)
	}
	rv, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return nil, 0, "", err
	}
	switch {
	case match == metav1.ResourceVersionMatchExact:
		if rv == 0 {
			return nil, 0, "", invalidListOptions(field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""))
		}
		return h.listFromEtcd(ctx, prefix, "", rv, opts.Limit, f)
	case opts.Limit > 0 && opts.ResourceVersion == "":
		return h.listFromEtcd(ctx, prefix, "", 0, opts.Limit, f)
	}
	if opts.ResourceVersion == "" {
		if err := h.st.cache.WaitFresh(ctx); err != nil {
			// The cache could not catch up in time: read etcd instead, still consistent.
			h.log.Warn("consistent read from cache failed, reading etcd", "resource", h.res.GroupResource(), "err", err)
			return h.listFromEtcd(ctx, prefix, "", 0, 0, f)
		}
	} else if rv > 0 {
		if err := h.waitForRV(ctx, rv); err != nil {
			return nil, 0, "", err
		}
	}
	all, revision := h.st.cache.List(prefix)
	if name, ok := f.singleName(); ok && h.info.Namespace != "" {
		all, _ = h.st.cache.List(h.st.store.Key(h.info.Namespace, name))
	}
	items := make([]runtime.Object, 0, len(all))
	for _, o := range all {
		if f.matches(o) {
			items = append(items, o)
		}
	}
	return items, revision, "", nil
}

// listFromEtcd reads pages at one revision until limit matching objects are found.
func (h *handler) listFromEtcd(ctx context.Context, prefix, from string, rv, limit int64, f *filter) ([]runtime.Object, int64, string, error) {
	var items []runtime.Object
	for {
		want := int64(0)
		if limit > 0 {
			want = limit - int64(len(items))
			if !f.empty() && want < 100 {
				want = 100 // read ahead when most objects may be filtered out
			}
		}
		page, err := h.st.store.ListPage(ctx, prefix, from, rv, want)
		if errors.Is(err, store.ErrCompacted) {
			if from != "" {
				return nil, 0, "", apierrors.NewResourceExpired(continueExpiredMessage)
			}
			return nil, 0, "", apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d", rv))
		}
		if err != nil {
			return nil, 0, "", err
		}
		rv = page.Revision
		for i, o := range page.Objects {
			if !f.matches(o) {
				continue
			}
			items = append(items, o)
			if limit > 0 && int64(len(items)) == limit {
				if i == len(page.Objects)-1 && page.NextKey == "" {
					return items, rv, "", nil
				}
				key, err := h.keyOf(o)
				if err != nil {
					return nil, 0, "", err
				}
				return items, rv, encodeContinue(rv, strings.TrimPrefix(key, h.st.store.KeyPrefix())+"\x00"), nil
			}
		}
		if page.NextKey == "" {
			return items, rv, "", nil
		}
		from = page.NextKey
	}
}

func (h *handler) keyOf(obj runtime.Object) (string, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return "", err
	}
	return h.st.store.Key(m.GetNamespace(), m.GetName()), nil
}

// invalidListOptions is upstream's 422 for list options that do not go together.
func invalidListOptions(err *field.Error) error {
	return apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "", field.ErrorList{err})
}
