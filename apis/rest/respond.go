package rest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
)

func schemaGR() schema.GroupResource { return schema.GroupResource{} }

var statusGVK = schema.GroupVersionKind{Version: "v1", Kind: "Status"}

// statusOf turns any error into the Status a client gets. An error that is not a Status error
// becomes a 500 with no reason and the error's text, as upstream's ErrorToAPIStatus does.
func statusOf(err error) *metav1.Status {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		s := se.Status()
		return &s
	}
	return &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Reason: metav1.StatusReasonUnknown, Message: err.Error()}
}

// writeError writes err as a Status in the negotiated form (JSON when negotiation failed).
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	out, nerr := negotiateOutput(a.codecs, r.Header.Get("Accept"))
	if nerr != nil || out.target != targetObject {
		out = jsonOutput(a.codecs)
	}
	status := statusOf(err)
	status.SetGroupVersionKind(statusGVK)
	code := int(status.Code)
	if code == 0 {
		code = http.StatusInternalServerError
	}
	if d := status.Details; d != nil && d.RetryAfterSeconds > 0 {
		// Upstream tells the client when to come back (429s, timeouts); client-go honours it.
		w.Header().Set("Retry-After", strconv.Itoa(int(d.RetryAfterSeconds)))
	}
	if code >= 500 {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	a.writeObject(w, out, code, status)
}

// writeObject encodes obj with the negotiated serializer. obj must carry its apiVersion and kind.
func (a *API) writeObject(w http.ResponseWriter, out output, code int, obj runtime.Object) {
	var buf bytes.Buffer
	if err := out.info.Serializer.Encode(obj, &buf); err != nil {
		utilruntime.HandleError(fmt.Errorf("encoding %T: %w", obj, err))
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", out.mediaType)
	w.Header().Set("Cache-Control", "no-cache, private")
	if out.gzip && buf.Len() > gzipThreshold {
		// Large responses are compressed for clients that accept it, as upstream does.
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		w.WriteHeader(code)
		zw := gzip.NewWriter(w)
		_, _ = zw.Write(buf.Bytes())
		_ = zw.Close()
		return
	}
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// gzipThreshold is the size above which upstream compresses a response (128 KiB).
const gzipThreshold = 128 * 1024
