package aggregation

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/keelson/keelson/simulator"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/ptr"
)

const metricsAPIService = "v1beta1.metrics.k8s.io"

func apiServicePath(name string) string { return "/apis/apiregistration.k8s.io/v1/apiservices/" + name }

func getAPIService(ctx SpecContext, name string) (*apiregistrationv1.APIService, error) {
	raw, err := client.Discovery().RESTClient().Get().AbsPath(apiServicePath(name)).Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	out := &apiregistrationv1.APIService{}
	return out, json.Unmarshal(raw, out)
}

func createAPIService(ctx SpecContext, svc *apiregistrationv1.APIService) {
	GinkgoHelper()
	svc.APIVersion, svc.Kind = "apiregistration.k8s.io/v1", "APIService"
	body, err := json.Marshal(svc)
	Expect(err).NotTo(HaveOccurred())
	err = client.Discovery().RESTClient().Post().AbsPath("/apis/apiregistration.k8s.io/v1/apiservices").
		SetHeader("Content-Type", "application/json").Body(body).Do(ctx).Error()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) { deleteAPIService(ctx, svc.Name) })
}

func deleteAPIService(ctx SpecContext, name string) {
	err := client.Discovery().RESTClient().Delete().AbsPath(apiServicePath(name)).Do(ctx).Error()
	if err != nil && !apierrors.IsNotFound(err) {
		Expect(err).NotTo(HaveOccurred())
	}
}

func availableCondition(s *apiregistrationv1.APIService) *apiregistrationv1.APIServiceCondition {
	for i := range s.Status.Conditions {
		if s.Status.Conditions[i].Type == apiregistrationv1.Available {
			return &s.Status.Conditions[i]
		}
	}
	return nil
}

// serveBackend registers the backend as a selector-less Service with an EndpointSlice at
// 127.0.0.1:<port>.
func serveBackend(ctx SpecContext, ns, name string, port int32) {
	GinkgoHelper()
	_, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(port)}}},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	_, err = client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
}

