package rest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/keelson/keelson/apis/authn"
	"github.com/keelson/keelson/apis/serviceaccount"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var tokenRequestGVK = schema.GroupVersionKind{Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"}

// Token lifetimes upstream allows for TokenRequest.
const (
	minTokenSeconds     = 10 * 60
	maxTokenSeconds     = 1 << 32
	defaultTokenSeconds = 60 * 60
)

// serveTokenRequest answers serviceaccounts/{name}/token: a signed token for the account,
// optionally bound to a pod, secret or node that must exist.
func (h *handler) serveTokenRequest(w http.ResponseWriter, r *http.Request, out output) {
	if h.tokens == nil {
		h.writeError(w, r, apierrors.NewServiceUnavailable("no service-account signing key is configured"))
		return
	}
	obj, err := h.decodeBody(r, tokenRequestGVK)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	req := obj.(*authenticationv1.TokenRequest)
	ctx := r.Context()
	sa, err := h.st.store.Get(ctx, h.st.store.Key(h.info.Namespace, h.info.Name))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	saMeta, _ := meta.Accessor(sa)
	seconds := int64(defaultTokenSeconds)
	if req.Spec.ExpirationSeconds != nil {
		seconds = *req.Spec.ExpirationSeconds
	}
	var errs field.ErrorList
	switch {
	case seconds < minTokenSeconds:
		errs = append(errs, field.Invalid(field.NewPath("spec", "expirationSeconds"), seconds, "may not specify a duration less than 10 minutes"))
	case seconds > maxTokenSeconds:
		errs = append(errs, field.Invalid(field.NewPath("spec", "expirationSeconds"), seconds, "may not specify a duration larger than 2^32 seconds"))
	}
	if len(errs) > 0 {
		h.writeError(w, r, apierrors.NewInvalid(tokenRequestGVK.GroupKind(), h.info.Name, errs))
		return
	}
	if len(req.Spec.Audiences) == 0 {
		req.Spec.Audiences = []string{serviceaccount.DefaultAudience}
	}
	claims := serviceaccount.KubernetesClaims{Namespace: h.info.Namespace, ServiceAccount: serviceaccount.Ref{Name: h.info.Name, UID: saMeta.GetUID()}}
	if ref := req.Spec.BoundObjectRef; ref != nil {
		if err := h.bindToken(ctx, &claims, ref); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	token, exp, err := h.tokens.Issue(claims, req.Spec.Audiences, time.Duration(seconds)*time.Second)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	req.Spec.ExpirationSeconds = &seconds
	req.Status = authenticationv1.TokenRequestStatus{Token: token, ExpirationTimestamp: metav1.NewTime(exp)}
	req.Name, req.Namespace = h.info.Name, h.info.Namespace
	req.CreationTimestamp = metav1.Now()
	h.writeObject(w, out, http.StatusCreated, req)
}

func (h *handler) bindToken(ctx context.Context, claims *serviceaccount.KubernetesClaims, ref *authenticationv1.BoundObjectReference) error {
	var uid types.UID
	var ok bool
	switch {
	case ref.Kind == "Pod" && (ref.APIVersion == "v1" || ref.APIVersion == ""):
		uid, ok = h.PodUID(ctx, h.info.Namespace, ref.Name)
		claims.Pod = &serviceaccount.Ref{Name: ref.Name, UID: uid}
	case ref.Kind == "Secret" && (ref.APIVersion == "v1" || ref.APIVersion == ""):
		uid, ok = h.SecretUID(ctx, h.info.Namespace, ref.Name)
		claims.Secret = &serviceaccount.Ref{Name: ref.Name, UID: uid}
	case ref.Kind == "Node" && (ref.APIVersion == "v1" || ref.APIVersion == ""):
		uid, ok = h.NodeUID(ctx, ref.Name)
		claims.Node = &serviceaccount.Ref{Name: ref.Name, UID: uid}
	default:
		return apierrors.NewBadRequest(fmt.Sprintf("cannot bind token to object of type %s", schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)))
	}
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: map[string]string{"Pod": "pods", "Secret": "secrets", "Node": "nodes"}[ref.Kind]}, ref.Name)
	}
	if ref.UID != "" && ref.UID != uid {
		return apierrors.NewConflict(schema.GroupResource{Resource: map[string]string{"Pod": "pods", "Secret": "secrets", "Node": "nodes"}[ref.Kind]}, ref.Name,
			fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID))
	}
	return nil
}

// Lookup reads an object from the cache, or from etcd when the cache has not seen it yet. It is
// shared: never modify it.
func (a *API) Lookup(ctx context.Context, gr schema.GroupResource, namespace, name string) (runtime.Object, error) {
	s := a.storageFor(gr)
	key := s.store.Key(namespace, name)
	if obj, ok, _ := s.cache.Get(key); ok {
		return obj, nil
	}
	return s.store.Get(ctx, key)
}

// uidOf reads an object's uid from the cache, or from etcd when the cache has not seen it yet.
func (a *API) uidOf(ctx context.Context, gr schema.GroupResource, namespace, name string) (types.UID, bool) {
	obj, err := a.Lookup(ctx, gr, namespace, name)
	if err != nil {
		return "", false
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return "", false
	}
	return m.GetUID(), true
}

