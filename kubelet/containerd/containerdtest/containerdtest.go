// Package containerdtest gives tests a real private containerd: it installs the node's Debian
// packages when they are missing and starts a daemon in a directory of the test's own.
package containerdtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelson/keelson/kubelet/containerd"
)

// Packages are the Debian packages a node needs: the runtime, CNI plugins, nftables, the static
// busybox the test images are built from, and iproute2.
var Packages = []string{"containerd", "runc", "nftables", "containernetworking-plugins", "busybox-static", "iproute2"}

// The commands and files whose absence means the packages must be installed.
var (
	neededCommands = []string{"containerd", "runc", "nft", "busybox", "ip"}
	neededFiles    = []string{"/usr/lib/cni/bridge", "/usr/lib/cni/loopback"}
)

var installOnce struct {
	sync.Once
	err error
	out []byte
}

// RequireNode skips the test unless it runs as root, and installs the node packages with apt-get
// when one of them is missing (once per test binary). It fails the test if the install fails.
func RequireNode(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs a real containerd, runc and CNI plugins")
	}
	if err := Install(); err != nil {
		t.Fatal(err)
	}
}

// Install installs the node's packages with apt-get, once per process, when one is missing.
func Install() error {
	installOnce.Do(func() {
		if !missing() {
			return
		}
		update := exec.Command("apt-get", "update", "-qq")
		update.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := update.CombinedOutput(); err != nil {
			installOnce.err, installOnce.out = err, out
			return
		}
		install := exec.Command("apt-get", append([]string{"install", "-y", "-qq"}, Packages...)...)
		install.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		installOnce.out, installOnce.err = install.CombinedOutput()
	})
	if installOnce.err != nil {
		return fmt.Errorf("installing %s: %v\n%s", strings.Join(Packages, " "), installOnce.err, installOnce.out)
	}
	return nil
}

func missing() bool {
	for _, c := range neededCommands {
		if _, err := exec.LookPath(c); err != nil {
			return true
		}
	}
	for _, f := range neededFiles {
		if _, err := os.Stat(f); err != nil {
			return true
		}
	}
	return false
}

// Start runs a private containerd for the test in a fresh directory (short enough for its socket
// paths) and stops it and removes the directory when the test ends. opts.Dir is set by Start; other
// fields are passed through. It calls RequireNode first.
func Start(t testing.TB, opts containerd.Options) *containerd.Process {
	t.Helper()
	RequireNode(t)
	dir, err := os.MkdirTemp("", "keelson-ctd-")
	if err != nil {
		t.Fatal(err)
	}
	opts.Dir = dir + "/containerd"
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := containerd.Start(ctx, opts)
	if err != nil {
		logTail(t, opts.Dir)
		_ = os.RemoveAll(dir)
		t.Fatalf("starting containerd: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stopping containerd: %v", err)
		}
		if t.Failed() {
			logTail(t, opts.Dir)
		}
		// A test that failed half-way may leave containers behind; their shims outlive the daemon.
		if n := containerd.KillShims(p.Socket()); n > 0 {
			t.Errorf("%d container shims of the test's containerd were still running after it stopped", n)
		}
		if err := containerd.UnmountUnder(dir); err != nil {
			t.Errorf("unmounting under %s: %v", dir, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing containerd's directory: %v", err)
		}
	})
	return p
}

// logTail prints the end of the daemon's log into the test output.
func logTail(t testing.TB, dir string) {
	t.Helper()
	data, err := os.ReadFile(containerd.LogPath(dir))
	if err != nil {
		return
	}
	if len(data) > 8000 {
		data = data[len(data)-8000:]
	}
	t.Logf("containerd log (%s):\n%s", containerd.LogPath(dir), data)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
