package cluster

import (
	"context"
	"encoding/json"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
)

// Namespace creates a namespace for the running spec, its name the prefix and a random suffix,
// and deletes it when the spec ends. It fails the spec if the namespace cannot be created.
func Namespace(ctx context.Context, client kubernetes.Interface, prefix string) string {
	ginkgo.GinkgoHelper()
	name := prefix + utilrand.String(6)
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	gomega.Expect(err).NotTo(gomega.HaveOccurred())
	ginkgo.DeferCleanup(func(ctx ginkgo.SpecContext) {
		_ = client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return name
}

// MarkPodsReady stands in for a kubelet until the spec ends: every pod of ns that is not
// being deleted is marked Running and Ready, so that controllers count it available.
func MarkPodsReady(client kubernetes.Interface, ns string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ginkgo.DeferCleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
				for _, p := range list.Items {
					if p.Status.Phase != corev1.PodRunning && p.DeletionTimestamp == nil {
						_, _ = client.CoreV1().Pods(ns).Patch(ctx, p.Name, types.MergePatchType, readyStatus, metav1.PatchOptions{}, "status")
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

// FinishPod stands in for a kubelet whose pod ended: it sets the pod's phase (Succeeded or
// Failed), marks it not ready and each container terminated with exitCode at finishedAt.
func FinishPod(ctx context.Context, client kubernetes.Interface, p *corev1.Pod, phase corev1.PodPhase, exitCode int32, finishedAt time.Time) error {
	status := corev1.PodStatus{Phase: phase, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse,
		Reason: "PodCompleted", LastTransitionTime: metav1.NewTime(finishedAt)}}}
	reason := "Completed"
	if exitCode != 0 {
		reason = "Error"
	}
	for _, c := range p.Spec.Containers {
		status.ContainerStatuses = append(status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exitCode, Reason: reason,
				StartedAt: metav1.NewTime(finishedAt.Add(-time.Second)), FinishedAt: metav1.NewTime(finishedAt)}}})
	}
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}
