// Package tokencleaner removes tokens past their use, as two of upstream's controllers do:
// tokencleaner deletes expired bootstrap token Secrets in kube-system, and
// legacy-serviceaccount-token-cleaner invalidates, then deletes, auto-generated legacy
// service-account token Secrets nobody has used for a while.
package tokencleaner

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

// Bootstrap tokens, as k8s.io/cluster-bootstrap names them.
const (
	// SecretTypeBootstrapToken is the type of a bootstrap token Secret.
	SecretTypeBootstrapToken corev1.SecretType = "bootstrap.kubernetes.io/token"
	// ExpirationKey is the data key of a token's expiry, in RFC 3339.
	ExpirationKey = "expiration"
)

type bootstrapCleaner struct {
	*manager.Loop
	client  kubernetes.Interface
	secrets corelisters.SecretLister
	now     func() time.Time
}

// NewBootstrap returns upstream's tokencleaner, which deletes bootstrap token Secrets in
// kube-system once their expiration has passed. Upstream leaves it off unless --controllers
// names it.
func NewBootstrap(c *manager.Context) (manager.Controller, error) {
	inf := c.Informers.Core().V1().Secrets()
	tc := &bootstrapCleaner{client: c.Client, secrets: inf.Lister(), now: time.Now}
	tc.Loop = manager.NewLoop("tokencleaner", 1, c.Log, tc.sync)
	tc.Synced = []cache.InformerSynced{inf.Informer().HasSynced}
	enqueue := func(o any) {
		if s, ok := o.(*corev1.Secret); ok && s.Type == SecretTypeBootstrapToken && s.Namespace == metav1.NamespaceSystem {
			if key, err := cache.MetaNamespaceKeyFunc(s); err == nil {
				tc.Enqueue(key)
			}
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) },
	}); err != nil {
		return nil, err
	}
	return tc, nil
}

func (tc *bootstrapCleaner) sync(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	secret, err := tc.secrets.Secrets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if secret.Type != SecretTypeBootstrapToken {
		return 0, nil
	}
	left, expired := expiration(secret, tc.now())
	if !expired {
		return left, nil
	}
	err = tc.client.CoreV1().Secrets(namespace).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &secret.UID}})
	// A conflict means the name now holds another Secret, which gets its own key.
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return 0, err
	}
	return 0, nil
}

// expiration reads a token's expiry: the time left, or expired. A token without one never
// expires; one that cannot be read counts as expired, as upstream treats it.
func expiration(s *corev1.Secret, now time.Time) (time.Duration, bool) {
	value, ok := s.Data[ExpirationKey]
	if !ok || len(value) == 0 {
		return 0, false
	}
	at, err := time.Parse(time.RFC3339, string(value))
	if err != nil {
		return 0, true
	}
	left := at.Sub(now)
	if left <= 0 {
		return 0, true
	}
	return left, false
}
