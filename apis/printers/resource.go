package printers

import (
	"strings"
	"time"

	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// resourceClaimState summarizes a claim: "deleted", "pending", "allocated", "reserved", joined with commas.
func resourceClaimState(m metav1.Object, allocated bool, reserved int) string {
	var states []string
	deleted := m.GetDeletionTimestamp() != nil
	if deleted {
		states = append(states, "deleted")
	}
	if !allocated {
		if !deleted {
			states = append(states, "pending")
		}
	} else {
		states = append(states, "allocated")
		if reserved > 0 {
			states = append(states, "reserved")
		}
	}
	return strings.Join(states, ",")
}

func registerResource(s *Set) {
	res := func(kind string) schema.GroupKind { return schema.GroupKind{Group: resourcev1.GroupName, Kind: kind} }
	nameAge := []metav1.TableColumnDefinition{nameColumn(), ageColumn()}
	nameAgeCells := func(o metav1.Object, now time.Time) []interface{} { return []interface{}{o.GetName(), age(o, now)} }

	s.add(res("DeviceClass"), printerOf(nameAge,
		cellsOf(func(o *resourcev1.DeviceClass, now time.Time) []interface{} { return nameAgeCells(o, now) })))

	s.add(res("ResourceClaimTemplate"), printerOf(nameAge,
		cellsOf(func(o *resourcev1.ResourceClaimTemplate, now time.Time) []interface{} { return nameAgeCells(o, now) })))

	s.add(res("ResourceClaim"), printerOf([]metav1.TableColumnDefinition{
		nameColumn(),
		col("State", "string", "A summary of the current state (allocated, pending, reserved, etc.)."),
		ageColumn(),
	},
		cellsOf(func(o *resourcev1.ResourceClaim, now time.Time) []interface{} {
			return []interface{}{o.Name, resourceClaimState(o, o.Status.Allocation != nil, len(o.Status.ReservedFor)), age(o, now)}
		})))

	slice := resourcev1.ResourceSliceSpec{}.SwaggerDoc()
	s.add(res("ResourceSlice"), printerOf([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Node", "string", slice["nodeName"]),
		col("Driver", "string", slice["driver"]),
		col("Pool", "string", resourcev1.ResourcePool{}.SwaggerDoc()["name"]),
		ageColumn(),
	},
		cellsOf(func(o *resourcev1.ResourceSlice, now time.Time) []interface{} {
			return []interface{}{o.Name, deref(o.Spec.NodeName, ""), o.Spec.Driver, o.Spec.Pool.Name, age(o, now)}
		})))
}
