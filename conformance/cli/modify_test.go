package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// editor writes a shell script for EDITOR that runs sed with the given expression on the file
// kubectl edit hands it, and returns the environment that selects it.
func editor(sedExpr string) []string {
	GinkgoHelper()
	path := filepath.Join(GinkgoT().TempDir(), "editor.sh")
	script := fmt.Sprintf("#!/bin/sh\nexec sed -i -e '%s' \"$1\"\n", sedExpr)
	Expect(os.WriteFile(path, []byte(script), 0o755)).To(Succeed())
	return []string{"EDITOR=" + path, "KUBE_EDITOR=" + path}
}

var _ = Describe("Describing objects", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("describes a deployment", func(ctx SpecContext) {
		mustCreateDeployment(ctx, ns, deployment("web", 2))
		out := kubectl(ctx, "-n", ns, "describe", "deployment", "web")
		for _, want := range []string{
			`Name:\s+web`,
			`Namespace:\s+` + ns,
			`CreationTimestamp:\s+\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}`,
			`Labels:\s+app=web`,
			// The deployment controller stamps the revision once it has seen the object.
			`Annotations:\s+(<none>|deployment\.kubernetes\.io/revision: 1)`,
			`Selector:\s+app=web`,
			`Replicas:\s+2 desired \| \d+ updated \| \d+ total \| \d+ available \| \d+ unavailable`,
			`StrategyType:\s+RollingUpdate`,
			`MinReadySeconds:\s+0`,
			`RollingUpdateStrategy:\s+25% max unavailable, 25% max surge`,
			`Pod Template:`,
			`  Labels:\s+app=web`,
			`  Containers:`,
			`   nginx:`,
			`    Image:\s+nginx:1.27`,
			`    Port:\s+<none>`,
			`Events:\s+.*`,
		} {
			Expect(out).To(MatchRegexp(`(?m)^`+want+`$`), "no line matching %q in:\n%s", want, out)
		}
	})

	It("describes a configmap", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("settings", map[string]string{"app": "x"}, map[string]string{"color": "blue"}))
		out := kubectl(ctx, "-n", ns, "describe", "configmap", "settings")
		Expect(out).To(Equal(fmt.Sprintf(`Name:         settings
Namespace:    %s
Labels:       app=x
Annotations:  <none>

Data
====
color:
----
blue


BinaryData
====

Events:  <none>
`, ns)))
		// describe by label selector describes every match.
		mustCreateConfigMap(ctx, ns, configMap("second", map[string]string{"app": "x"}, nil))
		out = kubectl(ctx, "-n", ns, "describe", "configmaps", "-l", "app=x")
		Expect(out).To(MatchRegexp(`(?m)^Name:\s+settings$`))
		Expect(out).To(MatchRegexp(`(?m)^Name:\s+second$`))
	})

	It("fails to describe a missing object", func(ctx SpecContext) {
		r := kubectlFails(ctx, "-n", ns, "describe", "configmap", "nope")
		Expect(r.Code).To(Equal(1))
		Expect(r.Stderr).To(Equal(`Error from server (NotFound): configmaps "nope" not found` + "\n"))
	})
})

