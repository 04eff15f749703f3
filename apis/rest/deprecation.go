package rest

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// servedMajor and servedMinor are the release this server is (apiserver.Major and Minor), against
// which API deprecations are judged.
const servedMajor, servedMinor = 1, 37

// deprecationWarning is the warning upstream attaches to every request for a kind that k8s.io/api
// marks deprecated by the served release, such as "v1 Endpoints is deprecated in v1.33+; use
// discovery.k8s.io/v1 EndpointSlice"; "" for a kind that is not.
func deprecationWarning(scheme *runtime.Scheme, gvk schema.GroupVersionKind) string {
	obj, err := scheme.New(gvk)
	if err != nil {
		return ""
	}
	d, ok := obj.(interface{ APILifecycleDeprecated() (major, minor int) })
	if !ok {
		return ""
	}
	major, minor := d.APILifecycleDeprecated()
	if (major == 0 && minor == 0) || servedMajor < major || (servedMajor == major && servedMinor < minor) {
		return ""
	}
	msg := fmt.Sprintf("%s %s is deprecated in v%d.%d+", gvk.GroupVersion(), gvk.Kind, major, minor)
	if r, ok := obj.(interface{ APILifecycleRemoved() (major, minor int) }); ok {
		if major, minor := r.APILifecycleRemoved(); major != 0 || minor != 0 {
			msg += fmt.Sprintf(", unavailable in v%d.%d+", major, minor)
		}
	}
	if r, ok := obj.(interface {
		APILifecycleReplacement() schema.GroupVersionKind
	}); ok {
		if gvk := r.APILifecycleReplacement(); !gvk.Empty() {
			msg += fmt.Sprintf("; use %s %s", gvk.GroupVersion(), gvk.Kind)
		}
	}
	return msg
}
