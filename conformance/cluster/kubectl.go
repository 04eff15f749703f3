package cluster

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
)

// KubectlRunner runs the real kubectl (see Kubectl) against a cluster, with a discovery and
// HTTP cache private to the run so that every run discovers the cluster afresh.
type KubectlRunner struct {
	bin, kubeconfig, cacheDir string
	// timeout bounds one invocation.
	timeout time.Duration
}

// NewKubectlRunner builds kubectl and makes its cache; Close removes the cache.
func NewKubectlRunner(c *Cluster, timeout time.Duration) (*KubectlRunner, error) {
	bin, err := Kubectl()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keelson-kubectl-cache-")
	if err != nil {
		return nil, err
	}
	return &KubectlRunner{bin: bin, kubeconfig: c.Kubeconfig, cacheDir: dir, timeout: timeout}, nil
}

// Close removes the runner's cache.
func (k *KubectlRunner) Close() {
	if k != nil {
		_ = os.RemoveAll(k.cacheDir)
	}
}

// Run runs kubectl with args to completion, with env added to this process's environment and
// stdin (if not empty) as its input, and reports what it did, whatever the outcome.
func (k *KubectlRunner) Run(ctx context.Context, env []string, stdin string, args ...string) Result {
	ginkgo.GinkgoHelper()
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	return RunCommand(ctx, k.Command(ctx, env, stdin, args...), args)
}

// Command prepares kubectl with args, env and stdin as Run does, for a spec that runs it itself
// (a watch, say); ctx ends it.
func (k *KubectlRunner) Command(ctx context.Context, env []string, stdin string, args ...string) *exec.Cmd {
	full := append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cacheDir}, args...)
	cmd := exec.CommandContext(ctx, k.bin, full...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	return cmd
}

// Succeed runs kubectl as Run does; it must succeed and print nothing on stderr (a warning, a
// fallback message or a klog line is a difference a user sees). It returns the stdout.
func (k *KubectlRunner) Succeed(ctx context.Context, env []string, stdin string, args ...string) string {
	ginkgo.GinkgoHelper()
	r := k.Run(ctx, env, stdin, args...)
	gomega.Expect(r.Code).To(gomega.Equal(0), "%s", r)
	gomega.Expect(r.Stderr).To(gomega.BeEmpty(), "kubectl printed on stderr where upstream prints nothing:\n%s", r)
	return r.Stdout
}
