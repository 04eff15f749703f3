// Package apiservertest runs an API server inside a test's process, for tests of the packages
// that talk to one (the server itself, the controllers).
package apiservertest

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/keelson/keelson/apis/apiserver"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Start runs an API server with opts on a free loopback port and a temporary data directory,
// stops it when the test ends, and returns an admin client configuration for it.
func Start(t testing.TB, opts apiserver.Options) *rest.Config {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts.DataDir = t.TempDir()
	opts.BindAddress = "127.0.0.1"
	opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *apiserver.Server, 1)
	errc := make(chan error, 1)
	go func() { errc <- apiserver.Run(ctx, opts, started) }()
	t.Cleanup(func() { cancel(); <-errc })
	var s *apiserver.Server
	select {
	case s = <-started:
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(60 * time.Second):
		t.Fatal("server not ready")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", s.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// DefaultServiceAccount creates the default namespace's default ServiceAccount, which pods need
// (ServiceAccount admission) and which the service account controller would create in a whole
// cluster; tests of a lone API server make it with this.
func DefaultServiceAccount(t testing.TB, cfg *rest.Config) {
	t.Helper()
	client := kubernetes.NewForConfigOrDie(cfg)
	_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}
