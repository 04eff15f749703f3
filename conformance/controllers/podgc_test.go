package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
)

var _ = Describe("Pod garbage collection", func() {
	It("fails and deletes a pod bound to a node that does not exist, once the node's quarantine is over", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "orphan"},
			Spec: corev1.PodSpec{
				NodeName:   "gone-" + utilrand.String(6),
				Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}},
			},
		}
		created, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		w, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: created.ResourceVersion, FieldSelector: "metadata.name=orphan"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()

		start := time.Now()
		var failed *corev1.Pod
		deadline := time.After(90 * time.Second)
		for deleted := false; !deleted; {
			select {
			case ev, ok := <-w.ResultChan():
				Expect(ok).To(BeTrue(), "watch closed")
				p := ev.Object.(*corev1.Pod)
				if p.Status.Phase == corev1.PodFailed && failed == nil {
					failed = p
				}
				deleted = ev.Type == watch.Deleted
			case <-deadline:
				Fail("the orphaned pod was not deleted within 90s")
			}
		}
		// Upstream waits out a 40s quarantine, so that a node not yet in its cache is not taken for gone.
		Expect(time.Since(start)).To(BeNumerically(">=", 35*time.Second))
		Expect(failed).NotTo(BeNil(), "the pod was deleted without being marked Failed")
		var target *corev1.PodCondition
		for i := range failed.Status.Conditions {
			if failed.Status.Conditions[i].Type == corev1.DisruptionTarget {
				target = &failed.Status.Conditions[i]
			}
		}
		Expect(target).NotTo(BeNil())
		Expect(target.Status).To(Equal(corev1.ConditionTrue))
		Expect(target.Reason).To(Equal("DeletionByPodGC"))
		Expect(target.Message).To(Equal("PodGC: node no longer exists"))
	})
})
