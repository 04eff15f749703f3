package printers

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	storagev1beta1 "k8s.io/api/storage/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Annotations that mark the default StorageClass and VolumeAttributesClass.
const (
	defaultStorageClassAnnotation          = "storageclass.kubernetes.io/is-default-class"
	betaDefaultStorageClassAnnotation      = "storageclass.beta.kubernetes.io/is-default-class"
	defaultVolumeAttributesClassAnnotation = "volumeattributesclass.alpha.kubernetes.io/is-default-class"
)

func registerStorage(s *Set) {
	storage := func(kind string) schema.GroupKind { return schema.GroupKind{Group: storagev1.GroupName, Kind: kind} }

	sc := storagev1.StorageClass{}.SwaggerDoc()
	s.add(storage("StorageClass"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Provisioner", "string", sc["provisioner"]),
		col("ReclaimPolicy", "string", sc["reclaimPolicy"]),
		col("VolumeBindingMode", "string", sc["volumeBindingMode"]),
		col("AllowVolumeExpansion", "string", sc["allowVolumeExpansion"]),
		ageColumn(),
	}, func(o *storagev1.StorageClass, now time.Time) []interface{} {
		name := o.Name
		if o.Annotations[defaultStorageClassAnnotation] == "true" || o.Annotations[betaDefaultStorageClassAnnotation] == "true" {
			name += " (default)"
		}
		reclaim := string(corev1.PersistentVolumeReclaimDelete)
		if o.ReclaimPolicy != nil {
			reclaim = string(*o.ReclaimPolicy)
		}
		binding := string(storagev1.VolumeBindingImmediate)
		if o.VolumeBindingMode != nil {
			binding = string(*o.VolumeBindingMode)
		}
		expansion := o.AllowVolumeExpansion != nil && *o.AllowVolumeExpansion
		return []interface{}{name, o.Provisioner, reclaim, binding, expansion, age(o, now)}
	}))

	vacName := func(m metav1.ObjectMeta) string {
		if m.Annotations[defaultVolumeAttributesClassAnnotation] == "true" {
			return m.Name + " (default)"
		}
		return m.Name
	}
	s.add(storage("VolumeAttributesClass"), printerOf([]metav1.TableColumnDefinition{
		nameColumn(),
		col("DriverName", "string", storagev1beta1.VolumeAttributesClass{}.SwaggerDoc()["driverName"]),
		ageColumn(),
	},
		cellsOf(func(o *storagev1.VolumeAttributesClass, now time.Time) []interface{} {
			return []interface{}{vacName(o.ObjectMeta), o.DriverName, age(o, now)}
		})))

	s.add(storage("VolumeAttachment"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Attacher", Type: "string", Format: "name", Description: storagev1.VolumeAttachmentSpec{}.SwaggerDoc()["attacher"]},
		col("PV", "string", storagev1.VolumeAttachmentSource{}.SwaggerDoc()["persistentVolumeName"]),
		col("Node", "string", storagev1.VolumeAttachmentSpec{}.SwaggerDoc()["nodeName"]),
		col("Attached", "boolean", storagev1.VolumeAttachmentStatus{}.SwaggerDoc()["attached"]),
		ageColumn(),
	}, func(o *storagev1.VolumeAttachment, now time.Time) []interface{} {
		return []interface{}{o.Name, o.Spec.Attacher, deref(o.Spec.Source.PersistentVolumeName, ""), o.Spec.NodeName,
			o.Status.Attached, age(o, now)}
	}))

	s.add(storage("CSINode"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Drivers", "integer", "Drivers indicates the number of CSI drivers registered on the node"),
		ageColumn(),
	}, func(o *storagev1.CSINode, now time.Time) []interface{} {
		return []interface{}{o.Name, int64(len(o.Spec.Drivers)), age(o, now)}
	}))

	csi := storagev1.CSIDriverSpec{}.SwaggerDoc()
	s.add(storage("CSIDriver"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("AttachRequired", "boolean", csi["attachRequired"]),
		col("PodInfoOnMount", "boolean", csi["podInfoOnMount"]),
		col("StorageCapacity", "boolean", csi["storageCapacity"]),
		col("TokenRequests", "string", csi["tokenRequests"]),
		col("RequiresRepublish", "boolean", csi["requiresRepublish"]),
		col("Modes", "string", csi["volumeLifecycleModes"]),
		ageColumn(),
	}, func(o *storagev1.CSIDriver, now time.Time) []interface{} {
		attach := o.Spec.AttachRequired == nil || *o.Spec.AttachRequired
		podInfo := o.Spec.PodInfoOnMount != nil && *o.Spec.PodInfoOnMount
		capacity := o.Spec.StorageCapacity != nil && *o.Spec.StorageCapacity
		republish := o.Spec.RequiresRepublish != nil && *o.Spec.RequiresRepublish
		tokens := "<unset>"
		if o.Spec.TokenRequests != nil {
			audiences := make([]string, 0, len(o.Spec.TokenRequests))
			for _, t := range o.Spec.TokenRequests {
				audiences = append(audiences, t.Audience)
			}
			tokens = strings.Join(audiences, ",")
		}
		modes := make([]string, 0, len(o.Spec.VolumeLifecycleModes))
		for _, m := range o.Spec.VolumeLifecycleModes {
			modes = append(modes, string(m))
		}
		return []interface{}{o.Name, attach, podInfo, capacity, tokens, republish, orNone(strings.Join(modes, ",")), age(o, now)}
	}))

	// CSIStorageCapacity has no printer upstream: the default Name / Created At columns.
}
