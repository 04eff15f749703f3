package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strings"

	"github.com/keelson/keelson/apis/authn"
	"github.com/keelson/keelson/apis/authz"
	"github.com/keelson/keelson/apis/request"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
)

// Version is what /version reports: upstream's version with build metadata naming Keelson, so
// that version constraints in clients still match.
const (
	Major      = "1"
	Minor      = "37"
	GitVersion = "v1.37.2+keelson"
)

// handler is the request chain; the last wrapper added runs first: panic recovery, metrics,
// authentication, the in-flight limit, authorization, then routing.
func (s *Server) handler() http.Handler {
	var h http.Handler = http.HandlerFunc(s.route)
	h = s.withAuthorization(h)
	h = newInflightLimit(s.opts.MaxRequestsInFlight, s.opts.MaxMutatingRequestsInFlight, s.metrics.Inflight).wrap(h)
	h = s.withAuthentication(h)
	h = s.metrics.Wrap(h)
	h = withPanicRecovery(h)
	return h
}

func withPanicRecovery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				buf := make([]byte, 8<<10)
				buf = buf[:runtime.Stack(buf, false)]
				fmt.Printf("panic serving %s %s: %v\n%s\n", r.Method, r.URL.Path, v, buf)
				writeStatus(w, apierrors.NewInternalError(fmt.Errorf("%v", v)).ErrStatus)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// publicPaths are served to anyone, as upstream's system:public-info-viewer role allows.
func isPublic(path string) bool {
	switch path {
	case "/healthz", "/livez", "/readyz", "/version", "/version/":
		return true
	}
	return strings.HasPrefix(path, "/healthz/") || strings.HasPrefix(path, "/livez/") || strings.HasPrefix(path, "/readyz/")
}

// isClusterInfo is a read of kube-public/cluster-info, which kubeadm lets anonymous users get:
// a joining node learns the cluster's CA from it before it holds any credential.
func isClusterInfo(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == "/api/v1/namespaces/kube-public/configmaps/cluster-info"
}

func (s *Server) withAuthentication(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := s.authn.Authenticate(r)
		if err != nil {
			writeStatus(w, metav1.Status{Status: metav1.StatusFailure, Message: "Unauthorized", Reason: metav1.StatusReasonUnauthorized, Code: http.StatusUnauthorized})
			return
		}
		if u == nil {
			if !isPublic(r.URL.Path) && !isClusterInfo(r) {
				writeStatus(w, metav1.Status{Status: metav1.StatusFailure, Message: "Unauthorized", Reason: metav1.StatusReasonUnauthorized, Code: http.StatusUnauthorized})
				return
			}
			u = &authn.User{Name: authn.UserAnonymous, Groups: []string{authn.GroupUnauthenticated}}
		}
		next.ServeHTTP(w, r.WithContext(authn.WithUser(r.Context(), u)))
	})
}

