package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/keelson/keelson/apis/authn"
	"github.com/keelson/keelson/apis/authz"
	"github.com/keelson/keelson/apis/catalogue"
	"github.com/keelson/keelson/apis/request"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// serveVirtual answers the resources that are computed rather than stored: the review APIs,
// bindings and component statuses.
func (a *API) serveVirtual(w http.ResponseWriter, r *http.Request, res *catalogue.Resource, info request.Info) {
	out, err := negotiate(a.codecs, r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	h := &handler{API: a, res: res, info: info, rw: w, fieldValidation: metav1.FieldValidationWarn}
	if res.Kind == "ComponentStatus" {
		h.serveComponentStatuses(w, r, out)
		return
	}
	obj, err := h.decodeBody(r, res.GVK())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	user := authn.UserFrom(r.Context())
	if user == nil {
		user = &authn.User{Name: authn.UserAnonymous, Groups: []string{authn.GroupUnauthenticated}}
	}
	var result runtime.Object
	switch o := obj.(type) {
	case *authenticationv1.SelfSubjectReview:
		o.Status.UserInfo = authenticationv1.UserInfo{Username: user.Name, UID: user.UID, Groups: user.Groups}
		if len(user.Extra) > 0 {
			o.Status.UserInfo.Extra = map[string]authenticationv1.ExtraValue{}
			for k, v := range user.Extra {
				o.Status.UserInfo.Extra[k] = v
			}
		}
		result = o
	case *authenticationv1.TokenReview:
		a.reviewToken(r.Context(), o)
		result = o
	case *authorizationv1.SelfSubjectAccessReview:
		o.Status = accessReview(user, o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes)
		result = o
	case *authorizationv1.SubjectAccessReview:
		subject := &authn.User{Name: o.Spec.User, UID: o.Spec.UID, Groups: o.Spec.Groups}
		o.Status = accessReview(subject, o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes)
		result = o
	case *authorizationv1.LocalSubjectAccessReview:
		if ra := o.Spec.ResourceAttributes; ra == nil || ra.Namespace != info.Namespace {
			a.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("spec.resourceAttributes.namespace must match namespace: %v", info.Namespace)))
			return
		}
		subject := &authn.User{Name: o.Spec.User, UID: o.Spec.UID, Groups: o.Spec.Groups}
		o.Status = accessReview(subject, o.Spec.ResourceAttributes, nil)
		result = o
	case *authorizationv1.SelfSubjectRulesReview:
		o.Status = rulesReview(user)
		result = o
	case *corev1.Binding:
		if err := a.bind(r.Context(), info.Namespace, o); err != nil {
			a.writeError(w, r, err)
			return
		}
		st := &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}
		st.SetGroupVersionKind(statusGVK)
		a.writeObject(w, out, http.StatusCreated, st)
		return
	default:
		a.writeError(w, r, methodNotSupported(res, info.Verb))
		return
	}
	a.writeObject(w, out, http.StatusCreated, result)
}

// bind assigns a pod to a node, once, as pods/binding does upstream.
func (a *API) bind(ctx context.Context, namespace string, b *corev1.Binding) error {
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Binding"}, b.Name, fieldErrors("target.kind", "must be empty or 'Node'"))
	}
	if b.Target.Name == "" {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Binding"}, b.Name, fieldErrors("target.name", "must be set"))
	}
	pods := a.storageFor(schema.GroupResource{Resource: "pods"})
	key := pods.store.Key(namespace, b.Name)
	_, err := pods.store.Update(ctx, key, pods.cached(key), func(current runtime.Object) (runtime.Object, error) {
		pod := current.(*corev1.Pod)
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(schema.GroupResource{Resource: "pods/binding"}, b.Name, errors.New("pod is being deleted, cannot be assigned to a host"))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(schema.GroupResource{Resource: "pods/binding"}, b.Name, fmt.Errorf("pod %v is already assigned to node %q", pod.Name, pod.Spec.NodeName))
		}
		if b.UID != "" && b.UID != pod.UID {
			return nil, apierrors.NewConflict(schema.GroupResource{Resource: "pods/binding"}, b.Name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", b.UID, pod.UID))
		}
		pod.Spec.NodeName = b.Target.Name
		for k, v := range b.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		// Bound, the pod has no more use for a nomination, and its PodScheduled condition
		// (False while it waited) turns True.
		pod.Status.NominatedNodeName = ""
		setPodCondition(pod, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue})
		return pod, nil
	})
	return err
}

