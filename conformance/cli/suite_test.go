// Package cli holds the behaviour suite of the cluster as the real kubectl sees it: kubectl v1.37,
// built from k8s.io/kubectl at our version, run as a user runs it against any cluster (KUBECONFIG)
// or a keelson server the suite starts. kubectl must print exactly what it prints against upstream,
// so every command that is expected to succeed must also leave stderr empty: a warning, a fallback
// message or a klog line is a difference a user sees.
package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"
)

var (
	testCluster *cluster.Cluster
	client      kubernetes.Interface
	kubectlBin  string
	// cacheDir is kubectl's discovery and HTTP cache, private to this run so that every run
	// discovers the cluster afresh.
	cacheDir string
)

// commandTimeout bounds one kubectl invocation.
const commandTimeout = 60 * time.Second

func TestCLI(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "kubectl behaviour")
}

var _ = BeforeSuite(func() {
	var err error
	kubectlBin, err = cluster.Kubectl()
	Expect(err).NotTo(HaveOccurred())
	testCluster, err = cluster.Start()
	Expect(err).NotTo(HaveOccurred())
	client = testCluster.Clientset()
	cacheDir, err = os.MkdirTemp("", "keelson-kubectl-cache-")
	Expect(err).NotTo(HaveOccurred())
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
})

var _ = AfterSuite(func() {
	if testCluster != nil {
		testCluster.Stop()
	}
	if cacheDir != "" {
		_ = os.RemoveAll(cacheDir)
	}
})

// newNamespace creates a namespace for one spec and deletes it afterwards, without waiting.
func newNamespace(ctx context.Context) string {
	return cluster.Namespace(ctx, client, "keelson-cli-")
}

// invocation describes how to run kubectl beyond its arguments.
type invocation struct {
	env   []string
	stdin string
}

// command prepares kubectl with the cluster's kubeconfig and this run's cache.
func command(ctx context.Context, inv invocation, args ...string) *exec.Cmd {
	full := append([]string{"--kubeconfig", testCluster.Kubeconfig, "--cache-dir", cacheDir}, args...)
	cmd := exec.CommandContext(ctx, kubectlBin, full...)
	cmd.Env = append(os.Environ(), inv.env...)
	if inv.stdin != "" {
		cmd.Stdin = strings.NewReader(inv.stdin)
	}
	return cmd
}

// run runs kubectl to completion and reports what it did, whatever the outcome.
func run(ctx context.Context, inv invocation, args ...string) cluster.Result {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	return cluster.RunCommand(ctx, command(ctx, inv, args...), args)
}

// kubectl runs kubectl, which must succeed and print nothing on stderr, and returns its stdout.
func kubectl(ctx context.Context, args ...string) string {
	GinkgoHelper()
	return kubectlWith(ctx, invocation{}, args...)
}

func kubectlWith(ctx context.Context, inv invocation, args ...string) string {
	GinkgoHelper()
	r := run(ctx, inv, args...)
	Expect(r.Code).To(Equal(0), "%s", r)
	Expect(r.Stderr).To(BeEmpty(), "kubectl printed on stderr where upstream prints nothing:\n%s", r)
	return r.Stdout
}

// kubectlFails runs kubectl, which must fail, and returns what it did.
func kubectlFails(ctx context.Context, args ...string) cluster.Result {
	GinkgoHelper()
	r := run(ctx, invocation{}, args...)
	Expect(r.Code).NotTo(Equal(0), "kubectl succeeded where it should fail:\n%s", r)
	return r
}

// lines splits output into lines, without the final newline.
func lines(out string) []string {
	out = strings.TrimSuffix(out, "\n")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// table splits kubectl's column output into header and rows of fields.
func table(out string) (header []string, rows [][]string) {
	GinkgoHelper()
	ls := lines(out)
	Expect(ls).NotTo(BeEmpty(), "no table in output")
	header = strings.Fields(ls[0])
	for _, l := range ls[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return header, rows
}

// row finds the row whose first field is name.
func row(rows [][]string, name string) []string {
	GinkgoHelper()
	for _, r := range rows {
		if len(r) > 0 && r[0] == name {
			return r
		}
	}
	Fail(fmt.Sprintf("no row %q in %v", name, rows))
	return nil
}

// writeFile writes content into a file in the spec's temporary directory and returns its path.
func writeFile(name, content string) string {
	path := filepath.Join(GinkgoT().TempDir(), name)
	Expect(os.WriteFile(path, []byte(content), 0o644)).To(Succeed())
	return path
}

// writeFileAt replaces the content of a file written by writeFile.
func writeFileAt(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o644)
}
