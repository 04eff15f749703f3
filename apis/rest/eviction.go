package rest

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	policyv1beta1 "k8s.io/api/policy/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var evictionGVK = schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "Eviction"}

const (
	// maxDisruptedPods is upstream's bound on status.disruptedPods: beyond it, evictions wait for
	// the disruption controller to catch up.
	maxDisruptedPods = 2000
	// evictionAttempts is how often an eviction retries a conflict on the pod (upstream's
	// EvictionsRetry: 20 steps of 500ms).
	evictionAttempts = 20
	evictionBackoff  = 500 * time.Millisecond
	// violationMessage is upstream's refusal of an eviction a budget does not allow.
	violationMessage = "Cannot evict pod as it would violate the pod's disruption budget."
)

var pdbResource = schema.GroupResource{Group: "policy", Resource: "poddisruptionbudgets"}

// serveEviction answers pods/{name}/eviction: the pod is deleted if no PodDisruptionBudget
// forbids it, and the budget is charged for it, as upstream's eviction subresource does.
func (h *handler) serveEviction(w http.ResponseWriter, r *http.Request, out output) {
	ctx := r.Context()
	var opts metav1.CreateOptions
	if err := h.decodeParams(r, &opts); err != nil {
		h.writeError(w, r, err)
		return
	}
	if _, err := dryRun(opts.DryRun); err != nil {
		h.writeError(w, r, err)
		return
	}
	ev, err := h.decodeEviction(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if ev.Namespace != "" && ev.Namespace != h.info.Namespace {
		h.writeError(w, r, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request"))
		return
	}
	if ev.Name != h.info.Name {
		h.writeError(w, r, apierrors.NewBadRequest("name in URL does not match name in Eviction object"))
		return
	}
	delOpts, err := evictionDeleteOptions(ev, &opts)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if _, err := dryRun(delOpts.DryRun); err != nil {
		h.writeError(w, r, err)
		return
	}
	st, err := h.evict(ctx, delOpts)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	st.SetGroupVersionKind(statusGVK)
	// As upstream's create handler: a Status result is answered with its own code (500 for a pod
	// under several budgets), 201 when it has none.
	code := http.StatusCreated
	if st.Code != 0 {
		code = int(st.Code)
	} else {
		st.Code = int32(code)
	}
	h.writeObject(w, out, code, st)
}

// decodeEviction reads a policy/v1 or policy/v1beta1 Eviction, as upstream accepts both.
func (h *handler) decodeEviction(r *http.Request) (*policyv1.Eviction, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	info, err := decoderFor(h.codecs, r.Header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	_, gvk, _ := info.Serializer.Decode(body, &evictionGVK, nil)
	want := evictionGVK
	if gvk != nil && gvk.GroupVersion() == policyv1beta1.SchemeGroupVersion {
		want = policyv1beta1.SchemeGroupVersion.WithKind("Eviction")
	}
	obj, err := h.decodeObject(info, body, want)
	if err != nil {
		return nil, err
	}
	switch e := obj.(type) {
	case *policyv1.Eviction:
		return e, nil
	case *policyv1beta1.Eviction:
		return &policyv1.Eviction{ObjectMeta: e.ObjectMeta, DeleteOptions: e.DeleteOptions}, nil
	}
	return nil, apierrors.NewBadRequest(fmt.Sprintf("not a Eviction object: %T", obj))
}

// evictionDeleteOptions merges the request's dryRun into the eviction's DeleteOptions, refusing
// the two when they disagree, as upstream does.
func evictionDeleteOptions(ev *policyv1.Eviction, opts *metav1.CreateOptions) (*metav1.DeleteOptions, error) {
	switch {
	case ev.DeleteOptions == nil:
		return &metav1.DeleteOptions{DryRun: opts.DryRun}, nil
	case len(ev.DeleteOptions.DryRun) == 0:
		ev.DeleteOptions.DryRun = opts.DryRun
	case len(opts.DryRun) > 0 && !reflect.DeepEqual(opts.DryRun, ev.DeleteOptions.DryRun):
		//lint:ignore ST1005 upstream's wording
		return nil, fmt.Errorf("Non-matching dry-run options in request and content: %v and %v", opts.DryRun, ev.DeleteOptions.DryRun)
	}
	return ev.DeleteOptions, nil
}

// evict runs one eviction and returns the Status to answer with.
func (h *handler) evict(ctx context.Context, opts *metav1.DeleteOptions) (*metav1.Status, error) {
	isDryRun := len(opts.DryRun) > 0
	success := &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}

	// A pod that is not running (pending, terminal or already going) disrupts nothing more by
	// going: it is deleted without asking a budget. A conflict on the pod is retried unless the
	// caller named the resourceVersion it meant.
	var pod *corev1.Pod
	for attempt := 1; ; attempt++ {
		obj, err := h.st.store.Get(ctx, h.st.store.Key(h.info.Namespace, h.info.Name))
		if err != nil {
			return nil, err
		}
		pod = obj.(*corev1.Pod)
		if !budgetIgnorable(pod) {
			break
		}
		del := opts
		if enforceResourceVersion(pod) && resourceVersionUnset(opts) {
			del = withResourceVersion(opts, pod.ResourceVersion)
		}
		err = h.markAndDelete(ctx, del, isDryRun)
		if err == nil {
			return success, nil
		}
		if !apierrors.IsConflict(err) || !resourceVersionUnset(opts) || attempt == evictionAttempts {
			return nil, err
		}
		if err := sleepCtx(ctx, evictionBackoff); err != nil {
			return nil, err
		}
	}

	pdbs, err := h.budgetsOf(ctx, pod)
	if err != nil {
		return nil, err
	}
	if len(pdbs) > 1 {
		return &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError,
			Message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}, nil
	}
	guardDelete := false
	var pdbName string
	if len(pdbs) == 1 {
		pdb := pdbs[0]
		pdbName = pdb.Name
		switch {
		case podReady(pod):
			err = h.chargeBudget(ctx, pdb, pod.Name, isDryRun)
		case pdb.Spec.UnhealthyPodEvictionPolicy != nil && *pdb.Spec.UnhealthyPodEvictionPolicy == policyv1.AlwaysAllow,
			pdb.Status.CurrentHealthy >= pdb.Status.DesiredHealthy && pdb.Status.DesiredHealthy > 0:
			// An unready pod counts for nothing in the budget: deleting it disrupts no one, as
			// long as it has not become ready meanwhile.
			guardDelete = true
		default:
			err = h.chargeBudget(ctx, pdb, pod.Name, isDryRun)
		}
		if err != nil {
			return nil, err
		}
	}
	del := opts
	if guardDelete {
		del = withResourceVersion(opts, pod.ResourceVersion)
	}
	if err := h.markAndDelete(ctx, del, isDryRun); err != nil {
		if apierrors.IsConflict(err) && guardDelete && resourceVersionUnset(opts) {
			return nil, budgetPendingError(pdbName)
		}
		return nil, err
	}
	return success, nil
}

// budgetsOf lists the PodDisruptionBudgets of the pod's namespace that select it. A budget with
// an empty or invalid selector selects nothing.
func (h *handler) budgetsOf(ctx context.Context, pod *corev1.Pod) ([]*policyv1.PodDisruptionBudget, error) {
	s := h.storageFor(pdbResource)
	if err := s.cache.WaitFresh(ctx); err != nil {
		return nil, apierrors.NewServiceUnavailable(err.Error())
	}
	objs, _ := s.cache.List(s.store.NamespacePrefix(pod.Namespace))
	var out []*policyv1.PodDisruptionBudget
	for _, o := range objs {
		pdb := o.(*policyv1.PodDisruptionBudget)
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, pdb)
	}
	return out, nil
}

