package helm

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// chart is a small application: a Deployment, its Service, a ConfigMap and a Secret, and a
// ConfigMap hook run before install and upgrade and replaced each time.
var chart = map[string]string{
	"Chart.yaml": `apiVersion: v2
name: demo
description: A chart for the keelson helm suite
type: application
version: 0.1.0
appVersion: "1.0.0"
`,
	"values.yaml": `message: hello
replicas: 1
port: 80
`,
	"templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
  labels:
    app.kubernetes.io/name: web
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      app.kubernetes.io/name: web
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: web
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      containers:
      - name: web
        image: busybox:1.36
        command: ["sh", "-c", "sleep 3600"]
        env:
        - name: MESSAGE
          value: {{ .Values.message | quote }}
        ports:
        - containerPort: 8080
`,
	"templates/service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-web
spec:
  selector:
    app.kubernetes.io/name: web
    app.kubernetes.io/instance: {{ .Release.Name }}
  ports:
  - name: http
    port: {{ .Values.port }}
    targetPort: 8080
`,
	"templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  message: {{ .Values.message | quote }}
`,
	"templates/secret.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-secret
type: Opaque
stringData:
  token: {{ printf "token-%s" .Values.message | quote }}
`,
	"templates/hook.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-hook
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
data:
  revision: {{ .Release.Revision | quote }}
  message: {{ .Values.message | quote }}
`,
}

// state is what the release's objects hold of the chart's values.
type state struct {
	Replicas      int32
	Message       string // the Deployment's MESSAGE
	Port          int32
	ConfigMessage string
	Token         string
}

// firstValues and secondValues are the objects' state for the chart's values and for the upgrade's.
var (
	firstValues  = state{Replicas: 1, Message: "hello", Port: 80, ConfigMessage: "hello", Token: "token-hello"}
	secondValues = state{Replicas: 2, Message: "bye", Port: 8080, ConfigMessage: "bye", Token: "token-bye"}
)

// listed is one release in `helm list -o json`.
type listed struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Revision  string `json:"revision"`
	Status    string `json:"status"`
	Chart     string `json:"chart"`
}

// revision is one entry of `helm history -o json`.
type revision struct {
	Revision    int    `json:"revision"`
	Status      string `json:"status"`
	Chart       string `json:"chart"`
	Description string `json:"description"`
}

var _ = Describe("helm", func() {
	const rel = "demo"
	var ns string

	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
	})

	// objects reads the release's objects.
	objects := func(ctx context.Context) (state, error) {
		var s state
		d, err := client.AppsV1().Deployments(ns).Get(ctx, rel+"-web", metav1.GetOptions{})
		if err != nil {
			return s, err
		}
		if d.Spec.Replicas != nil {
			s.Replicas = *d.Spec.Replicas
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if e.Name == "MESSAGE" {
					s.Message = e.Value
				}
			}
		}
		svc, err := client.CoreV1().Services(ns).Get(ctx, rel+"-web", metav1.GetOptions{})
		if err != nil {
			return s, err
		}
		if len(svc.Spec.Ports) != 1 {
			return s, fmt.Errorf("service ports: %+v", svc.Spec.Ports)
		}
		s.Port = svc.Spec.Ports[0].Port
		cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, rel+"-config", metav1.GetOptions{})
		if err != nil {
			return s, err
		}
		s.ConfigMessage = cm.Data["message"]
		sec, err := client.CoreV1().Secrets(ns).Get(ctx, rel+"-secret", metav1.GetOptions{})
		if err != nil {
			return s, err
		}
		s.Token = string(sec.Data["token"])
		return s, nil
	}

	// hook reads the hook ConfigMap.
	hook := func(ctx context.Context) *corev1.ConfigMap {
		GinkgoHelper()
		cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, rel+"-hook", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		return cm
	}

	// releases returns the status label of each stored revision of the release, by revision,
	// checking that each is a Secret of helm's type with helm's name and labels.
	releases := func(ctx context.Context) map[int]string {
		GinkgoHelper()
		list, err := client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + rel})
		Expect(err).NotTo(HaveOccurred())
		out := map[int]string{}
		for _, s := range list.Items {
			Expect(s.Type).To(Equal(corev1.SecretType("helm.sh/release.v1")), "release Secret %s", s.Name)
			v, err := strconv.Atoi(s.Labels["version"])
			Expect(err).NotTo(HaveOccurred(), "release Secret %s labels %v", s.Name, s.Labels)
			Expect(s.Name).To(Equal(fmt.Sprintf("sh.helm.release.v1.%s.v%d", rel, v)))
			Expect(s.Data).To(HaveKeyWithValue("release", Not(BeEmpty())), "release Secret %s", s.Name)
			out[v] = s.Labels["status"]
		}
		return out
	}

	list := func(ctx context.Context, args ...string) []listed {
		GinkgoHelper()
		var out []listed
		stdout := helm(ctx, append([]string{"list", "-o", "json"}, args...)...)
		Expect(json.Unmarshal([]byte(stdout), &out)).To(Succeed(), "helm list: %s", stdout)
		return out
	}

	history := func(ctx context.Context) []revision {
		GinkgoHelper()
		var out []revision
		stdout := helm(ctx, "history", rel, "-n", ns, "-o", "json")
		Expect(json.Unmarshal([]byte(stdout), &out)).To(Succeed(), "helm history: %s", stdout)
		return out
	}

	// managedBy returns the operation of helm's entry in the Deployment's managedFields.
	managedBy := func(ctx context.Context) []string {
		GinkgoHelper()
		d, err := client.AppsV1().Deployments(ns).Get(ctx, rel+"-web", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		var ops []string
		for _, mf := range d.ManagedFields {
			if mf.Manager == "helm" {
				ops = append(ops, string(mf.Operation))
			}
		}
		return ops
	}

	lifecycle := func(ctx context.Context, installFlags []string, operation string) {
		dir := writeChart(chart)

		By("installing the release")
		out := helm(ctx, append([]string{"install", rel, dir, "-n", ns}, installFlags...)...)
		Expect(out).To(ContainSubstring("STATUS: deployed"))
		Expect(out).To(ContainSubstring("REVISION: 1"))
		Expect(objects(ctx)).To(Equal(firstValues))
		d, err := client.AppsV1().Deployments(ns).Get(ctx, rel+"-web", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"))
		Expect(d.Annotations).To(HaveKeyWithValue("meta.helm.sh/release-name", rel))
		Expect(d.Annotations).To(HaveKeyWithValue("meta.helm.sh/release-namespace", ns))
		Expect(managedBy(ctx)).To(ConsistOf(operation), "helm's managedFields entries on the Deployment")
		firstHook := hook(ctx)
		Expect(firstHook.Data).To(Equal(map[string]string{"revision": "1", "message": "hello"}))
		Expect(list(ctx, "-n", ns)).To(ConsistOf(listed{Name: rel, Namespace: ns, Revision: "1", Status: "deployed", Chart: "demo-0.1.0"}))
		Expect(list(ctx, "-A")).To(ContainElement(listed{Name: rel, Namespace: ns, Revision: "1", Status: "deployed", Chart: "demo-0.1.0"}))
		Expect(releases(ctx)).To(Equal(map[int]string{1: "deployed"}))

		By("upgrading it with changed values")
		out = helm(ctx, "upgrade", rel, dir, "-n", ns, "--set", "message=bye,replicas=2,port=8080")
		Expect(out).To(ContainSubstring(fmt.Sprintf("Release %q has been upgraded.", rel)))
		Expect(out).To(ContainSubstring("REVISION: 2"))
		Expect(objects(ctx)).To(Equal(secondValues))
		Expect(managedBy(ctx)).To(ConsistOf(operation), "helm's managedFields entries on the Deployment")
		secondHook := hook(ctx)
		Expect(secondHook.Data).To(Equal(map[string]string{"revision": "2", "message": "bye"}))
		Expect(secondHook.UID).NotTo(Equal(firstHook.UID), "before-hook-creation replaces the hook")
		Expect(list(ctx, "-n", ns)).To(ConsistOf(listed{Name: rel, Namespace: ns, Revision: "2", Status: "deployed", Chart: "demo-0.1.0"}))
		Expect(releases(ctx)).To(Equal(map[int]string{1: "superseded", 2: "deployed"}))
		var values map[string]any
		Expect(json.Unmarshal([]byte(helm(ctx, "get", "values", rel, "-n", ns, "-o", "json")), &values)).To(Succeed())
		Expect(values).To(Equal(map[string]any{"message": "bye", "replicas": float64(2), "port": float64(8080)}))

		By("reading its history")
		Expect(history(ctx)).To(Equal([]revision{
			{Revision: 1, Status: "superseded", Chart: "demo-0.1.0", Description: "Install complete"},
			{Revision: 2, Status: "deployed", Chart: "demo-0.1.0", Description: "Upgrade complete"},
		}))

		By("rolling back to the first revision")
		out = helm(ctx, "rollback", rel, "1", "-n", ns)
		Expect(out).To(ContainSubstring("Rollback was a success!"))
		Expect(objects(ctx)).To(Equal(firstValues))
		Expect(hook(ctx).UID).To(Equal(secondHook.UID), "rollback runs no pre-install or pre-upgrade hook")
		Expect(list(ctx, "-n", ns)).To(ConsistOf(listed{Name: rel, Namespace: ns, Revision: "3", Status: "deployed", Chart: "demo-0.1.0"}))
		Expect(history(ctx)).To(Equal([]revision{
			{Revision: 1, Status: "superseded", Chart: "demo-0.1.0", Description: "Install complete"},
			{Revision: 2, Status: "superseded", Chart: "demo-0.1.0", Description: "Upgrade complete"},
			{Revision: 3, Status: "deployed", Chart: "demo-0.1.0", Description: "Rollback to 1"},
		}))
		Expect(releases(ctx)).To(Equal(map[int]string{1: "superseded", 2: "superseded", 3: "deployed"}))

		By("uninstalling it")
		out = helm(ctx, "uninstall", rel, "-n", ns)
		Expect(out).To(Equal(fmt.Sprintf("release %q uninstalled\n", rel)))
		gone := func(get func(context.Context) error) func(context.Context) bool {
			return func(ctx context.Context) bool { return apierrors.IsNotFound(get(ctx)) }
		}
		for name, get := range map[string]func(context.Context) error{
			"Deployment": func(ctx context.Context) error {
				_, err := client.AppsV1().Deployments(ns).Get(ctx, rel+"-web", metav1.GetOptions{})
				return err
			},
			"Service": func(ctx context.Context) error {
				_, err := client.CoreV1().Services(ns).Get(ctx, rel+"-web", metav1.GetOptions{})
				return err
			},
			"ConfigMap": func(ctx context.Context) error {
				_, err := client.CoreV1().ConfigMaps(ns).Get(ctx, rel+"-config", metav1.GetOptions{})
				return err
			},
			"Secret": func(ctx context.Context) error {
				_, err := client.CoreV1().Secrets(ns).Get(ctx, rel+"-secret", metav1.GetOptions{})
				return err
			},
		} {
			Eventually(ctx, gone(get)).Should(BeTrue(), "the release's %s is still there", name)
		}
		// helm does not track hook resources as part of the release: uninstall leaves the hook.
		Expect(hook(ctx).UID).To(Equal(secondHook.UID))
		Expect(releases(ctx)).To(BeEmpty())
		Expect(list(ctx, "-n", ns)).To(BeEmpty())
		Expect(helm(ctx, "list", "-n", ns)).To(Equal("NAME\tNAMESPACE\tREVISION\tUPDATED\tSTATUS\tCHART\tAPP VERSION\n"))
	}

	It("installs, upgrades, rolls back and uninstalls a release with server-side apply (helm 4's default)", func(ctx SpecContext) {
		lifecycle(ctx, nil, string(metav1.ManagedFieldsOperationApply))
	})

	It("installs, upgrades, rolls back and uninstalls a release with client-side apply", func(ctx SpecContext) {
		lifecycle(ctx, []string{"--server-side=false"}, string(metav1.ManagedFieldsOperationUpdate))
	})

	It("installs a new release with upgrade --install, and upgrades it the second time", func(ctx SpecContext) {
		dir := writeChart(chart)
		out := helm(ctx, "upgrade", "--install", rel, dir, "-n", ns)
		Expect(out).To(ContainSubstring(fmt.Sprintf("Release %q does not exist. Installing it now.", rel)))
		Expect(objects(ctx)).To(Equal(firstValues))
		Expect(releases(ctx)).To(Equal(map[int]string{1: "deployed"}))
		helm(ctx, "upgrade", "--install", rel, dir, "-n", ns, "--set", "message=bye,replicas=2,port=8080")
		Expect(objects(ctx)).To(Equal(secondValues))
		Expect(releases(ctx)).To(Equal(map[int]string{1: "superseded", 2: "deployed"}))
	})

	It("looks objects up in the cluster while rendering, and creates nothing on --dry-run=server", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "existing"},
			Data:       map[string]string{"greeting": "hi"},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		files := map[string]string{"templates/lookup.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-looked
data:
  greeting: {{ (lookup "v1" "ConfigMap" .Release.Namespace "existing").data.greeting | quote }}
  listed: {{ range (lookup "v1" "ConfigMap" .Release.Namespace "").items }}{{ if eq .metadata.name "existing" }}"yes"{{ end }}{{ end }}
  missing: {{ empty (lookup "v1" "ConfigMap" .Release.Namespace "absent") | quote }}
`}
		for name, content := range chart {
			files[name] = content
		}
		dir := writeChart(files)

		out := helm(ctx, "install", rel, dir, "-n", ns, "--dry-run=server")
		Expect(out).To(ContainSubstring("STATUS: pending-install"))
		Expect(out).To(ContainSubstring("greeting: \"hi\"\n  listed: \"yes\"\n  missing: \"true\"\n"))
		_, err = objects(ctx)
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "--dry-run=server created the release's objects: %v", err)
		_, err = client.CoreV1().ConfigMaps(ns).Get(ctx, rel+"-hook", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "--dry-run=server ran the hook: %v", err)
		Expect(releases(ctx)).To(BeEmpty())

		helm(ctx, "install", rel, dir, "-n", ns)
		looked, err := client.CoreV1().ConfigMaps(ns).Get(ctx, rel+"-looked", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(looked.Data).To(Equal(map[string]string{"greeting": "hi", "listed": "yes", "missing": "true"}))
	})

	It("refuses to install a release under a name already in use", func(ctx SpecContext) {
		dir := writeChart(chart)
		helm(ctx, "install", rel, dir, "-n", ns)
		r := run(ctx, "install", rel, dir, "-n", ns)
		Expect(r.Code).NotTo(Equal(0), "%s", r)
		Expect(r.Stderr).To(HaveSuffix("Error: INSTALLATION FAILED: release name check failed: cannot reuse a name that is still in use\n"), "%s", r)
		Expect(releases(ctx)).To(Equal(map[int]string{1: "deployed"}))
	})

	It("refuses an install whose object exists outside the release", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: rel + "-config"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		dir := writeChart(chart)
		r := run(ctx, "install", rel, dir, "-n", ns)
		Expect(r.Code).NotTo(Equal(0), "%s", r)
		Expect(r.Stderr).To(ContainSubstring(fmt.Sprintf(`ConfigMap "%s-config" in namespace "%s" exists and cannot be imported into the current release`, rel, ns)), "%s", r)
		Expect(releases(ctx)).To(BeEmpty(), "helm checks ownership before it records a release")
	})
})
