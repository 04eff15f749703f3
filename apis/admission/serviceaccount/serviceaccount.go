// Package serviceaccount gives pods their service account on creation, as upstream's
// ServiceAccount admission plugin does: the namespace's default account when none is named,
// which must exist, its image pull secrets, and (unless the pod or the account opts out) a
// projected kube-api-access volume with a bound token, the cluster's CA and the namespace,
// mounted in every container.
package serviceaccount

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/keelson/keelson/apis/rest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
)

const (
	defaultName = "default"
	// volumePrefix and mountPath are upstream's names for the token volume.
	volumePrefix = "kube-api-access-"
	mountPath    = "/var/run/secrets/kubernetes.io/serviceaccount"
	// tokenExpiration is upstream's: an hour and seven seconds, which marks the tokens it issues
	// for the warn-only extension of legacy clients.
	tokenExpiration = 60*60 + 7
)

var serviceAccounts = schema.GroupResource{Resource: "serviceaccounts"}

// Admission reads service accounts through the API's cache.
type Admission struct{ api *rest.API }

// New returns the admission over api.
func New(api *rest.API) *Admission { return &Admission{api: api} }

// BeforeCreate is the pods' create hook.
func (a *Admission) BeforeCreate(ctx context.Context, obj runtime.Object, _ bool) (func(), error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return nil, nil
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = defaultName
		pod.Spec.DeprecatedServiceAccount = defaultName //nolint:staticcheck // kept in step, as upstream does
	}
	sa, err := a.lookup(ctx, pod.Namespace, pod.Spec.ServiceAccountName)
	if err != nil {
		return nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name,
			fmt.Errorf("error looking up service account %s/%s: %w", pod.Namespace, pod.Spec.ServiceAccountName, err))
	}
	if automount(sa, pod) {
		mountToken(pod)
	}
	if len(pod.Spec.ImagePullSecrets) == 0 {
		for _, s := range sa.ImagePullSecrets {
			pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s.Name})
		}
	}
	return nil, nil
}

// lookup finds the service account; the default one is waited for a little, since the
// service account controller creates it just after the namespace.
func (a *Admission) lookup(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	attempts := 1
	if name == defaultName {
		attempts = 10
	}
	wait := time.Duration(100+rand.IntN(100)) * time.Millisecond
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
		}
		obj, err := a.api.Lookup(ctx, serviceAccounts, ns, name)
		if err == nil {
			return obj.(*corev1.ServiceAccount), nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "serviceaccount"}, name) // upstream names it in the singular here
}

func automount(sa *corev1.ServiceAccount, pod *corev1.Pod) bool {
	if pod.Spec.AutomountServiceAccountToken != nil {
		return *pod.Spec.AutomountServiceAccountToken
	}
	if sa.AutomountServiceAccountToken != nil {
		return *sa.AutomountServiceAccountToken
	}
	return true
}

// mountToken adds the kube-api-access volume (or reuses one the pod has) and mounts it in
// every container that has nothing at the token's path.
func mountToken(pod *corev1.Pod) {
	name := ""
	names := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		names[v.Name] = true
		if name == "" && strings.HasPrefix(v.Name, volumePrefix) {
			name = v.Name
		}
	}
	hasVolume := name != ""
	for name == "" || (!hasVolume && names[name]) {
		name = volumePrefix + utilrand.String(5)
	}
	mount := corev1.VolumeMount{Name: name, ReadOnly: true, MountPath: mountPath}
	needed := false
	add := func(cs []corev1.Container) {
		for i := range cs {
			has := false
			for _, m := range cs[i].VolumeMounts {
				if m.MountPath == mountPath {
					has = true
					break
				}
			}
			if !has {
				cs[i].VolumeMounts = append(cs[i].VolumeMounts, mount)
				needed = true
			}
		}
	}
	add(pod.Spec.InitContainers)
	add(pod.Spec.Containers)
	if needed && !hasVolume {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: tokenVolume()}})
	}
}

// tokenVolume is upstream's projected token volume.
func tokenVolume() *corev1.ProjectedVolumeSource {
	return &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](corev1.ProjectedVolumeSourceDefaultMode),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](tokenExpiration)}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}
}
