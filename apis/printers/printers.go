// Package printers turns objects into the server-side Table rows kubectl prints, with upstream's
// columns for each kind and the Name / Created At default for the rest.
package printers

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Printer is one kind's table form. Columns with Priority 1 are the -o wide ones.
type Printer struct {
	Columns []metav1.TableColumnDefinition
	// Cells returns one row's cells, in column order.
	Cells func(obj runtime.Object, now time.Time) []interface{}
}

// Set holds the printers by kind.
type Set struct {
	byKind map[schema.GroupKind]*Printer
}

// New returns the printers of the built-in kinds.
func New() *Set {
	s := &Set{byKind: map[schema.GroupKind]*Printer{}}
	registerBuiltin(s)
	return s
}

func (s *Set) add(gk schema.GroupKind, p *Printer) { s.byKind[gk] = p }

// For returns the printer of a kind, or the default one.
func (s *Set) For(gk schema.GroupKind) *Printer {
	if p, ok := s.byKind[gk]; ok {
		return p
	}
	return defaultPrinter
}

// Descriptions of ObjectMeta fields used by the default columns, as upstream's OpenAPI gives them.
const (
	nameDescription              = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
	creationTimestampDescription = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)

var defaultPrinter = &Printer{
	Columns: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: nameDescription},
		{Name: "Created At", Type: "date", Description: creationTimestampDescription},
	},
	Cells: func(obj runtime.Object, _ time.Time) []interface{} {
		m, err := meta.Accessor(obj)
		if err != nil {
			return []interface{}{"", ""}
		}
		return []interface{}{m.GetName(), m.GetCreationTimestamp().UTC().Format(time.RFC3339)}
	},
}