// ServiceAccountUID, PodUID, SecretUID and NodeUID let token checks see what exists now.
func (a *API) ServiceAccountUID(ctx context.Context, namespace, name string) (types.UID, bool) {
	return a.uidOf(ctx, schema.GroupResource{Resource: "serviceaccounts"}, namespace, name)
}
func (a *API) PodUID(ctx context.Context, namespace, name string) (types.UID, bool) {
	return a.uidOf(ctx, schema.GroupResource{Resource: "pods"}, namespace, name)
}
func (a *API) SecretUID(ctx context.Context, namespace, name string) (types.UID, bool) {
	return a.uidOf(ctx, schema.GroupResource{Resource: "secrets"}, namespace, name)
}
func (a *API) NodeUID(ctx context.Context, name string) (types.UID, bool) {
	return a.uidOf(ctx, schema.GroupResource{Resource: "nodes"}, "", name)
}

var _ serviceaccount.Objects = (*API)(nil)

// AuthenticateToken turns a valid, live service-account token into its user, as upstream's
// service-account authenticator does.
func (a *API) AuthenticateToken(ctx context.Context, token string) (*authn.User, error) {
	if a.tokens == nil {
		return nil, serviceaccount.ErrNotOurs
	}
	c, err := a.tokens.Verify(token, []string{serviceaccount.DefaultAudience})
	if err != nil {
		return nil, err
	}
	if err := serviceaccount.CheckLive(ctx, c, a); err != nil {
		return nil, err
	}
	return userOfClaims(c), nil
}

func userOfClaims(c *serviceaccount.Claims) *authn.User {
	k := c.Kubernetes
	u := &authn.User{
		Name:   serviceaccount.Username(k.Namespace, k.ServiceAccount.Name),
		UID:    string(k.ServiceAccount.UID),
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + k.Namespace, authn.GroupAuthenticated},
		Extra:  map[string][]string{"authentication.kubernetes.io/credential-id": {"JTI=" + c.ID}},
	}
	if k.Pod != nil {
		u.Extra["authentication.kubernetes.io/pod-name"] = []string{k.Pod.Name}
		u.Extra["authentication.kubernetes.io/pod-uid"] = []string{string(k.Pod.UID)}
	}
	if k.Node != nil {
		u.Extra["authentication.kubernetes.io/node-name"] = []string{k.Node.Name}
		u.Extra["authentication.kubernetes.io/node-uid"] = []string{string(k.Node.UID)}
	}
	return u
}

// Secret reads a Secret from the cache, or from etcd when the cache has not seen it yet. It is
// shared: never modify it.
func (a *API) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	obj, err := a.Lookup(ctx, schema.GroupResource{Resource: "secrets"}, namespace, name)
	if err != nil {
		return nil, err
	}
	secret, ok := obj.(*corev1.Secret)
	if !ok {
		return nil, fmt.Errorf("secret %s/%s: unexpected %T", namespace, name, obj)
	}
	return secret, nil
}

// reviewBootstrapToken answers a TokenReview of a bootstrap token. Such tokens carry no audience:
// as upstream's audience-agnostic wrapper, the review holds for the API server's own audience
// only, and reports it. A token that does not hold is, as upstream's authenticator answers it,
// not authenticated, without an error.
func (a *API) reviewBootstrapToken(ctx context.Context, tr *authenticationv1.TokenReview) {
	if len(tr.Spec.Audiences) > 0 && !slices.Contains(tr.Spec.Audiences, serviceaccount.DefaultAudience) {
		return
	}
	u, err := (&authn.BootstrapTokens{Secrets: a.Secret}).AuthenticateToken(ctx, tr.Spec.Token)
	if err != nil {
		return
	}
	tr.Status.Authenticated = true
	tr.Status.User = authenticationv1.UserInfo{Username: u.Name, Groups: u.Groups}
	tr.Status.Audiences = []string{serviceaccount.DefaultAudience}
}

// reviewToken answers a TokenReview.
func (a *API) reviewToken(ctx context.Context, tr *authenticationv1.TokenReview) {
	audiences := tr.Spec.Audiences
	if len(audiences) == 0 {
		audiences = []string{serviceaccount.DefaultAudience}
	}
	tr.Status = authenticationv1.TokenReviewStatus{}
	if authn.IsBootstrapToken(tr.Spec.Token) {
		a.reviewBootstrapToken(ctx, tr)
		return
	}
	if a.tokens == nil {
		return
	}
	c, err := a.tokens.Verify(tr.Spec.Token, audiences)
	if err == nil {
		err = serviceaccount.CheckLive(ctx, c, a)
	}
	if err != nil {
		tr.Status.Error = "[invalid bearer token, " + err.Error() + "]"
		return
	}
	u := userOfClaims(c)
	extra := map[string]authenticationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = v
	}
	tr.Status.Authenticated = true
	tr.Status.User = authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups, Extra: extra}
	var matched []string
	for _, want := range audiences {
		for _, got := range c.Audience {
			if want == got {
				matched = append(matched, want)
			}
		}
	}
	tr.Status.Audiences = matched
}
