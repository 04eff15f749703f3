package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// raw sends a request with the admin credentials and returns status and body.
func raw(ctx context.Context, method, path, contentType string, body []byte, headers ...string) (int, []byte) {
	code, b, _ := rawWithHeaders(ctx, method, path, contentType, body, headers...)
	return code, b
}

// rawWithHeaders is raw that also returns the response headers.
func rawWithHeaders(ctx context.Context, method, path, contentType string, body []byte, headers ...string) (int, []byte, http.Header) {
	httpClient, err := rest.HTTPClientFor(testCluster.Config)
	Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(testCluster.Config.Host, "/")+path, bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := httpClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, b, resp.Header
}

func statusOf(body []byte) metav1.Status {
	var s metav1.Status
	Expect(json.Unmarshal(body, &s)).To(Succeed(), string(body))
	Expect(s.Kind).To(Equal("Status"))
	return s
}

var _ = Describe("Subresources", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	// An Ingress: no in-tree controller writes its status, so nothing races the spec.
	It("keeps status out of main-resource writes and spec out of status writes", func(ctx SpecContext) {
		backend := func(svc string) *networkingv1.IngressBackend {
			return &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}
		}
		lb := func(ip string) networkingv1.IngressLoadBalancerStatus {
			return networkingv1.IngressLoadBalancerStatus{Ingress: []networkingv1.IngressLoadBalancerIngress{{IP: ip}}}
		}
		ing, err := client.NetworkingV1().Ingresses(ns).Create(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "st"},
			Spec: networkingv1.IngressSpec{DefaultBackend: backend("a")}, Status: networkingv1.IngressStatus{LoadBalancer: lb("192.0.2.10")}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(ing.Status.LoadBalancer.Ingress).To(BeEmpty(), "status set on create is dropped")
		ing.Status.LoadBalancer = lb("192.0.2.11")
		ing.Spec.DefaultBackend = backend("b")
		ing, err = client.NetworkingV1().Ingresses(ns).Update(ctx, ing, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(ing.Status.LoadBalancer.Ingress).To(BeEmpty())
		Expect(ing.Spec.DefaultBackend.Service.Name).To(Equal("b"))
		Expect(ing.Generation).To(Equal(int64(2)))

		ing.Status.LoadBalancer = lb("192.0.2.12")
		ing.Spec.DefaultBackend = backend("c")
		ing, err = client.NetworkingV1().Ingresses(ns).UpdateStatus(ctx, ing, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(ing.Status.LoadBalancer.Ingress[0].IP).To(Equal("192.0.2.12"))
		Expect(ing.Spec.DefaultBackend.Service.Name).To(Equal("b"))
		Expect(ing.Generation).To(Equal(int64(2)))
	})

	It("reads and writes replicas through scale", func(ctx SpecContext) {
		_, err := client.AppsV1().Deployments(ns).Create(ctx, deployment("sc", 1), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		s, err := client.AppsV1().Deployments(ns).GetScale(ctx, "sc", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(s.Spec.Replicas).To(Equal(int32(1)))
		Expect(s.Status.Selector).To(Equal("app=sc"))
		// The deployment controller writes the status meanwhile, which moves the resourceVersion
		// the scale carries: a conflict then is right, and the client retries on a fresh read.
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s, err := client.AppsV1().Deployments(ns).GetScale(ctx, "sc", metav1.GetOptions{})
			if err != nil {
				return err
			}
			s.Spec.Replicas = 4
			_, err = client.AppsV1().Deployments(ns).UpdateScale(ctx, "sc", s, metav1.UpdateOptions{})
			return err
		})).To(Succeed())
		_, err = client.AppsV1().Deployments(ns).Patch(ctx, "sc", types.MergePatchType, []byte(`{"spec":{"replicas":6}}`), metav1.PatchOptions{}, "scale")
		Expect(err).NotTo(HaveOccurred())
		d, err := client.AppsV1().Deployments(ns).Get(ctx, "sc", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(*d.Spec.Replicas).To(Equal(int32(6)))
		_, err = client.AppsV1().Deployments(ns).UpdateScale(ctx, "sc", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "sc", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: -1}}, metav1.UpdateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	})

	It("changes namespace finalizers only through finalize", func(ctx SpecContext) {
		nsObj, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(nsObj.Spec.Finalizers).To(Equal([]corev1.FinalizerName{corev1.FinalizerKubernetes}))
		nsObj.Spec.Finalizers = append(nsObj.Spec.Finalizers, "example.com/hold")
		updated, err := client.CoreV1().Namespaces().Update(ctx, nsObj, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(updated.Spec.Finalizers).To(Equal([]corev1.FinalizerName{corev1.FinalizerKubernetes}))
		updated.Spec.Finalizers = append(updated.Spec.Finalizers, "example.com/hold")
		finalized, err := client.CoreV1().Namespaces().Finalize(ctx, updated, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(finalized.Spec.Finalizers).To(Equal([]corev1.FinalizerName{corev1.FinalizerKubernetes, "example.com/hold"}))
		// Deleting marks it Terminating; our own finalizer keeps it there whatever a namespace
		// controller does, until we remove it.
		Expect(client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			terminating, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(terminating.Status.Phase).To(Equal(corev1.NamespaceTerminating))
			terminating.Spec.Finalizers = nil
			_, err = client.CoreV1().Namespaces().Finalize(ctx, terminating, metav1.UpdateOptions{})
			g.Expect(err).NotTo(HaveOccurred())
		}).Should(Succeed())
		// With nothing left to finalize, the next delete removes it (or a namespace controller did).
		err = client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		Expect(err == nil || apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
		Eventually(func() bool {
			_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).Should(BeTrue())
	})

	It("adds ephemeral containers through their subresource and nothing else", func(ctx SpecContext) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "eph"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		_, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// The scheduler may write the pod's status meanwhile: retry on a fresh read, as a client must.
		var got *corev1.Pod
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			pod, err := client.CoreV1().Pods(ns).Get(ctx, "eph", metav1.GetOptions{})
			if err != nil {
				return err
			}
			pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}}
			pod.Labels = map[string]string{"ignored": "yes"}
			got, err = client.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, "eph", pod, metav1.UpdateOptions{})
			return err
		})).To(Succeed())
		Expect(got.Spec.EphemeralContainers).To(HaveLen(1))
		Expect(got.Labels).NotTo(HaveKey("ignored"))
		got.Spec.EphemeralContainers = nil
		got.ResourceVersion = "" // unconditional, so that only validation can refuse it
		_, err = client.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, "eph", got, metav1.UpdateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	})

	It("binds a pod to a node once", func(ctx SpecContext) {
		// A scheduler nobody runs, so that the cluster's own does not bind the pod first.
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: corev1.PodSpec{SchedulerName: "keelson-test-none", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		_, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		binding := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}
		Expect(client.CoreV1().Pods(ns).Bind(ctx, binding, metav1.CreateOptions{})).To(Succeed())
		got, err := client.CoreV1().Pods(ns).Get(ctx, "b", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Spec.NodeName).To(Equal("n1"))
		err = client.CoreV1().Pods(ns).Bind(ctx, binding, metav1.CreateOptions{})
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "%v", err)
	})
})

