package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// secondNode is the node the suite adds to a cluster it started, in a network namespace of
// the same name.
const secondNode = "keelson-t2"

// readyNodes are the schedulable Ready nodes' names, the suite's node first.
func readyNodes(ctx context.Context) ([]string, error) {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range list.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && !n.Spec.Unschedulable {
				if n.Name == nodeName {
					names = append([]string{n.Name}, names...)
				} else {
					names = append(names, n.Name)
				}
			}
		}
	}
	return names, nil
}

func internalIPOf(ctx context.Context, name string) string {
	GinkgoHelper()
	node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	Fail("node " + name + " has no InternalIP")
	return ""
}

// runOnNode runs a shell script in a one-off pod on a node and returns the finished pod and
// what the script wrote; the pod must succeed.
func runOnNode(ctx context.Context, ns, name, node, script string) (*corev1.Pod, string) {
	GinkgoHelper()
	p := shellPod(name, "{ "+script+"; } > /dev/termination-log 2>&1")
	p.Spec.NodeName = node
	_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	var pod *corev1.Pod
	Eventually(func(g Gomega) {
		pod, err = client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Status.Phase).To(Or(Equal(corev1.PodSucceeded), Equal(corev1.PodFailed)))
	}).WithTimeout(2 * time.Minute).Should(Succeed())
	msg := pod.Status.ContainerStatuses[0].State.Terminated.Message
	Expect(pod.Status.Phase).To(Equal(corev1.PodSucceeded), "the pod's output on %s:\n%s", node, msg)
	return pod, msg
}

// hostRoutes is the host's routes that the agents installed (`ip route show proto 77`).
func hostRoutes() string {
	GinkgoHelper()
	out, err := exec.Command("ip", "route", "show", "proto", "77").CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "%s", out)
	return string(out)
}

