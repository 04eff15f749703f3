// Package scheduling is the behaviour suite of the scheduler: where pods land and what a
// client sees when they cannot, against any cluster (KUBECONFIG) or a keelson server the suite
// starts. Each spec makes its own nodes (Node objects with no kubelet behind them, labelled for
// the spec) and pins its pods to them with a node selector, so that other nodes do not matter.
package scheduling

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

var (
	testCluster *cluster.Cluster
	client      kubernetes.Interface
)

func TestScheduling(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Scheduler behaviour")
}

var _ = BeforeSuite(func() {
	var err error
	testCluster, err = cluster.Start()
	Expect(err).NotTo(HaveOccurred())
	client = testCluster.Clientset()
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
})

var _ = AfterSuite(func() {
	if testCluster != nil {
		testCluster.Stop()
	}
})

// groupLabel marks the nodes of one spec; its pods select them by it.
const groupLabel = "scheduling.keelson.dev/group"

// fleet is the nodes of one spec.
type fleet struct {
	group string
	names []string
}

// newFleet makes n nodes of 4 CPUs, 8Gi and 110 pods, each changed by edit (which may be nil)
// before it is created, and deletes them when the spec ends.
func newFleet(ctx context.Context, n int, edit func(i int, node *corev1.Node)) *fleet {
	GinkgoHelper()
	f := &fleet{group: utilrand.String(6)}
	for i := range n {
		capacity := corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110"),
		}
		name := fmt.Sprintf("sched-%s-%d", f.group, i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{groupLabel: f.group, corev1.LabelHostname: name}},
			Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity,
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now()}}},
		}
		if edit != nil {
			edit(i, node)
		}
		_, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// The status is posted as a kubelet would, after registering; node IPAM may have
		// written the node in between.
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			current, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			current.Status = node.Status
			_, err = client.CoreV1().Nodes().UpdateStatus(ctx, current, metav1.UpdateOptions{})
			return err
		})).To(Succeed())
		f.names = append(f.names, name)
	}
	DeferCleanup(func(ctx SpecContext) {
		for _, name := range f.names {
			_ = client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
		}
	})
	// A scheduler sees new nodes through its informer, a moment after they are created; specs
	// that compare nodes must not start before it has them all.
	time.Sleep(time.Second)
	return f
}

// pod is a pod pinned to the fleet, requesting cpu (empty: nothing), changed by edit.
func (f *fleet) pod(name, cpu string, edit func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{groupLabel: f.group},
			Containers:   []corev1.Container{{Name: "c", Image: "busybox"}},
		},
	}
	if cpu != "" {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}
	}
	if edit != nil {
		edit(p)
	}
	return p
}

func create(ctx context.Context, ns string, p *corev1.Pod) {
	GinkgoHelper()
	_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
}

// scheduled waits for the pod to be bound and returns its node.
func scheduled(ctx context.Context, ns, name string) string {
	GinkgoHelper()
	var node string
	Eventually(func(g Gomega) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(p.Spec.NodeName).NotTo(BeEmpty())
		node = p.Spec.NodeName
	}).WithContext(ctx).Should(Succeed())
	return node
}

// unschedulable waits for the scheduler to give up on the pod for now and returns the message
// of its PodScheduled condition.
func unschedulable(ctx context.Context, ns, name string) string {
	GinkgoHelper()
	var msg string
	Eventually(func(g Gomega) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(p.Spec.NodeName).To(BeEmpty())
		var cond *corev1.PodCondition
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodScheduled {
				cond = &p.Status.Conditions[i]
			}
		}
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Status).To(Equal(corev1.ConditionFalse))
		g.Expect(cond.Reason).To(Equal(corev1.PodReasonUnschedulable))
		msg = cond.Message
	}).WithContext(ctx).Should(Succeed())
	return msg
}

// events returns the notes of the events about a pod with a reason.
func events(ctx context.Context, ns, pod, reason string) []string {
	list, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{"involvedObject.name": pod, "reason": reason}.String()})
	Expect(err).NotTo(HaveOccurred())
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Message)
	}
	return out
}

// stillPending checks over a while that the pod stays unbound.
func stillPending(ctx context.Context, ns, name string) {
	GinkgoHelper()
	Consistently(func(g Gomega) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(p.Spec.NodeName).To(BeEmpty())
	}).WithContext(ctx).WithTimeout(2 * time.Second).Should(Succeed())
}

func newNamespace(ctx context.Context) string {
	return cluster.Namespace(ctx, client, "keelson-sched-")
}

// fitMessage reports whether msg has upstream's FailedScheduling shape and mentions reason.
func fitMessage(msg, reason string) bool {
	return strings.Contains(msg, " nodes are available: ") && strings.Contains(msg, reason) && strings.Contains(msg, "preemption: ")
}
