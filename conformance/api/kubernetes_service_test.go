package api

//lint:file-ignore SA1019 the kubernetes Service's Endpoints are deprecated but still kept by the API server.

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var _ = Describe("The kubernetes Service", func() {
	It("has its Endpoints and EndpointSlice put back by the API server when they are altered or deleted", func(ctx SpecContext) {
		eps := client.DiscoveryV1().EndpointSlices("default")
		slice, err := eps.Get(ctx, "kubernetes", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(slice.Labels).To(Equal(map[string]string{discoveryv1.LabelServiceName: "kubernetes"}))
		Expect(eps.Delete(ctx, "kubernetes", metav1.DeleteOptions{})).To(Succeed())
		_, err = client.CoreV1().Endpoints("default").Patch(ctx, "kubernetes", types.MergePatchType,
			[]byte(`{"metadata":{"labels":{"extra":"label"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_, _ = client.CoreV1().Endpoints("default").Patch(ctx, "kubernetes", types.MergePatchType,
				[]byte(`{"metadata":{"labels":{"extra":null}}}`), metav1.PatchOptions{})
		})

		// Upstream's reconciler runs every 10s.
		Eventually(func(g Gomega) {
			back, err := eps.Get(ctx, "kubernetes", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(back.UID).NotTo(Equal(slice.UID))
			g.Expect(back.Labels).To(Equal(slice.Labels))
			g.Expect(back.Endpoints).To(Equal(slice.Endpoints))
			g.Expect(back.Ports).To(Equal(slice.Ports))
			ep, err := client.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			// The Endpoints keep labels others add, as upstream's reconciler leaves them; the
			// slice is put back whole.
			g.Expect(ep.Labels).To(Equal(map[string]string{discoveryv1.LabelSkipMirror: "true", "extra": "label"}))
		}, "20s").Should(Succeed())
	})
})