// withAuthorization refuses what the user may not do with upstream's 403.
func (s *Server) withAuthorization(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := authn.UserFrom(r.Context())
		if u.Name == authn.UserAnonymous && isPublic(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		attrs := authz.Attributes{User: u, Path: r.URL.Path, Verb: authz.Verb(r)}
		if info, ok := request.From(r); ok && (s.catalogue.Lookup(info.GroupVersionResource) != nil || s.aggregator.Serves(info.Group, info.Version)) {
			attrs.Resource = &info
		}
		if d := authz.Authorize(attrs); !d.Allowed {
			writeStatus(w, statusOf(authz.ForbiddenError(attrs, d)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func statusOf(err error) metav1.Status {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return se.Status()
	}
	return apierrors.NewInternalError(err).ErrStatus
}

func writeStatus(w http.ResponseWriter, st metav1.Status) {
	st.Kind, st.APIVersion = "Status", "v1"
	body, _ := json.Marshal(st)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(int(st.Code))
	_, _ = w.Write(body)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/version" || path == "/version/":
		s.serveVersion(w)
	case path == "/healthz" || path == "/livez" || path == "/readyz" ||
		strings.HasPrefix(path, "/healthz/") || strings.HasPrefix(path, "/livez/") || strings.HasPrefix(path, "/readyz/"):
		s.serveHealth(w, r)
	case path == "/api" || path == "/apis" || strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/apis/"):
		if strings.HasPrefix(path, "/apis/") && s.aggregator.ServeHTTP(w, r) {
			return
		}
		if s.discovery.ServeHTTP(w, r) {
			return
		}
		s.api.ServeHTTP(w, r)
	case path == "/openapi/v2" || path == "/openapi/v3" || strings.HasPrefix(path, "/openapi/v3/"):
		s.openapi.ServeHTTP(w, r)
	case path == "/metrics":
		s.metrics.Handler().ServeHTTP(w, r)
	case path == "/":
		s.serveRoot(w)
	default:
		writeStatus(w, metav1.Status{Status: metav1.StatusFailure, Message: "the server could not find the requested resource", Reason: metav1.StatusReasonNotFound,
			Details: &metav1.StatusDetails{}, Code: http.StatusNotFound})
	}
}

func (s *Server) serveVersion(w http.ResponseWriter) {
	info := version.Info{
		Major: Major, Minor: Minor, EmulationMajor: Major, EmulationMinor: Minor,
		MinCompatibilityMajor: Major, MinCompatibilityMinor: "36",
		GitVersion: GitVersion, GitCommit: "keelson", GitTreeState: "clean", BuildDate: "1970-01-01T00:00:00Z",
		GoVersion: runtime.Version(), Compiler: runtime.Compiler, Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
	body, _ := json.MarshalIndent(info, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, private")
	_, _ = w.Write(body)
}

func (s *Server) serveRoot(w http.ResponseWriter) {
	paths := []string{"/api", "/api/v1", "/apis", "/healthz", "/livez", "/metrics", "/openapi/v2", "/openapi/v3", "/openapi/v3/", "/readyz", "/version"}
	for _, g := range s.catalogue.Groups() {
		if g.Group == "" {
			continue
		}
		paths = append(paths, "/apis/"+g.Group)
		for _, v := range g.Versions {
			paths = append(paths, "/apis/"+g.Group+"/"+v)
		}
	}
	for _, g := range s.aggregator.Groups() {
		paths = append(paths, "/apis/"+g.Name)
		for _, v := range g.Versions {
			paths = append(paths, "/apis/"+v.GroupVersion)
		}
	}
	sort.Strings(paths)
	body, _ := json.MarshalIndent(map[string][]string{"paths": paths}, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// serveHealth answers /healthz, /livez and /readyz with upstream's text: "ok", or with ?verbose a
// line per check.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	kind := parts[0]
	checks := map[string]bool{"ping": true, "log": true}
	if kind != "livez" {
		for name, ok := range s.ready.snapshot() {
			checks[name] = ok
		}
	} else {
		checks["etcd"] = true
	}
	if len(parts) > 1 {
		ok, found := checks[parts[1]]
		if !found {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "internal server error: %s check failed\n", parts[1])
			return
		}
		fmt.Fprint(w, "ok")
		return
	}
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		// ping and log come first, as upstream lists them.
		order := func(n string) int {
			switch n {
			case "ping":
				return 0
			case "log":
				return 1
			}
			return 2
		}
		if order(names[i]) != order(names[j]) {
			return order(names[i]) < order(names[j])
		}
		return names[i] < names[j]
	})
	failed := false
	var b strings.Builder
	for _, n := range names {
		if checks[n] {
			fmt.Fprintf(&b, "[+]%s ok\n", n)
		} else {
			fmt.Fprintf(&b, "[-]%s failed: reason withheld\n", n)
			failed = true
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if failed {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "%s%s check failed\n", b.String(), kind)
		return
	}
	_, verbose := r.URL.Query()["verbose"]
	if verbose {
		fmt.Fprintf(w, "%s%s check passed\n", b.String(), kind)
		return
	}
	fmt.Fprint(w, "ok")
}
