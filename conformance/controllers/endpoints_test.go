package controllers

//lint:file-ignore SA1019 the Endpoints API is deprecated but still served and used; keeping it is this code's job.

import (
	"fmt"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
)

// zoneNode creates a node in zone for the spec and deletes it when the spec ends. The
// EndpointSlice controller leaves out pods on nodes it does not know, so every pod of these
// specs is on one.
func zoneNode(ctx SpecContext, zone string) string {
	GinkgoHelper()
	name := "ep-node-" + utilrand.String(6)
	_, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{corev1.LabelTopologyZone: zone}}}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) { _ = client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}) })
	return name
}

// backend is a pod of app on node serving a port named http at 8080; edit adjusts it before creation.
func backend(name, app, node string, edit ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
	for _, e := range edit {
		e(p)
	}
	return p
}

// startPod creates the pod and, standing in for the kubelet, gives it ip and a Ready condition.
func startPod(ctx SpecContext, ns string, pod *corev1.Pod, ip string, ready bool) *corev1.Pod {
	GinkgoHelper()
	created, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	patch := fmt.Sprintf(`{"status":{"phase":"Running","podIP":%q,"podIPs":[{"ip":%q}],"conditions":[{"type":"Ready","status":%q,"lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`,
		ip, ip, status)
	started, err := client.CoreV1().Pods(ns).Patch(ctx, created.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	Expect(err).NotTo(HaveOccurred())
	return started
}

func webService(name string, edit ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}
	for _, e := range edit {
		e(s)
	}
	return s
}

// slicesOf lists the EndpointSlices of a Service.
func slicesOf(ctx SpecContext, ns, svc string) []discoveryv1.EndpointSlice {
	GinkgoHelper()
	list, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	Expect(err).NotTo(HaveOccurred())
	return list.Items
}

// endpointsByIP are the endpoints of slices by their first address.
func endpointsByIP(slices []discoveryv1.EndpointSlice) map[string]discoveryv1.Endpoint {
	out := map[string]discoveryv1.Endpoint{}
	for _, s := range slices {
		for _, e := range s.Endpoints {
			out[e.Addresses[0]] = e
		}
	}
	return out
}

func addressIPs(addrs []corev1.EndpointAddress) []string {
	var ips []string
	for _, a := range addrs {
		ips = append(ips, a.IP)
	}
	return ips
}

