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
	kubectlRun  *cluster.KubectlRunner
)

// commandTimeout bounds one kubectl invocation.
const commandTimeout = 60 * time.Second

func TestCLI(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "kubectl behaviour")
}

var _ = BeforeSuite(func() {
	var err error
	testCluster, err = cluster.Start()
	Expect(err).NotTo(HaveOccurred())
	client = testCluster.Clientset()
	kubectlRun, err = cluster.NewKubectlRunner(testCluster, commandTimeout)
	Expect(err).NotTo(HaveOccurred())
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
})

var _ = AfterSuite(func() {
	kubectlRun.Close()
	if testCluster != nil {
		testCluster.Stop()
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

// run runs kubectl to completion and reports what it did, whatever the outcome.
func run(ctx context.Context, inv invocation, args ...string) cluster.Result {
	GinkgoHelper()
	return kubectlRun.Run(ctx, inv.env, inv.stdin, args...)
}

// kubectl runs kubectl, which must succeed and print nothing on stderr, and returns its stdout.
func kubectl(ctx context.Context, args ...string) string {
	GinkgoHelper()
	return kubectlWith(ctx, invocation{}, args...)
}

func kubectlWith(ctx context.Context, inv invocation, args ...string) string {
	GinkgoHelper()
	return kubectlRun.Succeed(ctx, inv.env, inv.stdin, args...)
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
