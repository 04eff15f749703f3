// Package history keeps the ControllerRevisions by which the StatefulSet and DaemonSet
// controllers record each pod template they have rolled out, as upstream's controller history
// does: a revision holds a strategic merge patch that restores the template, is named for a hash
// of it, carries an increasing revision number, and is owned by its controller; kubectl's
// `rollout history` and `rollout undo` read and apply them.
package history

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	"github.com/keelson/keelson/controllers/manager"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/dump"
)

// HashLabel is the label by which a StatefulSet's revision carries its own hash, upstream's
// controller.kubernetes.io/hash.
const HashLabel = "controller.kubernetes.io/hash"

// TemplatePatch is the strategic merge patch that restores obj's spec.template: the template as
// obj marshals it, marked "$patch": "replace", with keys in sorted order as upstream and kubectl
// write it (kubectl compares the bytes to tell a revision from the current template).
func TemplatePatch(obj any) ([]byte, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	spec, _ := raw["spec"].(map[string]any)
	template, _ := spec["template"].(map[string]any)
	if template == nil {
		return nil, fmt.Errorf("history: %T has no spec.template", obj)
	}
	template["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": template}})
}

// Hash is upstream's hash of a revision's data with an optional collision count: FNV-32 of the
// bytes and the count in decimal, encoded safe for names.
func Hash(rev *appsv1.ControllerRevision, collisionCount *int32) string {
	h := fnv.New32()
	h.Write(rev.Data.Raw)
	if collisionCount != nil {
		h.Write([]byte(strconv.FormatInt(int64(*collisionCount), 10)))
	}
	return utilrand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// TemplateHash is upstream's hash of a pod template with an optional collision count (the one
// DaemonSets label their pods and revisions with): FNV-32a of the template's deep dump, then the
// count as four little-endian bytes padded to eight.
func TemplateHash(t *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%v", dump.ForHash(*t))
	if collisionCount != nil {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, uint32(*collisionCount))
		h.Write(b)
	}
	return utilrand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// Name is the name of parent's revision with the given hash.
func Name(parent string, hash string) string {
	if len(parent) > 223 {
		parent = parent[:223]
	}
	return parent + "-" + hash
}

// New builds (without creating it) a revision of parent, of kind gvk, holding data: labelled
// with templateLabels and the data's hash, named for the hash, owned by parent.
func New(parent metav1.Object, gvk schema.GroupVersionKind, templateLabels map[string]string, data []byte, revision int64, collisionCount *int32) *appsv1.ControllerRevision {
	l := make(map[string]string, len(templateLabels)+1)
	for k, v := range templateLabels {
		l[k] = v
	}
	rev := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       parent.GetNamespace(),
			Labels:          l,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(parent, gvk)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: revision,
	}
	hash := Hash(rev, collisionCount)
	rev.Name = Name(parent.GetName(), hash)
	rev.Labels[HashLabel] = hash
	return rev
}

// Equal tells whether two revisions hold the same data.
func Equal(a, b *appsv1.ControllerRevision) bool {
	return a != nil && b != nil && bytes.Equal(a.Data.Raw, b.Data.Raw)
}

// FindEqual returns the revisions that hold needle's data.
func FindEqual(revisions []*appsv1.ControllerRevision, needle *appsv1.ControllerRevision) []*appsv1.ControllerRevision {
	var out []*appsv1.ControllerRevision
	for _, r := range revisions {
		if Equal(r, needle) {
			out = append(out, r)
		}
	}
	return out
}

// Sort orders revisions by revision number, then creation and name.
func Sort(revisions []*appsv1.ControllerRevision) {
	sort.SliceStable(revisions, func(i, j int) bool {
		a, b := revisions[i], revisions[j]
		if a.Revision != b.Revision {
			return a.Revision < b.Revision
		}
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
}

// MaxRevision is the highest revision number among revisions, 0 for none.
func MaxRevision(revisions []*appsv1.ControllerRevision) int64 {
	var m int64
	for _, r := range revisions {
		m = max(m, r.Revision)
	}
	return m
}

// Store writes revisions through the API.
type Store struct {
	Client kubernetes.Interface
}

// Create creates rev for parent. When another revision already has its name, the existing one
// is returned if it holds the same data; otherwise collisionCount is raised and the name hashed
// again.
func (s Store) Create(ctx context.Context, parent metav1.Object, rev *appsv1.ControllerRevision, collisionCount *int32) (*appsv1.ControllerRevision, error) {
	clone := rev.DeepCopy()
	for {
		hash := Hash(rev, collisionCount)
		clone.Name = Name(parent.GetName(), hash)
		if clone.Labels != nil {
			if _, ok := clone.Labels[HashLabel]; ok {
				clone.Labels[HashLabel] = hash
			}
		}
		created, err := s.Client.AppsV1().ControllerRevisions(parent.GetNamespace()).Create(ctx, clone, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			return created, err
		}
		existing, err := s.Client.AppsV1().ControllerRevisions(parent.GetNamespace()).Get(ctx, clone.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		if bytes.Equal(existing.Data.Raw, clone.Data.Raw) {
			return existing, nil
		}
		*collisionCount++
	}
}

// SetRevision gives rev the revision number n.
func (s Store) SetRevision(ctx context.Context, rev *appsv1.ControllerRevision, n int64) (*appsv1.ControllerRevision, error) {
	if rev.Revision == n {
		return rev, nil
	}
	patch := fmt.Appendf(nil, `{"revision":%d}`, n)
	return s.Client.AppsV1().ControllerRevisions(rev.Namespace).Patch(ctx, rev.Name, types.MergePatchType, patch, metav1.PatchOptions{})
}

// Delete deletes rev; a revision already gone is no error.
func (s Store) Delete(ctx context.Context, rev *appsv1.ControllerRevision) error {
	err := s.Client.AppsV1().ControllerRevisions(rev.Namespace).Delete(ctx, rev.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &rev.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// Claim returns the revisions owner controls among all: it adopts orphans its selector matches
// (unless owner is being deleted) and releases those it owns that the selector no longer matches.
func (s Store) Claim(ctx context.Context, owner metav1.Object, gvk schema.GroupVersionKind, selector labels.Selector, all []*appsv1.ControllerRevision) ([]*appsv1.ControllerRevision, error) {
	revisions := s.Client.AppsV1().ControllerRevisions(owner.GetNamespace())
	return manager.Claim(ctx, gvk, owner, all,
		func(r *appsv1.ControllerRevision) bool { return selector.Matches(labels.Set(r.Labels)) },
		func(ctx context.Context, r *appsv1.ControllerRevision, patch []byte) (*appsv1.ControllerRevision, error) {
			return revisions.Patch(ctx, r.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		})
}
