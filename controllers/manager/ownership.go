package manager

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// AdoptPatch is the strategic merge patch by which a controller adopts an orphan: it adds owner
// (of kind gvk) as the object's controller. The object's uid in the patch makes the server refuse
// it if the name now belongs to another object.
func AdoptPatch(gvk schema.GroupVersionKind, owner metav1.Object, objUID types.UID) []byte {
	return fmt.Appendf(nil, `{"metadata":{"ownerReferences":[{"apiVersion":%q,"kind":%q,"name":%q,"uid":%q,"controller":true,"blockOwnerDeletion":true}],"uid":%q}}`,
		gvk.GroupVersion().String(), gvk.Kind, owner.GetName(), owner.GetUID(), objUID)
}

// ReleasePatch is the strategic merge patch by which a controller releases an object it no
// longer selects: it removes the owner's reference.
func ReleasePatch(ownerUID, objUID types.UID) []byte {
	return fmt.Appendf(nil, `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":%q}],"uid":%q}}`, ownerUID, objUID)
}