// chargeBudget takes one disruption from the budget and records the pod in disruptedPods, with a
// compare-and-swap on the budget so that concurrent evictions cannot overspend it.
func (h *handler) chargeBudget(ctx context.Context, pdb *policyv1.PodDisruptionBudget, podName string, isDryRun bool) error {
	s := h.storageFor(pdbResource)
	key := s.store.Key(pdb.Namespace, pdb.Name)
	_, err := s.store.Update(ctx, key, s.cached(key), func(current runtime.Object) (runtime.Object, error) {
		p := current.(*policyv1.PodDisruptionBudget)
		if p.Status.ObservedGeneration < p.Generation {
			return nil, budgetPendingError(p.Name)
		}
		if p.Status.DisruptionsAllowed < 0 {
			return nil, apierrors.NewForbidden(schema.GroupResource{Group: "policy", Resource: "poddisruptionbudget"}, p.Name, fmt.Errorf("pdb disruptions allowed is negative"))
		}
		if len(p.Status.DisruptedPods) > maxDisruptedPods {
			return nil, apierrors.NewForbidden(schema.GroupResource{Group: "policy", Resource: "poddisruptionbudget"}, p.Name, fmt.Errorf("DisruptedPods map too big - too many evictions not confirmed by PDB controller"))
		}
		if p.Status.DisruptionsAllowed == 0 {
			err := apierrors.NewTooManyRequests(violationMessage, 0)
			err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{Type: policyv1.DisruptionBudgetCause,
				Message: fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently", p.Name, p.Status.DesiredHealthy, p.Status.CurrentHealthy)})
			return nil, err
		}
		if isDryRun {
			return nil, errNoWrite
		}
		p.Status.DisruptionsAllowed--
		if p.Status.DisruptionsAllowed == 0 {
			setDisruptionAllowed(p)
		}
		if p.Status.DisruptedPods == nil {
			p.Status.DisruptedPods = map[string]metav1.Time{}
		}
		// The controller counts the pod as gone from now on; if it is not deleted within its
		// timeout, the controller forgets it again.
		p.Status.DisruptedPods[podName] = metav1.Now()
		return p, nil
	})
	return err
}

// setDisruptionAllowed sets the DisruptionAllowed condition from status.disruptionsAllowed, as
// upstream's helper of the same purpose (component-helpers) does for both its callers.
func setDisruptionAllowed(p *policyv1.PodDisruptionBudget) {
	c := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse,
		Reason: policyv1.InsufficientPodsReason, ObservedGeneration: p.Status.ObservedGeneration}
	if p.Status.DisruptionsAllowed > 0 {
		c.Status, c.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	}
	if p.Status.Conditions == nil {
		p.Status.Conditions = []metav1.Condition{}
	}
	apimeta.SetStatusCondition(&p.Status.Conditions, c)
}

