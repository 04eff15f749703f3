package api

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var _ = Describe("Events", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	event := func(name string, involved corev1.ObjectReference) *corev1.Event {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: name}, InvolvedObject: involved,
			Reason: "Tested", Message: "a test event", Type: corev1.EventTypeNormal, Source: corev1.EventSource{Component: "test"}}
	}

	It("live in their involved object's namespace", func(ctx SpecContext) {
		_, err := client.CoreV1().Events(ns).Create(ctx, event("pod-event", corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "p"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		_, err = client.CoreV1().Events(ns).Create(ctx, event("elsewhere", corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "p"}), metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`Event "elsewhere" is invalid: involvedObject.namespace: Invalid value: "default": does not match event.namespace`))

		// A cluster-scoped object's events go to default.
		_, err = client.CoreV1().Events(ns).Create(ctx, event("node-event", corev1.ObjectReference{Kind: "Node", Name: "n"}), metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`Event "node-event" is invalid: involvedObject.namespace: Invalid value: "": does not match event.namespace`))
	})
})