var _ = Describe("Versions and encodings", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("serves core events through events.k8s.io/v1 from one storage", func(ctx SpecContext) {
		ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p", Namespace: ns},
			Reason: "Tested", Message: "hello", Type: "Normal", Source: corev1.EventSource{Component: "test"}}
		_, err := client.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err := client.EventsV1().Events(ns).Get(ctx, "e1", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Note).To(Equal("hello"))
		Expect(got.Regarding.Name).To(Equal("p"))
		_, err = client.EventsV1().Events(ns).Create(ctx, &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e2"}, EventTime: metav1.NowMicro(),
			ReportingController: "example.com/c", ReportingInstance: "i", Action: "Act", Reason: "R", Type: "Normal", Note: "from events.k8s.io",
			Regarding: corev1.ObjectReference{Kind: "Pod", Name: "p", Namespace: ns}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		core, err := client.CoreV1().Events(ns).Get(ctx, "e2", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(core.Message).To(Equal("from events.k8s.io"))
	})

	It("serves HorizontalPodAutoscalers as autoscaling/v1 and v2 from one storage", func(ctx SpecContext) {
		hpa := &autoscalingv1.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "h"}, Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: 5, TargetCPUUtilizationPercentage: ptr.To[int32](60)}}
		_, err := client.AutoscalingV1().HorizontalPodAutoscalers(ns).Create(ctx, hpa, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		v2, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "h", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(v2.Spec.MaxReplicas).To(Equal(int32(5)))
		Expect(v2.Spec.Metrics).To(HaveLen(1))
		Expect(*v2.Spec.Metrics[0].Resource.Target.AverageUtilization).To(Equal(int32(60)))
		v1, err := client.AutoscalingV1().HorizontalPodAutoscalers(ns).Get(ctx, "h", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(*v1.Spec.TargetCPUUtilizationPercentage).To(Equal(int32(60)))
	})

	It("speaks protobuf for reads, writes and watches", func(ctx SpecContext) {
		cfg := rest.CopyConfig(testCluster.Config)
		cfg.ContentType = runtime.ContentTypeProtobuf
		cfg.AcceptContentTypes = runtime.ContentTypeProtobuf
		pc := kubernetes.NewForConfigOrDie(cfg)
		w, err := pc.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: "0", LabelSelector: "app=test"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		_, err = pc.CoreV1().ConfigMaps(ns).Create(ctx, configMap("pb", map[string]string{"k": "v"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err := pc.CoreV1().ConfigMaps(ns).Get(ctx, "pb", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data).To(Equal(map[string]string{"k": "v"}))
		ev := nextEvent(w)
		Expect(ev.Type).To(Equal(watch.Added))
		Expect(cmName(ev)).To(Equal("pb"))
		_, err = pc.CoreV1().ConfigMaps(ns).Get(ctx, "nope", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})

	It("serves the dynamic client and metadata-only lists and watches", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("m", map[string]string{"secret": "not in metadata"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		gvr := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
		u, err := dynamic.NewForConfigOrDie(testCluster.Config).Resource(gvr).Namespace(ns).Get(ctx, "m", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(u.GetKind()).To(Equal("ConfigMap"))
		mc := metadata.NewForConfigOrDie(testCluster.Config)
		list, err := mc.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=test"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].Name).To(Equal("m"))
		code, body := raw(ctx, "GET", "/api/v1/namespaces/"+ns+"/configmaps?labelSelector=app%3Dtest", "", nil, "Accept", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
		Expect(code).To(Equal(200))
		var pl metav1.PartialObjectMetadataList
		Expect(json.Unmarshal(body, &pl)).To(Succeed())
		Expect(pl.Kind).To(Equal("PartialObjectMetadataList"))
		Expect(pl.Items[0].Kind).To(Equal("PartialObjectMetadata"))
		Expect(string(body)).NotTo(ContainSubstring("not in metadata"))
		w, err := mc.Resource(gvr).Namespace(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		_, err = client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("m2", nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		ev := nextEvent(w)
		Expect(ev.Object.(*metav1.PartialObjectMetadata).Name).To(Equal("m2"))
	})

	It("renders tables with rows carrying object metadata", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("t", nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		code, body := raw(ctx, "GET", "/api/v1/namespaces/"+ns+"/configmaps?labelSelector=app%3Dtest", "", nil, "Accept", "application/json;as=Table;v=v1;g=meta.k8s.io, application/json")
		Expect(code).To(Equal(200))
		var t metav1.Table
		Expect(json.Unmarshal(body, &t)).To(Succeed())
		Expect(t.Kind).To(Equal("Table"))
		Expect(t.ColumnDefinitions[0].Name).To(Equal("Name"))
		Expect(t.Rows).To(HaveLen(1))
		Expect(t.Rows[0].Cells[0]).To(Equal("t"))
		var meta metav1.PartialObjectMetadata
		Expect(json.Unmarshal(t.Rows[0].Object.Raw, &meta)).To(Succeed())
		Expect(meta.Name).To(Equal("t"))
	})

	It("compresses large responses for clients that accept gzip", func(ctx SpecContext) {
		big := strings.Repeat("x", 64*1024)
		for i := range 3 {
			_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap(fmt.Sprintf("big%d", i), map[string]string{"k": big}), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		code, body, headers := rawWithHeaders(ctx, "GET", "/api/v1/namespaces/"+ns+"/configmaps?labelSelector=app%3Dtest", "", nil, "Accept-Encoding", "gzip")
		Expect(code).To(Equal(200))
		Expect(headers.Get("Content-Encoding")).To(Equal("gzip"))
		zr, err := gzip.NewReader(bytes.NewReader(body))
		Expect(err).NotTo(HaveOccurred())
		plain, err := io.ReadAll(zr)
		Expect(err).NotTo(HaveOccurred())
		var list corev1.ConfigMapList
		Expect(json.Unmarshal(plain, &list)).To(Succeed())
		Expect(list.Items).To(HaveLen(3))
		_, _, headers = rawWithHeaders(ctx, "GET", "/api/v1/namespaces/"+ns+"/configmaps/big0", "", nil, "Accept-Encoding", "gzip")
		Expect(headers.Get("Content-Encoding")).To(BeEmpty(), "a response under 128 KiB stays plain")
	})

	It("answers YAML when asked", func(ctx SpecContext) {
		code, body := raw(ctx, "GET", "/api/v1/namespaces/default", "", nil, "Accept", "application/yaml")
		Expect(code).To(Equal(200))
		Expect(string(body)).To(HavePrefix("apiVersion: v1\nkind: Namespace\n"))
	})
})

var _ = Describe("Bad input", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	cmPath := func(ns string) string { return "/api/v1/namespaces/" + ns + "/configmaps" }

	It("refuses malformed JSON with 400 and stores nothing", func(ctx SpecContext) {
		code, body := raw(ctx, "POST", cmPath(ns), "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"`))
		Expect(code).To(Equal(400))
		Expect(statusOf(body).Reason).To(Equal(metav1.StatusReasonBadRequest))
		_, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "x", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})

	It("refuses an apiVersion that does not match the URL", func(ctx SpecContext) {
		code, body := raw(ctx, "POST", "/apis/autoscaling/v1/namespaces/"+ns+"/horizontalpodautoscalers", "application/json",
			[]byte(`{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","metadata":{"name":"x"},"spec":{"maxReplicas":1,"scaleTargetRef":{"kind":"Deployment","name":"d"}}}`))
		Expect(code).To(Equal(400))
		Expect(statusOf(body).Message).To(Equal("the API version in the data (autoscaling/v2) does not match the expected API version (autoscaling/v1)"))
		code, body = raw(ctx, "POST", cmPath(ns), "application/json", []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}}`))
		Expect(code).To(Equal(400))
		Expect(statusOf(body).Message).To(Equal(`Deployment in version "v1" cannot be handled as a ConfigMap: converting (v1.Deployment) to (core.ConfigMap): unknown conversion`))
		code, body = raw(ctx, "POST", cmPath(ns), "application/json", []byte(`{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}`))
		Expect(code).To(Equal(400))
		Expect(statusOf(body).Message).To(HavePrefix(`ConfigMap in version "v1" cannot be handled as a ConfigMap: `))
	})

	It("refuses, warns about or ignores unknown fields as fieldValidation says", func(ctx SpecContext) {
		body := func(name string) []byte {
			return []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"` + name + `"},"data":{"a":"b"},"spec":{"x":1}}`)
		}
		code, resp := raw(ctx, "POST", cmPath(ns)+"?fieldValidation=Strict", "application/json", body("strict"))
		Expect(code).To(Equal(400))
		Expect(statusOf(resp).Message).To(Equal(`ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "spec"`))
		code, _, headers := rawWithHeaders(ctx, "POST", cmPath(ns), "application/json", body("warned"))
		Expect(code).To(Equal(201))
		Expect(headers.Values("Warning")).To(ConsistOf(`299 - "unknown field \"spec\""`))
		code, _, headers = rawWithHeaders(ctx, "POST", cmPath(ns)+"?fieldValidation=Ignore", "application/json", body("ignored"))
		Expect(code).To(Equal(201))
		Expect(headers.Values("Warning")).To(BeEmpty())
		dup := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1"},"data":{"a":"2"}}`)
		code, resp = raw(ctx, "POST", cmPath(ns)+"?fieldValidation=Strict", "application/json", dup)
		Expect(code).To(Equal(400))
		Expect(statusOf(resp).Message).To(Equal(`ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: duplicate field "data"`))
		code, _, headers = rawWithHeaders(ctx, "POST", cmPath(ns), "application/json", dup)
		Expect(code).To(Equal(201))
		Expect(headers.Values("Warning")).To(ConsistOf(`299 - "duplicate field \"data\""`))
		code, resp = raw(ctx, "POST", cmPath(ns)+"?fieldValidation=Sometimes", "application/json", body("bad"))
		Expect(code).To(Equal(422))
		Expect(statusOf(resp).Message).To(Equal(`CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Sometimes": supported values: "", "Ignore", "Strict", "Warn"`))
	})

	It("refuses a name that does not match the URL", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("real", nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		code, body := raw(ctx, "PUT", cmPath(ns)+"/real", "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}`))
		Expect(code).To(Equal(400))
		Expect(statusOf(body).Message).To(Equal("the name of the object (other) does not match the name on the URL (real)"))
	})

	It("answers an unknown resource with 404", func(ctx SpecContext) {
		code, body := raw(ctx, "GET", "/api/v1/namespaces/"+ns+"/widgets", "", nil)
		Expect(code).To(Equal(404))
		Expect(statusOf(body).Reason).To(Equal(metav1.StatusReasonNotFound))
		code, _ = raw(ctx, "GET", "/apis/example.com/v1/widgets", "", nil)
		Expect(code).To(Equal(404))
	})

	It("refuses a body over 3 MiB with 413", func(ctx SpecContext) {
		big := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":"%s"}}`, strings.Repeat("x", 3*1024*1024))
		code, body := raw(ctx, "POST", cmPath(ns), "application/json", []byte(big))
		Expect(code).To(Equal(413))
		Expect(statusOf(body).Reason).To(Equal(metav1.StatusReasonRequestEntityTooLarge))
	})

	It("refuses invalid objects with 422 and upstream's field paths", func(ctx SpecContext) {
		_, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "nocontainers"}}, metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("spec.containers: Required value"))
		_, err = client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("Bad_Name", nil), metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(HavePrefix(`ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain`))
	})

	It("refuses changes to immutable fields", func(ctx SpecContext) {
		d, err := client.AppsV1().Deployments(ns).Create(ctx, deployment("imm", 1), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "imm", "x": "y"}}
		d.Spec.Template.Labels = map[string]string{"app": "imm", "x": "y"}
		_, err = client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("spec.selector: Invalid value"))
		Expect(err.Error()).To(ContainSubstring("field is immutable"))

		cm := configMap("frozen", map[string]string{"a": "1"})
		cm.Immutable = ptr.To(true)
		_, err = client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, "frozen", types.MergePatchType, []byte(`{"data":{"a":"2"}}`), metav1.PatchOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	})

	It("refuses content in a missing namespace and in a terminating one", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps("does-not-exist").Create(ctx, configMap("x", nil), metav1.CreateOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`namespaces "does-not-exist" not found`))

		// A ConfigMap with a finalizer keeps its namespace Terminating until the finalizer goes.
		doomed := newNamespace(ctx)
		hold := configMap("hold", nil)
		hold.Finalizers = []string{"example.com/hold"}
		_, err = client.CoreV1().ConfigMaps(doomed).Create(ctx, hold, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_, _ = client.CoreV1().ConfigMaps(doomed).Patch(ctx, "hold", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
		})
		Expect(client.CoreV1().Namespaces().Delete(ctx, doomed, metav1.DeleteOptions{})).To(Succeed())
		nsObj, err := client.CoreV1().Namespaces().Get(ctx, doomed, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(nsObj.Status.Phase).To(Equal(corev1.NamespaceTerminating))
		_, err = client.CoreV1().ConfigMaps(doomed).Create(ctx, configMap("late", nil), metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("unable to create new content in namespace " + doomed + " because it is being terminated"))
	})
})

var _ = Describe("Nodes", func() {
	It("validates taints and keeps podCIDRs once set", func(ctx SpecContext) {
		name := "keelson-test-node-" + strings.ToLower(utilrandString())
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "k", Effect: "Sometimes"}}}}
		_, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring(`metadata.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"`))
		node.Spec.Taints = nil
		node.Spec.PodCIDR, node.Spec.PodCIDRs = "10.244.0.0/24", []string{"10.244.0.0/24"}
		node.Status.Capacity = corev1.ResourceList{corev1.ResourcePods: resourceQuantity("110")}
		created, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { _ = client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}) })
		Expect(created.Status.Capacity).To(HaveKey(corev1.ResourcePods))
		// The node controllers may write the new node first (its taints): a conflict is retried.
		Eventually(func(g Gomega) {
			cur, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			cur.Spec.PodCIDR, cur.Spec.PodCIDRs = "10.244.1.0/24", []string{"10.244.1.0/24"}
			_, err = client.CoreV1().Nodes().Update(ctx, cur, metav1.UpdateOptions{})
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		}).Should(Succeed())
	})
})

