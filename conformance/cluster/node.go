package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/keelson/keelson/kubelet/containerd"
	"github.com/keelson/keelson/kubelet/containerd/containerdtest"
)

// ErrNeedsRoot is StartNode's answer when a node cannot be started by this user.
var ErrNeedsRoot = errors.New("a real node needs root: it runs containerd, runc, CNI plugins and nftables")

// StartNode returns the cluster KUBECONFIG names (whose nodes must offer the busybox image), or
// starts a Keelson server with its node agent: as root, with the node's packages installed
// when missing and the project's images (pause, busybox) built into its data directory.
func StartNode() (*Cluster, error) {
	if os.Getenv("KUBECONFIG") != "" {
		return Start()
	}
	if os.Geteuid() != 0 {
		return nil, ErrNeedsRoot
	}
	if err := containerdtest.Install(); err != nil {
		return nil, err
	}
	bin, err := Binary("keelson", "./cmd/keelson")
	if err != nil {
		return nil, err
	}
	dir, err := nodeDataDir(bin, "keelson-node-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Keelson: true, DataDir: dir, port: port, Kubeconfig: filepath.Join(dir, "admin.kubeconfig"), agent: true}
	if err := c.launch(bin); err != nil {
		c.purgeNode()
		return nil, err
	}
	return c, nil
}

// nodeDataDir makes a node's data directory, its images (pause, busybox) built into it.
func nodeDataDir(bin, prefix string) (string, error) {
	pause, err := pauseBinary()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "images", "build", "--data-dir", dir, "--pause-binary", pause).CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("keelson images build: %v\n%s", err, out)
	}
	return dir, nil
}

// pauseBinary builds the static pause program into bin/ (BIN_keelson-pause names a prebuilt one).
func pauseBinary() (string, error) {
	if p := os.Getenv("BIN_keelson-pause"); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(root, "bin", "keelson-pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/keelson-pause")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building keelson-pause: %v\n%s", err, b)
	}
	return out, nil
}

// purgeNode kills what the node's containerd left running and unmounts what its pods left
// mounted, so that the data directory can go.
func (c *Cluster) purgeNode() {
	purgeDataDir(c.DataDir)
	// The proxy leaves its rules on exit, as kube-proxy does; a test's node takes them along.
	_ = exec.Command("nft", "delete", "table", "ip", "keelson").Run()
}

// purgeDataDir kills the containers a node's containerd left running, unmounts what its pods
// left mounted and removes the node's data directory.
func purgeDataDir(dir string) {
	containerd.KillShims(filepath.Join(dir, "agent", "containerd", "containerd.sock"))
	_ = containerd.UnmountUnder(dir)
	_ = os.RemoveAll(dir)
}

// interrupt asks a process to stop and kills it if it has not within grace.
func interrupt(cmd *exec.Cmd, grace time.Duration) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}