var _ = Describe("A metrics API served by an extension API server", Ordered, func() {
	var (
		backend  *metricsBackend
		serverNS string
	)
	BeforeAll(func(ctx SpecContext) {
		backend = startMetricsBackend(client)
		DeferCleanup(backend.Close)
		serverNS = newNamespace(ctx)
		serveBackend(ctx, serverNS, "metrics-server", backend.Port())
		createAPIService(ctx, &apiregistrationv1.APIService{
			ObjectMeta: metav1.ObjectMeta{Name: metricsAPIService},
			Spec: apiregistrationv1.APIServiceSpec{
				Service: &apiregistrationv1.ServiceReference{Namespace: serverNS, Name: "metrics-server"},
				Group:   "metrics.k8s.io", Version: "v1beta1", InsecureSkipTLSVerify: true,
				GroupPriorityMinimum: 100, VersionPriority: 100,
			},
		})
	})

	It("becomes Available once the backend passes the discovery check", func(ctx SpecContext) {
		Eventually(func(g Gomega) {
			s, err := getAPIService(ctx, metricsAPIService)
			g.Expect(err).NotTo(HaveOccurred())
			c := availableCondition(s)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(apiregistrationv1.ConditionTrue))
			g.Expect(c.Reason).To(Equal("Passed"))
			g.Expect(c.Message).To(Equal("all checks passed"))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())

		out := kubectl(ctx, "get", "apiservices")
		Expect(out).To(MatchRegexp(`(?m)^NAME\s+SERVICE\s+AVAILABLE\s+AGE$`))
		Expect(out).To(MatchRegexp(`(?m)^v1beta1\.metrics\.k8s\.io\s+%s/metrics-server\s+True\s+\S+$`, serverNS))
		Expect(out).To(MatchRegexp(`(?m)^v1\.apps\s+Local\s+True\s+\S+$`))
		Expect(out).To(MatchRegexp(`(?m)^v1\.\s+Local\s+True\s+\S+$`))
	})

	It("serves the backend's data through the API server, with the caller's identity in front-proxy headers", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		_, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		path := "/apis/metrics.k8s.io/v1beta1/namespaces/" + ns + "/pods"
		raw := kubectl(ctx, "get", "--raw", path)
		var list struct {
			Kind  string `json:"kind"`
			Items []struct {
				Metadata   metav1.ObjectMeta `json:"metadata"`
				Containers []struct {
					Name  string            `json:"name"`
					Usage map[string]string `json:"usage"`
				} `json:"containers"`
			} `json:"items"`
		}
		Expect(json.Unmarshal([]byte(raw), &list)).To(Succeed())
		Expect(list.Kind).To(Equal("PodMetricsList"))
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].Metadata.Name).To(Equal("web"))
		Expect(list.Items[0].Containers[0].Usage).To(HaveKeyWithValue("cpu", "200m"))

		mc := metricsclient.NewForConfigOrDie(testCluster.Config)
		pm, err := mc.MetricsV1beta1().PodMetricses(ns).Get(ctx, "web", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pm.Containers).To(HaveLen(1))
		Expect(pm.Containers[0].Usage.Cpu().MilliValue()).To(BeEquivalentTo(200))
		pms, err := mc.MetricsV1beta1().PodMetricses(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		Expect(err).NotTo(HaveOccurred())
		Expect(pms.Items).To(HaveLen(1))

		// The backend saw the admin user, authenticated by a client certificate that the
		// published requestheader CA signed and whose name is allowed.
		seen := backend.Seen(path)
		Expect(seen).NotTo(BeEmpty())
		Expect(seen[0].User).To(Equal("kubernetes-admin"))
		Expect(seen[0].Groups).To(ContainElements("system:masters", "system:authenticated"))
		cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cm.Data).To(HaveKey("client-ca-file"))
		Expect(cm.Data).To(HaveKeyWithValue("requestheader-username-headers", `["X-Remote-User"]`))
		Expect(cm.Data).To(HaveKeyWithValue("requestheader-group-headers", `["X-Remote-Group"]`))
		Expect(cm.Data).To(HaveKeyWithValue("requestheader-extra-headers-prefix", `["X-Remote-Extra-"]`))
		pool := x509.NewCertPool()
		Expect(pool.AppendCertsFromPEM([]byte(cm.Data["requestheader-client-ca-file"]))).To(BeTrue())
		Expect(seen[0].ClientCert).NotTo(BeNil())
		_, err = seen[0].ClientCert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		Expect(err).NotTo(HaveOccurred())
		var allowed []string
		Expect(json.Unmarshal([]byte(cm.Data["requestheader-allowed-names"]), &allowed)).To(Succeed())
		Expect(allowed).To(ContainElement(seen[0].ClientCert.Subject.CommonName))
	})

	It("is listed in discovery, so that kubectl api-resources and kubectl top see it", func(ctx SpecContext) {
		Eventually(func(g Gomega) {
			groups, err := client.Discovery().ServerGroups()
			g.Expect(err).NotTo(HaveOccurred())
			var names []string
			for _, gr := range groups.Groups {
				names = append(names, gr.Name)
			}
			g.Expect(names).To(ContainElement("metrics.k8s.io"))
			res, err := client.Discovery().ServerResourcesForGroupVersion("metrics.k8s.io/v1beta1")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.APIResources).To(ContainElement(HaveField("Name", "pods")))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
		// Aggregated discovery carries the backend's own aggregated document.
		Eventually(func(g Gomega) {
			raw, err := client.Discovery().RESTClient().Get().AbsPath("/apis").
				SetHeader("Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList").Do(ctx).Raw()
			g.Expect(err).NotTo(HaveOccurred())
			var doc apidiscoveryv2.APIGroupDiscoveryList
			g.Expect(json.Unmarshal(raw, &doc)).To(Succeed())
			var metrics *apidiscoveryv2.APIGroupDiscovery
			for i := range doc.Items {
				if doc.Items[i].Name == "metrics.k8s.io" {
					metrics = &doc.Items[i]
				}
			}
			g.Expect(metrics).NotTo(BeNil())
			g.Expect(metrics.Versions).To(HaveLen(1))
			g.Expect(metrics.Versions[0].Version).To(Equal("v1beta1"))
			g.Expect(metrics.Versions[0].Freshness).To(Equal(apidiscoveryv2.DiscoveryFreshnessCurrent))
			g.Expect(metrics.Versions[0].Resources).To(ContainElement(And(HaveField("Resource", "pods"), HaveField("SingularResource", "pod"),
				HaveField("Scope", apidiscoveryv2.ScopeNamespace))))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
		out := kubectl(ctx, "api-resources", "--api-group=metrics.k8s.io")
		Expect(out).To(MatchRegexp(`(?m)^pods\s+metrics\.k8s\.io/v1beta1\s+true\s+PodMetrics$`))
		Expect(out).To(MatchRegexp(`(?m)^nodes\s+metrics\.k8s\.io/v1beta1\s+false\s+NodeMetrics$`))

		ns := newNamespace(ctx)
		_, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		out = kubectl(ctx, "top", "pod", "-n", ns)
		Expect(out).To(MatchRegexp(`(?m)^NAME\s+CPU\(cores\)\s+MEMORY\(bytes\)\s*$`))
		Expect(out).To(MatchRegexp(`(?m)^web\s+200m\s+10Mi\s*$`))
	})

	It("lets the horizontal pod autoscaler scale a Deployment on CPU utilization", func(ctx SpecContext) {
		testCluster.SimulatedNodes(simulator.Options{Count: 2, Prefix: "agg-", Labels: map[string]string{"aggregation": "yes"}})
		ns := newNamespace(ctx)
		labels := map[string]string{"app": "busy"}
		_, err := client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "busy"},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{NodeSelector: map[string]string{"aggregation": "yes"}, Containers: []corev1.Container{{Name: "c", Image: "nginx",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			d, err := client.AppsV1().Deployments(ns).Get(ctx, "busy", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Status.AvailableReplicas).To(BeEquivalentTo(1))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
		// The metrics' one-second window must start after the pod became ready.
		time.Sleep(1500 * time.Millisecond)

		_, err = client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: "busy"},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "busy"},
				MinReplicas:    ptr.To(int32(1)), MaxReplicas: 4,
				Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(int32(50))}}}},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		Eventually(func(g Gomega) {
			h, err := client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "busy", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(h.Status.DesiredReplicas).To(BeEquivalentTo(4))
			var active *autoscalingv2.HorizontalPodAutoscalerCondition
			for i := range h.Status.Conditions {
				if h.Status.Conditions[i].Type == autoscalingv2.ScalingActive {
					active = &h.Status.Conditions[i]
				}
			}
			g.Expect(active).NotTo(BeNil())
			g.Expect(active.Status).To(Equal(corev1.ConditionTrue))
			g.Expect(active.Reason).To(Equal("ValidMetricFound"))
			g.Expect(h.Status.CurrentMetrics).To(HaveLen(1))
			g.Expect(*h.Status.CurrentMetrics[0].Resource.Current.AverageUtilization).To(BeEquivalentTo(200))
			d, err := client.AppsV1().Deployments(ns).Get(ctx, "busy", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(*d.Spec.Replicas).To(BeEquivalentTo(4))
			events, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=HorizontalPodAutoscaler"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(events.Items).To(ContainElement(And(HaveField("Reason", "SuccessfulRescale"),
				HaveField("Message", "New size: 4; reason: cpu resource utilization (percentage of request) above target"))))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
	})

	It("passes a watch through as it streams", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		_, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		stream, err := client.Discovery().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces/"+ns+"/pods").
			Param("watch", "true").Stream(wctx)
		Expect(err).NotTo(HaveOccurred())
		defer stream.Close()
		// The backend holds the stream open: the first event must arrive long before it ends.
		line, err := bufio.NewReader(stream).ReadBytes('\n')
		Expect(err).NotTo(HaveOccurred())
		Expect(wctx.Err()).NotTo(HaveOccurred())
		var event struct {
			Type   string `json:"type"`
			Object struct {
				Kind     string            `json:"kind"`
				Metadata metav1.ObjectMeta `json:"metadata"`
			} `json:"object"`
		}
		Expect(json.Unmarshal(line, &event)).To(Succeed())
		Expect(event.Type).To(Equal("ADDED"))
		Expect(event.Object.Kind).To(Equal("PodMetrics"))
		Expect(event.Object.Metadata.Name).To(Equal("web"))
	})

	It("authorizes the request before proxying it, as a request for the aggregated resource", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		_, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "viewer"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		tr, err := client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "viewer", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		cfg := rest.AnonymousClientConfig(testCluster.Config)
		cfg.BearerToken = tr.Status.Token
		viewer := kubernetes.NewForConfigOrDie(cfg)
		path := "/apis/metrics.k8s.io/v1beta1/namespaces/" + ns + "/pods"
		err = viewer.Discovery().RESTClient().Get().AbsPath(path).Do(ctx).Error()
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(fmt.Sprintf(`pods.metrics.k8s.io is forbidden: User "system:serviceaccount:%s:viewer" cannot list resource "pods" in API group "metrics.k8s.io" in the namespace "%s"`, ns, ns)))
		Expect(backend.Seen(path)).To(BeEmpty())
	})

	It("serves the group again after the API server restarts", func(ctx SpecContext) {
		if !testCluster.Keelson {
			Skip("only a Keelson server the suite started can be restarted")
		}
		Expect(testCluster.Restart(false)).To(Succeed())
		client = testCluster.Clientset()
		mc := metricsclient.NewForConfigOrDie(testCluster.Config)
		Eventually(func(g Gomega) {
			_, err := mc.MetricsV1beta1().NodeMetricses().List(ctx, metav1.ListOptions{})
			g.Expect(err).NotTo(HaveOccurred())
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
	})

	It("answers 404 again once the APIService is deleted", func(ctx SpecContext) {
		deleteAPIService(ctx, metricsAPIService)
		Eventually(func(g Gomega) {
			err := client.Discovery().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes").Do(ctx).Error()
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
			groups, err := client.Discovery().ServerGroups()
			g.Expect(err).NotTo(HaveOccurred())
			for _, gr := range groups.Groups {
				g.Expect(gr.Name).NotTo(Equal("metrics.k8s.io"))
			}
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
	})
})

var _ = Describe("An APIService whose backend is not there", func() {
	It("is not Available, with upstream's reasons, and its group answers 503", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		name := "v1alpha1.missing.keelson.example.com"
		createAPIService(ctx, &apiregistrationv1.APIService{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: apiregistrationv1.APIServiceSpec{
				Service: &apiregistrationv1.ServiceReference{Namespace: ns, Name: "gone", Port: ptr.To(int32(443))},
				Group:   "missing.keelson.example.com", Version: "v1alpha1", InsecureSkipTLSVerify: true,
				GroupPriorityMinimum: 100, VersionPriority: 100,
			},
		})
		expect := func(reason, message string) {
			GinkgoHelper()
			Eventually(func(g Gomega) {
				s, err := getAPIService(ctx, name)
				g.Expect(err).NotTo(HaveOccurred())
				c := availableCondition(s)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Status).To(Equal(apiregistrationv1.ConditionFalse))
				g.Expect(c.Reason).To(Equal(reason))
				g.Expect(c.Message).To(Equal(message))
			}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
		}
		expect("ServiceNotFound", fmt.Sprintf("service/gone in %q is not present", ns))
		Expect(kubectl(ctx, "get", "apiservice", name)).To(MatchRegexp(`(?m)^v1alpha1\.missing\.keelson\.example\.com\s+%s/gone\s+False \(ServiceNotFound\)\s+\S+$`, ns))

		// Upstream's proxy answers in plain text, which client-go reports as ServiceUnavailable.
		err := client.Discovery().RESTClient().Get().AbsPath("/apis/missing.keelson.example.com/v1alpha1/things").Do(ctx).Error()
		Expect(apierrors.IsServiceUnavailable(err)).To(BeTrue(), "%v", err)
		httpClient, err := rest.HTTPClientFor(testCluster.Config)
		Expect(err).NotTo(HaveOccurred())
		resp, err := httpClient.Get(testCluster.Config.Host + "/apis/missing.keelson.example.com/v1alpha1/things")
		Expect(err).NotTo(HaveOccurred())
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusServiceUnavailable))
		Expect(string(body)).To(Equal("service unavailable\n"))

		_, err = client.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "gone"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443}}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expect("EndpointsNotFound", fmt.Sprintf("cannot find endpointslices for service/gone in %q", ns))

		_, err = client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "gone", Labels: map[string]string{discoveryv1.LabelServiceName: "gone"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(1)), Protocol: ptr.To(corev1.ProtocolTCP)}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		expect("MissingEndpoints", fmt.Sprintf("endpointslices for service/gone in %q have no addresses with port name %q", ns, "https"))

		// A ready endpoint where nothing listens fails the discovery check.
		_, err = client.DiscoveryV1().EndpointSlices(ns).Patch(ctx, "gone", types.MergePatchType,
			[]byte(`{"endpoints":[{"addresses":["127.0.0.1"],"conditions":{"ready":true}}]}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		url := "https://127.0.0.1:1/apis/missing.keelson.example.com/v1alpha1"
		expect("FailedDiscoveryCheck", fmt.Sprintf(`failing or missing response from %s: Get %q: dial tcp 127.0.0.1:1: connect: connection refused`, url, url))
		err = client.Discovery().RESTClient().Get().AbsPath("/apis/missing.keelson.example.com/v1alpha1/things").Do(ctx).Error()
		Expect(apierrors.IsServiceUnavailable(err)).To(BeTrue(), "%v", err)
	})
})

var _ = Describe("An APIService with a caBundle", func() {
	It("verifies the backend's serving certificate for the Service's DNS name", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		caPEM, cert, err := servingCert("secure." + ns + ".svc")
		Expect(err).NotTo(HaveOccurred())
		otherCA, _, err := servingCert("secure." + ns + ".svc")
		Expect(err).NotTo(HaveOccurred())
		b := startMetricsBackendWith(client, &cert)
		DeferCleanup(b.Close)
		serveBackend(ctx, ns, "secure", b.Port())
		register := func(group string, ca []byte) string {
			name := "v1." + group
			createAPIService(ctx, &apiregistrationv1.APIService{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: apiregistrationv1.APIServiceSpec{Service: &apiregistrationv1.ServiceReference{Namespace: ns, Name: "secure"},
					Group: group, Version: "v1", CABundle: ca, GroupPriorityMinimum: 100, VersionPriority: 100},
			})
			return name
		}
		trusted := register("trusted.keelson.example.com", caPEM)
		untrusted := register("untrusted.keelson.example.com", otherCA)
		Eventually(func(g Gomega) {
			s, err := getAPIService(ctx, trusted)
			g.Expect(err).NotTo(HaveOccurred())
			c := availableCondition(s)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(apiregistrationv1.ConditionTrue))
			g.Expect(c.Reason).To(Equal("Passed"))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
		Eventually(func(g Gomega) {
			s, err := getAPIService(ctx, untrusted)
			g.Expect(err).NotTo(HaveOccurred())
			c := availableCondition(s)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(apiregistrationv1.ConditionFalse))
			g.Expect(c.Reason).To(Equal("FailedDiscoveryCheck"))
			g.Expect(c.Message).To(MatchRegexp(`^failing or missing response from https://[^ ]+/apis/untrusted\.keelson\.example\.com/v1: ` +
				`Get "https://[^ ]+/apis/untrusted\.keelson\.example\.com/v1": tls: failed to verify certificate: x509: certificate signed by unknown authority`))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
		raw, err := client.Discovery().RESTClient().Get().AbsPath("/apis/trusted.keelson.example.com/v1").Do(ctx).Raw()
		Expect(err).NotTo(HaveOccurred())
		Expect(string(raw)).To(ContainSubstring(`"groupVersion":"trusted.keelson.example.com/v1"`))
	})
})
