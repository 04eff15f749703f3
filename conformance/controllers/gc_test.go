package controllers

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// owned makes ConfigMaps owned by owner (a ConfigMap too: any kind can own).
func ownedBy(ctx SpecContext, ns string, owner *corev1.ConfigMap, names ...string) {
	GinkgoHelper()
	for _, n := range names {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: n, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID, BlockOwnerDeletion: ptr.To(true)}}}}
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	}
}

func gone(ctx SpecContext, ns, name string) func() bool {
	return func() bool {
		_, err := client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}
}

var _ = Describe("Garbage collection", func() {
	var ns string
	var owner *corev1.ConfigMap
	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		var err error
		owner, err = client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		ownedBy(ctx, ns, owner, "dep-1", "dep-2")
	})

	It("deletes dependents in the background once their owner is gone", func(ctx SpecContext) {
		Expect(client.CoreV1().ConfigMaps(ns).Delete(ctx, "owner", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})).To(Succeed())
		Expect(gone(ctx, ns, "owner")()).To(BeTrue())
		Eventually(gone(ctx, ns, "dep-1")).Should(BeTrue())
		Eventually(gone(ctx, ns, "dep-2")).Should(BeTrue())
	})

	It("deletes dependents first in the foreground, then the owner", func(ctx SpecContext) {
		Expect(client.CoreV1().ConfigMaps(ns).Delete(ctx, "owner", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)})).To(Succeed())
		Eventually(gone(ctx, ns, "dep-1")).Should(BeTrue())
		Eventually(gone(ctx, ns, "dep-2")).Should(BeTrue())
		Eventually(gone(ctx, ns, "owner")).Should(BeTrue())
	})

	It("orphans dependents, dropping their owner references", func(ctx SpecContext) {
		Expect(client.CoreV1().ConfigMaps(ns).Delete(ctx, "owner", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationOrphan)})).To(Succeed())
		Eventually(gone(ctx, ns, "owner")).Should(BeTrue())
		for _, n := range []string{"dep-1", "dep-2"} {
			Eventually(func(g Gomega) {
				cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, n, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(cm.OwnerReferences).To(BeEmpty())
			}).Should(Succeed(), fmt.Sprintf("dependent %s", n))
		}
	})

	It("keeps a dependent another owner still holds, dropping only the gone owner", func(ctx SpecContext) {
		other, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		shared := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shared", OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID},
			{APIVersion: "v1", Kind: "ConfigMap", Name: other.Name, UID: other.UID}}}}
		_, err = client.CoreV1().ConfigMaps(ns).Create(ctx, shared, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(client.CoreV1().ConfigMaps(ns).Delete(ctx, "owner", metav1.DeleteOptions{})).To(Succeed())
		Eventually(gone(ctx, ns, "dep-1")).Should(BeTrue())
		Eventually(func(g Gomega) {
			cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "shared", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cm.OwnerReferences).To(HaveLen(1))
			g.Expect(cm.OwnerReferences[0].Name).To(Equal("other"))
		}).Should(Succeed())
	})
})
