package manager

import (
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// NamespaceTerminating tells whether err, or one it wraps or joins, is the API's refusal to
// create an object in a namespace being deleted: nothing to retry, the namespace's objects go.
func NamespaceTerminating(err error) bool {
	if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		return true
	}
	// Errors joined together: look at each.
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if NamespaceTerminating(e) {
				return true
			}
		}
	}
	return false
}
