// Package rootca publishes the cluster's CA bundle as the kube-root-ca.crt ConfigMap in every
// namespace, as upstream's root-ca-cert-publisher does.
package rootca

import (
	"context"
	"reflect"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Name of the ConfigMap, its key and its description, as upstream.
const (
	ConfigMapName = "kube-root-ca.crt"
	DataKey       = "ca.crt"
	description   = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
)

type controller struct {
	*manager.Loop
	client   kubernetes.Interface
	caPEM    string
	nsLister corelisters.NamespaceLister
	cmLister corelisters.ConfigMapLister
}

// New registers the controller's handlers; caPEM is the bundle to publish.
func New(c *manager.Context, caPEM []byte) (manager.Controller, error) {
	ns := c.Informers.Core().V1().Namespaces()
	cm := c.Informers.Core().V1().ConfigMaps()
	ctl := &controller{client: c.Client, caPEM: string(caPEM), nsLister: ns.Lister(), cmLister: cm.Lister()}
	ctl.Loop = manager.NewLoop("root-ca-cert-publisher", 2, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{ns.Informer().HasSynced, cm.Informer().HasSynced}
	if err := ctl.EnqueueNamespaces(ns.Informer()); err != nil {
		return nil, err
	}
	onConfigMap := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		if m, ok := o.(*corev1.ConfigMap); ok && m.Name == ConfigMapName {
			ctl.Enqueue(m.Namespace)
		}
	}
	if _, err := cm.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, o any) { onConfigMap(o) },
		DeleteFunc: onConfigMap,
	}); err != nil {
		return nil, err
	}
	return ctl, nil
}

func (c *controller) sync(ctx context.Context, namespace string) (time.Duration, error) {
	if active, err := manager.ActiveNamespace(c.nsLister, namespace); !active || err != nil {
		return 0, err
	}
	want := map[string]string{DataKey: c.caPEM}
	current, err := c.cmLister.ConfigMaps(namespace).Get(ConfigMapName)
	if apierrors.IsNotFound(err) {
		_, err = c.client.CoreV1().ConfigMaps(namespace).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Annotations: map[string]string{"kubernetes.io/description": description}},
			Data:       want,
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) || apierrors.IsForbidden(err) || apierrors.IsNotFound(err) {
			return 0, nil
		}
		return 0, err
	}
	if err != nil {
		return 0, err
	}
	if reflect.DeepEqual(current.Data, want) && current.Annotations["kubernetes.io/description"] == description {
		return 0, nil
	}
	// Deep-copy: the lister's object is shared.
	update := current.DeepCopy()
	update.Data = want
	if update.Annotations == nil {
		update.Annotations = map[string]string{}
	}
	update.Annotations["kubernetes.io/description"] = description
	_, err = c.client.CoreV1().ConfigMaps(namespace).Update(ctx, update, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	return 0, err
}
