package tokencleaner

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Legacy token labels and the API server's tracking record, as upstream names them.
const (
	// LastUsedLabel is the date the API server last saw a legacy token used.
	LastUsedLabel = "kubernetes.io/legacy-token-last-used"
	// InvalidSinceLabel is the date the cleaner invalidated a legacy token.
	InvalidSinceLabel = "kubernetes.io/legacy-token-invalid-since"
	// TrackingConfigMap, in kube-system, holds under TrackingSinceKey the date from which the API
	// server tracks legacy token use.
	TrackingConfigMap = "kube-apiserver-legacy-service-account-token-tracking"
	TrackingSinceKey  = "since"

	// DefaultCleanUpPeriod is upstream's --legacy-service-account-token-clean-up-period.
	DefaultCleanUpPeriod = 365 * 24 * time.Hour
	// DefaultSyncInterval is how often upstream's cleaner looks at every token.
	DefaultSyncInterval = 24 * time.Hour

	dateFormat = time.DateOnly
	legacyKey  = "legacy-tokens"
)

// LegacyOptions tune the legacy token cleaner; zero values take upstream's defaults.
type LegacyOptions struct {
	// CleanUpPeriod is how long a token must have gone unused before it is invalidated, and how
	// long it then stays invalid before it is deleted.
	CleanUpPeriod time.Duration
	// SyncInterval is the time between passes.
	SyncInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

type legacyCleaner struct {
	*manager.Loop
	client   kubernetes.Interface
	accounts corelisters.ServiceAccountLister
	secrets  corelisters.SecretLister
	pods     corelisters.PodLister
	opts     LegacyOptions
}

// NewLegacy returns upstream's legacy-serviceaccount-token-cleaner. A token Secret an account
// lists among its secrets (so generated for it), mounted by no pod and unused for the clean-up
// period is labelled invalid since today, and deleted once it has been invalid for the period.
func NewLegacy(c *manager.Context, opts LegacyOptions) (manager.Controller, error) {
	if opts.CleanUpPeriod <= 0 {
		opts.CleanUpPeriod = DefaultCleanUpPeriod
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	sa, secrets, pods := c.Informers.Core().V1().ServiceAccounts(), c.Informers.Core().V1().Secrets(), c.Informers.Core().V1().Pods()
	lc := &legacyCleaner{client: c.Client, accounts: sa.Lister(), secrets: secrets.Lister(), pods: pods.Lister(), opts: opts}
	lc.Loop = manager.NewLoop("legacy-serviceaccount-token-cleaner", 1, c.Log, lc.sync)
	lc.Synced = []cache.InformerSynced{sa.Informer().HasSynced, secrets.Informer().HasSynced, pods.Informer().HasSynced}
	return lc, nil
}

// Run starts the periodic pass.
func (lc *legacyCleaner) Run(ctx context.Context) error {
	lc.Enqueue(legacyKey)
	return lc.Loop.Run(ctx)
}

func (lc *legacyCleaner) sync(ctx context.Context, _ string) (time.Duration, error) {
	now := lc.opts.Now().UTC()
	// Failures wait for the next pass, as upstream's do, so that the pass keeps its period.
	trackedFrom, err := lc.trackedFrom(ctx)
	if err != nil {
		lc.Log.Error("getting the date legacy token tracking began", "err", err)
		return lc.opts.SyncInterval, nil
	}
	// Until tracking has run for a whole period, no token's disuse is known.
	if now.Before(trackedFrom.Add(lc.opts.CleanUpPeriod)) {
		return lc.opts.SyncInterval, nil
	}
	keepCreatedFrom := now.Add(-lc.opts.CleanUpPeriod)
	keepUsedFrom := keepCreatedFrom.Format(dateFormat)
	all, err := lc.secrets.List(labels.Everything())
	if err != nil {
		return 0, err
	}
	mounted := map[string]sets.Set[string]{}
	for _, s := range all {
		if s.Type != corev1.SecretTypeServiceAccountToken || s.DeletionTimestamp != nil || !s.CreationTimestamp.Time.Before(keepCreatedFrom) {
			continue
		}
		if used, ok := s.Labels[LastUsedLabel]; ok {
			if _, err := time.Parse(dateFormat, used); err != nil || used >= keepUsedFrom {
				continue
			}
		}
		generated, err := lc.generated(s)
		if err != nil {
			lc.Log.Error("getting service account", "secret", s.Namespace+"/"+s.Name, "err", err)
			continue
		}
		if !generated {
			continue
		}
		names, ok := mounted[s.Namespace]
		if !ok {
			if names, err = lc.mountedSecrets(s.Namespace); err != nil {
				lc.Log.Error("resolving mounted secrets", "secret", s.Namespace+"/"+s.Name, "err", err)
				continue
			}
			mounted[s.Namespace] = names
		}
		if names.Has(s.Name) {
			continue
		}
		invalidSince := s.Labels[InvalidSinceLabel]
		if _, err := time.Parse(dateFormat, invalidSince); err != nil {
			if err := lc.invalidate(ctx, s, now.Format(dateFormat)); err != nil {
				lc.Log.Error("labelling legacy token invalid", "secret", s.Namespace+"/"+s.Name, "err", err)
			}
			continue
		}
		if invalidSince >= keepUsedFrom {
			continue
		}
		lc.Log.Info("deleting auto-generated service account token", "secret", s.Namespace+"/"+s.Name, "invalidSince", invalidSince)
		err = lc.client.CoreV1().Secrets(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &s.ResourceVersion}})
		if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			lc.Log.Error("deleting legacy service account token", "secret", s.Namespace+"/"+s.Name, "err", err)
		}
	}
	return lc.opts.SyncInterval, nil
}

