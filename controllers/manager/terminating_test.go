package manager

import (
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestNamespaceTerminating(t *testing.T) {
	terminating := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "p", errors.New("unable to create new content in namespace ns because it is being terminated"))
	terminating.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause, Message: "ns", Field: "metadata.namespace"}}
	other := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "p", errors.New("no"))
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"terminating", terminating, true},
		{"wrapped", fmt.Errorf("creating: %w", terminating), true},
		{"joined", errors.Join(other, fmt.Errorf("y: %w", terminating)), true},
		{"other forbidden", other, false},
		{"plain", errors.New("x"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := NamespaceTerminating(tc.err); got != tc.want {
				t.Errorf("NamespaceTerminating = %v, want %v", got, tc.want)
			}
		})
	}
}
