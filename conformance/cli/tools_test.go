package cli

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The commands issue 3 names beyond everyday use: diff, prune, managed fields, events, wait, whoami.
var _ = Describe("Client tools", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("diffs a manifest against the server with a server-side dry run", func(ctx SpecContext) {
		path := writeFile("diff.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\ndata:\n  color: blue\n")
		Expect(kubectl(ctx, "-n", ns, "apply", "-f", path)).To(Equal("configmap/d created\n"))
		// No difference: exit 0 and no output.
		Expect(kubectl(ctx, "-n", ns, "diff", "-f", path)).To(BeEmpty())
		Expect(writeFileAt(path, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\ndata:\n  color: green\n")).To(Succeed())
		r := run(ctx, invocation{}, "-n", ns, "diff", "-f", path)
		Expect(r.Code).To(Equal(1), "%s", r)
		Expect(r.Stderr).To(BeEmpty())
		Expect(r.Stdout).To(ContainSubstring("-  color: blue"))
		Expect(r.Stdout).To(ContainSubstring("+  color: green"))
		// The dry run stored nothing.
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "d", "-o", "jsonpath={.data.color}")).To(Equal("blue"))
	})

	It("prunes objects a labelled manifest no longer has", func(ctx SpecContext) {
		path := writeFile("prune.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n  labels: {set: p}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: two\n  labels: {set: p}\n")
		// With an explicit allowlist kubectl prints no deprecation warning of its own.
		apply := []string{"-n", ns, "apply", "-l", "set=p", "--prune", "--prune-allowlist=core/v1/ConfigMap", "-f", path}
		Expect(kubectl(ctx, apply...)).To(Equal("configmap/one created\nconfigmap/two created\n"))
		Expect(writeFileAt(path, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n  labels: {set: p}\n")).To(Succeed())
		Expect(kubectl(ctx, apply...)).To(Equal("configmap/one unchanged\nconfigmap/two pruned\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "set=p", "-o", "name")).To(Equal("configmap/one\n"))
	})

	It("shows managed fields when asked", func(ctx SpecContext) {
		kubectl(ctx, "-n", ns, "create", "configmap", "mf", "--from-literal=a=b")
		out := kubectl(ctx, "-n", ns, "get", "configmap", "mf", "-o", "yaml", "--show-managed-fields")
		Expect(out).To(ContainSubstring("managedFields:"))
		Expect(out).To(ContainSubstring("manager: kubectl-create"))
		Expect(out).To(ContainSubstring("operation: Update"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "mf", "-o", "yaml")).NotTo(ContainSubstring("managedFields:"))
	})

	It("lists events", func(ctx SpecContext) {
		event := "apiVersion: v1\nkind: Event\nmetadata:\n  name: e1\ninvolvedObject:\n  kind: ConfigMap\n  name: ev\n  namespace: " + ns +
			"\nreason: Tested\nmessage: something happened\ntype: Normal\nsource:\n  component: test\nfirstTimestamp: \"2026-01-01T00:00:00Z\"\nlastTimestamp: \"2026-01-01T00:00:00Z\"\ncount: 1\n"
		kubectl(ctx, "-n", ns, "create", "-f", writeFile("event.yaml", event))
		out := kubectl(ctx, "-n", ns, "events")
		Expect(lines(out)).To(HaveLen(2))
		Expect(strings.Fields(lines(out)[0])).To(Equal([]string{"LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}))
		Expect(out).To(ContainSubstring("Tested"))
		Expect(out).To(ContainSubstring("ConfigMap/ev"))
		Expect(out).To(ContainSubstring("something happened"))
	})

	It("waits for a condition and for deletion", func(ctx SpecContext) {
		kubectl(ctx, "-n", ns, "create", "-f", writeFile("pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: w\nspec:\n  containers:\n  - name: c\n    image: busybox\n"))
		kubectl(ctx, "-n", ns, "patch", "pod", "w", "--subresource=status", "--type=merge", "-p",
			`{"status":{"conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`)
		Expect(kubectl(ctx, "-n", ns, "wait", "--for=condition=Ready", "pod/w", "--timeout=20s")).To(Equal("pod/w condition met\n"))
		Expect(kubectl(ctx, "-n", ns, "wait", "--for=jsonpath={.status.conditions[0].status}=True", "pod/w", "--timeout=20s")).To(Equal("pod/w condition met\n"))
		kubectl(ctx, "-n", ns, "delete", "pod", "w", "--wait=false")
		Expect(kubectl(ctx, "-n", ns, "wait", "--for=delete", "pod/w", "--timeout=20s")).To(Or(Equal("pod/w condition met\n"), BeEmpty()))
	})

	It("says who the user is", func(ctx SpecContext) {
		header, rows := table(kubectl(ctx, "auth", "whoami"))
		Expect(header).To(Equal([]string{"ATTRIBUTE", "VALUE"}))
		Expect(rows).NotTo(BeEmpty())
		Expect(rows[0][0]).To(Equal("Username"))
	})
})