// trackedFrom is the first whole day of tracking: midnight after the recorded date.
func (lc *legacyCleaner) trackedFrom(ctx context.Context) (time.Time, error) {
	cm, err := lc.client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, TrackingConfigMap, metav1.GetOptions{})
	if err != nil {
		return time.Time{}, err
	}
	since, ok := cm.Data[TrackingSinceKey]
	if !ok {
		return time.Time{}, fmt.Errorf("configMap does not have since label")
	}
	t, err := time.Parse(dateFormat, since)
	if err != nil {
		return time.Time{}, fmt.Errorf("error parsing trackedSince time: %v", err)
	}
	return t.AddDate(0, 0, 1), nil
}

// generated tells whether the token's service account (same uid, when the Secret names one) lists
// it, the mark of a token the old tokens controller generated.
func (lc *legacyCleaner) generated(s *corev1.Secret) (bool, error) {
	name := s.Annotations[corev1.ServiceAccountNameKey]
	if name == "" {
		return false, nil
	}
	sa, err := lc.accounts.ServiceAccounts(s.Namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if uid := types.UID(s.Annotations[corev1.ServiceAccountUIDKey]); uid != "" && uid != sa.UID {
		return false, nil
	}
	for _, ref := range sa.Secrets {
		if ref.Name == s.Name {
			return true, nil
		}
	}
	return false, nil
}

func (lc *legacyCleaner) invalidate(ctx context.Context, s *corev1.Secret, today string) error {
	lc.Log.Info("marking the auto-generated service account token as invalid", "secret", s.Namespace+"/"+s.Name, "invalidSince", today)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": s.UID, "labels": map[string]string{InvalidSinceLabel: today}}})
	if err != nil {
		return err
	}
	_, err = lc.client.CoreV1().Secrets(s.Namespace).Patch(ctx, s.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// mountedSecrets names the Secrets the namespace's pods use.
func (lc *legacyCleaner) mountedSecrets(namespace string) (sets.Set[string], error) {
	pods, err := lc.pods.Pods(namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	names := sets.New[string]()
	for _, p := range pods {
		podSecrets(p, names)
	}
	return names, nil
}

// podSecrets adds every Secret a pod refers to: image pull secrets, environment, and volumes.
func podSecrets(p *corev1.Pod, names sets.Set[string]) {
	add := func(name string) {
		if name != "" {
			names.Insert(name)
		}
	}
	addRef := func(ref *corev1.LocalObjectReference) {
		if ref != nil {
			add(ref.Name)
		}
	}
	for _, s := range p.Spec.ImagePullSecrets {
		add(s.Name)
	}
	env := func(envFrom []corev1.EnvFromSource, vars []corev1.EnvVar) {
		for _, e := range envFrom {
			if e.SecretRef != nil {
				add(e.SecretRef.Name)
			}
		}
		for _, v := range vars {
			if v.ValueFrom != nil && v.ValueFrom.SecretKeyRef != nil {
				add(v.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
	for _, c := range p.Spec.InitContainers {
		env(c.EnvFrom, c.Env)
	}
	for _, c := range p.Spec.Containers {
		env(c.EnvFrom, c.Env)
	}
	for _, c := range p.Spec.EphemeralContainers {
		env(c.EnvFrom, c.Env)
	}
	for _, v := range p.Spec.Volumes {
		switch {
		case v.Secret != nil:
			add(v.Secret.SecretName)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					add(src.Secret.Name)
				}
			}
		case v.AzureFile != nil:
			add(v.AzureFile.SecretName)
		case v.CephFS != nil:
			addRef(v.CephFS.SecretRef)
		case v.Cinder != nil:
			addRef(v.Cinder.SecretRef)
		case v.FlexVolume != nil:
			addRef(v.FlexVolume.SecretRef)
		case v.RBD != nil:
			addRef(v.RBD.SecretRef)
		case v.ScaleIO != nil:
			addRef(v.ScaleIO.SecretRef)
		case v.ISCSI != nil:
			addRef(v.ISCSI.SecretRef)
		case v.StorageOS != nil:
			addRef(v.StorageOS.SecretRef)
		case v.CSI != nil:
			addRef(v.CSI.NodePublishSecretRef)
		}
	}
}
