package containerd_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keelson/keelson/kubelet/containerd"
	"github.com/keelson/keelson/kubelet/containerd/containerdtest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Two private daemons run side by side, each answering the CRI on its own socket, and each stops
// cleanly.
func TestTwoDaemonsAtOnce(t *testing.T) {
	a := containerdtest.Start(t, containerd.Options{})
	b := containerdtest.Start(t, containerd.Options{})
	if a.Socket() == b.Socket() {
		t.Fatalf("both daemons listen on %s", a.Socket())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range []*containerd.Process{a, b} {
		conn, err := containerd.Dial(ctx, p.Socket())
		if err != nil {
			t.Fatal(err)
		}
		v, err := runtimeapi.NewRuntimeServiceClient(conn).Version(ctx, &runtimeapi.VersionRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if v.RuntimeName != "containerd" || v.RuntimeApiVersion != "v1" {
			t.Errorf("Version on %s = %+v, want containerd with CRI v1", p.Socket(), v)
		}
		st, err := runtimeapi.NewRuntimeServiceClient(conn).Status(ctx, &runtimeapi.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.Status.Conditions {
			if c.Type == runtimeapi.RuntimeReady && !c.Status {
				t.Errorf("daemon on %s: RuntimeReady is false: %s %s", p.Socket(), c.Reason, c.Message)
			}
		}
		_ = conn.Close()
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Done():
	default:
		t.Fatal("Done is open after Stop")
	}
	// The other daemon is unaffected.
	conn, err := containerd.Dial(ctx, b.Socket())
	if err != nil {
		t.Fatalf("second daemon after the first stopped: %v", err)
	}
	_ = conn.Close()
	if b.Err() != nil {
		t.Fatalf("second daemon: %v", b.Err())
	}
}

// The daemon's death is reported through Done and Err.
func TestDeathIsReported(t *testing.T) {
	p := containerdtest.Start(t, containerd.Options{})
	proc, err := os.FindProcess(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Err after kill = %v, want the kill reported", err)
	}
}

// A daemon that cannot start is reported by Start rather than waited for.
func TestStartFailureIsReported(t *testing.T) {
	containerdtest.RequireNode(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := containerd.Start(ctx, containerd.Options{Dir: dir, LogLevel: "no-such-level"})
	if err == nil {
		t.Fatal("Start succeeded with an invalid log level")
	}
	if ctx.Err() != nil {
		t.Fatalf("Start waited for its context: %v", err)
	}
}

// A daemon left running on the directory (by an agent that was killed) is stopped by the next Start,
// which then runs its own.
func TestStartStopsStaleDaemon(t *testing.T) {
	containerdtest.RequireNode(t)
	dir, err := os.MkdirTemp("", "keelson-ctd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stale, err := containerd.Start(ctx, containerd.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stale.Stop() }()
	fresh, err := containerd.Start(ctx, containerd.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fresh.Stop() }()
	<-stale.Done()
	conn, err := containerd.Dial(ctx, fresh.Socket())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	if fresh.Pid() == stale.Pid() || fresh.Err() != nil {
		t.Fatalf("fresh daemon pid %d (stale %d), err %v", fresh.Pid(), stale.Pid(), fresh.Err())
	}
}

// BenchmarkStartStop measures how long a private daemon takes from Start until its CRI answers,
// plus its Stop.
func BenchmarkStartStop(b *testing.B) {
	containerdtest.RequireNode(b)
	dir, err := os.MkdirTemp("", "keelson-ctd-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	ctx := context.Background()
	for b.Loop() {
		p, err := containerd.Start(ctx, containerd.Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Stop(); err != nil {
			b.Fatal(err)
		}
	}
}
