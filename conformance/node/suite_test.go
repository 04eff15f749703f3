// Package node is the behaviour suite of a real node: pods run by the kubelet on containerd,
// their networking, services through the proxy and names through the cluster DNS, against any
// cluster (KUBECONFIG, whose nodes must have the busybox image) or a keelson server with its
// node agent that the suite starts (as root; it installs containerd, runc, nftables and the
// CNI plugins when they are missing).
package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var (
	testCluster *cluster.Cluster
	client      kubernetes.Interface
	// nodeName is the node the suite's pods run on.
	nodeName string
	// kc runs the real kubectl against the cluster.
	kc *cluster.KubectlRunner
)

func TestNode(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Node behaviour")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	var err error
	testCluster, err = cluster.StartNode()
	if err == cluster.ErrNeedsRoot {
		Skip(err.Error())
	}
	Expect(err).NotTo(HaveOccurred())
	client = testCluster.Clientset()
	kc, err = cluster.NewKubectlRunner(testCluster, 2*time.Minute)
	Expect(err).NotTo(HaveOccurred())
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	Eventually(func(g Gomega) {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && !n.Spec.Unschedulable {
					nodeName = n.Name
				}
			}
		}
		g.Expect(nodeName).NotTo(BeEmpty(), "no Ready node")
	}).WithTimeout(2 * time.Minute).Should(Succeed())
}, NodeTimeout(10*time.Minute))

var _ = AfterSuite(func() {
	kc.Close()
	if testCluster != nil {
		testCluster.Stop()
	}
})

// newNamespace makes a namespace for the spec and, as upstream's e2e framework does, waits for
// its default ServiceAccount, without which the API server refuses pods.
func newNamespace(ctx context.Context) string {
	GinkgoHelper()
	ns := cluster.Namespace(ctx, client, "keelson-node-")
	Eventually(func() error {
		_, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err
	}).Should(Succeed(), "namespace %s has no default ServiceAccount", ns)
	return ns
}

func resourceMust(s string) resource.Quantity { return resource.MustParse(s) }

// waitForPhase waits for a pod to reach a phase and returns it.
func waitForPhase(ctx context.Context, ns, name string, phase corev1.PodPhase) *corev1.Pod {
	GinkgoHelper()
	var pod *corev1.Pod
	Eventually(func(g Gomega) {
		var err error
		pod, err = client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Status.Phase).To(Equal(phase), "status: %+v", pod.Status)
	}).Should(Succeed())
	return pod
}

// waitForReady waits for pods to be Ready.
func waitForReady(ctx context.Context, ns string, names ...string) {
	GinkgoHelper()
	for _, name := range names {
		Eventually(func(g Gomega) {
			pod, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(podCondition(pod, corev1.PodReady).Status).To(Equal(corev1.ConditionTrue), "status: %+v", pod.Status)
		}).Should(Succeed())
	}
}

// waitForGone waits until a pod is deleted for good.
func waitForGone(ctx context.Context, ns, name string) {
	GinkgoHelper()
	Eventually(func() bool {
		_, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}).Should(BeTrue(), "pod %s/%s is still there", ns, name)
}

// eventsOf is a pod's events as "type reason message", oldest first.
func eventsOf(ctx context.Context, ns, name string) []string {
	GinkgoHelper()
	list, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String()})
	Expect(err).NotTo(HaveOccurred())
	sort.SliceStable(list.Items, func(i, j int) bool { return list.Items[i].FirstTimestamp.Before(&list.Items[j].FirstTimestamp) })
	var out []string
	for _, e := range list.Items {
		out = append(out, fmt.Sprintf("%s %s %s", e.Type, e.Reason, e.Message))
	}
	return out
}

// runtimeHas tells whether the started node's runtime still has a sandbox or container of the
// pod; against another cluster, whose runtime the suite cannot see, it says what the API says.
func runtimeHas(ctx context.Context, uid string) bool {
	GinkgoHelper()
	if !testCluster.Keelson {
		return true
	}
	conn, err := grpc.NewClient("unix://"+filepath.Join(testCluster.DataDir, "agent", "containerd", "containerd.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	Expect(err).NotTo(HaveOccurred())
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	filter := map[string]string{"io.kubernetes.pod.uid": uid}
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: filter}})
	Expect(err).NotTo(HaveOccurred())
	cs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: filter}})
	Expect(err).NotTo(HaveOccurred())
	return len(sbs.Items)+len(cs.Containers) > 0
}

// netnsCount is the number of network namespaces the runtime keeps for pod sandboxes: under
// the started node's containerd state, or the host's named ones for another cluster.
func netnsCount() int {
	if !testCluster.Keelson {
		entries, _ := os.ReadDir("/var/run/netns")
		return len(entries)
	}
	// The CRI plugin keeps them under its own state directory.
	found, _ := filepath.Glob(filepath.Join(testCluster.DataDir, "agent", "containerd", "state", "*", "netns", "*"))
	return len(found)
}

// proxyRules is the started node's nftables table as nft prints it.
func proxyRules() string {
	out, _ := exec.Command("nft", "list", "table", "ip", "keelson").CombinedOutput()
	return string(out)
}
