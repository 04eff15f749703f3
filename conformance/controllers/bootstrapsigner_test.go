package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/cluster-bootstrap/token/jws"
)

var _ = Describe("Bootstrap signer", func() {
	// token creates a bootstrap token Secret and returns its id and secret.
	token := func(ctx SpecContext, data map[string]string) (string, string) {
		GinkgoHelper()
		id, secret := utilrand.String(6), utilrand.String(16)
		values := map[string]string{"token-id": id, "token-secret": secret}
		for k, v := range data {
			values[k] = v
		}
		_, err := client.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id, Namespace: "kube-system"},
			Type:       "bootstrap.kubernetes.io/token", StringData: values}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_ = client.CoreV1().Secrets("kube-system").Delete(ctx, "bootstrap-token-"+id, metav1.DeleteOptions{})
		})
		return id, secret
	}
	clusterInfo := func(ctx SpecContext) map[string]string {
		GinkgoHelper()
		cm, err := client.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		return cm.Data
	}

	It("signs cluster-info with every signing token, and drops the signature of a token that goes", func(ctx SpecContext) {
		Expect(clusterInfo(ctx)).To(HaveKey("kubeconfig"))
		id, secret := token(ctx, map[string]string{"usage-bootstrap-signing": "true"})
		authOnly, _ := token(ctx, map[string]string{"usage-bootstrap-authentication": "true"})
		expired, _ := token(ctx, map[string]string{"usage-bootstrap-signing": "true", "expiration": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)})
		Eventually(func(g Gomega) {
			data := clusterInfo(ctx)
			g.Expect(data).To(HaveKey("jws-kubeconfig-" + id))
			g.Expect(jws.DetachedTokenIsValid(data["jws-kubeconfig-"+id], data["kubeconfig"], id, secret)).To(BeTrue())
		}).Should(Succeed())
		data := clusterInfo(ctx)
		Expect(data).NotTo(HaveKey("jws-kubeconfig-" + authOnly))
		Expect(data).NotTo(HaveKey("jws-kubeconfig-" + expired))

		Expect(client.CoreV1().Secrets("kube-system").Delete(ctx, "bootstrap-token-"+id, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() map[string]string { return clusterInfo(ctx) }).ShouldNot(HaveKey("jws-kubeconfig-" + id))
	})
})