var _ = Describe("Changing objects", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	// Fails on keelson while it serves no OpenAPI: edit validates with --validate=strict.
	It("edits an object with EDITOR", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("settings", nil, map[string]string{"color": "blue"}))
		out := kubectlWith(ctx, invocation{env: editor(`s/^  color: blue$/  color: green/`)}, "-n", ns, "edit", "configmap", "settings")
		Expect(out).To(Equal("configmap/settings edited\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.data.color}")).To(Equal("green"))

		mustCreateDeployment(ctx, ns, deployment("web", 1))
		out = kubectlWith(ctx, invocation{env: editor(`s/image: nginx:1.27$/image: nginx:1.28/`)}, "-n", ns, "edit", "deployment", "web")
		Expect(out).To(Equal("deployment.apps/web edited\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.metadata.generation}")).To(Equal("nginx:1.28 2"))
	})

	It("edit without a change saves nothing", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("settings", nil, map[string]string{"color": "blue"}))
		rv := kubectl(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.metadata.resourceVersion}")
		r := run(ctx, invocation{env: editor(`s/^  color: nothing-here$//`)}, "-n", ns, "edit", "configmap", "settings")
		Expect(r.Code).To(Equal(0), "%s", r)
		Expect(r.Stdout).To(BeEmpty())
		Expect(r.Stderr).To(Equal("Edit cancelled, no changes made.\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.metadata.resourceVersion}")).To(Equal(rv))
	})

	It("labels an object, refuses to overwrite without --overwrite, and removes a label", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("settings", nil, nil))
		Expect(kubectl(ctx, "-n", ns, "label", "configmap", "settings", "tier=front")).To(Equal("configmap/settings labeled\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "tier=front", "-o", "name")).To(Equal("configmap/settings\n"))

		r := kubectlFails(ctx, "-n", ns, "label", "configmap", "settings", "tier=back")
		Expect(r.Code).To(Equal(1))
		Expect(r.Stderr).To(Equal("error: 'tier' already has a value (front), and --overwrite is false\n"))

		Expect(kubectl(ctx, "-n", ns, "label", "configmap", "settings", "tier=back", "--overwrite")).To(Equal("configmap/settings labeled\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.metadata.labels}")).To(Equal(`{"tier":"back"}`))
		Expect(kubectl(ctx, "-n", ns, "label", "configmap", "settings", "tier-")).To(Equal("configmap/settings unlabeled\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.metadata.labels}")).To(BeEmpty())

		// Every object a selector matches.
		mustCreateConfigMap(ctx, ns, configMap("a", map[string]string{"group": "g"}, nil))
		mustCreateConfigMap(ctx, ns, configMap("b", map[string]string{"group": "g"}, nil))
		Expect(kubectl(ctx, "-n", ns, "label", "configmaps", "-l", "group=g", "marked=yes")).To(Equal("configmap/a labeled\nconfigmap/b labeled\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "marked=yes", "-o", "name")).To(Equal("configmap/a\nconfigmap/b\n"))
	})

	It("annotates an object, and overwrites only with --overwrite", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("settings", nil, nil))
		Expect(kubectl(ctx, "-n", ns, "annotate", "configmap", "settings", "note=first")).To(Equal("configmap/settings annotated\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.metadata.annotations.note}")).To(Equal("first"))

		r := kubectlFails(ctx, "-n", ns, "annotate", "configmap", "settings", "note=second")
		Expect(r.Code).To(Equal(1))
		Expect(r.Stderr).To(Equal("error: --overwrite is false but found the following declared annotation(s): 'note' already has a value (first)\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.metadata.annotations.note}")).To(Equal("first"))

		Expect(kubectl(ctx, "-n", ns, "annotate", "configmap", "settings", "note=second", "--overwrite")).To(Equal("configmap/settings annotated\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.metadata.annotations.note}")).To(Equal("second"))
		Expect(kubectl(ctx, "-n", ns, "annotate", "configmap", "settings", "note-")).To(Equal("configmap/settings annotated\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.metadata.annotations}")).To(BeEmpty())
	})

	It("patches with JSON patch, merge patch and strategic merge patch", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("settings", nil, map[string]string{"a": "1"}))
		Expect(kubectl(ctx, "-n", ns, "patch", "configmap", "settings", "--type=json", "-p", `[{"op":"add","path":"/data/b","value":"2"}]`)).To(Equal("configmap/settings patched\n"))
		Expect(kubectl(ctx, "-n", ns, "patch", "configmap", "settings", "--type=merge", "-p", `{"data":{"a":null,"c":"3"}}`)).To(Equal("configmap/settings patched\n"))
		Expect(kubectl(ctx, "-n", ns, "patch", "configmap", "settings", "-p", `{"data":{"d":"4"}}`)).To(Equal("configmap/settings patched\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.data}")).To(Equal(`{"b":"2","c":"3","d":"4"}`))
		// The same patch again changes nothing, and kubectl says so.
		Expect(kubectl(ctx, "-n", ns, "patch", "configmap", "settings", "-p", `{"data":{"d":"4"}}`)).To(Equal("configmap/settings patched (no change)\n"))

		// Strategic merge keys containers by name: the image changes in place, nothing else goes.
		d := deployment("web", 1)
		d.Spec.Template.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80}}
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "sidecar", Image: "busybox:1.37"})
		mustCreateDeployment(ctx, ns, d)
		Expect(kubectl(ctx, "-n", ns, "patch", "deployment", "web", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.28"}]}}}}`)).To(Equal("deployment.apps/web patched\n"))
		var got appsv1.Deployment
		getJSON(ctx, &got, "-n", ns, "deployment", "web")
		Expect(got.Spec.Template.Spec.Containers).To(HaveLen(2))
		Expect(got.Spec.Template.Spec.Containers[0].Image).To(Equal("nginx:1.28"))
		Expect(got.Spec.Template.Spec.Containers[0].Ports).To(HaveLen(1))
		Expect(got.Spec.Template.Spec.Containers[1].Name).To(Equal("sidecar"))
		Expect(got.Generation).To(Equal(int64(2)))

		// A merge patch replaces the list whole.
		Expect(kubectl(ctx, "-n", ns, "patch", "deployment", "web", "--type=merge", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"only","image":"nginx:1.29"}]}}}}`)).To(Equal("deployment.apps/web patched\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[*].name}")).To(Equal("only"))

		// A JSON patch whose test fails is refused.
		r := kubectlFails(ctx, "-n", ns, "patch", "configmap", "settings", "--type=json", "-p", `[{"op":"test","path":"/data/b","value":"9"}]`)
		Expect(r.Code).To(Equal(1))
		// Upstream answers 422 with no kind, name or causes (NewGenericServerResponse with an empty
		// GroupResource), which kubectl prints as below.
		Expect(r.Stderr).To(Equal("The request is invalid: the server rejected our request due to an error in our request\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "settings", "-o", "jsonpath={.data}")).To(Equal(`{"b":"2","c":"3","d":"4"}`))
	})

	It("patches a missing object with NotFound", func(ctx SpecContext) {
		r := kubectlFails(ctx, "-n", ns, "patch", "configmap", "nope", "-p", `{"data":{"a":"1"}}`)
		Expect(r.Code).To(Equal(1))
		Expect(r.Stderr).To(Equal(`Error from server (NotFound): configmaps "nope" not found` + "\n"))
	})

	// Fails on keelson while it serves no OpenAPI: replace validates with --validate=strict.
	It("replaces objects from a changed manifest", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("shop-config", map[string]string{"app": "shop"}, map[string]string{"color": "blue", "gone": "soon"}))
		mustCreateDeployment(ctx, ns, deployment("shop", 2))
		changed := strings.Replace(strings.Replace(shopManifest, "color: blue", "color: red", 1), "image: nginx:1.27", "image: nginx:1.28", 1)
		// Only the Deployment and the ConfigMap: the Service does not exist, so replace would fail on it.
		docs := strings.Split(changed, "---\n")
		path := writeFile("shop.yaml", docs[0]+"---\n"+docs[2])
		Expect(kubectl(ctx, "-n", ns, "replace", "-f", path)).To(Equal("deployment.apps/shop replaced\nconfigmap/shop-config replaced\n"))
		var cm corev1.ConfigMap
		getJSON(ctx, &cm, "-n", ns, "configmap", "shop-config")
		Expect(cm.Data).To(Equal(map[string]string{"color": "red"}))
		var d appsv1.Deployment
		getJSON(ctx, &d, "-n", ns, "deployment", "shop")
		Expect(d.Spec.Template.Spec.Containers).To(HaveLen(1))
		Expect(d.Spec.Template.Spec.Containers[0].Name).To(Equal("web"))
		Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("nginx:1.28"))
		Expect(d.Generation).To(Equal(int64(2)))

		// A Service is created by replace when missing, as upstream allows for Services; a
		// ConfigMap is not.
		svcPath := writeFile("svc.yaml", docs[1])
		Expect(kubectl(ctx, "-n", ns, "replace", "-f", svcPath)).To(Equal("service/shop replaced\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "service", "shop", "-o", "jsonpath={.spec.clusterIP}")).NotTo(BeEmpty())
		cmPath := writeFile("missing-cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: missing\n")
		r := kubectlFails(ctx, "-n", ns, "replace", "-f", cmPath)
		Expect(r.Code).To(Equal(1))
		Expect(r.Stderr).To(Equal(`Error from server (NotFound): error when replacing "` + cmPath + `": configmaps "missing" not found` + "\n"))
	})

	It("scales a deployment", func(ctx SpecContext) {
		mustCreateDeployment(ctx, ns, deployment("web", 1))
		Expect(kubectl(ctx, "-n", ns, "scale", "deployment", "web", "--replicas=3")).To(Equal("deployment.apps/web scaled\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}")).To(Equal("3"))
		_, rows := table(kubectl(ctx, "-n", ns, "get", "deployment", "web"))
		Expect(row(rows, "web")[1]).To(MatchRegexp(`^\d/3$`))

		// A precondition on the current size holds or fails.
		Expect(kubectl(ctx, "-n", ns, "scale", "deployment", "web", "--current-replicas=3", "--replicas=0")).To(Equal("deployment.apps/web scaled\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}")).To(Equal("0"))
		r := kubectlFails(ctx, "-n", ns, "scale", "deployment", "web", "--current-replicas=5", "--replicas=2")
		Expect(r.Code).To(Equal(1))
		Expect(r.Stderr).To(ContainSubstring("Expected replicas to be 5, was 0"))
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}")).To(Equal("0"))
	})
})
