package cli

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Commands beyond the everyday ones that a user still reaches for.
var _ = Describe("More commands", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	// Fails on keelson while it serves no OpenAPI: apply validates with --validate=strict, and
	// keelson also answers an apply patch (application/apply-patch+yaml) with 415.
	It("applies server-side, records the manager, and reports a conflict", func(ctx SpecContext) {
		path := writeFile("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  color: blue\n")
		Expect(kubectl(ctx, "-n", ns, "apply", "--server-side", "-f", path)).To(Equal("configmap/ssa serverside-applied\n"))
		var cm metav1.PartialObjectMetadata
		getJSON(ctx, &cm, "-n", ns, "configmap", "ssa", "--show-managed-fields")
		Expect(cm.ManagedFields).To(HaveLen(1))
		Expect(cm.ManagedFields[0].Manager).To(Equal("kubectl"))
		Expect(cm.ManagedFields[0].Operation).To(Equal(metav1.ManagedFieldsOperationApply))
		Expect(kubectl(ctx, "-n", ns, "apply", "--server-side", "-f", path)).To(Equal("configmap/ssa serverside-applied\n"))

		// Another manager takes the field; applying it again conflicts until forced.
		Expect(kubectl(ctx, "-n", ns, "patch", "configmap", "ssa", "--type=merge", "-p", `{"data":{"color":"red"}}`)).To(Equal("configmap/ssa patched\n"))
		Expect(writeFileAt(path, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  color: green\n")).To(Succeed())
		r := kubectlFails(ctx, "-n", ns, "apply", "--server-side", "-f", path)
		Expect(r.Code).To(Equal(1))
		Expect(r.Stderr).To(HavePrefix(`error: Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .data.color`))
		Expect(kubectl(ctx, "-n", ns, "apply", "--server-side", "--force-conflicts", "-f", path)).To(Equal("configmap/ssa serverside-applied\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "ssa", "-o", "jsonpath={.data.color}")).To(Equal("green"))
	})

	// Fails on keelson while it serves no OpenAPI: explain reads /openapi/v3.
	It("explains a field", func(ctx SpecContext) {
		out := kubectl(ctx, "explain", "deployment.spec.replicas")
		Expect(out).To(MatchRegexp(`(?m)^GROUP:\s+apps$`))
		Expect(out).To(MatchRegexp(`(?m)^KIND:\s+Deployment$`))
		Expect(out).To(MatchRegexp(`(?m)^VERSION:\s+v1$`))
		Expect(out).To(MatchRegexp(`(?m)^FIELD: replicas <integer>$`))
		Expect(out).To(ContainSubstring("Number of desired pods."))
	})

	It("sets an image and exposes a deployment", func(ctx SpecContext) {
		mustCreateDeployment(ctx, ns, deployment("web", 1))
		Expect(kubectl(ctx, "-n", ns, "set", "image", "deployment/web", "nginx=nginx:1.28")).To(Equal("deployment.apps/web image updated\n"))
		var d appsv1.Deployment
		getJSON(ctx, &d, "-n", ns, "deployment", "web")
		Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("nginx:1.28"))

		Expect(kubectl(ctx, "-n", ns, "expose", "deployment", "web", "--port=80", "--target-port=8080")).To(Equal("service/web exposed\n"))
		var svc corev1.Service
		getJSON(ctx, &svc, "-n", ns, "service", "web")
		Expect(svc.Spec.Selector).To(Equal(map[string]string{"app": "web"}))
		Expect(svc.Spec.Ports).To(HaveLen(1))
		Expect(svc.Spec.Ports[0].Port).To(Equal(int32(80)))
		Expect(svc.Spec.Ports[0].TargetPort.IntValue()).To(Equal(8080))

		Expect(kubectl(ctx, "-n", ns, "rollout", "restart", "deployment/web")).To(Equal("deployment.apps/web restarted\n"))
		getJSON(ctx, &d, "-n", ns, "deployment", "web")
		Expect(d.Spec.Template.Annotations).To(HaveKey("kubectl.kubernetes.io/restartedAt"))
	})

	It("creates a job and a cronjob and prints their tables", func(ctx SpecContext) {
		Expect(kubectl(ctx, "-n", ns, "create", "job", "once", "--image=busybox:1.37", "--", "echo", "hi")).To(Equal("job.batch/once created\n"))
		Expect(kubectl(ctx, "-n", ns, "create", "cronjob", "often", "--image=busybox:1.37", "--schedule=*/5 * * * *", "--", "echo", "hi")).To(Equal("cronjob.batch/often created\n"))
		header, rows := table(kubectl(ctx, "-n", ns, "get", "jobs"))
		Expect(header).To(Equal([]string{"NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"}))
		Expect(row(rows, "once")[0]).To(Equal("once"))
		out := kubectl(ctx, "-n", ns, "get", "cronjobs")
		Expect(lines(out)[0]).To(MatchRegexp(`^NAME\s+SCHEDULE\s+TIMEZONE\s+SUSPEND\s+ACTIVE\s+LAST SCHEDULE\s+AGE$`))
		Expect(out).To(MatchRegexp(`(?m)^often\s+\*/5 \* \* \* \*\s+<none>\s+False\s+0\s+<none>\s+\d+s$`))
	})

	It("lists across namespaces with -A", func(ctx SpecContext) {
		other := newNamespace(ctx)
		mustCreateConfigMap(ctx, ns, configMap("here", map[string]string{"app": ns}, nil))
		mustCreateConfigMap(ctx, other, configMap("there", map[string]string{"app": ns}, nil))
		header, rows := table(kubectl(ctx, "get", "configmaps", "-A", "-l", "app="+ns))
		Expect(header).To(Equal([]string{"NAMESPACE", "NAME", "DATA", "AGE"}))
		Expect(rows).To(ConsistOf(
			HaveExactElements(ns, "here", "0", MatchRegexp(`^\d+s$`)),
			HaveExactElements(other, "there", "0", MatchRegexp(`^\d+s$`)),
		))
		Expect(kubectl(ctx, "get", "configmaps", "-A", "-l", "app="+ns, "-o", "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}")).To(
			Or(Equal(fmt.Sprintf("%s/here %s/there ", ns, other)), Equal(fmt.Sprintf("%s/there %s/here ", other, ns))))
	})

	It("answers auth can-i and auth whoami for the admin", func(ctx SpecContext) {
		Expect(kubectl(ctx, "auth", "can-i", "create", "pods")).To(Equal("yes\n"))
		Expect(kubectl(ctx, "auth", "can-i", "delete", "deployments.apps", "-n", ns)).To(Equal("yes\n"))
		out := kubectl(ctx, "auth", "whoami")
		Expect(lines(out)[0]).To(MatchRegexp(`^ATTRIBUTE\s+VALUE$`))
		Expect(out).To(MatchRegexp(`(?m)^Username\s+\S+$`))
		Expect(out).To(MatchRegexp(`(?m)^Groups\s+\[.*system:authenticated.*\]$`))
	})
})
