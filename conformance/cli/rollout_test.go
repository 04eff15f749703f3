package cli

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// markPodsReady stands in for a kubelet until the spec ends: pods of ns become Running and Ready.
func markPodsReady(ns string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	DeferCleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
				for _, p := range list.Items {
					if p.Status.Phase != corev1.PodRunning && p.DeletionTimestamp == nil {
						_, _ = client.CoreV1().Pods(ns).Patch(ctx, p.Name, types.MergePatchType,
							[]byte(`{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`),
							metav1.PatchOptions{}, "status")
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

var _ = Describe("Rollouts", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) {
		if _, err := client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{}); err != nil {
			Skip("rollouts need a controller manager")
		}
		ns = newNamespace(ctx)
	})

	It("follows a rollout to the end, lists its history and undoes it", func(ctx SpecContext) {
		markPodsReady(ns)
		kubectl(ctx, "-n", ns, "create", "deployment", "web", "--image=busybox:1", "--replicas=2")
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")).To(HaveSuffix("deployment \"web\" successfully rolled out\n"))
		kubectl(ctx, "-n", ns, "set", "image", "deployment/web", "busybox=busybox:2")
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")).To(HaveSuffix("deployment \"web\" successfully rolled out\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "history", "deployment/web")).To(Equal("deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "undo", "deployment/web")).To(Equal("deployment.apps/web rolled back\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")).To(HaveSuffix("deployment \"web\" successfully rolled out\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}")).To(Equal("busybox:1 3"))
	})
})
