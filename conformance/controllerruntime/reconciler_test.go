package controllerruntime

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

const (
	// deriveLabel marks the ConfigMaps the reconciler derives a Secret from.
	deriveLabel = "derive"
	// fieldOwner is the reconciler's field manager in server-side apply.
	fieldOwner = "keelson-derive-controller"
	// derivedSuffix ends the name of a derived Secret.
	derivedSuffix = "-derived"
)

// deriveReconciler maintains, for each ConfigMap labelled derive=yes, a Secret <name>-derived
// with the ConfigMap's data, controlled by the ConfigMap and written with server-side apply.
// It reads through the manager's cached client only.
type deriveReconciler struct {
	client ctrlclient.Client

	mu   sync.Mutex         // guards errs
	errs map[string][]error // reconcile errors by namespace
}

func (r *deriveReconciler) setup(mgr ctrl.Manager) error {
	labelled := predicate.NewPredicateFuncs(func(o ctrlclient.Object) bool {
		return o.GetLabels()[deriveLabel] == "yes"
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("derive").
		For(&corev1.ConfigMap{}, builder.WithPredicates(labelled)).
		Owns(&corev1.Secret{}).
		Complete(r)
}

func (r *deriveReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	err := r.reconcile(ctx, req)
	if err != nil {
		r.mu.Lock()
		if r.errs == nil {
			r.errs = map[string][]error{}
		}
		r.errs[req.Namespace] = append(r.errs[req.Namespace], err)
		r.mu.Unlock()
	}
	return ctrl.Result{}, err
}

func (r *deriveReconciler) reconcile(ctx context.Context, req ctrl.Request) error {
	var cm corev1.ConfigMap
	if err := r.client.Get(ctx, req.NamespacedName, &cm); err != nil {
		return ctrlclient.IgnoreNotFound(err)
	}
	if cm.Labels[deriveLabel] != "yes" || cm.DeletionTimestamp != nil {
		return nil
	}
	data := make(map[string][]byte, len(cm.Data))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	secret := corev1ac.Secret(cm.Name+derivedSuffix, cm.Namespace).
		WithData(data).
		WithOwnerReferences(metav1ac.OwnerReference().
			WithAPIVersion("v1").
			WithKind("ConfigMap").
			WithName(cm.Name).
			WithUID(cm.UID).
			WithController(true).
			WithBlockOwnerDeletion(true))
	err := r.client.Apply(ctx, secret, ctrlclient.FieldOwner(fieldOwner), ctrlclient.ForceOwnership)
	if apierrors.IsNotFound(err) {
		// The namespace went away under us.
		return nil
	}
	return err
}

// errorsIn returns the reconcile errors met in namespace ns.
func (r *deriveReconciler) errorsIn(ns string) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs[ns]...)
}