// warningsAbout lists the warning events about an object as "reason: message".
func warningsAbout(ctx SpecContext, ns, kind, name string) []string {
	GinkgoHelper()
	list, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	var out []string
	for _, e := range list.Items {
		if e.Type == corev1.EventTypeWarning && e.InvolvedObject.Kind == kind && e.InvolvedObject.Name == name {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

var _ = Describe("Service endpoints", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("list ready and not-ready pods in Endpoints and EndpointSlices, with named ports resolved, and drop terminating pods from Endpoints", func(ctx SpecContext) {
		node := zoneNode(ctx, "zone-a")
		svc, err := client.CoreV1().Services(ns).Create(ctx, webService("web"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		ready := startPod(ctx, ns, backend("web-ready", "web", node), "10.64.0.1", true)
		startPod(ctx, ns, backend("web-unready", "web", node), "10.64.0.2", false)
		// A pod without an IP has no place in endpoints yet.
		_, err = client.CoreV1().Pods(ns).Create(ctx, backend("web-pending", "web", node), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// Nor has a pod the selector does not match.
		startPod(ctx, ns, backend("other", "other", node), "10.64.0.9", true)

		Eventually(func(g Gomega) {
			ep, err := client.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ep.Subsets).To(HaveLen(1))
			ss := ep.Subsets[0]
			g.Expect(addressIPs(ss.Addresses)).To(Equal([]string{"10.64.0.1"}))
			g.Expect(addressIPs(ss.NotReadyAddresses)).To(Equal([]string{"10.64.0.2"}))
			g.Expect(ss.Ports).To(Equal([]corev1.EndpointPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}))
			a := ss.Addresses[0]
			g.Expect(a.NodeName).To(Equal(ptr.To(node)))
			g.Expect(a.TargetRef).To(Equal(&corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web-ready", UID: ready.UID}))
			g.Expect(ep.Labels).To(Equal(map[string]string{"tier": "front", "endpoints.kubernetes.io/managed-by": "endpoint-controller"}))
			g.Expect(ep.Annotations).To(HaveKey(corev1.EndpointsLastChangeTriggerTime))
		}).Should(Succeed())

		Eventually(func(g Gomega) {
			slices := slicesOf(ctx, ns, "web")
			g.Expect(slices).To(HaveLen(1))
			s := slices[0]
			g.Expect(s.GenerateName).To(Equal("web-"))
			g.Expect(s.Labels).To(Equal(map[string]string{"tier": "front", discoveryv1.LabelServiceName: "web",
				discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}))
			g.Expect(s.OwnerReferences).To(Equal([]metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "web", UID: svc.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}))
			g.Expect(s.AddressType).To(Equal(discoveryv1.AddressTypeIPv4))
			g.Expect(s.Ports).To(Equal([]discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}}))
			g.Expect(s.Annotations).To(HaveKey(corev1.EndpointsLastChangeTriggerTime))
			eps := endpointsByIP(slices)
			g.Expect(eps).To(HaveLen(2))
			g.Expect(eps["10.64.0.1"].Conditions).To(Equal(discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}))
			g.Expect(eps["10.64.0.2"].Conditions).To(Equal(discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(false), Terminating: ptr.To(false)}))
			g.Expect(eps["10.64.0.1"].NodeName).To(Equal(ptr.To(node)))
			g.Expect(eps["10.64.0.1"].Zone).To(Equal(ptr.To("zone-a")))
			g.Expect(eps["10.64.0.1"].TargetRef).To(Equal(&corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web-ready", UID: ready.UID}))
			g.Expect(eps["10.64.0.1"].Hostname).To(BeNil())
		}).Should(Succeed())
		sliceName := slicesOf(ctx, ns, "web")[0].Name

		// Deleted, the ready pod terminates (there is no kubelet to finish it off): it leaves the
		// Endpoints, and stays in its slice as serving but terminating, and not ready.
		Expect(client.CoreV1().Pods(ns).Delete(ctx, "web-ready", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			ep, err := client.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ep.Subsets).To(HaveLen(1))
			g.Expect(ep.Subsets[0].Addresses).To(BeEmpty())
			g.Expect(addressIPs(ep.Subsets[0].NotReadyAddresses)).To(Equal([]string{"10.64.0.2"}))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			slices := slicesOf(ctx, ns, "web")
			g.Expect(slices).To(HaveLen(1))
			g.Expect(slices[0].Name).To(Equal(sliceName), "the slice is updated in place")
			g.Expect(endpointsByIP(slices)["10.64.0.1"].Conditions).To(Equal(discoveryv1.EndpointConditions{
				Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}))
		}).Should(Succeed())
	})

	It("publish not-ready pods as ready when the Service asks for it", func(ctx SpecContext) {
		node := zoneNode(ctx, "zone-b")
		_, err := client.CoreV1().Services(ns).Create(ctx, webService("eager", func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true }), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		startPod(ctx, ns, backend("eager-0", "eager", node), "10.64.1.1", false)
		Eventually(func(g Gomega) {
			ep, err := client.CoreV1().Endpoints(ns).Get(ctx, "eager", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ep.Subsets).To(HaveLen(1))
			g.Expect(addressIPs(ep.Subsets[0].Addresses)).To(Equal([]string{"10.64.1.1"}))
			g.Expect(ep.Subsets[0].NotReadyAddresses).To(BeEmpty())
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(endpointsByIP(slicesOf(ctx, ns, "eager"))["10.64.1.1"].Conditions).To(Equal(discoveryv1.EndpointConditions{
				Ready: ptr.To(true), Serving: ptr.To(false), Terminating: ptr.To(false)}))
		}).Should(Succeed())
	})

	It("hint ready endpoints for their zone when the Service prefers close traffic", func(ctx SpecContext) {
		node := zoneNode(ctx, "zone-d")
		_, err := client.CoreV1().Services(ns).Create(ctx, webService("near", func(s *corev1.Service) {
			s.Spec.TrafficDistribution = ptr.To(corev1.ServiceTrafficDistributionPreferClose)
		}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		startPod(ctx, ns, backend("near-0", "near", node), "10.64.5.1", true)
		startPod(ctx, ns, backend("near-1", "near", node), "10.64.5.2", false)
		Eventually(func(g Gomega) {
			eps := endpointsByIP(slicesOf(ctx, ns, "near"))
			g.Expect(eps).To(HaveLen(2))
			g.Expect(eps["10.64.5.1"].Hints).To(Equal(&discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "zone-d"}}}))
			g.Expect(eps["10.64.5.2"].Hints).To(BeNil())
		}).Should(Succeed())
	})

	It("give pods of a headless Service's subdomain their hostname and label the endpoints headless", func(ctx SpecContext) {
		node := zoneNode(ctx, "zone-a")
		_, err := client.CoreV1().Services(ns).Create(ctx, webService("db", func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		startPod(ctx, ns, backend("db-0", "db", node, func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "db-0", "db" }), "10.64.2.1", true)
		// Without the subdomain a pod gets no hostname.
		startPod(ctx, ns, backend("db-x", "db", node, func(p *corev1.Pod) { p.Spec.Hostname = "db-x" }), "10.64.2.2", true)
		Eventually(func(g Gomega) {
			ep, err := client.CoreV1().Endpoints(ns).Get(ctx, "db", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ep.Labels).To(HaveKeyWithValue(corev1.IsHeadlessService, ""))
			g.Expect(ep.Subsets).To(HaveLen(1))
			g.Expect(ep.Subsets[0].Addresses).To(HaveLen(2))
			g.Expect(ep.Subsets[0].Addresses[0].Hostname).To(Equal("db-0"))
			g.Expect(ep.Subsets[0].Addresses[1].Hostname).To(BeEmpty())
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			slices := slicesOf(ctx, ns, "db")
			g.Expect(slices).To(HaveLen(1))
			g.Expect(slices[0].Labels).To(HaveKeyWithValue(corev1.IsHeadlessService, ""))
			eps := endpointsByIP(slices)
			g.Expect(eps).To(HaveLen(2))
			g.Expect(eps["10.64.2.1"].Hostname).To(Equal(ptr.To("db-0")))
			g.Expect(eps["10.64.2.2"].Hostname).To(BeNil())
		}).Should(Succeed())
	})

	It("split a Service's pods into EndpointSlices of at most 100 and update them in place as pods go", func(ctx SpecContext) {
		node := zoneNode(ctx, "zone-c")
		_, err := client.CoreV1().Services(ns).Create(ctx, webService("big"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		for i := range 150 {
			startPod(ctx, ns, backend(fmt.Sprintf("big-%03d", i), "big", node), fmt.Sprintf("10.65.%d.%d", i/100, i%100+1), true)
		}
		var names []string
		Eventually(func(g Gomega) {
			slices := slicesOf(ctx, ns, "big")
			total := 0
			names = nil
			for _, s := range slices {
				g.Expect(len(s.Endpoints)).To(BeNumerically("<=", 100))
				total += len(s.Endpoints)
				names = append(names, s.Name)
			}
			g.Expect(total).To(Equal(150))
			g.Expect(slices).To(HaveLen(2))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			ep, err := client.CoreV1().Endpoints(ns).Get(ctx, "big", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ep.Subsets).To(HaveLen(1))
			g.Expect(ep.Subsets[0].Addresses).To(HaveLen(150))
			g.Expect(ep.Annotations).NotTo(HaveKey(corev1.EndpointsOverCapacity))
		}).Should(Succeed())

		// Pods that go leave holes in their slices; no slice is replaced.
		for i := range 5 {
			Expect(client.CoreV1().Pods(ns).Delete(ctx, fmt.Sprintf("big-%03d", i), metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})).To(Succeed())
		}
		Eventually(func(g Gomega) {
			slices := slicesOf(ctx, ns, "big")
			var now []string
			total := 0
			for _, s := range slices {
				total += len(s.Endpoints)
				now = append(now, s.Name)
			}
			g.Expect(total).To(Equal(145))
			g.Expect(now).To(ConsistOf(names))
		}).Should(Succeed())
	})

	It("mirror the Endpoints of a Service without a selector into EndpointSlices, and leave those Endpoints alone", func(ctx SpecContext) {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "external"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}}}}
		_, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		ep := &corev1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: "external", Labels: map[string]string{"db": "primary"}, Annotations: map[string]string{"note": "by hand"}},
			Subsets: []corev1.EndpointSubset{{
				Addresses:         []corev1.EndpointAddress{{IP: "192.0.2.10"}},
				NotReadyAddresses: []corev1.EndpointAddress{{IP: "192.0.2.11"}},
				Ports:             []corev1.EndpointPort{{Name: "pg", Port: 5432, Protocol: corev1.ProtocolTCP}},
			}},
		}
		created, err := client.CoreV1().Endpoints(ns).Create(ctx, ep, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var sliceName string
		Eventually(func(g Gomega) {
			slices := slicesOf(ctx, ns, "external")
			g.Expect(slices).To(HaveLen(1))
			s := slices[0]
			sliceName = s.Name
			g.Expect(s.GenerateName).To(Equal("external-"))
			g.Expect(s.Labels).To(Equal(map[string]string{"db": "primary", discoveryv1.LabelServiceName: "external",
				discoveryv1.LabelManagedBy: "endpointslicemirroring-controller.k8s.io"}))
			g.Expect(s.Annotations).To(Equal(map[string]string{"note": "by hand"}))
			g.Expect(s.OwnerReferences).To(Equal([]metav1.OwnerReference{{APIVersion: "v1", Kind: "Endpoints", Name: "external", UID: created.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}))
			g.Expect(s.AddressType).To(Equal(discoveryv1.AddressTypeIPv4))
			g.Expect(s.Ports).To(Equal([]discoveryv1.EndpointPort{{Name: ptr.To("pg"), Port: ptr.To[int32](5432), Protocol: ptr.To(corev1.ProtocolTCP)}}))
			eps := endpointsByIP(slices)
			g.Expect(eps["192.0.2.10"].Conditions).To(Equal(discoveryv1.EndpointConditions{Ready: ptr.To(true)}))
			g.Expect(eps["192.0.2.11"].Conditions).To(Equal(discoveryv1.EndpointConditions{Ready: ptr.To(false)}))
		}).Should(Succeed())

		// The Endpoints controller does not touch Endpoints of a Service without a selector.
		Consistently(func(g Gomega) {
			got, err := client.CoreV1().Endpoints(ns).Get(ctx, "external", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.ResourceVersion).To(Equal(created.ResourceVersion))
		}, "1s").Should(Succeed())

		// A change is mirrored into the same slice.
		_, err = client.CoreV1().Endpoints(ns).Patch(ctx, "external", types.JSONPatchType,
			[]byte(`[{"op":"add","path":"/subsets/0/addresses/-","value":{"ip":"192.0.2.12"}}]`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			slices := slicesOf(ctx, ns, "external")
			g.Expect(slices).To(HaveLen(1))
			g.Expect(slices[0].Name).To(Equal(sliceName))
			g.Expect(endpointsByIP(slices)).To(HaveKey("192.0.2.12"))
		}).Should(Succeed())

		// Gone, the Endpoints take their mirror along.
		Expect(client.CoreV1().Endpoints(ns).Delete(ctx, "external", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() []discoveryv1.EndpointSlice { return slicesOf(ctx, ns, "external") }).Should(BeEmpty())
	})

	It("leave out a pod on a node that does not exist, and say so in an event on the Service", func(ctx SpecContext) {
		_, err := client.CoreV1().Services(ns).Create(ctx, webService("ghosty"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		ghost := "ghost-" + utilrand.String(6)
		startPod(ctx, ns, backend("ghosty-0", "ghosty", ghost), "10.64.6.1", true)
		want := fmt.Sprintf("Error updating Endpoint Slices for Service %s/ghosty: skipping Pod ghosty-0 for Service %s/ghosty: Node %s Not Found", ns, ns, ghost)
		Eventually(func(g Gomega) {
			g.Expect(warningsAbout(ctx, ns, "Service", "ghosty")).To(ContainElement("FailedToUpdateEndpointSlices: " + want))
		}).Should(Succeed())
		slices := slicesOf(ctx, ns, "ghosty")
		Expect(slices).To(HaveLen(1))
		Expect(slices[0].Endpoints).To(BeEmpty())
		// The Endpoints controller does not look at nodes.
		Eventually(func(g Gomega) {
			ep, err := client.CoreV1().Endpoints(ns).Get(ctx, "ghosty", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ep.Subsets).To(HaveLen(1))
		}).Should(Succeed())
	})

	It("come back when deleted by hand", func(ctx SpecContext) {
		node := zoneNode(ctx, "zone-a")
		_, err := client.CoreV1().Services(ns).Create(ctx, webService("sturdy"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		startPod(ctx, ns, backend("sturdy-0", "sturdy", node), "10.64.4.1", true)
		var slice discoveryv1.EndpointSlice
		Eventually(func(g Gomega) {
			slices := slicesOf(ctx, ns, "sturdy")
			g.Expect(slices).To(HaveLen(1))
			g.Expect(slices[0].Endpoints).To(HaveLen(1))
			slice = slices[0]
			_, err := client.CoreV1().Endpoints(ns).Get(ctx, "sturdy", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
		}).Should(Succeed())

		Expect(client.DiscoveryV1().EndpointSlices(ns).Delete(ctx, slice.Name, metav1.DeleteOptions{})).To(Succeed())
		Expect(client.CoreV1().Endpoints(ns).Delete(ctx, "sturdy", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			slices := slicesOf(ctx, ns, "sturdy")
			g.Expect(slices).To(HaveLen(1))
			g.Expect(slices[0].UID).NotTo(Equal(slice.UID))
			g.Expect(endpointsByIP(slices)).To(HaveKey("10.64.4.1"))
			ep, err := client.CoreV1().Endpoints(ns).Get(ctx, "sturdy", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ep.Subsets).To(HaveLen(1))
		}).Should(Succeed())
	})

	It("mirror at most 1000 addresses of an Endpoints subset, and say so in an event", func(ctx SpecContext) {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "crowd"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
		_, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var addrs []corev1.EndpointAddress
		for i := range 1001 {
			addrs = append(addrs, corev1.EndpointAddress{IP: fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)})
		}
		_, err = client.CoreV1().Endpoints(ns).Create(ctx, &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "crowd"},
			Subsets: []corev1.EndpointSubset{{Addresses: addrs, Ports: []corev1.EndpointPort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}},
			metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			slices := slicesOf(ctx, ns, "crowd")
			g.Expect(slices).To(HaveLen(1))
			g.Expect(slices[0].Endpoints).To(HaveLen(1000))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(warningsAbout(ctx, ns, "Endpoints", "crowd")).To(ContainElement(
				"TooManyAddressesToMirror: A max of 1000 addresses can be mirrored to EndpointSlices per Endpoints subset. 1 addresses were skipped"))
		}).Should(Succeed())
	})

	It("go when their Service goes", func(ctx SpecContext) {
		node := zoneNode(ctx, "zone-a")
		_, err := client.CoreV1().Services(ns).Create(ctx, webService("brief"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		startPod(ctx, ns, backend("brief-0", "brief", node), "10.64.3.1", true)
		Eventually(func() []discoveryv1.EndpointSlice { return slicesOf(ctx, ns, "brief") }).Should(HaveLen(1))
		Eventually(func() error {
			_, err := client.CoreV1().Endpoints(ns).Get(ctx, "brief", metav1.GetOptions{})
			return err
		}).Should(Succeed())

		Expect(client.CoreV1().Services(ns).Delete(ctx, "brief", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() bool {
			_, err := client.CoreV1().Endpoints(ns).Get(ctx, "brief", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).Should(BeTrue())
		Eventually(func() []discoveryv1.EndpointSlice { return slicesOf(ctx, ns, "brief") }).Should(BeEmpty())
	})

	It("of the kubernetes Service are the API server's: not mirrored, not managed by a controller", func(ctx SpecContext) {
		ep, err := client.CoreV1().Endpoints(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(ep.Labels).To(HaveKeyWithValue(discoveryv1.LabelSkipMirror, "true"))
		Expect(ep.Subsets).To(HaveLen(1))
		Expect(ep.Subsets[0].Ports).To(HaveLen(1))
		Expect(ep.Subsets[0].Ports[0].Name).To(Equal("https"))
		slice, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(slice.Labels).To(Equal(map[string]string{discoveryv1.LabelServiceName: "kubernetes"}))
		Expect(slice.Endpoints).To(HaveLen(1))
		Expect(slice.Endpoints[0].Addresses).To(Equal(addressIPs(ep.Subsets[0].Addresses)))
		Consistently(func(g Gomega) {
			all := slicesOf(ctx, metav1.NamespaceDefault, "kubernetes")
			g.Expect(slices.ContainsFunc(all, func(s discoveryv1.EndpointSlice) bool { return s.Name != "kubernetes" })).To(BeFalse(),
				"only the API server's slice")
			got, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.ResourceVersion).To(Equal(slice.ResourceVersion))
		}, 2*time.Second).Should(Succeed())
	})
})
