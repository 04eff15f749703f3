package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
)

var _ = Describe("Certificate signing requests", func() {
	newCSR := func(ctx SpecContext) string {
		GinkgoHelper()
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		Expect(err).NotTo(HaveOccurred())
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "keelson-cli-user"}}, key)
		Expect(err).NotTo(HaveOccurred())
		name := "keelson-cli-csr-" + utilrand.String(6)
		_, err = client.CertificatesV1().CertificateSigningRequests().Create(ctx, &certificatesv1.CertificateSigningRequest{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: certificatesv1.CertificateSigningRequestSpec{
				Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
				SignerName: certificatesv1.KubeAPIServerClientSignerName,
				Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_ = client.CertificatesV1().CertificateSigningRequests().Delete(ctx, name, metav1.DeleteOptions{})
		})
		return name
	}

	It("approves a request, which the cluster then signs, and denies another", func(ctx SpecContext) {
		approved, denied := newCSR(ctx), newCSR(ctx)
		_, rows := table(kubectl(ctx, "get", "csr", approved))
		Expect(row(rows, approved)).To(ContainElement("Pending"))

		Expect(kubectl(ctx, "certificate", "approve", approved)).To(Equal("certificatesigningrequest.certificates.k8s.io/" + approved + " approved\n"))
		Expect(kubectl(ctx, "certificate", "deny", denied)).To(Equal("certificatesigningrequest.certificates.k8s.io/" + denied + " denied\n"))
		Eventually(func(g Gomega) {
			csr, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, approved, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(csr.Status.Certificate).NotTo(BeEmpty())
		}).WithContext(ctx).WithTimeout(20 * time.Second).Should(Succeed())
		_, rows = table(kubectl(ctx, "get", "csr", approved, denied))
		Expect(row(rows, approved)).To(ContainElement("Approved,Issued"))
		Expect(row(rows, denied)).To(ContainElement("Denied"))

		csr, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, approved, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(csr.Status.Conditions).To(HaveLen(1))
		Expect(csr.Status.Conditions[0].Reason).To(Equal("KubectlApprove"))
		Expect(csr.Status.Conditions[0].Message).To(Equal("This CSR was approved by kubectl certificate approve."))
	})
})
