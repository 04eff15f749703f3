package statefulset

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestWantedRefs pins upstream's claim ownership per retention policy: the set owns a claim
// that goes with the set, a scaled-away pod owns a claim that goes with scale-down, and a claim
// another controller owns gets neither.
func TestWantedRefs(t *testing.T) {
	const retain, del = appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	set := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "web", UID: "set"}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2)}}
	inRange := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", UID: "pod1"}}
	scaledAway := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-2", UID: "pod2"}}
	other := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "cm"}
	foreign := metav1.OwnerReference{APIVersion: "example.com/v1", Kind: "Thing", Name: "t", UID: "thing", Controller: ptr.To(true)}
	cases := []struct {
		name                string
		whenDeleted, scaled appsv1.PersistentVolumeClaimRetentionPolicyType
		pod                 *corev1.Pod
		refs                []metav1.OwnerReference
		want                []string
	}{
		{"retain: no refs", retain, retain, inRange, nil, nil},
		{"retain: ours removed, others kept", retain, retain, inRange, []metav1.OwnerReference{other, *metav1.NewControllerRef(set, kind)}, []string{"cm"}},
		{"delete with set", del, retain, inRange, nil, []string{"set"}},
		{"delete with set, scaled away", del, retain, scaledAway, nil, []string{"set"}},
		{"delete on scale-down, in range", retain, del, inRange, nil, nil},
		{"delete on scale-down, scaled away", retain, del, scaledAway, []metav1.OwnerReference{*metav1.NewControllerRef(set, kind)}, []string{"pod2"}},
		{"delete both, in range", del, del, inRange, nil, []string{"set"}},
		{"delete both, scaled away", del, del, scaledAway, []metav1.OwnerReference{*metav1.NewControllerRef(set, kind)}, []string{"pod2"}},
		{"another controller", del, del, inRange, []metav1.OwnerReference{foreign}, []string{"thing"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := set.DeepCopy()
			s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenDeleted: tc.whenDeleted, WhenScaled: tc.scaled}
			claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{OwnerReferences: tc.refs}}
			var got []string
			for _, r := range wantedRefs(claim, s, tc.pod) {
				got = append(got, string(r.UID))
				if r.UID != "cm" && r.UID != "thing" && (r.Controller == nil || !*r.Controller) {
					t.Errorf("ref to %s is not a controller ref", r.UID)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("refs %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("refs %v, want %v", got, tc.want)
				}
			}
		})
	}
}
