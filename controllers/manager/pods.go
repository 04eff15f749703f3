package manager

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// PodReadyCondition is the pod's Ready condition, or nil.
func PodReadyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// PodReady tells whether the pod's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	c := PodReadyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// PodAvailable tells whether the pod has been ready for minReadySeconds at now.
func PodAvailable(p *corev1.Pod, minReady int32, now time.Time) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return minReady == 0 || !c.LastTransitionTime.Add(time.Duration(minReady)*time.Second).After(now)
		}
	}
	return false
}

// SlowStart calls create for 0..n-1 in batches of 1, 2, 4, ... until a batch has a failure, so
// that a failing template costs one call, not n, as upstream's controllers create pods. It
// returns how many succeeded.
func SlowStart(n int, create func(i int) error) (int, error) {
	done, next := 0, 0
	for batch := 1; next < n; batch *= 2 {
		size := min(batch, n-next)
		errs := make(chan error, size)
		var wg sync.WaitGroup
		for i := next; i < next+size; i++ {
			wg.Go(func() { errs <- create(i) })
		}
		wg.Wait()
		close(errs)
		next += size
		var firstErr error
		for err := range errs {
			if err == nil {
				done++
			} else if firstErr == nil {
				firstErr = err
			}
		}
		if firstErr != nil {
			return done, firstErr
		}
	}
	return done, nil
}

// ClaimPods sorts out the owner's pods among pods with Claim.
func ClaimPods(ctx context.Context, client kubernetes.Interface, gvk schema.GroupVersionKind, owner metav1.Object, pods []*corev1.Pod, qualifies func(*corev1.Pod) bool) ([]*corev1.Pod, error) {
	return Claim(ctx, gvk, owner, pods, qualifies, func(ctx context.Context, p *corev1.Pod, patch []byte) (*corev1.Pod, error) {
		return client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	})
}

// Claim sorts out the owner's objects among objs, as upstream's controller ref manager does: it
// keeps those it controls that still qualify, releases those that no longer do, and adopts
// qualifying orphans (unless the owner or the orphan is being deleted), writing each change
// with patch. It returns the objects the owner controls afterwards.
func Claim[T metav1.Object](ctx context.Context, gvk schema.GroupVersionKind, owner metav1.Object, objs []T, qualifies func(T) bool,
	patch func(ctx context.Context, obj T, patch []byte) (T, error)) ([]T, error) {
	var owned []T
	for _, o := range objs {
		ref := metav1.GetControllerOfNoCopy(o)
		matches := qualifies(o)
		switch {
		case ref != nil && ref.UID == owner.GetUID():
			if matches {
				owned = append(owned, o)
				continue
			}
			if _, err := patch(ctx, o, ReleasePatch(owner.GetUID(), o.GetUID())); err != nil && !apierrors.IsNotFound(err) {
				return nil, err
			}
		case ref == nil && matches && o.GetDeletionTimestamp() == nil && owner.GetDeletionTimestamp() == nil:
			adopted, err := patch(ctx, o, AdoptPatch(gvk, owner, o.GetUID()))
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			owned = append(owned, adopted)
		}
	}
	return owned, nil
}
