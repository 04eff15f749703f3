package printers

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
)

// metaDoc holds the OpenAPI descriptions of ObjectMeta's fields.
var metaDoc = metav1.ObjectMeta{}.SwaggerDoc()

// Descriptions shared by many kinds' columns.
const (
	containersDescription = "Names of each container in the template."
	imagesDescription     = "Images referenced by each container in the template."
)

// nameColumn is the Name column every kind starts with.
func nameColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: metaDoc["name"]}
}

// ageColumn is the Age column, the time since creation.
func ageColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: metaDoc["creationTimestamp"]}
}

// col is a normal (always shown) column.
func col(name, typ, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ, Description: description}
}

// wide is a column kubectl shows only with -o wide.
func wide(name, typ, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ, Priority: 1, Description: description}
}

// since formats the time elapsed from t to now the way kubectl's AGE column reads ("5m", "3d12h").
func since(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// sinceMicro is since for MicroTime fields.
func sinceMicro(t metav1.MicroTime, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// age is the Age cell of an object.
func age(m metav1.Object, now time.Time) string {
	return since(m.GetCreationTimestamp(), now)
}

// containerCells joins the names and the images of containers with commas.
func containerCells(containers []corev1.Container) (names, images string) {
	n := make([]string, 0, len(containers))
	i := make([]string, 0, len(containers))
	for _, c := range containers {
		n = append(n, c.Name)
		i = append(i, c.Image)
	}
	return strings.Join(n, ","), strings.Join(i, ",")
}

// boolPtrCell is "True", "False" or "<unset>".
func boolPtrCell(b *bool) string {
	if b == nil {
		return "<unset>"
	}
	if *b {
		return "True"
	}
	return "False"
}

// listWithMore joins up to max items and appends " + N more..." for the rest; "<unset>" when empty.
func listWithMore(items []string, max int) string {
	if len(items) > max {
		return fmt.Sprintf("%s + %d more...", strings.Join(items[:max], ","), len(items)-max)
	}
	if len(items) == 0 {
		return "<unset>"
	}
	return strings.Join(items, ",")
}

// deref returns *s or def when s is nil.
func deref(s *string, def string) string {
	if s == nil {
		return def
	}
	return *s
}

// orNone returns s, or "<none>" when it is empty.
func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// controllerName is "<kind>.<group>/<name>" in lower case for the object's controller, or "<none>".
func controllerName(m metav1.Object) string {
	ref := metav1.GetControllerOfNoCopy(m)
	if ref == nil {
		return "<none>"
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return ref.Name
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: ref.Kind}
	if gk.Empty() {
		return ref.Name
	}
	return strings.ToLower(gk.String()) + "/" + ref.Name
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[corev1.ResourceName]V) []corev1.ResourceName {
	keys := make([]corev1.ResourceName, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

// cellsFunc returns one row's cells, or false when obj is not of its type.
type cellsFunc func(obj runtime.Object, now time.Time) ([]interface{}, bool)

// cellsOf adapts a cells function over one concrete type.
func cellsOf[T runtime.Object](cells func(obj T, now time.Time) []interface{}) cellsFunc {
	return func(obj runtime.Object, now time.Time) ([]interface{}, bool) {
		o, ok := obj.(T)
		if !ok {
			return nil, false
		}
		return cells(o, now), true
	}
}

// printerOf builds a printer whose rows come from the first cells function that takes the object
// (one per served version of the kind); any other object gets a row of the right length with its
// name in the Name column.
func printerOf(columns []metav1.TableColumnDefinition, fns ...cellsFunc) *Printer {
	return &Printer{
		Columns: columns,
		Cells: func(obj runtime.Object, now time.Time) []interface{} {
			for _, f := range fns {
				if row, ok := f(obj, now); ok {
					return row
				}
			}
			return fallbackCells(columns, obj)
		},
	}
}

// typed is printerOf with a single type.
func typed[T runtime.Object](columns []metav1.TableColumnDefinition, cells func(obj T, now time.Time) []interface{}) *Printer {
	return printerOf(columns, cellsOf(cells))
}

// fallbackCells is a row of empty cells, with the name in the Name column.
func fallbackCells(columns []metav1.TableColumnDefinition, obj runtime.Object) []interface{} {
	row := make([]interface{}, len(columns))
	for i := range row {
		row[i] = ""
	}
	if m, ok := obj.(metav1.Object); ok {
		for i, c := range columns {
			if c.Name == "Name" && c.Format == "name" {
				row[i] = m.GetName()
				break
			}
		}
	}
	return row
}
