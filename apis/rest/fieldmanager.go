package rest

import (
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
)

// fieldManagers caches one managedFields tracker per kind and subresource; building one is costly.
type fieldManagers struct {
	mu     sync.Mutex // guards byKind
	byKind map[fieldManagerKey]*managedfields.FieldManager
}

type fieldManagerKey struct {
	gvk         schema.GroupVersionKind
	subresource string
}

func (a *API) fieldManagerFor(gvk schema.GroupVersionKind, subresource string) (*managedfields.FieldManager, error) {
	a.fieldManagers.mu.Lock()
	defer a.fieldManagers.mu.Unlock()
	key := fieldManagerKey{gvk, subresource}
	if fm, ok := a.fieldManagers.byKind[key]; ok {
		return fm, nil
	}
	converter := a.typeConverter
	if converter == nil {
		converter = managedfields.NewDeducedTypeConverter()
	}
	fm, err := managedfields.NewDefaultFieldManager(converter, a.scheme, a.scheme, a.scheme, gvk, gvk.GroupVersion(), subresource, nil)
	if err != nil {
		return nil, fmt.Errorf("field manager for %s: %w", gvk, err)
	}
	if a.fieldManagers.byKind == nil {
		a.fieldManagers.byKind = map[fieldManagerKey]*managedfields.FieldManager{}
	}
	a.fieldManagers.byKind[key] = fm
	return fm, nil
}
