package resourcequota

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Quotas is what the admission needs of the server's storage.
type Quotas interface {
	// List returns the quotas of a namespace. They may lag behind storage a little: every charge
	// is made on the stored quota.
	List(ctx context.Context, namespace string) ([]*corev1.ResourceQuota, error)
	// Update applies charge to the stored quota and writes it if the quota did not change in
	// between, retrying on the newer quota otherwise (a compare-and-swap). charge returns false
	// to write nothing.
	Update(ctx context.Context, namespace, name string, charge func(q *corev1.ResourceQuota) (bool, error)) error
}

// Admission refuses creates that would exceed a ResourceQuota and charges the quotas for the
// ones it lets through.
type Admission struct {
	quotas Quotas
	now    func() time.Time
}

// New returns the admission over the given quota storage.
func New(q Quotas) *Admission { return &Admission{quotas: q, now: time.Now} }

// ignored are the resources quota never counts, as upstream's admission ignores them.
var ignored = map[schema.GroupResource]bool{
	{Resource: "events"}:                         true,
	{Group: "events.k8s.io", Resource: "events"}: true,
}

// Admit checks the create of obj, a resource gr object named name in namespace, against the
// namespace's quotas, and unless dryRun charges each quota it falls under with what it uses.
func (a *Admission) Admit(ctx context.Context, gr schema.GroupResource, namespace, name string, obj runtime.Object, dryRun bool) error {
	if namespace == "" || ignored[gr] {
		return nil
	}
	return a.admit(ctx, gr, namespace, name, obj, For(gr).Usage(obj, a.now()), dryRun)
}

// AdmitUpdate checks an update of obj from old and charges what it uses beyond old. Only the
// kinds whose usage an update can grow are checked, as upstream's evaluators handle updates: a
// service changing type, a claim growing, a pod resized in place (subresource "resize").
func (a *Admission) AdmitUpdate(ctx context.Context, gr schema.GroupResource, subresource, namespace, name string, obj, old runtime.Object, dryRun bool) error {
	switch {
	case gr == servicesGR && subresource == "", gr == pvcsGR && subresource == "", gr == podsGR && subresource == "resize":
	default:
		return nil
	}
	now := a.now()
	ev := For(gr)
	grown := corev1.ResourceList{}
	before := ev.Usage(old, now)
	for n, q := range ev.Usage(obj, now) {
		if b, ok := before[n]; ok {
			q = q.DeepCopy()
			q.Sub(b)
		}
		if q.Sign() > 0 {
			grown[n] = q
		}
	}
	if len(grown) == 0 {
		return nil
	}
	return a.admit(ctx, gr, namespace, name, obj, grown, dryRun)
}

func (a *Admission) admit(ctx context.Context, gr schema.GroupResource, namespace, name string, obj runtime.Object, usage corev1.ResourceList, dryRun bool) error {
	quotas, err := a.quotas.List(ctx, namespace)
	if err != nil || len(quotas) == 0 {
		return err
	}
	forbidden := func(err error) error { return apierrors.NewForbidden(gr, name, err) }
	ev := For(gr)
	var charged []*corev1.ResourceQuota
	for _, q := range quotas {
		if err := check(ev, q, obj, usage); err != nil {
			return forbidden(err)
		}
		if applies, _ := ev.Matches(q, obj); applies {
			charged = append(charged, q)
		}
	}
	if dryRun {
		return nil
	}
	for _, q := range charged {
		err := a.quotas.Update(ctx, q.Namespace, q.Name, func(current *corev1.ResourceQuota) (bool, error) {
			// The quota may have changed since it was listed: check again on what is stored.
			if err := check(ev, current, obj, usage); err != nil {
				return false, forbidden(err)
			}
			if applies, _ := ev.Matches(current, obj); !applies {
				return false, nil
			}
			requested := Mask(usage, Names(current.Status.Hard))
			if len(requested) == 0 {
				return false, nil
			}
			current.Status.Used = Add(current.Status.Used, requested)
			return true, nil
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// check refuses obj if the quota applies to it and it cannot be admitted under it: a pod that
// leaves a limited resource undeclared, a quota whose usage is not known yet, or a usage that
// would go beyond the limit. The messages are upstream's.
func check(ev Evaluator, q *corev1.ResourceQuota, obj runtime.Object, usage corev1.ResourceList) error {
	applies, err := ev.Matches(q, obj)
	if err != nil {
		return fmt.Errorf("error matching scopes of quota %s, err: %v", q.Name, err)
	}
	if !applies {
		return nil
	}
	limited := ev.Matching(Names(q.Status.Hard))
	if err := ev.Constraints(limited, obj); err != nil {
		return fmt.Errorf("failed quota: %s: %v", q.Name, err)
	}
	for _, n := range limited {
		if _, ok := q.Status.Used[n]; !ok {
			return fmt.Errorf("status unknown for quota: %s, resources: %s", q.Name, prettyPrintNames(limited))
		}
	}
	requested := Mask(usage, Names(q.Status.Hard))
	after := Mask(Add(q.Status.Used, requested), Names(requested))
	if over := exceeds(after, q.Status.Hard); len(over) > 0 {
		return fmt.Errorf("exceeded quota: %s, requested: %s, used: %s, limited: %s",
			q.Name, prettyPrint(Mask(requested, over)), prettyPrint(Mask(q.Status.Used, over)), prettyPrint(Mask(q.Status.Hard, over)))
	}
	return nil
}
