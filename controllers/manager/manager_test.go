package manager_test

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
)

// recorder is a controller that notes while it runs.
type recorder struct {
	name string
	mu   sync.Mutex
	runs int
	live bool
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) Run(ctx context.Context) error {
	r.mu.Lock()
	r.runs++
	r.live = true
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	r.live = false
	r.mu.Unlock()
	return nil
}
func (r *recorder) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live
}

// One of two managers leads; when it stops, the other takes over within the lease time.
func TestStandbyTakesOver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := apiservertest.Start(t, apiserver.Options{})
	opts := manager.Options{LeaseName: "test-election", LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	first, second := &recorder{name: "first"}, &recorder{name: "second"}
	firstCtx, stopFirst := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	run := func(ctx context.Context, r *recorder) {
		wg.Go(func() {
			_ = manager.Run(ctx, cfg, opts, func(*manager.Context) ([]manager.Controller, error) { return []manager.Controller{r}, nil })
		})
	}
	run(firstCtx, first)
	waitFor(t, first.running, "the first manager to lead")
	run(ctx, second)
	// The standby does not run while the leader holds the lease.
	time.Sleep(opts.LeaseDuration + time.Second)
	if second.running() {
		t.Fatal("the standby runs its controllers while the leader holds the lease")
	}
	stopFirst()
	waitFor(t, second.running, "the standby to take over")
	if first.running() {
		t.Fatal("the stopped manager still runs its controllers")
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
