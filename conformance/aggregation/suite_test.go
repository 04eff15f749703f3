// Package aggregation is the behaviour suite of API aggregation: an extension API server (a
// metrics API the suite serves from its own process) registered with an APIService, reached
// through the cluster's API server by client-go, kubectl and the controllers, against any
// cluster (KUBECONFIG) or a keelson server the suite starts.
package aggregation

import (
	"context"
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

func TestAggregation(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "API aggregation behaviour")
}

var _ = BeforeSuite(func() {
	var err error
	testCluster, err = cluster.Start()
	Expect(err).NotTo(HaveOccurred())
	client = testCluster.Clientset()
	kubectlRun, err = cluster.NewKubectlRunner(testCluster, 60*time.Second)
	Expect(err).NotTo(HaveOccurred())
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
})

var _ = AfterSuite(func() {
	kubectlRun.Close()
	if testCluster != nil {
		testCluster.Stop()
	}
})

func newNamespace(ctx context.Context) string {
	return cluster.Namespace(ctx, client, "keelson-agg-")
}

// kubectl runs the real kubectl, which must succeed and print nothing on stderr, and returns its
// stdout.
func kubectl(ctx context.Context, args ...string) string {
	GinkgoHelper()
	return kubectlRun.Succeed(ctx, nil, "", args...)
}
