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

	It("holds a paused rollout until it is resumed", func(ctx SpecContext) {
		markPodsReady(ns)
		kubectl(ctx, "-n", ns, "create", "deployment", "web", "--image=busybox:1")
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")).To(HaveSuffix("deployment \"web\" successfully rolled out\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "pause", "deployment/web")).To(Equal("deployment.apps/web paused\n"))
		kubectl(ctx, "-n", ns, "set", "image", "deployment/web", "busybox=busybox:2")
		Eventually(func() string {
			return kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}")
		}).Should(Equal("DeploymentPaused"))
		Consistently(func() []string {
			return lines(kubectl(ctx, "-n", ns, "get", "replicasets", "-o", "name"))
		}, "1s").Should(HaveLen(1))
		Expect(kubectl(ctx, "-n", ns, "rollout", "resume", "deployment/web")).To(Equal("deployment.apps/web resumed\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")).To(HaveSuffix("deployment \"web\" successfully rolled out\n"))
		Expect(lines(kubectl(ctx, "-n", ns, "get", "replicasets", "-o", "name"))).To(HaveLen(2))
	})

	It("reports a rollout that passes its progress deadline", func(ctx SpecContext) {
		// No pod ever becomes ready here, so the rollout stalls.
		kubectl(ctx, "-n", ns, "create", "deployment", "stuck", "--image=busybox:1")
		kubectl(ctx, "-n", ns, "patch", "deployment", "stuck", "-p", `{"spec":{"progressDeadlineSeconds":2}}`)
		r := kubectlFails(ctx, "-n", ns, "rollout", "status", "deployment/stuck", "--timeout=60s")
		Expect(r.stderr).To(Equal("error: deployment \"stuck\" exceeded its progress deadline\n"), "%s", r)
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "stuck", "-o", "jsonpath={.status.conditions[?(@.type==\"Progressing\")].status} {.status.conditions[?(@.type==\"Progressing\")].message}")).
			To(MatchRegexp(`^False ReplicaSet "stuck-[a-z0-9]+" has timed out progressing\.$`))
	})
})