var _ = Describe("Two nodes on one host", Ordered, func() {
	var (
		nodes   []string // the suite's node and another
		added   bool     // the suite added the second node, and removes it at the end
		ns      string
		webPods map[string]*corev1.Pod // by node
		svc     *corev1.Service
	)

	BeforeAll(func(ctx SpecContext) {
		have, err := readyNodes(ctx)
		Expect(err).NotTo(HaveOccurred())
		if len(have) < 2 {
			if !testCluster.Keelson {
				Skip("the cluster has fewer than two Ready nodes")
			}
			Expect(testCluster.AddNode(secondNode)).To(Succeed())
			added = true
			DeferCleanup(func(ctx SpecContext) {
				if added {
					_ = testCluster.RemoveNode(ctx, secondNode)
				}
			})
		}
		Eventually(func(g Gomega) {
			have, err = readyNodes(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(len(have)).To(BeNumerically(">=", 2), "the second node's log:\n%s", testCluster.NodeLog(secondNode))
			if added {
				g.Expect(have).To(ContainElement(secondNode))
			}
		}).WithTimeout(2 * time.Minute).Should(Succeed())
		nodes = have[:2]
		if added {
			nodes[1] = secondNode
		}
		// A node's pods get addresses from its podCIDR, which the node-ipam controller assigns
		// once the Node registers.
		for _, n := range nodes {
			Eventually(func(g Gomega) {
				node, err := client.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(node.Spec.PodCIDR).NotTo(BeEmpty(), "node %s has no podCIDR", n)
			}).Should(Succeed())
		}
		ns = newNamespace(ctx)
	})

	JustAfterEach(func() {
		if CurrentSpecReport().Failed() && testCluster.Keelson {
			GinkgoWriter.Printf("the server's log (end):\n%s\nthe second node's log (end):\n%s\n",
				tail(testCluster.Log(), 150), tail(testCluster.NodeLog(secondNode), 80))
		}
	})

	It("are both Ready with their own names, addresses and podCIDRs", func(ctx SpecContext) {
		a, err := client.CoreV1().Nodes().Get(ctx, nodes[0], metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		b, err := client.CoreV1().Nodes().Get(ctx, nodes[1], metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(a.Spec.PodCIDR).NotTo(BeEmpty())
		Expect(b.Spec.PodCIDR).NotTo(BeEmpty())
		Expect(a.Spec.PodCIDR).NotTo(Equal(b.Spec.PodCIDR))
		Expect(internalIPOf(ctx, nodes[0])).NotTo(Equal(internalIPOf(ctx, nodes[1])))
		if added {
			// The host routes the second node's pods to it.
			Eventually(hostRoutes).Should(ContainSubstring(b.Spec.PodCIDR + " via " + internalIPOf(ctx, nodes[1])))
		}
	})

	It("spread a Deployment with pod anti-affinity over both nodes, whose pods answer across nodes by pod IP and see the client's own address", func(ctx SpecContext) {
		d := httpdDeployment("web", 2)
		// Each pod also tells the address it was reached from, through a CGI script.
		d.Spec.Template.Spec.Containers[0].Command = []string{"sh", "-c", "mkdir -p /www/cgi-bin && hostname > /www/index.html && " +
			`printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && ` +
			"exec httpd -f -p 8080 -h /www"}
		d.Spec.Template.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, TopologyKey: corev1.LabelHostname,
			}},
		}}
		_, err := client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pods := waitForAvailable(ctx, ns, "web", 2)
		webPods = map[string]*corev1.Pod{}
		for i := range pods.Items {
			webPods[pods.Items[i].Spec.NodeName] = &pods.Items[i]
		}
		Expect(webPods).To(HaveKey(nodes[0]))
		Expect(webPods).To(HaveKey(nodes[1]))

		// From the host: each pod by its IP.
		for _, p := range webPods {
			Eventually(func(g Gomega) {
				body, err := get(ctx, "http://"+net.JoinHostPort(p.Status.PodIP, "8080")+"/")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(body).To(Equal(p.Name + "\n"))
			}).Should(Succeed())
		}
		// From a pod on each node: both pods by IP (one on the same node, one across), and
		// the pod across sees the client pod's own address: no masquerade between pods.
		for i, node := range nodes {
			other := webPods[nodes[1-i]]
			script := fmt.Sprintf("wget -qO- http://%s:8080/ && wget -qO- http://%s:8080/ && wget -qO- http://%s:8080/cgi-bin/ip",
				webPods[node].Status.PodIP, other.Status.PodIP, other.Status.PodIP)
			client, out := runOnNode(ctx, ns, fmt.Sprintf("pod-to-pod-%d", i), node, script)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			Expect(lines).To(HaveLen(3), "output: %q", out)
			Expect(lines[:2]).To(Equal([]string{webPods[node].Name, other.Name}))
			// busybox httpd writes an IPv4 peer in its IPv6-mapped form.
			Expect(lines[2]).To(BeElementOf(client.Status.PodIP, "[::ffff:"+client.Status.PodIP+"]", "::ffff:"+client.Status.PodIP))
		}
	})

	It("serve a Service with pods on both nodes through its ClusterIP and each node's NodePort, from the host and from a pod on each node", func(ctx SpecContext) {
		Expect(webPods).To(HaveLen(2), "needs the Deployment of the previous spec")
		var err error
		svc, err = client.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		names := []string{webPods[nodes[0]].Name + "\n", webPods[nodes[1]].Name + "\n"}
		nodePort := strconv.Itoa(int(svc.Spec.Ports[0].NodePort))
		urls := []string{"http://" + net.JoinHostPort(svc.Spec.ClusterIP, "80") + "/"}
		for _, n := range nodes {
			urls = append(urls, "http://"+net.JoinHostPort(internalIPOf(ctx, n), nodePort)+"/")
		}
		// From the host: every address reaches both pods in turn, the one across the nodes too.
		for _, u := range urls {
			seen := map[string]bool{}
			Eventually(func(g Gomega) {
				body, err := get(ctx, u)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(names).To(ContainElement(body))
				seen[body] = true
				g.Expect(seen).To(HaveLen(2))
			}).Should(Succeed(), "from the host through %s", u)
		}
		// From a pod on each node: by name, by ClusterIP and through both nodes' NodePorts,
		// several times so that the answers come from both nodes' pods.
		for i, node := range nodes {
			var script []string
			for range 4 {
				for _, u := range append([]string{"http://web/"}, urls...) {
					script = append(script, "wget -qO- "+u)
				}
			}
			_, out := runOnNode(ctx, ns, fmt.Sprintf("service-client-%d", i), node, strings.Join(script, " && "))
			lines := strings.SplitAfter(strings.TrimSuffix(out, "\n"), "\n")
			Expect(lines).To(HaveLen(len(script)), "output: %q", out)
			seen := map[string]bool{}
			for _, l := range lines {
				l = strings.TrimSuffix(l, "\n") + "\n"
				Expect(names).To(ContainElement(l))
				seen[l] = true
			}
			GinkgoWriter.Printf("from a pod on %s: answers from %d pods\n", node, len(seen))
		}
	})

	It("resolve names through the cluster DNS and reach the API server from a pod on the second node", func(ctx SpecContext) {
		Expect(svc).NotTo(BeNil(), "needs the Service of the previous spec")
		kube, err := client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, out := runOnNode(ctx, ns, "resolver", nodes[1],
			"nslookup web."+ns+".svc.cluster.local && nslookup kubernetes.default.svc.cluster.local && wget -qO- http://web/ && "+
				"echo API: && { wget --no-check-certificate -qO- https://kubernetes.default.svc/version 2>&1 || true; }")
		Expect(out).To(MatchRegexp(`Name:\s+web\.` + ns + `\.svc\.cluster\.local\s+Address(:| 1:)\s*` + strings.ReplaceAll(svc.Spec.ClusterIP, ".", `\.`)))
		Expect(out).To(MatchRegexp(`Name:\s+kubernetes\.default\.svc\.cluster\.local\s+Address(:| 1:)\s*` + strings.ReplaceAll(kube.Spec.ClusterIP, ".", `\.`)))
		web, api, _ := strings.Cut(out, "API:\n")
		Expect(web).To(Or(HaveSuffix(webPods[nodes[0]].Name+"\n"), HaveSuffix(webPods[nodes[1]].Name+"\n")))
		// The API server, through the kubernetes Service, from the second node: busybox's TLS
		// may not share a cipher suite with it, and then the server's own TLS alert is its answer.
		Expect(api).To(Or(ContainSubstring(`"gitVersion"`), ContainSubstring("TLS error from peer")), "output: %s", out)
	})

	It("leave no route to a removed node's pods on the host", func(ctx SpecContext) {
		if !added {
			Skip("the suite did not add the second node")
		}
		b, err := client.CoreV1().Nodes().Get(ctx, secondNode, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(testCluster.RemoveNode(ctx, secondNode)).To(Succeed())
		added = false
		Expect(hostRoutes()).NotTo(ContainSubstring(b.Spec.PodCIDR))
		_, err = os.Stat("/var/run/netns/" + secondNode)
		Expect(os.IsNotExist(err)).To(BeTrue(), "the network namespace %s is still there", secondNode)
	})
})

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
