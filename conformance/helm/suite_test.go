// Package helm holds the behaviour suite of the cluster as helm v4 sees it: the helm binary named
// by HELM_BINARY, run as a user runs it against any cluster (KUBECONFIG) or a keelson server the
// suite starts, installing, upgrading, rolling back and uninstalling a chart that the suite writes.
// helm must print exactly what it prints against upstream, so every command that is expected to
// succeed must also leave stderr empty: a warning is a difference a user sees. Without HELM_BINARY
// the suite skips, so that the repository's tests do not depend on a helm build.
package helm

import (
	"context"
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
	helmBin     string
	// helmHome holds helm's cache, configuration and data, private to this run.
	helmHome string
)

// commandTimeout bounds one helm invocation.
const commandTimeout = 90 * time.Second

func TestHelm(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "helm behaviour")
}

var _ = BeforeSuite(func() {
	helmBin = os.Getenv("HELM_BINARY")
	if helmBin == "" {
		Skip("HELM_BINARY is not set: build helm v4 (helm.sh/helm/v4/cmd/helm) and name it in HELM_BINARY to run the helm suite")
	}
	var err error
	helmBin, err = filepath.Abs(helmBin)
	Expect(err).NotTo(HaveOccurred())
	Expect(helmBin).To(BeAnExistingFile(), "HELM_BINARY")
	testCluster, err = cluster.Start()
	Expect(err).NotTo(HaveOccurred())
	client = testCluster.Clientset()
	helmHome, err = os.MkdirTemp("", "keelson-helm-home-")
	Expect(err).NotTo(HaveOccurred())
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
})

var _ = AfterSuite(func() {
	if testCluster != nil {
		testCluster.Stop()
	}
	if helmHome != "" {
		_ = os.RemoveAll(helmHome)
	}
})

// newNamespace creates a namespace for one spec and deletes it afterwards, without waiting.
func newNamespace(ctx context.Context) string {
	return cluster.Namespace(ctx, client, "keelson-helm-")
}

// run runs helm with the cluster's kubeconfig and this run's helm home, to completion, and
// reports what it did, whatever the outcome.
func run(ctx context.Context, args ...string) cluster.Result {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	full := append([]string{"--kubeconfig", testCluster.Kubeconfig}, args...)
	cmd := exec.CommandContext(ctx, helmBin, full...)
	cmd.Env = []string{
		"HELM_CACHE_HOME=" + filepath.Join(helmHome, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(helmHome, "config"),
		"HELM_DATA_HOME=" + filepath.Join(helmHome, "data"),
	}
	for _, kv := range os.Environ() {
		// The user's helm settings and kubeconfig stay out: the suite names its own.
		if !strings.HasPrefix(kv, "HELM_") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cluster.RunCommand(ctx, cmd, args)
}

// helm runs helm, which must succeed and print nothing on stderr, and returns its stdout.
func helm(ctx context.Context, args ...string) string {
	GinkgoHelper()
	r := run(ctx, args...)
	Expect(r.Code).To(Equal(0), "%s", r)
	Expect(r.Stderr).To(BeEmpty(), "helm printed on stderr where upstream prints nothing:\n%s", r)
	return r.Stdout
}

// writeChart writes files (paths relative to the chart) into a new chart directory and returns it.
func writeChart(files map[string]string) string {
	GinkgoHelper()
	dir := filepath.Join(GinkgoT().TempDir(), "chart")
	for name, content := range files {
		path := filepath.Join(dir, name)
		Expect(os.MkdirAll(filepath.Dir(path), 0o755)).To(Succeed())
		Expect(os.WriteFile(path, []byte(content), 0o644)).To(Succeed())
	}
	return dir
}
