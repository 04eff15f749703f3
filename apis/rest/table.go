package rest

import (
	"bytes"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// table renders served objects as a Table with the kind's columns; each row carries the object as
// the request's includeObject asks (metadata by default).
func (h *handler) table(objs []runtime.Object, r *http.Request, _ string) (*metav1.Table, error) {
	include := metav1.IncludeMetadata
	if v := r.URL.Query().Get("includeObject"); v != "" {
		include = metav1.IncludeObjectPolicy(v)
		switch include {
		case metav1.IncludeNone, metav1.IncludeMetadata, metav1.IncludeObject:
		default:
			return nil, apierrors.NewBadRequest("includeObject: Unsupported value: \"" + v + "\": supported values: \"Metadata\", \"None\", \"Object\"")
		}
	}
	p := h.printers.For(schema.GroupKind{Group: h.res.Group, Kind: h.res.Kind})
	t := &metav1.Table{ColumnDefinitions: p.Columns, Rows: make([]metav1.TableRow, 0, len(objs))}
	t.SetGroupVersionKind(schema.GroupVersionKind{Group: "meta.k8s.io", Version: "v1", Kind: "Table"})
	jsonInfo, _ := runtime.SerializerInfoForMediaType(h.codecs.SupportedMediaTypes(), mediaJSON)
	now := time.Now()
	for _, o := range objs {
		row := metav1.TableRow{Cells: p.Cells(o, now)}
		var embedded runtime.Object
		switch include {
		case metav1.IncludeMetadata:
			embedded = partialMetadata(o, "v1")
		case metav1.IncludeObject:
			embedded = o
		}
		if embedded != nil {
			var buf bytes.Buffer
			if err := jsonInfo.Serializer.Encode(embedded, &buf); err != nil {
				return nil, err
			}
			row.Object = runtime.RawExtension{Raw: bytes.TrimSpace(buf.Bytes())}
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}