// serveComponentStatuses reports the health of the control plane's parts (deprecated upstream, still served).
func (h *handler) serveComponentStatuses(w http.ResponseWriter, r *http.Request, out output) {
	var all []runtime.Object
	for _, n := range []string{"scheduler", "controller-manager", "etcd-0"} {
		if h.info.Name != "" && n != h.info.Name {
			continue
		}
		cs := &corev1.ComponentStatus{ObjectMeta: metav1.ObjectMeta{Name: n},
			Conditions: []corev1.ComponentCondition{{Type: corev1.ComponentHealthy, Status: corev1.ConditionTrue, Message: "ok"}}}
		cs.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "ComponentStatus"})
		all = append(all, cs)
	}
	if h.info.Name != "" && len(all) == 0 {
		h.writeError(w, r, apierrors.NewNotFound(schema.GroupResource{Resource: "componentstatuses"}, h.info.Name))
		return
	}
	if out.target == targetTable {
		t, err := h.table(all, r, "")
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		h.writeObject(w, out, http.StatusOK, t)
		return
	}
	if h.info.Name != "" {
		h.writeObject(w, out, http.StatusOK, all[0])
		return
	}
	list := &corev1.ComponentStatusList{}
	list.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "ComponentStatusList"})
	for _, o := range all {
		cs := *o.(*corev1.ComponentStatus)
		cs.TypeMeta = metav1.TypeMeta{}
		list.Items = append(list.Items, cs)
	}
	h.writeObject(w, out, http.StatusOK, list)
}

// serveBinding answers pods/{name}/binding.
func (h *handler) serveBinding(w http.ResponseWriter, r *http.Request, out output) {
	obj, err := h.decodeBody(r, schema.GroupVersionKind{Version: "v1", Kind: "Binding"})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	b := obj.(*corev1.Binding)
	if b.Name != h.info.Name {
		h.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", b.Name, h.info.Name)))
		return
	}
	if err := h.bind(r.Context(), h.info.Namespace, b); err != nil {
		h.writeError(w, r, err)
		return
	}
	st := &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}
	st.SetGroupVersionKind(statusGVK)
	h.writeObject(w, out, http.StatusCreated, st)
}

// accessReview asks the authorizer about the attributes of a SubjectAccessReview.
func accessReview(u *authn.User, ra *authorizationv1.ResourceAttributes, nra *authorizationv1.NonResourceAttributes) authorizationv1.SubjectAccessReviewStatus {
	attrs := authz.Attributes{User: u}
	switch {
	case ra != nil:
		attrs.Resource = &request.Info{Namespace: ra.Namespace, Name: ra.Name, Subresource: ra.Subresource, Verb: ra.Verb}
		attrs.Resource.Group, attrs.Resource.Version, attrs.Resource.Resource = ra.Group, ra.Version, ra.Resource
	case nra != nil:
		attrs.Path, attrs.Verb = nra.Path, nra.Verb
	}
	d := authz.Authorize(attrs)
	// A refusal carrying its own error is admission's, past an authorizer that allows.
	return authorizationv1.SubjectAccessReviewStatus{Allowed: d.Allowed || d.Err != nil, Reason: d.Reason}
}

// rulesReview lists what a user may do, as the authorizer grants it.
func rulesReview(u *authn.User) authorizationv1.SubjectRulesReviewStatus {
	if authz.Authorize(authz.Attributes{User: u, Resource: &request.Info{Verb: "*"}}).Allowed {
		return authorizationv1.SubjectRulesReviewStatus{
			ResourceRules:    []authorizationv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}},
			NonResourceRules: []authorizationv1.NonResourceRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
		}
	}
	st := authorizationv1.SubjectRulesReviewStatus{
		ResourceRules: []authorizationv1.ResourceRule{
			{Verbs: []string{"create"}, APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews", "selfsubjectrulesreviews"}},
			{Verbs: []string{"create"}, APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}},
		},
		NonResourceRules: []authorizationv1.NonResourceRule{
			{Verbs: []string{"get"}, NonResourceURLs: []string{"/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"}},
		},
	}
	// Bootstrappers' roles are enumerable; the Node authorizer's are not, as upstream says.
	if slices.Contains(u.Groups, authn.GroupBootstrappers) {
		st.ResourceRules = append(st.ResourceRules,
			authorizationv1.ResourceRule{Verbs: []string{"create", "get", "list", "watch"}, APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}},
			authorizationv1.ResourceRule{Verbs: []string{"create"}, APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests/nodeclient"}})
	}
	if _, ok := authz.NodeName(u); ok {
		st.ResourceRules = append(st.ResourceRules,
			authorizationv1.ResourceRule{Verbs: []string{"create"}, APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests/selfnodeclient"}})
		st.Incomplete = true
		st.EvaluationError = "node authorizer does not support user rule resolution"
	}
	return st
}
