// Package api holds the behaviour suite of the API server: what a client sees through client-go,
// against any cluster (KUBECONFIG) or a keelson server the suite starts.
package api

import (
	"context"
	"testing"
	"time"

	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

var (
	testCluster *cluster.Cluster
	client      kubernetes.Interface
	// publishesRootCA tells whether the cluster's controllers put kube-root-ca.crt in every namespace.
	publishesRootCA bool
)

func TestAPI(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "API server behaviour")
}

var _ = BeforeSuite(func() {
	var err error
	testCluster, err = cluster.Start()
	Expect(err).NotTo(HaveOccurred())
	client = testCluster.Clientset()
	SetDefaultEventuallyTimeout(30 * time.Second)
	// A cluster whose controllers publish the root CA does so within seconds of starting.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err := client.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "kube-root-ca.crt", metav1.GetOptions{}); err == nil {
			publishesRootCA = true
			break
		}
	}
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
})

var _ = AfterSuite(func() {
	if testCluster != nil {
		testCluster.Stop()
	}
})

// newNamespace creates a namespace for one spec and deletes it afterwards.
func newNamespace(ctx context.Context) string {
	name := cluster.Namespace(ctx, client, "keelson-test-")
	// Wait for what the controllers add to a namespace, so that specs watching from "now" do
	// not see it arrive; specs that list everything select their own objects by label.
	if publishesRootCA {
		Eventually(func() error {
			_, err := client.CoreV1().ConfigMaps(name).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			return err
		}).Should(Succeed())
	}
	return name
}
