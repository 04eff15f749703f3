package cli

import (
	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var _ = Describe("Rollouts", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) {
		if _, err := client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{}); err != nil {
			Skip("rollouts need a controller manager")
		}
		ns = newNamespace(ctx)
	})

	It("follows a rollout to the end, lists its history and undoes it", func(ctx SpecContext) {
		cluster.MarkPodsReady(client, ns)
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
		cluster.MarkPodsReady(client, ns)
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
		Expect(r.Stderr).To(Equal("error: deployment \"stuck\" exceeded its progress deadline\n"), "%s", r)
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "stuck", "-o", "jsonpath={.status.conditions[?(@.type==\"Progressing\")].status} {.status.conditions[?(@.type==\"Progressing\")].message}")).
			To(MatchRegexp(`^False ReplicaSet "stuck-[a-z0-9]+" has timed out progressing\.$`))
	})
})
