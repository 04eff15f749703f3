package cluster

import (
	"context"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
)

// Namespace creates a namespace for the running spec, its name the prefix and a random suffix,
// and deletes it when the spec ends. It fails the spec if the namespace cannot be created.
func Namespace(ctx context.Context, client kubernetes.Interface, prefix string) string {
	ginkgo.GinkgoHelper()
	name := prefix + utilrand.String(6)
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	gomega.Expect(err).NotTo(gomega.HaveOccurred())
	ginkgo.DeferCleanup(func(ctx ginkgo.SpecContext) {
		_ = client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return name
}

// MarkPodsReady stands in for a kubelet until the spec ends: every pod of ns that is not
// being deleted is marked Running and Ready, so that controllers count it available.
func MarkPodsReady(client kubernetes.Interface, ns string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ginkgo.DeferCleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
				for _, p := range list.Items {
					if p.Status.Phase != corev1.PodRunning && p.DeletionTimestamp == nil {
						_, _ = client.CoreV1().Pods(ns).Patch(ctx, p.Name, types.MergePatchType, readyStatus, metav1.PatchOptions{}, "status")
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
}
