package apiserver

import (
	"net/http"

	"github.com/keelson/keelson/apis/authn"
	"github.com/keelson/keelson/apis/request"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// inflightLimit bounds how many requests run at once, mutating and read-only apart, answering the
// rest with 429 and Retry-After as upstream's max-in-flight filter does. Long-running requests
// (watches, streams) and system:masters are not counted.
type inflightLimit struct {
	readOnly, mutating chan struct{}
	// observe, if set, is told when a counted request starts (+1) and ends (-1), by kind.
	observe func(kind string, delta float64)
}

func newInflightLimit(readOnly, mutating int, observe func(kind string, delta float64)) *inflightLimit {
	l := &inflightLimit{observe: observe}
	if readOnly > 0 {
		l.readOnly = make(chan struct{}, readOnly)
	}
	if mutating > 0 {
		l.mutating = make(chan struct{}, mutating)
	}
	return l
}

func longRunning(r *http.Request) bool {
	info, ok := request.From(r)
	if !ok {
		return false
	}
	if info.Verb == "watch" {
		return true
	}
	switch info.Subresource {
	case "exec", "attach", "portforward", "proxy", "log":
		return true
	}
	return false
}

func (l *inflightLimit) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := authn.UserFrom(r.Context()); u != nil {
			for _, g := range u.Groups {
				if g == authn.GroupMasters {
					next.ServeHTTP(w, r)
					return
				}
			}
		}
		if longRunning(r) {
			next.ServeHTTP(w, r)
			return
		}
		slots, kind := l.readOnly, "readOnly"
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			slots, kind = l.mutating, "mutating"
		}
		if l.observe != nil {
			l.observe(kind, 1)
			defer l.observe(kind, -1)
		}
		if slots == nil {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			writeStatus(w, metav1.Status{Status: metav1.StatusFailure, Code: http.StatusTooManyRequests, Reason: metav1.StatusReasonTooManyRequests,
				Message: "Too many requests, please try again later.", Details: &metav1.StatusDetails{RetryAfterSeconds: 1}})
		}
	})
}
