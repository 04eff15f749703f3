// Package bootstrapsigner is upstream's bootstrap-signer-controller: it signs the kubeconfig of
// the kube-public/cluster-info ConfigMap with every bootstrap token marked for signing (a
// detached JWS under jws-kubeconfig-<token-id>), and drops the signatures of tokens that are
// gone, expired or no longer for signing, so that a node joining with a token can tell that
// the server it reached knows the token. Upstream leaves it off unless --controllers names it;
// kubeadm, like `keelson server`, turns it on.
package bootstrapsigner

import (
	"context"
	"strings"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
)

const key = metav1.NamespacePublic + "/" + bootstrapapi.ConfigMapClusterInfo

type signer struct {
	*manager.Loop
	client     kubernetes.Interface
	secrets    corelisters.SecretLister
	configMaps corelisters.ConfigMapLister
	now        func() time.Time
}

// New returns the bootstrap signer.
func New(c *manager.Context) (manager.Controller, error) {
	secrets, configMaps := c.Informers.Core().V1().Secrets(), c.Informers.Core().V1().ConfigMaps()
	s := &signer{client: c.Client, secrets: secrets.Lister(), configMaps: configMaps.Lister(), now: time.Now}
	s.Loop = manager.NewLoop("bootstrapsigner", 1, c.Log, s.sync)
	s.Synced = []cache.InformerSynced{secrets.Informer().HasSynced, configMaps.Informer().HasSynced}
	enqueue := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		switch o := o.(type) {
		case *corev1.ConfigMap:
			if o.Namespace == metav1.NamespacePublic && o.Name == bootstrapapi.ConfigMapClusterInfo {
				s.Enqueue(key)
			}
		case *corev1.Secret:
			if o.Namespace == metav1.NamespaceSystem && o.Type == bootstrapapi.SecretTypeBootstrapToken {
				s.Enqueue(key)
			}
		}
	}
	handler := cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue}
	if _, err := secrets.Informer().AddEventHandler(handler); err != nil {
		return nil, err
	}
	if _, err := configMaps.Informer().AddEventHandler(handler); err != nil {
		return nil, err
	}
	return s, nil
}

// sync brings cluster-info's signatures in line with the tokens; it looks again when the first
// token to expire does.
func (s *signer) sync(ctx context.Context, _ string) (time.Duration, error) {
	cm, err := s.configMaps.ConfigMaps(metav1.NamespacePublic).Get(bootstrapapi.ConfigMapClusterInfo)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	content, ok := cm.Data[bootstrapapi.KubeConfigKey]
	if !ok {
		return 0, nil
	}
	tokens, next, err := s.signingTokens()
	if err != nil {
		return 0, err
	}
	want := map[string]string{}
	for id, secret := range tokens {
		sig, err := jws.ComputeDetachedSignature(content, id, secret)
		if err != nil {
			return 0, err
		}
		want[bootstrapapi.JWSSignatureKeyPrefix+id] = sig
	}
	changed := false
	data := map[string]string{}
	for k, v := range cm.Data {
		if !strings.HasPrefix(k, bootstrapapi.JWSSignatureKeyPrefix) {
			data[k] = v
		} else if want[k] != v {
			changed = true
		}
	}
	for k, v := range want {
		if cm.Data[k] != v {
			changed = true
		}
		data[k] = v
	}
	if changed {
		updated := cm.DeepCopy()
		updated.Data = data
		if _, err := s.client.CoreV1().ConfigMaps(metav1.NamespacePublic).Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return 0, err
		}
	}
	return next, nil
}

// signingTokens are the ids and secrets of the bootstrap tokens valid for signing, and the time
// until the first of them expires (0: none does).
func (s *signer) signingTokens() (map[string]string, time.Duration, error) {
	list, err := s.secrets.Secrets(metav1.NamespaceSystem).List(labels.Everything())
	if err != nil {
		return nil, 0, err
	}
	now := s.now()
	tokens := map[string]string{}
	var next time.Duration
	for _, sec := range list {
		if sec.Type != bootstrapapi.SecretTypeBootstrapToken || sec.DeletionTimestamp != nil {
			continue
		}
		id := string(sec.Data[bootstrapapi.BootstrapTokenIDKey])
		secret := string(sec.Data[bootstrapapi.BootstrapTokenSecretKey])
		if id == "" || secret == "" || sec.Name != bootstrapapi.BootstrapTokenSecretPrefix+id ||
			string(sec.Data[bootstrapapi.BootstrapTokenUsageSigningKey]) != "true" {
			continue
		}
		if exp := string(sec.Data[bootstrapapi.BootstrapTokenExpirationKey]); exp != "" {
			at, err := time.Parse(time.RFC3339, exp)
			if err != nil || !at.After(now) {
				continue
			}
			if left := at.Sub(now); next == 0 || left < next {
				next = left
			}
		}
		tokens[id] = secret
	}
	return tokens, next, nil
}
