package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// httpdDeployment serves each pod's own name over HTTP on 8080 with busybox httpd.
func httpdDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{Name: "httpd", Image: busybox,
				Command: []string{"sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"},
				Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}},
					PeriodSeconds: 1},
			}},
		}},
	}}
}

// waitForAvailable waits for a Deployment's replicas to be available and returns its pods.
func waitForAvailable(ctx context.Context, ns, name string, replicas int32) *corev1.PodList {
	GinkgoHelper()
	var d *appsv1.Deployment
	Eventually(func(g Gomega) {
		var err error
		d, err = client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(d.Status.AvailableReplicas).To(Equal(replicas))
	}).WithTimeout(2 * time.Minute).Should(Succeed())
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(d.Spec.Selector)})
	Expect(err).NotTo(HaveOccurred())
	return pods
}

// get fetches a URL from this host and returns the body.
func get(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// runInPod runs a shell script in a one-off pod and returns what it wrote to its termination
// log; the pod must succeed.
func runInPod(ctx context.Context, ns, name, script string) string {
	GinkgoHelper()
	p := shellPod(name, "{ "+script+"; } > /dev/termination-log 2>&1")
	_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	var pod *corev1.Pod
	Eventually(func(g Gomega) {
		pod, err = client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Status.Phase).To(Or(Equal(corev1.PodSucceeded), Equal(corev1.PodFailed)))
	}).Should(Succeed())
	msg := pod.Status.ContainerStatuses[0].State.Terminated.Message
	Expect(pod.Status.Phase).To(Equal(corev1.PodSucceeded), "the pod's output:\n%s", msg)
	return msg
}

var _ = Describe("Services and DNS on a real node", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("reach a Deployment's pods through its ClusterIP and NodePort, from the host and from a pod, by name", func(ctx SpecContext) {
		_, err := client.AppsV1().Deployments(ns).Create(ctx, httpdDeployment("web", 2), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		svc, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pods := waitForAvailable(ctx, ns, "web", 2)
		var names []string
		for _, p := range pods.Items {
			names = append(names, p.Name+"\n")
		}

		// From the host, both pods answer in turn through the cluster IP.
		seen := map[string]bool{}
		Eventually(func(g Gomega) {
			body, err := get(ctx, "http://"+net.JoinHostPort(svc.Spec.ClusterIP, "80")+"/")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(names).To(ContainElement(body))
			seen[body] = true
			g.Expect(seen).To(HaveLen(2))
		}).Should(Succeed())
		node, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		nodeIP := ""
		for _, a := range node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				nodeIP = a.Address
			}
		}
		nodePort := strconv.Itoa(int(svc.Spec.Ports[0].NodePort))
		Eventually(func(g Gomega) {
			body, err := get(ctx, "http://"+net.JoinHostPort(nodeIP, nodePort)+"/")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(names).To(ContainElement(body))
		}).Should(Succeed())

		// From a pod: by the service's name, by its cluster IP and through the node port.
		out := runInPod(ctx, ns, "client", fmt.Sprintf(
			"wget -qO- http://web/ && wget -qO- http://web.%s.svc.cluster.local/ && wget -qO- http://%s/ && wget -qO- http://%s/",
			ns, svc.Spec.ClusterIP, net.JoinHostPort(nodeIP, nodePort)))
		lines := strings.SplitAfter(strings.TrimSuffix(out, "\n"), "\n")
		Expect(lines).To(HaveLen(4), "output: %q", out)
		for _, l := range lines {
			Expect(names).To(ContainElement(strings.TrimSuffix(l, "\n") + "\n"))
		}
	})

	It("resolve cluster names from inside a pod and forward the others' failures", func(ctx SpecContext) {
		_, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "named"}, Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		svc, err := client.CoreV1().Services(ns).Get(ctx, "named", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		kube, err := client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		out := runInPod(ctx, ns, "resolver", "cat /etc/resolv.conf; nslookup named."+ns+".svc.cluster.local; nslookup kubernetes.default.svc.cluster.local")
		Expect(out).To(ContainSubstring("search " + ns + ".svc.cluster.local svc.cluster.local cluster.local"))
		Expect(out).To(ContainSubstring("options ndots:5"))
		Expect(out).To(MatchRegexp(`Name:\s+named\.` + ns + `\.svc\.cluster\.local\s+Address(:| 1:)\s*` + strings.ReplaceAll(svc.Spec.ClusterIP, ".", `\.`)))
		Expect(out).To(MatchRegexp(`Name:\s+kubernetes\.default\.svc\.cluster\.local\s+Address(:| 1:)\s*` + strings.ReplaceAll(kube.Spec.ClusterIP, ".", `\.`)))
	})
})
