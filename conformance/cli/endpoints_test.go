package cli

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
)

// runningPod creates a pod of app on node and, standing in for the kubelet, makes it Running and
// Ready at ip.
func runningPod(ctx context.Context, ns, name, app, node, ip string) {
	GinkgoHelper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "nginx:1.27",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
	_, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	patch := fmt.Sprintf(`{"status":{"phase":"Running","podIP":%q,"podIPs":[{"ip":%q}],"conditions":[{"type":"Ready","status":"True"}]}}`, ip, ip)
	_, err = client.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	Expect(err).NotTo(HaveOccurred())
}

var _ = Describe("Service endpoints in kubectl", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("lists a Service's endpoints in get endpoints, with upstream's deprecation warning, and in describe service", func(ctx SpecContext) {
		node := "cli-node-" + utilrand.String(6)
		_, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { _ = client.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{}) })
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}}}
		_, err = client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		runningPod(ctx, ns, "web-1", "web", node, "10.66.0.2")
		runningPod(ctx, ns, "web-0", "web", node, "10.66.0.1")

		Eventually(func(g Gomega) {
			r := run(ctx, invocation{}, "-n", ns, "get", "endpoints", "web")
			g.Expect(r.Code).To(Equal(0), "%s", r)
			g.Expect(r.Stderr).To(Equal("Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\n"))
			header, rows := table(r.Stdout)
			g.Expect(header).To(Equal([]string{"NAME", "ENDPOINTS", "AGE"}))
			g.Expect(rows).To(HaveLen(1))
			g.Expect(rows[0][:2]).To(Equal([]string{"web", "10.66.0.1:8080,10.66.0.2:8080"}))
		}).Should(Succeed())

		Eventually(func(g Gomega) {
			out := kubectl(ctx, "-n", ns, "describe", "service", "web")
			g.Expect(out).To(MatchRegexp(`(?m)^Port:\s+http\s+80/TCP$`))
			g.Expect(out).To(MatchRegexp(`(?m)^TargetPort:\s+http/TCP$`))
			g.Expect(out).To(MatchRegexp(`(?m)^Endpoints:\s+10\.66\.0\.[12]:8080,10\.66\.0\.[12]:8080$`))
		}).Should(Succeed())

		header, rows := table(kubectl(ctx, "-n", ns, "get", "endpointslices"))
		Expect(header).To(Equal([]string{"NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"}))
		Expect(rows).To(HaveLen(1))
		Expect(rows[0][0]).To(HavePrefix("web-"))
		Expect(rows[0][1:3]).To(Equal([]string{"IPv4", "8080"}))
		Expect(rows[0][3]).To(MatchRegexp(`^10\.66\.0\.[12],10\.66\.0\.[12]$`))
	})
})