var _ = Describe("Cluster bootstrap", func() {
	It("has the system namespaces and the kubernetes Service at the first service address", func(ctx SpecContext) {
		for _, n := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
			ns, err := client.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(ns.Status.Phase).To(Equal(corev1.NamespaceActive))
			Expect(ns.Labels).To(HaveKeyWithValue("kubernetes.io/metadata.name", n))
		}
		svc, err := client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(svc.Spec.ClusterIP).To(HaveSuffix(".1"))
		Expect(svc.Spec.Ports[0].Port).To(Equal(int32(443)))
		ep, err := client.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(ep.Subsets).To(HaveLen(1))
	})

	It("allocates cluster IPs and node ports, refusing one that is taken", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
		created, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(created.Spec.ClusterIP).NotTo(BeEmpty())
		Expect(created.Spec.ClusterIPs).To(Equal([]string{created.Spec.ClusterIP}))
		Expect(created.Spec.Ports[0].NodePort).To(BeNumerically(">=", 30000))
		Expect(created.Spec.Ports[0].TargetPort.IntValue()).To(Equal(80))
		taken := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "copy"}, Spec: corev1.ServiceSpec{ClusterIP: created.Spec.ClusterIP, Ports: []corev1.ServicePort{{Port: 80}}}}
		_, err = client.CoreV1().Services(ns).Create(ctx, taken, metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("provided IP is already allocated"))
		// Deleting the service frees its address for another.
		Expect(client.CoreV1().Services(ns).Delete(ctx, "web", metav1.DeleteOptions{})).To(Succeed())
		_, err = client.CoreV1().Services(ns).Create(ctx, taken, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	})
})

