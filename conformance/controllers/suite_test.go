// Package controllers is the behaviour suite of the controller manager: what a cluster's controllers
// do that a client sees, against any cluster (KUBECONFIG) or a keelson server the suite starts.
package controllers

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
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller manager behaviour")
}

var _ = BeforeSuite(func() {
	var err error
	testCluster, err = cluster.Start()
	Expect(err).NotTo(HaveOccurred())
	client = testCluster.Clientset()
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
})

var _ = AfterSuite(func() {
	if testCluster != nil {
		testCluster.Stop()
	}
})

func newNamespace(ctx context.Context) string {
	return cluster.Namespace(ctx, client, "keelson-ctl-")
}
