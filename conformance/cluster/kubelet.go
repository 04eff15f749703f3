package cluster

import (
	"context"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// readyStatus is the status patch by which the stand-ins mark a pod Running and Ready.
var readyStatus = []byte(`{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`)

// MarkPodReady marks one pod Running and Ready, as its kubelet would once its containers run,
// and fails the spec if it cannot.
func MarkPodReady(ctx context.Context, client kubernetes.Interface, ns, name string) {
	ginkgo.GinkgoHelper()
	_, err := client.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, readyStatus, metav1.PatchOptions{}, "status")
	gomega.Expect(err).NotTo(gomega.HaveOccurred())
}

// BindAndRunPods stands in for the scheduler and the kubelets of ns until the spec ends: a pod
// pinned to a node by a required node affinity on metadata.name (as DaemonSet pods are) is bound
// to it through pods/binding, a bound pending pod is marked Running and Ready, and a bound pod being
// deleted is removed, as its kubelet would once its containers stopped.
func BindAndRunPods(client kubernetes.Interface, ns string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ginkgo.DeferCleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
				for i := range list.Items {
					runPod(ctx, client, &list.Items[i])
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

func runPod(ctx context.Context, client kubernetes.Interface, p *corev1.Pod) {
	pods := client.CoreV1().Pods(p.Namespace)
	switch {
	case p.DeletionTimestamp != nil:
		if p.Spec.NodeName != "" {
			_ = pods.Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &p.UID}})
		}
	case p.Spec.NodeName == "":
		if node := pinnedNode(p); node != "" {
			_ = pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, UID: p.UID}, Target: corev1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{})
		}
	case p.Status.Phase == corev1.PodPending:
		_, _ = pods.Patch(ctx, p.Name, types.MergePatchType, readyStatus, metav1.PatchOptions{}, "status")
	}
}

// pinnedNode is the node a pod's required node affinity names by metadata.name, if any.
func pinnedNode(p *corev1.Pod) string {
	a := p.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, r := range term.MatchFields {
			if r.Key == metav1.ObjectNameField && r.Operator == corev1.NodeSelectorOpIn && len(r.Values) == 1 {
				return r.Values[0]
			}
		}
	}
	return ""
}
