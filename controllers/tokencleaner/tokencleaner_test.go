package tokencleaner_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/apis/apiserver/apiservertest"
	"github.com/keelson/keelson/controllers/manager"
	"github.com/keelson/keelson/controllers/tokencleaner"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// run runs the controllers build makes under their own manager until the test ends.
func run(t *testing.T, cfg *rest.Config, lease string, build manager.Builder) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		_ = manager.Run(ctx, cfg, manager.Options{LeaseName: lease, Log: quiet}, build)
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func secretExists(t *testing.T, client kubernetes.Interface, namespace, name string) bool {
	t.Helper()
	s, err := client.CoreV1().Secrets(namespace).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return s.DeletionTimestamp == nil
}

// Bootstrap token Secrets in kube-system go once their expiration passes (at once when it cannot
// be read); tokens without one, and Secrets elsewhere, stay.
func TestBootstrapTokensExpire(t *testing.T) {
	ctx := context.Background()
	cfg := apiservertest.Start(t, apiserver.Options{})
	apiservertest.DefaultServiceAccount(t, cfg)
	client := kubernetes.NewForConfigOrDie(cfg)
	now := time.Now()
	// RFC 3339 keeps whole seconds.
	soon := now.Add(3 * time.Second).Truncate(time.Second)
	token := func(namespace, name, expiration string) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Type: tokencleaner.SecretTypeBootstrapToken,
			Data: map[string][]byte{"token-id": []byte("abcdef"), "token-secret": []byte("0123456789abcdef")}}
		if expiration != "" {
			s.Data[tokencleaner.ExpirationKey] = []byte(expiration)
		}
		if _, err := client.CoreV1().Secrets(namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	token("kube-system", "bootstrap-token-expired", now.Add(-time.Hour).Format(time.RFC3339))
	token("kube-system", "bootstrap-token-garbled", "next tuesday")
	token("kube-system", "bootstrap-token-soon", soon.Format(time.RFC3339))
	token("kube-system", "bootstrap-token-forever", "")
	token("default", "bootstrap-token-elsewhere", now.Add(-time.Hour).Format(time.RFC3339))

	run(t, cfg, "tokencleaner-test", func(c *manager.Context) ([]manager.Controller, error) {
		tc, err := tokencleaner.NewBootstrap(c)
		return []manager.Controller{tc}, err
	})
	waitFor(t, "the expired and unreadable tokens to go", func() bool {
		return !secretExists(t, client, "kube-system", "bootstrap-token-expired") && !secretExists(t, client, "kube-system", "bootstrap-token-garbled")
	})
	if !secretExists(t, client, "kube-system", "bootstrap-token-soon") {
		t.Fatal("a token was deleted before its expiration")
	}
	waitFor(t, "the token to go at its expiration", func() bool { return !secretExists(t, client, "kube-system", "bootstrap-token-soon") })
	if time.Now().Before(soon) {
		t.Fatal("a token was deleted before its expiration")
	}
	for _, s := range []struct{ namespace, name string }{{"kube-system", "bootstrap-token-forever"}, {"default", "bootstrap-token-elsewhere"}} {
		if !secretExists(t, client, s.namespace, s.name) {
			t.Errorf("%s/%s was deleted", s.namespace, s.name)
		}
	}
}

// clock is a settable time for the cleaner.
type clock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// An auto-generated legacy token nobody mounts and nobody used within the period is labelled
// invalid since today, then deleted once it has been invalid for the period. Tokens in use, recently
// used, or not generated for their account are kept. The cleaner's clock runs days ahead of the
// server's with a period of one day.
func TestLegacyTokensInvalidatedThenDeleted(t *testing.T) {
	ctx := context.Background()
	cfg := apiservertest.Start(t, apiserver.Options{})
	apiservertest.DefaultServiceAccount(t, cfg)
	client := kubernetes.NewForConfigOrDie(cfg)
	const ns = "default"
	clk := &clock{now: time.Now().Add(3 * 24 * time.Hour)}
	today := func() string { return clk.Now().UTC().Format(time.DateOnly) }

	// Tracking began long ago.
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, tokencleaner.TrackingConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the API server records when legacy token tracking began: %v", err)
	}
	cm.Data[tokencleaner.TrackingSinceKey] = "2020-01-01"
	if _, err := client.CoreV1().ConfigMaps("kube-system").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	sa, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := func(name string, labels map[string]string) {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: map[string]string{
				corev1.ServiceAccountNameKey: sa.Name, corev1.ServiceAccountUIDKey: string(sa.UID)}},
			Type: corev1.SecretTypeServiceAccountToken,
		}
		if _, err := client.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	token("unused", nil)
	token("mounted", nil)
	token("recent", map[string]string{tokencleaner.LastUsedLabel: today()})
	token("manual", nil)
	sa.Secrets = []corev1.ObjectReference{{Name: "unused"}, {Name: "mounted"}, {Name: "recent"}}
	if _, err := client.CoreV1().ServiceAccounts(ns).Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "uses-token"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}},
		Volumes:    []corev1.Volume{{Name: "t", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "mounted"}}}},
	}}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	run(t, cfg, "legacy-token-cleaner-test", func(c *manager.Context) ([]manager.Controller, error) {
		lc, err := tokencleaner.NewLegacy(c, tokencleaner.LegacyOptions{CleanUpPeriod: 24 * time.Hour, SyncInterval: 100 * time.Millisecond, Now: clk.Now})
		return []manager.Controller{lc}, err
	})
	invalidSince := func(name string) string {
		s, err := client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Labels[tokencleaner.InvalidSinceLabel]
	}
	waitFor(t, "the unused token to be marked invalid", func() bool { return invalidSince("unused") != "" })
	if got := invalidSince("unused"); got != today() {
		t.Fatalf("invalid since %q, want today %q", got, today())
	}
	for _, name := range []string{"mounted", "recent", "manual"} {
		if got := invalidSince(name); got != "" {
			t.Errorf("token %s was marked invalid since %s", name, got)
		}
	}
	// Within the period of invalidity it stays.
	clk.Step(12 * time.Hour)
	time.Sleep(500 * time.Millisecond)
	if !secretExists(t, client, ns, "unused") {
		t.Fatal("the invalidated token was deleted before the period passed")
	}
	clk.Step(2 * 24 * time.Hour)
	waitFor(t, "the invalidated token to be deleted", func() bool { return !secretExists(t, client, ns, "unused") })
	for _, name := range []string{"mounted", "manual"} {
		if !secretExists(t, client, ns, name) {
			t.Errorf("token %s was deleted", name)
		}
	}
}
