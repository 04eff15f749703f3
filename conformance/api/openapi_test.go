package api

import (
	"encoding/json"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	corev1apply "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/openapi3"
)

var _ = Describe("OpenAPI", func() {
	It("serves a v3 document per group/version with hashed, immutable URLs", func(ctx SpecContext) {
		code, body, _ := rawWithHeaders(ctx, "GET", "/openapi/v3", "", nil)
		Expect(code).To(Equal(200))
		var root struct {
			Paths map[string]struct {
				ServerRelativeURL string `json:"serverRelativeURL"`
			} `json:"paths"`
		}
		Expect(json.Unmarshal(body, &root)).To(Succeed())
		Expect(root.Paths).To(HaveKey("api/v1"))
		Expect(root.Paths).To(HaveKey("apis/apps/v1"))
		url := root.Paths["apps/v1"].ServerRelativeURL
		if url == "" {
			url = root.Paths["apis/apps/v1"].ServerRelativeURL
		}
		Expect(url).To(HavePrefix("/openapi/v3/apis/apps/v1?hash="))
		code, _, headers := rawWithHeaders(ctx, "GET", url, "", nil)
		Expect(code).To(Equal(200))
		Expect(headers.Get("Cache-Control")).To(Equal("public, immutable"))
		Expect(headers.Get("Etag")).NotTo(BeEmpty())
		Expect(headers.Get("Content-Type")).To(Equal("application/json"))
	})

	It("describes kinds with their group/version/kind and operations with fieldValidation", func(ctx SpecContext) {
		root := openapi3.NewRoot(client.Discovery().OpenAPIV3())
		doc, err := root.GVSpec(appsV1())
		Expect(err).NotTo(HaveOccurred())
		deployment := doc.Components.Schemas["io.k8s.api.apps.v1.Deployment"]
		Expect(deployment).NotTo(BeNil())
		var gvks []map[string]string
		Expect(deployment.Extensions.GetObject("x-kubernetes-group-version-kind", &gvks)).To(Succeed())
		Expect(gvks).To(ContainElement(map[string]string{"group": "apps", "version": "v1", "kind": "Deployment"}))
		patch := doc.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"].Patch
		Expect(patch).NotTo(BeNil())
		Expect(patch.OperationId).To(Equal("patchAppsV1NamespacedDeployment"))
		var names []string
		for _, p := range patch.Parameters {
			names = append(names, p.Name)
		}
		Expect(names).To(ContainElements("fieldValidation", "fieldManager", "force", "dryRun"))
	})

	It("serves v2 as JSON and protobuf", func(ctx SpecContext) {
		code, body, headers := rawWithHeaders(ctx, "GET", "/openapi/v2", "", nil, "Accept", "application/json")
		Expect(code).To(Equal(200))
		Expect(headers.Get("Content-Type")).To(Equal("application/json"))
		Expect(strings.HasPrefix(string(body), `{"swagger":"2.0"`)).To(BeTrue())
		doc, err := client.Discovery().OpenAPISchema()
		Expect(err).NotTo(HaveOccurred())
		Expect(doc.GetDefinitions().GetAdditionalProperties()).NotTo(BeEmpty())
	})
})

var _ = Describe("Server-side apply", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("creates, merges by list-map keys, reports conflicts and takes fields when forced", func(ctx SpecContext) {
		cm := corev1apply.ConfigMap("ssa", ns).WithData(map[string]string{"a": "1"})
		got, err := client.CoreV1().ConfigMaps(ns).Apply(ctx, cm, metav1.ApplyOptions{FieldManager: "alice"})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data).To(Equal(map[string]string{"a": "1"}))
		Expect(got.ManagedFields).To(HaveLen(1))
		Expect(got.ManagedFields[0].Manager).To(Equal("alice"))
		Expect(got.ManagedFields[0].Operation).To(Equal(metav1.ManagedFieldsOperationApply))

		// Bob applies another key: both are kept, each owned by its manager.
		got, err = client.CoreV1().ConfigMaps(ns).Apply(ctx, corev1apply.ConfigMap("ssa", ns).WithData(map[string]string{"b": "2"}), metav1.ApplyOptions{FieldManager: "bob"})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data).To(Equal(map[string]string{"a": "1", "b": "2"}))

		// Bob claiming Alice's key conflicts, as upstream words it.
		_, err = client.CoreV1().ConfigMaps(ns).Apply(ctx, corev1apply.ConfigMap("ssa", ns).WithData(map[string]string{"a": "9", "b": "2"}), metav1.ApplyOptions{FieldManager: "bob"})
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`Apply failed with 1 conflict: conflict with "alice": .data.a`))
		got, err = client.CoreV1().ConfigMaps(ns).Apply(ctx, corev1apply.ConfigMap("ssa", ns).WithData(map[string]string{"a": "9", "b": "2"}), metav1.ApplyOptions{FieldManager: "bob", Force: true})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data["a"]).To(Equal("9"))

		// Containers merge by name: applying one container's image leaves the other's alone.
		pod := corev1apply.Pod("p", ns).WithSpec(corev1apply.PodSpec().WithContainers(
			corev1apply.Container().WithName("a").WithImage("busybox:1"),
			corev1apply.Container().WithName("b").WithImage("busybox:1")))
		_, err = client.CoreV1().Pods(ns).Apply(ctx, pod, metav1.ApplyOptions{FieldManager: "alice"})
		Expect(err).NotTo(HaveOccurred())
		sidecar := corev1apply.Pod("p", ns).WithSpec(corev1apply.PodSpec().WithContainers(corev1apply.Container().WithName("b").WithImage("busybox:2")))
		p, err := client.CoreV1().Pods(ns).Apply(ctx, sidecar, metav1.ApplyOptions{FieldManager: "carol", Force: true})
		Expect(err).NotTo(HaveOccurred())
		images := map[string]string{}
		for _, c := range p.Spec.Containers {
			images[c.Name] = c.Image
		}
		Expect(images).To(Equal(map[string]string{"a": "busybox:1", "b": "busybox:2"}))
		Expect(p.Spec.Containers[0].TerminationMessagePath).To(Equal(corev1.TerminationMessagePathDefault))
	})
})

func appsV1() schema.GroupVersion { return schema.GroupVersion{Group: "apps", Version: "v1"} }
