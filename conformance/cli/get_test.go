package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
)

// Objects for the read-only specs are made with client-go, so that a spec about get fails only
// for what get does.

func configMap(name string, labels map[string]string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Data: data}
}

func deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.27"}}},
			},
		},
	}
}

func service(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
}

func mustCreateConfigMap(ctx context.Context, ns string, cm *corev1.ConfigMap) {
	GinkgoHelper()
	_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
}

func mustCreateDeployment(ctx context.Context, ns string, d *appsv1.Deployment) {
	GinkgoHelper()
	_, err := client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
}

var _ = Describe("Reading objects", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	// Table columns come from the server's table printers.
	It("prints the deployment table, and more columns with -o wide", func(ctx SpecContext) {
		mustCreateDeployment(ctx, ns, deployment("web", 2))
		out := kubectl(ctx, "-n", ns, "get", "deployments")
		ls := lines(out)
		Expect(ls).To(HaveLen(2), out)
		Expect(ls[0]).To(Equal("NAME   READY   UP-TO-DATE   AVAILABLE   AGE"))
		r := strings.Fields(ls[1])
		Expect(r).To(HaveLen(5), out)
		Expect(r[0]).To(Equal("web"))
		Expect(r[1]).To(MatchRegexp(`^\d/2$`))
		Expect(r[2]).To(MatchRegexp(`^\d$`))
		Expect(r[3]).To(MatchRegexp(`^\d$`))
		Expect(r[4]).To(MatchRegexp(`^\d+s$`))

		out = kubectl(ctx, "-n", ns, "get", "deployments", "-o", "wide")
		header, rows := table(out)
		Expect(header).To(Equal([]string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"}))
		Expect(row(rows, "web")[5:]).To(Equal([]string{"nginx", "nginx:1.27", "app=web"}))

		// A single object prints the same table.
		header, rows = table(kubectl(ctx, "-n", ns, "get", "deployment", "web"))
		Expect(header).To(Equal([]string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"}))
		Expect(rows).To(HaveLen(1))
	})

	It("prints the configmap, service and namespace tables", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("settings", map[string]string{"app": "x"}, map[string]string{"a": "1", "b": "2"}))
		header, rows := table(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=x"))
		Expect(header).To(Equal([]string{"NAME", "DATA", "AGE"}))
		Expect(row(rows, "settings")[:2]).To(Equal([]string{"settings", "2"}))

		_, err := client.CoreV1().Services(ns).Create(ctx, service("shop"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		header, rows = table(kubectl(ctx, "-n", ns, "get", "services"))
		Expect(header).To(Equal([]string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"}))
		r := row(rows, "shop")
		Expect(r[1]).To(Equal("ClusterIP"))
		Expect(r[2]).To(MatchRegexp(`^\d+\.\d+\.\d+\.\d+$`))
		Expect(r[3:5]).To(Equal([]string{"<none>", "80/TCP"}))
		header, rows = table(kubectl(ctx, "-n", ns, "get", "services", "-o", "wide"))
		Expect(header).To(Equal([]string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"}))
		Expect(row(rows, "shop")[6]).To(Equal("app=shop"))

		header, rows = table(kubectl(ctx, "get", "namespaces"))
		Expect(header).To(Equal([]string{"NAME", "STATUS", "AGE"}))
		Expect(row(rows, ns)[1]).To(Equal("Active"))
		Expect(row(rows, "default")[1]).To(Equal("Active"))
		Expect(row(rows, "kube-system")[1]).To(Equal("Active"))
	})

	It("prints one object as YAML and JSON", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("settings", map[string]string{"app": "x"}, map[string]string{"color": "blue"}))
		out := kubectl(ctx, "-n", ns, "get", "configmap", "settings", "-o", "yaml")
		// kubectl prints fields in key order and hides managedFields.
		Expect(out).To(HavePrefix("apiVersion: v1\ndata:\n  color: blue\nkind: ConfigMap\nmetadata:\n  creationTimestamp: \""))
		Expect(out).NotTo(ContainSubstring("managedFields"))
		Expect(out).To(MatchRegexp(`(?m)^  labels:\n    app: x\n  name: settings\n  namespace: ` + ns + `\n  resourceVersion: "\d+"\n  uid: [0-9a-f-]{36}\n$`))
		var fromYAML corev1.ConfigMap
		Expect(utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096).Decode(&fromYAML)).To(Succeed())
		Expect(fromYAML.Data).To(Equal(map[string]string{"color": "blue"}))

		out = kubectl(ctx, "-n", ns, "get", "configmap", "settings", "-o", "json")
		Expect(out).To(HavePrefix("{\n    \"apiVersion\": \"v1\",\n    \"data\": {\n        \"color\": \"blue\"\n    },\n    \"kind\": \"ConfigMap\",\n"))
		var fromJSON corev1.ConfigMap
		Expect(json.Unmarshal([]byte(out), &fromJSON)).To(Succeed())
		Expect(fromJSON.Name).To(Equal("settings"))
		Expect(fromJSON.Namespace).To(Equal(ns))
		Expect(fromJSON.UID).To(Equal(fromYAML.UID))
		Expect(fromJSON.ResourceVersion).To(Equal(fromYAML.ResourceVersion))
	})

	It("prints a list as a v1 List", func(ctx SpecContext) {
		for _, name := range []string{"a", "b"} {
			mustCreateConfigMap(ctx, ns, configMap(name, map[string]string{"app": "x"}, nil))
		}
		out := kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=x", "-o", "json")
		var list struct {
			APIVersion string             `json:"apiVersion"`
			Kind       string             `json:"kind"`
			Metadata   map[string]any     `json:"metadata"`
			Items      []corev1.ConfigMap `json:"items"`
		}
		Expect(json.Unmarshal([]byte(out), &list)).To(Succeed())
		Expect(list.APIVersion).To(Equal("v1"))
		Expect(list.Kind).To(Equal("List"))
		Expect(list.Metadata).To(Equal(map[string]any{"resourceVersion": ""}))
		Expect(list.Items).To(HaveLen(2))
		for _, item := range list.Items {
			Expect(item.Kind).To(Equal("ConfigMap"))
			Expect(item.APIVersion).To(Equal("v1"))
		}
		out = kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=x", "-o", "yaml")
		Expect(out).To(HavePrefix("apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"))
		Expect(out).To(HaveSuffix("kind: List\nmetadata:\n  resourceVersion: \"\"\n"))
	})

	It("prints names with -o name and fields with -o jsonpath", func(ctx SpecContext) {
		for _, name := range []string{"alpha", "beta", "gamma"} {
			mustCreateConfigMap(ctx, ns, configMap(name, map[string]string{"app": "x"}, map[string]string{"n": name}))
		}
		mustCreateDeployment(ctx, ns, deployment("web", 1))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=x", "-o", "name")).To(Equal("configmap/alpha\nconfigmap/beta\nconfigmap/gamma\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "deployments", "-o", "name")).To(Equal("deployment.apps/web\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=x", "-o", "jsonpath={.items[*].metadata.name}")).To(Equal("alpha beta gamma"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=x", "-o", `jsonpath={range .items[*]}{.metadata.name}={.data.n}{"\n"}{end}`)).To(Equal("alpha=alpha\nbeta=beta\ngamma=gamma\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")).To(Equal("nginx:1.27"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=x", "-o", "custom-columns=NAME:.metadata.name,N:.data.n")).To(Equal(
			"NAME    N\nalpha   alpha\nbeta    beta\ngamma   gamma\n"))
	})

	It("selects by label and by field", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("front", map[string]string{"app": "x", "tier": "front"}, nil))
		mustCreateConfigMap(ctx, ns, configMap("back", map[string]string{"app": "x", "tier": "back"}, nil))
		mustCreateConfigMap(ctx, ns, configMap("other", map[string]string{"app": "y"}, nil))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=x", "-o", "name")).To(Equal("configmap/back\nconfigmap/front\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=x,tier!=back", "-o", "name")).To(Equal("configmap/front\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "tier in (front,back)", "-o", "name")).To(Equal("configmap/back\nconfigmap/front\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "tier", "-o", "name")).To(Equal("configmap/back\nconfigmap/front\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "--field-selector", "metadata.name=other", "-o", "name")).To(Equal("configmap/other\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "--field-selector", "metadata.name!=other", "-l", "app", "-o", "name")).To(Equal("configmap/back\nconfigmap/front\n"))
		header, rows := table(kubectl(ctx, "-n", ns, "get", "configmaps", "--field-selector", "metadata.name=front"))
		Expect(header).To(Equal([]string{"NAME", "DATA", "AGE"}))
		Expect(rows).To(HaveLen(1))
		Expect(rows[0][0]).To(Equal("front"))
		// --show-labels adds the LABELS column.
		header, rows = table(kubectl(ctx, "-n", ns, "get", "configmaps", "front", "--show-labels"))
		Expect(header).To(Equal([]string{"NAME", "DATA", "AGE", "LABELS"}))
		Expect(rows[0][3]).To(Equal("app=x,tier=front"))

		// Nothing matches: kubectl says so on stderr and succeeds.
		r := run(ctx, invocation{}, "-n", ns, "get", "configmaps", "-l", "app=nothing")
		Expect(r.Code).To(Equal(0), "%s", r)
		Expect(r.Stdout).To(BeEmpty())
		Expect(r.Stderr).To(Equal(fmt.Sprintf("No resources found in %s namespace.\n", ns)))

		// An unsupported field is refused by the server.
		r = kubectlFails(ctx, "-n", ns, "get", "configmaps", "--field-selector", "data.color=blue")
		Expect(r.Code).To(Equal(1))
		Expect(r.Stderr).To(Equal(`Error from server (BadRequest): Unable to find "/v1, Resource=configmaps" that match label selector "", field selector "data.color=blue": "data.color" is not a known field selector: only "metadata.name", "metadata.namespace"` + "\n"))
	})

	It("pages through a list with --chunk-size and prints every object once", func(ctx SpecContext) {
		var want []string
		for i := range 7 {
			name := fmt.Sprintf("page-%d", i)
			want = append(want, name)
			mustCreateConfigMap(ctx, ns, configMap(name, map[string]string{"app": "pages"}, nil))
		}
		header, rows := table(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=pages", "--chunk-size=2"))
		Expect(header).To(Equal([]string{"NAME", "DATA", "AGE"}))
		var got []string
		for _, r := range rows {
			got = append(got, r[0])
		}
		Expect(got).To(Equal(want))
		Expect(kubectl(ctx, "-n", ns, "get", "configmaps", "-l", "app=pages", "--chunk-size=2", "-o", "name")).To(Equal(
			"configmap/page-0\nconfigmap/page-1\nconfigmap/page-2\nconfigmap/page-3\nconfigmap/page-4\nconfigmap/page-5\nconfigmap/page-6\n"))

		// It really paged: four requests of two, each after the first carrying a continue token.
		r := run(ctx, invocation{}, "-n", ns, "get", "configmaps", "-l", "app=pages", "--chunk-size=2", "-o", "name", "-v=6")
		Expect(r.Code).To(Equal(0), "%s", r)
		re := regexp.MustCompile(`"Response" verb="GET" url="[^"]*/namespaces/` + ns + `/configmaps\?([^"]*)" status="200 OK"`)
		requests := re.FindAllStringSubmatch(r.Stderr, -1)
		Expect(requests).To(HaveLen(4), r.Stderr)
		Expect(requests[0][1]).NotTo(ContainSubstring("continue="))
		for _, req := range requests[1:] {
			Expect(req[1]).To(ContainSubstring("continue="))
			Expect(req[1]).To(ContainSubstring("limit=2"))
		}
	})

	It("get all lists the workload and service kinds", func(ctx SpecContext) {
		mustCreateDeployment(ctx, ns, deployment("shop", 1))
		_, err := client.CoreV1().Services(ns).Create(ctx, service("shop"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		mustCreateConfigMap(ctx, ns, configMap("not-in-all", nil, nil))
		out := kubectl(ctx, "-n", ns, "get", "all")
		Expect(out).To(MatchRegexp(`(?m)^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE$`))
		Expect(out).To(MatchRegexp(`(?m)^service/shop\s+ClusterIP\s+[\d.]+\s+<none>\s+80/TCP\s+\d+s$`))
		Expect(out).To(MatchRegexp(`(?m)^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE$`))
		Expect(out).To(MatchRegexp(`(?m)^deployment\.apps/shop\s+\d/1\s+\d\s+\d\s+\d+s$`))
		Expect(out).NotTo(ContainSubstring("configmap"))

		Expect(lines(kubectl(ctx, "-n", ns, "get", "all", "-o", "name"))).To(ContainElements("service/shop", "deployment.apps/shop"))
	})

	It("get -w prints objects as they are created", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("before", nil, nil))
		watchCtx, cancel := context.WithTimeout(ctx, commandTimeout)
		defer cancel()
		cmd := kubectlRun.Command(watchCtx, nil, "", "-n", ns, "get", "configmaps", "-w", "--output-watch-events", "-o", "name")
		stdout, stderr := &cluster.SyncBuffer{}, &cluster.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		Expect(cmd.Start()).To(Succeed())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		defer func() {
			_ = cmd.Process.Kill()
			<-done
		}()

		// The existing object comes first, from the list.
		Eventually(stdout.String).Should(ContainSubstring("configmap/before\n"))
		mustCreateConfigMap(ctx, ns, configMap("during", nil, nil))
		Eventually(stdout.String).Should(ContainSubstring("configmap/during\n"))
		Consistently(done, 200*time.Millisecond).ShouldNot(Receive(), "kubectl get -w ended:\n%s", stderr.String())
		Expect(stderr.String()).To(BeEmpty())
		Expect(lines(stdout.String())).To(ContainElements("configmap/before", "configmap/during"))
	})

	It("get -w --output-watch-events prints the event types as a table", func(ctx SpecContext) {
		mustCreateConfigMap(ctx, ns, configMap("first", map[string]string{"app": "w"}, nil))
		watchCtx, cancel := context.WithTimeout(ctx, commandTimeout)
		defer cancel()
		cmd := kubectlRun.Command(watchCtx, nil, "", "-n", ns, "get", "configmaps", "-l", "app=w", "-w", "--output-watch-events")
		stdout, stderr := &cluster.SyncBuffer{}, &cluster.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		Expect(cmd.Start()).To(Succeed())
		defer func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}()
		Eventually(stdout.String).Should(MatchRegexp(`(?m)^EVENT\s+NAME\s+DATA\s+AGE\nADDED\s+first\s+0\s+\d+s$`))
		Expect(kubectl(ctx, "-n", ns, "label", "configmap", "first", "extra=yes")).To(Equal("configmap/first labeled\n"))
		Eventually(stdout.String).Should(MatchRegexp(`(?m)^MODIFIED\s+first\s+0\s+\d+s$`))
		Expect(client.CoreV1().ConfigMaps(ns).Delete(ctx, "first", metav1.DeleteOptions{})).To(Succeed())
		Eventually(stdout.String).Should(MatchRegexp(`(?m)^DELETED\s+first\s+0\s+\d+s$`))
		Expect(stderr.String()).To(BeEmpty())
	})

	It("get of a missing object fails with NotFound", func(ctx SpecContext) {
		r := kubectlFails(ctx, "-n", ns, "get", "configmaps", "nope")
		Expect(r.Code).To(Equal(1))
		Expect(r.Stdout).To(BeEmpty())
		Expect(r.Stderr).To(Equal(`Error from server (NotFound): configmaps "nope" not found` + "\n"))

		r = kubectlFails(ctx, "-n", ns, "get", "deployment", "nope", "-o", "json")
		Expect(r.Code).To(Equal(1))
		Expect(r.Stderr).To(Equal(`Error from server (NotFound): deployments.apps "nope" not found` + "\n"))

		r = run(ctx, invocation{}, "-n", ns, "get", "configmaps", "nope", "--ignore-not-found")
		Expect(r.Code).To(Equal(0), "%s", r)
		Expect(r.Stdout + r.Stderr).To(BeEmpty())

		r = kubectlFails(ctx, "get", "nosuchkind")
		Expect(r.Code).To(Equal(1))
		Expect(r.Stderr).To(Equal(`error: the server doesn't have a resource type "nosuchkind"` + "\n"))
	})
})
