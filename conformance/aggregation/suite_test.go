// Package aggregation is the behaviour suite of API aggregation: an extension API server (a
// metrics API the suite serves from its own process) registered with an APIService, reached
// through the cluster's API server by client-go, kubectl and the controllers, against any
// cluster (KUBECONFIG) or a keelson server the suite starts.
package aggregation

import (
	"context"
	"os"
	"os/exec"
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
	cacheDir    string
)

func TestAggregation(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "API aggregation behaviour")
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
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
})

var _ = AfterSuite(func() {
	if testCluster != nil {
		testCluster.Stop()
	}
	if cacheDir != "" {
		_ = os.RemoveAll(cacheDir)
	}
})

func newNamespace(ctx context.Context) string {
	return cluster.Namespace(ctx, client, "keelson-agg-")
}

// kubectl runs the real kubectl, which must succeed and print nothing on stderr, and returns its
// stdout.
func kubectl(ctx context.Context, args ...string) string {
	GinkgoHelper()
	r := runKubectl(ctx, args...)
	Expect(r.Code).To(Equal(0), "%s", r)
	Expect(r.Stderr).To(BeEmpty(), "kubectl printed on stderr:\n%s", r)
	return r.Stdout
}

func runKubectl(ctx context.Context, args ...string) cluster.Result {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	full := append([]string{"--kubeconfig", testCluster.Kubeconfig, "--cache-dir", cacheDir}, args...)
	return cluster.RunCommand(ctx, exec.CommandContext(ctx, kubectlBin, full...), args)
}
