package controllers

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var _ = Describe("Every namespace", func() {
	It("gets a default ServiceAccount and the kube-root-ca.crt ConfigMap, and gets them back when deleted", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		Eventually(func() error {
			_, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err
		}).Should(Succeed())
		var cm *corev1.ConfigMap
		Eventually(func() (err error) {
			cm, err = client.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			return err
		}).Should(Succeed())
		Expect(cm.Data["ca.crt"]).To(HavePrefix("-----BEGIN CERTIFICATE-----"))
		if len(testCluster.Config.CAData) > 0 {
			Expect(cm.Data["ca.crt"]).To(Equal(string(testCluster.Config.CAData)))
		}
		Expect(cm.Annotations).To(HaveKeyWithValue("kubernetes.io/description", ContainSubstring("Contains a CA bundle")))

		Expect(client.CoreV1().ServiceAccounts(ns).Delete(ctx, "default", metav1.DeleteOptions{})).To(Succeed())
		Expect(client.CoreV1().ConfigMaps(ns).Delete(ctx, "kube-root-ca.crt", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() error {
			_, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err
		}).Should(Succeed())
		Eventually(func() error {
			_, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			return err
		}).Should(Succeed())
	})
})

var _ = Describe("Namespace deletion", func() {
	It("removes everything in the namespace, then the namespace", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		for _, name := range []string{"a", "b"} {
			_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		_, err := client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() bool {
			_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).Should(BeTrue())
		list, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(BeEmpty())
	})

	It("waits on content finalizers and says so in its conditions", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			got, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Phase).To(Equal(corev1.NamespaceTerminating))
			var remaining, finalizers *corev1.NamespaceCondition
			for i, c := range got.Status.Conditions {
				switch c.Type {
				case corev1.NamespaceContentRemaining:
					remaining = &got.Status.Conditions[i]
				case corev1.NamespaceFinalizersRemaining:
					finalizers = &got.Status.Conditions[i]
				}
			}
			g.Expect(remaining).NotTo(BeNil())
			g.Expect(remaining.Status).To(Equal(corev1.ConditionTrue))
			g.Expect(remaining.Message).To(Equal("Some resources are remaining: configmaps. has 1 resource instances"), "upstream counts by group-qualified resource")
			g.Expect(finalizers).NotTo(BeNil())
			g.Expect(finalizers.Message).To(Equal("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"))
		}).Should(Succeed())
		_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, "held", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() bool {
			_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).Should(BeTrue())
	})
})

var _ = Describe("Leader election", func() {
	It("holds the kube-controller-manager Lease", func(ctx SpecContext) {
		Eventually(func(g Gomega) {
			lease, err := client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
			g.Expect(strings.Contains(*lease.Spec.HolderIdentity, "_")).To(BeTrue())
		}).Should(Succeed())
	})
})
