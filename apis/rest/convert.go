package rest

import (
	"github.com/keelson/keelson/apis/conversion"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func convertObject(_ *runtime.Scheme, obj runtime.Object, to schema.GroupVersionKind) (runtime.Object, error) {
	out, err := conversion.Convert(obj, to)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return out, nil
}
