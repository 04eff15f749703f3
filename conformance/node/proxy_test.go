package node

import (
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/keelson/keelson/conformance/cluster"
	"github.com/keelson/keelson/pki"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var _ = Describe("The API server's proxies to a real node and its pods", Ordered, func() {
	var ns string
	var pod *corev1.Pod

	BeforeAll(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		createPods(ctx, ns, streamsPod())
		waitForReady(ctx, ns, "streams")
		var err error
		pod, err = client.CoreV1().Pods(ns).Get(ctx, "streams", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("reach a pod's port through pods/proxy", func(ctx SpecContext) {
		Expect(kc.Succeed(ctx, nil, "", "get", "--raw", "/api/v1/namespaces/"+ns+"/pods/streams:8080/proxy/index.html")).To(Equal("forwarded bytes\n"))
	})

	It("reach a Service's pods through services/proxy, by port name and by scheme and number", func(ctx SpecContext) {
		_, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "streams"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		for _, path := range []string{"/services/web:http/proxy/index.html", "/services/http:web:80/proxy/index.html"} {
			// The Service's endpoints are published by the controllers; wait for them.
			var r cluster.Result
			Eventually(func() int {
				r = kc.Run(ctx, nil, "", "get", "--raw", "/api/v1/namespaces/"+ns+path)
				return r.Code
			}).Should(BeZero())
			Expect(r.Stdout).To(Equal("forwarded bytes\n"), "%s", r)
		}
	})

	It("reach the kubelet through nodes/proxy", func(ctx SpecContext) {
		node := pod.Spec.NodeName
		Expect(kc.Succeed(ctx, nil, "", "get", "--raw", "/api/v1/nodes/"+node+"/proxy/healthz")).To(Equal("ok"))
		Expect(kc.Succeed(ctx, nil, "", "get", "--raw", "/api/v1/nodes/"+node+"/proxy/pods")).To(ContainSubstring(`"name":"streams"`))
	})

	It("refuse bad log and proxy requests with upstream's messages", func(ctx SpecContext) {
		base := "/api/v1/namespaces/" + ns
		for _, tc := range []struct{ path, want string }{
			{base + "/pods/streams/log", "Error from server (BadRequest): a container name must be specified for pod streams, choose one of: [main ticker]"},
			{base + "/pods/streams/log?container=nope", "Error from server (BadRequest): container nope is not valid for pod streams"},
			{base + "/pods/streams/log?container=main&previous=true", `Error from server (BadRequest): previous terminated container "main" in pod "streams" not found`},
			{base + "/pods/streams/log?container=main&tailLines=-1", `The PodLogOptions "streams" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0`},
			{base + "/pods/missing/log", `Error from server (NotFound): pods "missing" not found`},
			{base + "/services/missing/proxy/", `Error from server (NotFound): services "missing" not found`},
		} {
			r := kc.Run(ctx, nil, "", "get", "--raw", tc.path)
			Expect(r.Code).NotTo(BeZero(), "%s", r)
			Expect(strings.TrimSpace(r.Stderr)).To(Equal(tc.want), "GET %s", tc.path)
		}
	})

	It("let only the API server and admins use the kubelet's API", func(ctx SpecContext) {
		if !testCluster.Keelson {
			Skip("needs the certificate authority of a cluster the suite started")
		}
		node, err := client.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		host := ""
		for _, a := range node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				host = a.Address
			}
		}
		Expect(host).NotTo(BeEmpty(), "the node has no InternalIP: %+v", node.Status.Addresses)
		url := "https://" + net.JoinHostPort(host, strconv.Itoa(int(node.Status.DaemonEndpoints.KubeletEndpoint.Port))) + "/pods"
		bundle, err := pki.Load(filepath.Join(testCluster.DataDir, "pki"))
		Expect(err).NotTo(HaveOccurred())
		identity := func(name, user string, groups []string) []tls.Certificate {
			certPath, keyPath, err := bundle.ClientPair(name, user, groups)
			Expect(err).NotTo(HaveOccurred())
			pair, err := tls.LoadX509KeyPair(certPath, keyPath)
			Expect(err).NotTo(HaveOccurred())
			return []tls.Certificate{pair}
		}
		for _, tc := range []struct {
			name  string
			certs []tls.Certificate
			code  int
		}{
			{"no certificate", nil, http.StatusUnauthorized},
			{"another user", identity("node-test-jane", "jane", []string{"developers"}), http.StatusForbidden},
			{"an admin", identity("node-test-admin", "root-admin", []string{"system:masters"}), http.StatusOK},
			{"the API server", identity("node-test-apiserver", "kube-apiserver-kubelet-client", nil), http.StatusOK},
		} {
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: tc.certs, InsecureSkipVerify: true}}}
			resp, err := client.Get(url)
			Expect(err).NotTo(HaveOccurred(), tc.name)
			_ = resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(tc.code), tc.name)
		}
	})
})
