// Package serviceaccount keeps a "default" ServiceAccount in every active namespace, as upstream's
// serviceaccount-controller does.
package serviceaccount

import (
	"context"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// DefaultName is the account every namespace gets.
const DefaultName = "default"

type controller struct {
	*manager.Loop
	client   kubernetes.Interface
	nsLister corelisters.NamespaceLister
	saLister corelisters.ServiceAccountLister
}

// New registers the controller's handlers on c's informers.
func New(c *manager.Context) (manager.Controller, error) {
	ns := c.Informers.Core().V1().Namespaces()
	sa := c.Informers.Core().V1().ServiceAccounts()
	ctl := &controller{client: c.Client, nsLister: ns.Lister(), saLister: sa.Lister()}
	ctl.Loop = manager.NewLoop("serviceaccount-controller", 2, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{ns.Informer().HasSynced, sa.Informer().HasSynced}
	if err := ctl.EnqueueNamespaces(ns.Informer()); err != nil {
		return nil, err
	}
	if _, err := sa.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if s, ok := o.(*corev1.ServiceAccount); ok && s.Name == DefaultName {
				ctl.Enqueue(s.Namespace)
			}
		},
	}); err != nil {
		return nil, err
	}
	return ctl, nil
}

func (c *controller) sync(ctx context.Context, namespace string) (time.Duration, error) {
	if active, err := manager.ActiveNamespace(c.nsLister, namespace); !active || err != nil {
		return 0, err
	}
	if _, err := c.saLister.ServiceAccounts(namespace).Get(DefaultName); err == nil {
		return 0, nil
	}
	_, err := c.client.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: DefaultName}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) || apierrors.IsForbidden(err) || apierrors.IsNotFound(err) {
		// Already there, or the namespace went away meanwhile.
		return 0, nil
	}
	return 0, err
}
