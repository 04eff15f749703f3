package cluster

import (
	"context"

	"github.com/keelson/keelson/simulator"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
)

// SimulatedNodes runs simulated nodes from the test's process until the spec ends, then
// deletes them. The prefix of their names gets a random suffix so that specs do not collide.
func (c *Cluster) SimulatedNodes(opts simulator.Options) *simulator.Nodes {
	ginkgo.GinkgoHelper()
	opts.Prefix += utilrand.String(5) + "-"
	ctx, stop := context.WithCancel(context.Background())
	nodes, err := simulator.Start(ctx, c.Config, opts)
	if err != nil {
		stop()
	}
	gomega.Expect(err).NotTo(gomega.HaveOccurred())
	client := kubernetes.NewForConfigOrDie(c.Config)
	ginkgo.DeferCleanup(func(ctx ginkgo.SpecContext) {
		stop()
		nodes.Wait()
		for _, name := range nodes.Names() {
			_ = client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
		}
	})
	return nodes
}
