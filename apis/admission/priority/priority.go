// Package priority resolves a pod's priorityClassName to its priority on creation, as upstream's
// Priority admission plugin does: the named PriorityClass, or the cluster's global default
// when none is named, gives spec.priority and spec.preemptionPolicy.
package priority

import (
	"context"
	"fmt"

	"github.com/keelson/keelson/apis/rest"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var priorityClasses = schema.GroupResource{Group: schedulingv1.GroupName, Resource: "priorityclasses"}

// Admission resolves priorities from the API's cached PriorityClasses.
type Admission struct{ api *rest.API }

// New returns the admission over api.
func New(api *rest.API) *Admission { return &Admission{api: api} }

// BeforeCreate is the pods' create hook.
func (a *Admission) BeforeCreate(_ context.Context, obj runtime.Object, _ bool) (func(), error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	spec := &pod.Spec
	var class *schedulingv1.PriorityClass
	for _, o := range a.api.Cached(priorityClasses) {
		pc := o.(*schedulingv1.PriorityClass)
		if spec.PriorityClassName == "" && pc.GlobalDefault {
			// Upstream takes the lowest-valued default if several claim it.
			if class == nil || pc.Value < class.Value {
				class = pc
			}
		} else if spec.PriorityClassName != "" && pc.Name == spec.PriorityClassName {
			class = pc
		}
	}
	forbidden := func(err error) (func(), error) {
		return nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name, err)
	}
	if class == nil {
		if spec.PriorityClassName != "" && spec.Priority == nil {
			return forbidden(fmt.Errorf("no PriorityClass with name %s was found", spec.PriorityClassName))
		}
		// No class, or a system class the defaults resolved.
		return nil, nil
	}
	if spec.PriorityClassName != "" && spec.Priority != nil && *spec.Priority != class.Value {
		return forbidden(fmt.Errorf("the integer value of priority (%d) must not be provided in pod spec; priority admission controller computed %d from the given PriorityClass name", *spec.Priority, class.Value))
	}
	policy := corev1.PreemptLowerPriority
	if class.PreemptionPolicy != nil {
		policy = *class.PreemptionPolicy
	}
	if spec.PriorityClassName != "" && spec.PreemptionPolicy != nil && *spec.PreemptionPolicy != policy {
		return forbidden(fmt.Errorf("the string value of PreemptionPolicy (%s) must not be provided in pod spec; priority admission controller computed %s from the given PriorityClass name", *spec.PreemptionPolicy, policy))
	}
	spec.PriorityClassName = class.Name
	value := class.Value
	spec.Priority, spec.PreemptionPolicy = &value, &policy
	return nil, nil
}
