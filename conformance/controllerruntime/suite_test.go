// Package controllerruntime holds the behaviour suite of the cluster as a controller built with
// sigs.k8s.io/controller-runtime sees it: a manager with its shared cache (filled by client-go's
// streaming list, WatchList with sendInitialEvents), a reconciler with watches on its own and its
// owned objects, and server-side apply through the manager's client, run against any cluster
// (KUBECONFIG) or a keelson server the suite starts. Every request the manager makes is recorded,
// so that a failure can show what the client sent and what the server answered.
package controllerruntime

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

var (
	testCluster *cluster.Cluster
	client      kubernetes.Interface
	mgr         manager.Manager
	reconciler  *deriveReconciler
	// requests holds every request the manager's clients made.
	requests = &requestLog{}
	// stopManager ends the manager started by the suite.
	stopManager context.CancelFunc
	// managerDone is closed when the manager's Start returns; managerErr is what it returned.
	managerDone chan struct{}
	managerErr  error
)

// cacheSyncTimeout bounds the wait for the manager's informers to fill.
const cacheSyncTimeout = 30 * time.Second

func TestControllerRuntime(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "controller-runtime behaviour")
}

var _ = BeforeSuite(func() {
	ctrllog.SetLogger(GinkgoLogr)
	var err error
	testCluster, err = cluster.Start()
	Expect(err).NotTo(HaveOccurred())
	client = testCluster.Clientset()
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)

	cfg := rest.CopyConfig(testCluster.Config)
	cfg.Wrap(requests.wrap)
	mgr, err = ctrl.NewManager(cfg, ctrl.Options{
		// Port 0: each run binds free ports, so that suites and runs never collide.
		Metrics:                metricsserver.Options{BindAddress: "127.0.0.1:0"},
		HealthProbeBindAddress: "127.0.0.1:0",
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(mgr.AddHealthzCheck("ping", healthz.Ping)).To(Succeed())
	Expect(mgr.AddReadyzCheck("ping", healthz.Ping)).To(Succeed())
	reconciler = &deriveReconciler{client: mgr.GetClient()}
	Expect(reconciler.setup(mgr)).To(Succeed())

	ctx, cancel := context.WithCancel(context.Background())
	stopManager = cancel
	managerDone = make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(managerDone)
		managerErr = mgr.Start(ctx)
	}()
	// The cache starts an informer when it is first asked for one (the controller asks once it
	// starts); ask for those of the reconciler's watches now, and wait until they have synced.
	syncCtx, syncCancel := context.WithTimeout(ctx, cacheSyncTimeout)
	defer syncCancel()
	for _, obj := range []ctrlclient.Object{&corev1.ConfigMap{}, &corev1.Secret{}} {
		_, err := mgr.GetCache().GetInformer(syncCtx, obj)
		Expect(err).NotTo(HaveOccurred(), "the manager's %T informer did not sync within %s; the manager's requests:\n%s", obj, cacheSyncTimeout, requests)
	}
	Expect(mgr.GetCache().WaitForCacheSync(syncCtx)).To(BeTrue(),
		"the manager's cache did not sync within %s; the manager's requests:\n%s", cacheSyncTimeout, requests)
})

var _ = AfterSuite(func() {
	if stopManager != nil {
		stopManager()
		select {
		case <-managerDone:
			Expect(managerErr).NotTo(HaveOccurred())
		case <-time.After(30 * time.Second):
			Fail("the manager did not stop within 30s")
		}
	}
	if testCluster != nil {
		testCluster.Stop()
	}
})

// newNamespace creates a namespace for one spec and deletes it afterwards, without waiting.
func newNamespace(ctx context.Context) string {
	return cluster.Namespace(ctx, client, "keelson-cr-")
}

// request is one request a client of the manager made, and the server's answer.
type request struct {
	method string
	url    *url.URL
	code   int
	err    error
}

func (r request) String() string {
	if r.err != nil {
		return fmt.Sprintf("%s %s -> error %v", r.method, r.url, r.err)
	}
	return fmt.Sprintf("%s %s -> %d", r.method, r.url, r.code)
}

// watch tells whether the request opened a watch.
func (r request) watch() bool { return r.url.Query().Get("watch") == "true" }

// requestLog records the requests of every client built from the manager's config.
type requestLog struct {
	mu   sync.Mutex // guards list
	list []request
}

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		r := request{method: req.Method, url: req.URL, err: err}
		if resp != nil {
			r.code = resp.StatusCode
		}
		l.mu.Lock()
		l.list = append(l.list, r)
		l.mu.Unlock()
		return resp, err
	})
}

// all returns the requests recorded so far.
func (l *requestLog) all() []request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]request(nil), l.list...)
}

// to returns the requests whose path is path.
func (l *requestLog) to(path string) []request {
	var out []request
	for _, r := range l.all() {
		if r.url.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (l *requestLog) String() string {
	var b strings.Builder
	for _, r := range l.all() {
		fmt.Fprintf(&b, "  %s\n", r)
	}
	return b.String()
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