var _ = Describe("Server endpoints", func() {
	It("serves health, readiness and version", func(ctx SpecContext) {
		code, body := raw(ctx, "GET", "/readyz?verbose", "", nil)
		Expect(code).To(Equal(200))
		Expect(string(body)).To(ContainSubstring("[+]ping ok"))
		Expect(string(body)).To(HaveSuffix("readyz check passed\n"))
		code, body = raw(ctx, "GET", "/healthz", "", nil)
		Expect(code).To(Equal(200))
		Expect(string(body)).To(Equal("ok"))
		v, err := client.Discovery().ServerVersion()
		Expect(err).NotTo(HaveOccurred())
		Expect(v.Major).To(Equal("1"))
		Expect(v.Minor).To(Equal("37"))
	})

	It("exposes upstream's metrics", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		code, body := raw(ctx, "GET", "/metrics", "", nil)
		Expect(code).To(Equal(200))
		text := string(body)
		Expect(text).To(MatchRegexp(`apiserver_request_total\{[^}]*resource="configmaps"[^}]*verb="LIST"[^}]*\} \d+`))
		Expect(text).To(ContainSubstring("apiserver_request_duration_seconds_bucket{"))
		Expect(text).To(MatchRegexp(`etcd_request_duration_seconds_bucket\{group="",operation="get",resource="[a-z]+"`))
		Expect(text).To(MatchRegexp(`apiserver_resource_objects\{group="",resource="namespaces"\} \d+`))
	})

	It("refuses anonymous requests with 401 but serves them health and version", func(ctx SpecContext) {
		if !testCluster.Keelson {
			Skip("anonymous access is configured per cluster")
		}
		anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := anon.Get(testCluster.Config.Host + "/api/v1/namespaces")
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(401))
		for _, p := range []string{"/healthz", "/livez", "/readyz", "/version"} {
			resp, err := anon.Get(testCluster.Config.Host + p)
			Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(200), p)
		}
	})

	It("describes every served resource in discovery, aggregated and legacy alike", func(ctx SpecContext) {
		groups, resources, err := client.Discovery().ServerGroupsAndResources()
		Expect(err).NotTo(HaveOccurred())
		names := map[string]bool{}
		for _, g := range groups {
			names[g.Name] = true
		}
		for _, g := range []string{"", "apps", "batch", "autoscaling", "policy", "rbac.authorization.k8s.io", "networking.k8s.io",
			"discovery.k8s.io", "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "events.k8s.io", "certificates.k8s.io",
			"admissionregistration.k8s.io", "apiextensions.k8s.io", "flowcontrol.apiserver.k8s.io", "node.k8s.io", "resource.k8s.io"} {
			Expect(names).To(HaveKey(g))
		}
		var all []string
		for _, list := range resources {
			for _, r := range list.APIResources {
				if contains(r.Categories, "all") {
					all = append(all, r.Name)
				}
				if r.Name == "pods" {
					Expect(r.ShortNames).To(Equal([]string{"po"}))
					Expect(r.SingularName).To(Equal("pod"))
					Expect(r.Verbs).To(ConsistOf("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"))
				}
			}
		}
		Expect(all).To(ConsistOf("pods", "replicationcontrollers", "services", "daemonsets", "deployments", "replicasets",
			"statefulsets", "horizontalpodautoscalers", "horizontalpodautoscalers", "cronjobs", "jobs"))
	})
})

func resourceQuantity(s string) resource.Quantity { return resource.MustParse(s) }

func utilrandString() string { return utilrand.String(5) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
