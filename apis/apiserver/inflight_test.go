package apiserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keelson/keelson/apis/authn"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// With its one slot taken, the limit answers the next request 429 with Retry-After, lets
// system:masters and watches through, and frees the slot when the first request ends.
func TestInflightLimit(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	h := newInflightLimit(1, 1, nil).wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		if r.URL.Query().Get("block") == "1" {
			<-release
		}
	}))
	user := &authn.User{Name: "u", Groups: []string{authn.GroupAuthenticated}}
	admin := &authn.User{Name: "a", Groups: []string{authn.GroupMasters}}
	do := func(u *authn.User, target string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", target, nil)
		req = req.WithContext(authn.WithUser(req.Context(), u))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	done := make(chan struct{})
	go func() { do(user, "/api/v1/pods?block=1"); close(done) }()
	<-entered
	rec := do(user, "/api/v1/pods")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("got %d, Retry-After %q; want 429 and 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	var st metav1.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Reason != metav1.StatusReasonTooManyRequests || st.Message != "Too many requests, please try again later." {
		t.Fatalf("status %+v (%v)", st, err)
	}
	if rec := do(admin, "/api/v1/pods"); rec.Code != http.StatusOK {
		t.Fatalf("system:masters got %d", rec.Code)
	}
	if rec := do(user, "/api/v1/pods?watch=1"); rec.Code != http.StatusOK {
		t.Fatalf("a watch got %d", rec.Code)
	}
	close(release)
	<-done
	if rec := do(user, "/api/v1/pods"); rec.Code != http.StatusOK {
		t.Fatalf("after the first request ended: %d", rec.Code)
	}
}