// markAndDelete gives the pod the DisruptionTarget condition, then deletes it with opts.
func (h *handler) markAndDelete(ctx context.Context, opts *metav1.DeleteOptions, isDryRun bool) error {
	if !isDryRun {
		key := h.st.store.Key(h.info.Namespace, h.info.Name)
		updated, err := h.st.store.Update(ctx, key, h.st.cached(key), func(current runtime.Object) (runtime.Object, error) {
			if err := h.checkPreconditions(h.info.Name, current, opts.Preconditions); err != nil {
				return nil, err
			}
			pod := current.(*corev1.Pod)
			setPodCondition(pod, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
				Reason: "EvictionByEvictionAPI", Message: "Eviction API: evicting"})
			return pod, nil
		})
		if err != nil {
			return err
		}
		if !resourceVersionUnset(opts) {
			// The condition is our own write: the caller's precondition held before it.
			opts = withResourceVersion(opts, updated.(*corev1.Pod).ResourceVersion)
		}
	}
	_, _, err := h.deleteObject(ctx, h.info.Name, opts, isDryRun)
	return err
}

// setPodCondition adds or updates a condition, moving lastTransitionTime only when the status
// changes.
func setPodCondition(pod *corev1.Pod, c corev1.PodCondition) {
	now := metav1.Now()
	for i := range pod.Status.Conditions {
		old := &pod.Status.Conditions[i]
		if old.Type != c.Type {
			continue
		}
		if old.Status != c.Status {
			old.LastTransitionTime = now
		}
		old.Status, old.Reason, old.Message = c.Status, c.Reason, c.Message
		return
	}
	c.LastTransitionTime = now
	pod.Status.Conditions = append(pod.Status.Conditions, c)
}

// budgetIgnorable tells whether the pod may go without asking its budget: it is not running.
func budgetIgnorable(pod *corev1.Pod) bool {
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed, corev1.PodPending:
		return true
	}
	return pod.DeletionTimestamp != nil
}

// enforceResourceVersion tells whether a delete must be pinned to the pod as read, lest it
// become ready (and count for a budget) in between.
func enforceResourceVersion(pod *corev1.Pod) bool {
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return false
	}
	return pod.DeletionTimestamp == nil
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func resourceVersionUnset(opts *metav1.DeleteOptions) bool {
	return opts.Preconditions == nil || opts.Preconditions.ResourceVersion == nil
}

func withResourceVersion(opts *metav1.DeleteOptions, rv string) *metav1.DeleteOptions {
	out := opts.DeepCopy()
	if out.Preconditions == nil {
		out.Preconditions = &metav1.Preconditions{}
	}
	out.Preconditions.ResourceVersion = &rv
	return out
}

// budgetPendingError is upstream's 429 for a budget the controller has not caught up with.
func budgetPendingError(name string) error {
	err := apierrors.NewTooManyRequests(violationMessage, 10)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{Type: policyv1.DisruptionBudgetCause,
		Message: fmt.Sprintf("The disruption budget %s is still being processed by the server.", name)})
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
