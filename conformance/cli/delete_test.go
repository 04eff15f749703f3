package cli

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("Deleting objects", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	notFound := func(ctx SpecContext, kind, resource, name string) {
		GinkgoHelper()
		r := kubectlFails(ctx, "-n", ns, "get", kind, name)
		Expect(r.Stderr).To(Equal(fmt.Sprintf(`Error from server (NotFound): %s %q not found`, resource, name) + "\n"))
	}

	It("deletes by name and waits until the object is gone", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("doomed", nil, nil))
		mustCreateConfigMap(ctx, ns, configMap("kept", map[string]string{"app": "kept"}, nil))
		Expect(kubectl(ctx, "-n", ns, "delete", "configmap", "doomed")).To(Equal(fmt.Sprintf("configmap \"doomed\" deleted from %s namespace\n", ns)))
		notFound(ctx, "configmap", "configmaps", "doomed")
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=kept", "-o", "name")).To(Equal("configmap/kept\n"))

		mustCreateDeployment(ctx, ns, deployment("web", 1))
		Expect(kubectl(ctx, "-n", ns, "delete", "deployment", "web")).To(Equal(fmt.Sprintf("deployment.apps \"web\" deleted from %s namespace\n", ns)))
		notFound(ctx, "deployment", "deployments.apps", "web")

		r := kubectlFails(ctx, "-n", ns, "delete", "configmap", "doomed")
		Expect(r.Code).To(Equal(1))
		Expect(r.Stderr).To(Equal(`Error from server (NotFound): configmaps "doomed" not found` + "\n"))
		r = run(ctx, invocation{}, "-n", ns, "delete", "configmap", "doomed", "--ignore-not-found")
		Expect(r.Code).To(Equal(0), "%s", r)
		Expect(r.Stdout + r.Stderr).To(BeEmpty())
	})

	It("deletes by label selector", func(ctx SpecContext) {
		for _, name := range []string{"a", "b", "c"} {
			mustCreateConfigMap(ctx, ns, configMap(name, map[string]string{"app": "doomed"}, nil))
		}
		mustCreateConfigMap(ctx, ns, configMap("kept", map[string]string{"app": "kept"}, nil))
		Expect(kubectl(ctx, "-n", ns, "delete", "configmaps", "-l", "app=doomed")).To(Equal(fmt.Sprintf(
			"configmap \"a\" deleted from %[1]s namespace\nconfigmap \"b\" deleted from %[1]s namespace\nconfigmap \"c\" deleted from %[1]s namespace\n", ns)))
		r := run(ctx, invocation{}, "-n", ns, "get", "configmaps", "-l", "app=doomed")
		Expect(r.Code).To(Equal(0), "%s", r)
		Expect(r.Stdout).To(BeEmpty())
		Expect(r.Stderr).To(Equal(fmt.Sprintf("No resources found in %s namespace.\n", ns)))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=kept", "-o", "name")).To(Equal("configmap/kept\n"))

		// A selector matching nothing deletes nothing, and says so (on stdout, unlike get).
		Expect(kubectl(ctx, "-n", ns, "delete", "configmaps", "-l", "app=doomed")).To(Equal("No resources found\n"))
	})

	It("deletes with --cascade=orphan and --wait=false, leaving the orphan finalizer until collected", func(ctx SpecContext) {
		mustCreateDeployment(ctx, ns, deployment("web", 1))
		Expect(kubectl(ctx, "-n", ns, "delete", "deployment", "web", "--cascade=orphan", "--wait=false")).To(Equal(fmt.Sprintf("deployment.apps \"web\" deleted from %s namespace\n", ns)))
		// A garbage collector orphans the dependents and removes the finalizer (at once, here);
		// until one has, the object waits terminating with the orphan finalizer.
		r := run(ctx, invocation{}, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.metadata.finalizers} {.metadata.deletionGracePeriodSeconds}")
		if r.Code == 0 {
			Expect(r.Stdout).To(Equal(`["orphan"] 0`))
		} else {
			Expect(r.Stderr).To(Equal("Error from server (NotFound): deployments.apps \"web\" not found\n"))
		}
	})

	It("deletes with --cascade=foreground and --wait=false, leaving the foregroundDeletion finalizer", func(ctx SpecContext) {
		mustCreateDeployment(ctx, ns, deployment("web", 1))
		Expect(kubectl(ctx, "-n", ns, "delete", "deployment", "web", "--cascade=foreground", "--wait=false")).To(Equal(fmt.Sprintf("deployment.apps \"web\" deleted from %s namespace\n", ns)))
		// A garbage collector removes the finalizer once no dependents remain (at once, here);
		// until one has, the object waits with deletionTimestamp and the finalizer.
		r := run(ctx, invocation{}, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.metadata.finalizers} {.metadata.deletionTimestamp}")
		if r.Code == 0 {
			Expect(r.Stdout).To(HavePrefix(`["foregroundDeletion"] 20`))
			// Deleting it again is accepted and changes nothing, unless the collector finished
			// in between.
			r := run(ctx, invocation{}, "-n", ns, "delete", "deployment", "web", "--wait=false")
			if r.Code == 0 {
				Expect(r.Stdout).To(Equal(fmt.Sprintf("deployment.apps \"web\" deleted from %s namespace\n", ns)))
			} else {
				Expect(r.Stderr).To(Equal("Error from server (NotFound): deployments.apps \"web\" not found\n"))
			}
		} else {
			Expect(r.Stderr).To(Equal("Error from server (NotFound): deployments.apps \"web\" not found\n"))
		}
	})

	It("deletes with --wait=false an object that has no finalizers at once", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("quick", nil, nil))
		Expect(kubectl(ctx, "-n", ns, "delete", "configmap", "quick", "--wait=false")).To(Equal(fmt.Sprintf("configmap \"quick\" deleted from %s namespace\n", ns)))
		notFound(ctx, "configmap", "configmaps", "quick")
	})

	It("delete --dry-run=server changes nothing", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("kept", nil, nil))
		Expect(kubectl(ctx, "-n", ns, "delete", "configmap", "kept", "--dry-run=server")).To(Equal(fmt.Sprintf("configmap \"kept\" deleted from %s namespace (server dry run)\n", ns)))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "kept", "-o", "name")).To(Equal("configmap/kept\n"))
	})
})
