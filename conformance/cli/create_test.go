package cli

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
)

// shopManifest is a small application: a Deployment, its Service and a ConfigMap.
const shopManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  labels:
    app: shop
spec:
  replicas: 2
  selector:
    matchLabels:
      app: shop
  template:
    metadata:
      labels:
        app: shop
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: shop
  labels:
    app: shop
spec:
  selector:
    app: shop
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-config
  labels:
    app: shop
data:
  color: blue
`

// getJSON reads one object through kubectl -o json into v, a pointer whose target it first zeroes
// (json.Unmarshal would merge into maps left from an earlier read).
func getJSON(ctx SpecContext, v any, args ...string) {
	GinkgoHelper()
	reflect.ValueOf(v).Elem().SetZero()
	out := kubectl(ctx, append(append([]string{"get"}, args...), "-o", "json")...)
	Expect(json.Unmarshal([]byte(out), v)).To(Succeed(), out)
}

var _ = Describe("Creating objects", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	// Fails on keelson while it serves no OpenAPI: kubectl validates manifests against
	// /openapi/v3 by default (--validate=strict) and refuses with "failed to download openapi".
	It("creates a Deployment, a Service and a ConfigMap from a manifest", func(ctx SpecContext) {
		path := writeFile("shop.yaml", shopManifest)
		out := kubectl(ctx, "-n", ns, "create", "-f", path)
		Expect(out).To(Equal("deployment.apps/shop created\nservice/shop created\nconfigmap/shop-config created\n"))

		var d appsv1.Deployment
		getJSON(ctx, &d, "-n", ns, "deployment", "shop")
		Expect(*d.Spec.Replicas).To(Equal(int32(2)))
		Expect(d.Spec.Template.Spec.Containers).To(HaveLen(1))
		Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("nginx:1.27"))
		var svc corev1.Service
		getJSON(ctx, &svc, "-n", ns, "service", "shop")
		Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeClusterIP))
		Expect(svc.Spec.ClusterIP).To(MatchRegexp(`^\d+\.\d+\.\d+\.\d+$`))
		Expect(svc.Spec.Ports).To(HaveLen(1))
		Expect(svc.Spec.Ports[0].Protocol).To(Equal(corev1.ProtocolTCP))

		// The same manifest again: every object already exists.
		r := kubectlFails(ctx, "-n", ns, "create", "-f", path)
		Expect(r.Code).To(Equal(1))
		Expect(r.Stdout).To(BeEmpty())
		Expect(r.Stderr).To(Equal(
			`Error from server (AlreadyExists): error when creating "` + path + `": deployments.apps "shop" already exists` + "\n" +
				`Error from server (AlreadyExists): error when creating "` + path + `": services "shop" already exists` + "\n" +
				`Error from server (AlreadyExists): error when creating "` + path + `": configmaps "shop-config" already exists` + "\n"))
	})

	// Fails on keelson while it serves no OpenAPI (see above).
	It("creates from stdin", func(ctx SpecContext) {
		out := kubectlWith(ctx, invocation{stdin: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: piped\ndata:\n  k: v\n"}, "-n", ns, "create", "-f", "-")
		Expect(out).To(Equal("configmap/piped created\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmap", "piped", "-o", "jsonpath={.data.k}")).To(Equal("v"))
	})

	It("creates a deployment with create deployment", func(ctx SpecContext) {
		Expect(kubectl(ctx, "-n", ns, "create", "deployment", "web", "--image=nginx:1.27", "--replicas=2", "--port=80")).To(Equal("deployment.apps/web created\n"))
		var d appsv1.Deployment
		getJSON(ctx, &d, "-n", ns, "deployment", "web")
		Expect(d.Labels).To(Equal(map[string]string{"app": "web"}))
		Expect(d.Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "web"}))
		Expect(*d.Spec.Replicas).To(Equal(int32(2)))
		Expect(d.Spec.Template.Spec.Containers).To(HaveLen(1))
		c := d.Spec.Template.Spec.Containers[0]
		Expect(c.Name).To(Equal("nginx"))
		Expect(c.Image).To(Equal("nginx:1.27"))
		Expect(c.Ports).To(HaveLen(1))
		Expect(c.Ports[0].ContainerPort).To(Equal(int32(80)))
		// Defaults the server fills in.
		Expect(d.Spec.Strategy.Type).To(Equal(appsv1.RollingUpdateDeploymentStrategyType))
		Expect(d.Spec.RevisionHistoryLimit).NotTo(BeNil())
		Expect(*d.Spec.RevisionHistoryLimit).To(Equal(int32(10)))
		Expect(c.TerminationMessagePolicy).To(Equal(corev1.TerminationMessageReadFile))
		Expect(c.ImagePullPolicy).To(Equal(corev1.PullIfNotPresent))
		Expect(d.Spec.Template.Spec.RestartPolicy).To(Equal(corev1.RestartPolicyAlways))
		Expect(d.Generation).To(Equal(int64(1)))

		Expect(kubectl(ctx, "-n", ns, "create", "deployment", "dry", "--image=nginx", "--dry-run=server", "-o", "name")).To(Equal("deployment.apps/dry\n"))
		r := kubectlFails(ctx, "-n", ns, "get", "deployment", "dry")
		Expect(r.Stderr).To(Equal(`Error from server (NotFound): deployments.apps "dry" not found` + "\n"))
	})

	It("creates a configmap from literals", func(ctx SpecContext) {
		Expect(kubectl(ctx, "-n", ns, "create", "configmap", "settings", "--from-literal=color=blue", "--from-literal=size=10")).To(Equal("configmap/settings created\n"))
		var cm corev1.ConfigMap
		getJSON(ctx, &cm, "-n", ns, "configmap", "settings")
		Expect(cm.Data).To(Equal(map[string]string{"color": "blue", "size": "10"}))

		r := kubectlFails(ctx, "-n", ns, "create", "configmap", "settings", "--from-literal=color=red")
		Expect(r.Code).To(Equal(1))
		Expect(r.Stderr).To(Equal(`error: failed to create configmap: configmaps "settings" already exists` + "\n"))
	})

	It("creates a generic secret", func(ctx SpecContext) {
		Expect(kubectl(ctx, "-n", ns, "create", "secret", "generic", "creds", "--from-literal=user=admin", "--from-literal=password=s3cr3t")).To(Equal("secret/creds created\n"))
		var s corev1.Secret
		getJSON(ctx, &s, "-n", ns, "secret", "creds")
		Expect(s.Type).To(Equal(corev1.SecretTypeOpaque))
		Expect(s.Data).To(Equal(map[string][]byte{"user": []byte("admin"), "password": []byte("s3cr3t")}))
		Expect(kubectl(ctx, "-n", ns, "get", "secret", "creds", "-o", "jsonpath={.data.password}")).To(Equal("czNjcjN0"))
		header, rows := table(kubectl(ctx, "-n", ns, "get", "secrets", "creds"))
		Expect(header).To(Equal([]string{"NAME", "TYPE", "DATA", "AGE"}))
		Expect(row(rows, "creds")[:3]).To(Equal([]string{"creds", "Opaque", "2"}))
	})

	It("creates a namespace", func(ctx SpecContext) {
		name := "keelson-cli-ns-" + utilrand.String(6)
		Expect(kubectl(ctx, "create", "namespace", name)).To(Equal(fmt.Sprintf("namespace/%s created\n", name)))
		DeferCleanup(func(ctx SpecContext) {
			_ = run(ctx, invocation{}, "delete", "namespace", name, "--wait=false")
		})
		header, rows := table(kubectl(ctx, "get", "namespace", name))
		Expect(header).To(Equal([]string{"NAME", "STATUS", "AGE"}))
		Expect(row(rows, name)[:2]).To(Equal([]string{name, "Active"}))
		Expect(kubectl(ctx, "get", "namespace", name, "-o", "jsonpath={.metadata.labels}")).To(Equal(fmt.Sprintf(`{"kubernetes.io/metadata.name":"%s"}`, name)))
	})
})

var _ = Describe("Client-side apply", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

	// Fails on keelson while it serves no OpenAPI: apply validates with --validate=strict.
	It("creates, then updates with a three-way merge, then reports unchanged", func(ctx SpecContext) {
		v1 := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  labels:\n    app: applied\ndata:\n  color: blue\n  size: \"10\"\n"
		path := writeFile("cm.yaml", v1)
		Expect(kubectl(ctx, "-n", ns, "apply", "-f", path)).To(Equal("configmap/applied created\n"))
		var cm corev1.ConfigMap
		getJSON(ctx, &cm, "-n", ns, "configmap", "applied")
		Expect(cm.Data).To(Equal(map[string]string{"color": "blue", "size": "10"}))
		Expect(cm.Annotations).To(HaveKey(lastApplied))
		Expect(cm.Annotations[lastApplied]).To(Equal(
			`{"apiVersion":"v1","data":{"color":"blue","size":"10"},"kind":"ConfigMap","metadata":{"annotations":{},"labels":{"app":"applied"},"name":"applied","namespace":"` + ns + `"}}` + "\n"))

		// A change made by someone else survives an apply that does not mention it.
		Expect(kubectl(ctx, "-n", ns, "label", "configmap", "applied", "owner=ops")).To(Equal("configmap/applied labeled\n"))

		// Change one key and drop another: apply updates the one and removes the other.
		v2 := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  labels:\n    app: applied\ndata:\n  color: red\n"
		Expect(writeFileAt(path, v2)).To(Succeed())
		Expect(kubectl(ctx, "-n", ns, "apply", "-f", path)).To(Equal("configmap/applied configured\n"))
		getJSON(ctx, &cm, "-n", ns, "configmap", "applied")
		Expect(cm.Data).To(Equal(map[string]string{"color": "red"}))
		Expect(cm.Labels).To(Equal(map[string]string{"app": "applied", "owner": "ops"}))
		Expect(cm.Annotations[lastApplied]).To(Equal(
			`{"apiVersion":"v1","data":{"color":"red"},"kind":"ConfigMap","metadata":{"annotations":{},"labels":{"app":"applied"},"name":"applied","namespace":"` + ns + `"}}` + "\n"))

		rv := cm.ResourceVersion
		Expect(kubectl(ctx, "-n", ns, "apply", "-f", path)).To(Equal("configmap/applied unchanged\n"))
		getJSON(ctx, &cm, "-n", ns, "configmap", "applied")
		Expect(cm.ResourceVersion).To(Equal(rv))

		Expect(kubectl(ctx, "-n", ns, "apply", "view-last-applied", "configmap", "applied", "-o", "json")).To(ContainSubstring(`"color": "red"`))
	})

	// Fails on keelson while it serves no OpenAPI: apply validates with --validate=strict.
	It("applies a deployment change with a strategic merge", func(ctx SpecContext) {
		path := writeFile("shop.yaml", shopManifest)
		Expect(kubectl(ctx, "-n", ns, "apply", "-f", path)).To(Equal("deployment.apps/shop created\nservice/shop created\nconfigmap/shop-config created\n"))
		changed := strings.Replace(strings.Replace(shopManifest, "image: nginx:1.27", "image: nginx:1.28", 1), "replicas: 2", "replicas: 4", 1)
		Expect(writeFileAt(path, changed)).To(Succeed())
		Expect(kubectl(ctx, "-n", ns, "apply", "-f", path)).To(Equal("deployment.apps/shop configured\nservice/shop unchanged\nconfigmap/shop-config unchanged\n"))
		var d appsv1.Deployment
		getJSON(ctx, &d, "-n", ns, "deployment", "shop")
		Expect(*d.Spec.Replicas).To(Equal(int32(4)))
		Expect(d.Spec.Template.Spec.Containers).To(HaveLen(1))
		Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("nginx:1.28"))
		Expect(d.Spec.Template.Spec.Containers[0].Ports).To(HaveLen(1))
		Expect(d.Generation).To(Equal(int64(2)))
		Expect(d.Annotations[lastApplied]).To(ContainSubstring(`"image":"nginx:1.28"`))
		Expect(d.ObjectMeta.ManagedFields).To(BeEmpty()) // kubectl hides them unless --show-managed-fields
		var withFields metav1.PartialObjectMetadata
		getJSON(ctx, &withFields, "-n", ns, "deployment", "shop", "--show-managed-fields")
		// A controller manager may have written status too; the apply is recorded either way.
		var managers []string
		for _, f := range withFields.ManagedFields {
			managers = append(managers, f.Manager)
		}
		Expect(managers).To(ContainElement("kubectl-client-side-apply"))
	})
})
