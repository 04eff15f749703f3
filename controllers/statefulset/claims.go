package statefulset

import (
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// claims are the PersistentVolumeClaims the set's templates make for pod, in template order:
// named <template>-<set>-<ordinal>, labelled with the template's labels and the set's selector.
func claims(set *appsv1.StatefulSet, pod *corev1.Pod) []*corev1.PersistentVolumeClaim {
	o := ordinalOf(pod)
	out := make([]*corev1.PersistentVolumeClaim, 0, len(set.Spec.VolumeClaimTemplates))
	for i := range set.Spec.VolumeClaimTemplates {
		t := &set.Spec.VolumeClaimTemplates[i]
		claim := t.DeepCopy()
		claim.Name = claimName(set, t, o)
		claim.Namespace = set.Namespace
		if claim.Labels == nil {
			claim.Labels = map[string]string{}
		}
		for k, v := range set.Spec.Selector.MatchLabels {
			claim.Labels[k] = v
		}
		out = append(out, claim)
	}
	return out
}

// createClaims creates the pod's claims that do not exist yet; a claim being deleted is an error
// until it is gone.
func (c *controller) createClaims(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	var errs []error
	for _, claim := range claims(set, pod) {
		existing, err := c.pvcLister.PersistentVolumeClaims(claim.Namespace).Get(claim.Name)
		switch {
		case apierrors.IsNotFound(err):
			_, err := c.client.CoreV1().PersistentVolumeClaims(claim.Namespace).Create(ctx, claim, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				errs = append(errs, fmt.Errorf("failed to create PVC %s: %w", claim.Name, err))
			}
			if !apierrors.IsAlreadyExists(err) {
				c.claimEvent(set, pod, claim, err)
			}
		case err != nil:
			errs = append(errs, fmt.Errorf("failed to retrieve PVC %s: %w", claim.Name, err))
		case existing.DeletionTimestamp != nil:
			errs = append(errs, fmt.Errorf("pvc %s is being deleted", claim.Name))
		}
	}
	return errors.Join(errs...)
}

func (c *controller) claimEvent(set *appsv1.StatefulSet, pod *corev1.Pod, claim *corev1.PersistentVolumeClaim, err error) {
	if err == nil {
		c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulCreate", "Create Claim %s Pod %s in StatefulSet %s success", claim.Name, pod.Name, set.Name)
		return
	}
	c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedCreate", "Create Claim %s for Pod %s in StatefulSet %s failed error: %s", claim.Name, pod.Name, set.Name, err)
}

// claimIsStale tells whether one of the pod's claims still belongs to an earlier pod of that
// name, which a scale-down is deleting: the pod must wait for the claim to go.
func (c *controller) claimIsStale(set *appsv1.StatefulSet, pod *corev1.Pod) (bool, error) {
	if retention(set).WhenScaled == appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		return false, nil
	}
	for _, claim := range claims(set, pod) {
		existing, err := c.pvcLister.PersistentVolumeClaims(claim.Namespace).Get(claim.Name)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return false, err
		}
		if staleRef(existing, pod, podKind) {
			return true, nil
		}
	}
	return false, nil
}

// fixClaims sets the owner references of the pod's claims as the set's retention policy asks:
// the set owns them when they go with the set (whenDeleted: Delete), the pod owns them once it is
// scaled away when they go with it (whenScaled: Delete).
func (c *controller) fixClaims(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	for _, t := range claims(set, pod) {
		claim, err := c.pvcLister.PersistentVolumeClaims(set.Namespace).Get(t.Name)
		if apierrors.IsNotFound(err) {
			continue // picked up once the informer has it
		}
		if err != nil {
			return fmt.Errorf("could not retrieve claim %s for %s when checking PVC deletion policy: %w", t.Name, pod.Name, err)
		}
		if staleRef(claim, set, kind) || staleRef(claim, pod, podKind) {
			continue // left to the garbage collector
		}
		refs := wantedRefs(claim, set, pod)
		if apiequality.Semantic.DeepEqual(refs, claim.OwnerReferences) || len(refs) == 0 && len(claim.OwnerReferences) == 0 {
			continue
		}
		if foreignController(claim, set, pod) {
			c.recorder.Eventf(set, corev1.EventTypeWarning, "ConflictingController",
				"PersistentVolumeClaim %s has a conflicting OwnerReference that acts as a manging controller, the retention policy is ignored for this claim", claim.Name)
		}
		update := claim.DeepCopy()
		update.OwnerReferences = refs
		if _, err := c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Update(ctx, update, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("could not update claim %s for delete policy ownerRefs: %w", claim.Name, err)
		}
	}
	return nil
}

func retention(set *appsv1.StatefulSet) appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy {
	if p := set.Spec.PersistentVolumeClaimRetentionPolicy; p != nil {
		return *p
	}
	return appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		WhenScaled: appsv1.RetainPersistentVolumeClaimRetentionPolicyType}
}

// wantedRefs are the claim's owner references as the retention policy wants them: the others
// kept, the set's and the pod's replaced by what the policy calls for, and none of ours added
// when another controller owns the claim.
func wantedRefs(claim *corev1.PersistentVolumeClaim, set *appsv1.StatefulSet, pod *corev1.Pod) []metav1.OwnerReference {
	var refs []metav1.OwnerReference
	for _, r := range claim.OwnerReferences {
		if !refersTo(r, set, kind) && !refersTo(r, pod, podKind) {
			refs = append(refs, r)
		}
	}
	if foreignController(claim, set, pod) {
		return refs
	}
	p := retention(set)
	scaledDown := !inRange(pod, set)
	add := func(owner metav1.Object, gvk schema.GroupVersionKind) {
		if owner.GetUID() != "" {
			refs = append(refs, *metav1.NewControllerRef(owner, gvk))
		}
	}
	switch del := appsv1.DeletePersistentVolumeClaimRetentionPolicyType; {
	case p.WhenScaled == del && scaledDown:
		add(pod, podKind)
	case p.WhenDeleted == del:
		add(set, kind)
	}
	return refs
}

func refersTo(r metav1.OwnerReference, obj metav1.Object, gvk schema.GroupVersionKind) bool {
	return r.APIVersion == gvk.GroupVersion().String() && r.Kind == gvk.Kind && r.Name == obj.GetName()
}

// staleRef tells whether the claim refers to an earlier object of obj's name.
func staleRef(claim *corev1.PersistentVolumeClaim, obj metav1.Object, gvk schema.GroupVersionKind) bool {
	for _, r := range claim.OwnerReferences {
		if refersTo(r, obj, gvk) {
			return r.UID != obj.GetUID()
		}
	}
	return false
}

// foreignController tells whether, under a policy that deletes claims, another controller than
// the set or the pod controls the claim.
func foreignController(claim *corev1.PersistentVolumeClaim, set *appsv1.StatefulSet, pod *corev1.Pod) bool {
	p := retention(set)
	if p.WhenDeleted == appsv1.RetainPersistentVolumeClaimRetentionPolicyType && p.WhenScaled == appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		return false
	}
	for _, r := range claim.OwnerReferences {
		if refersTo(r, set, kind) || refersTo(r, pod, podKind) {
			continue
		}
		if r.Controller != nil && *r.Controller {
			return true
		}
	}
	return false
}
