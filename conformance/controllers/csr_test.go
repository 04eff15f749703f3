package controllers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// csrRequest is what a spec asks to have signed.
type csrRequest struct {
	subject   pkix.Name
	dnsNames  []string
	signer    string
	usages    []certificatesv1.KeyUsage
	expiresIn *int32
}

// createCSR generates a key and a CertificateSigningRequest for it, creates it as the suite's
// admin, and deletes it when the spec ends.
func createCSR(ctx context.Context, r csrRequest) (*certificatesv1.CertificateSigningRequest, *ecdsa.PrivateKey) {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: r.subject, DNSNames: r.dnsNames}, key)
	Expect(err).NotTo(HaveOccurred())
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "keelson-csr-" + utilrand.String(6)},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:           pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName:        r.signer,
			Usages:            r.usages,
			ExpirationSeconds: r.expiresIn,
		},
	}
	created, err := client.CertificatesV1().CertificateSigningRequests().Create(ctx, csr, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		_ = client.CertificatesV1().CertificateSigningRequests().Delete(ctx, created.Name, metav1.DeleteOptions{})
	})
	return created, key
}

// setApproval adds an Approved or Denied condition through the approval subresource, as
// `kubectl certificate approve|deny` does.
func setApproval(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType, reason string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		cur, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, csr.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		cur.Status.Conditions = append(cur.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: "set by the conformance suite", LastUpdateTime: metav1.Now(),
		})
		_, err = client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, cur.Name, cur, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
}

// issued waits for the request's certificate and parses it.
func issued(ctx context.Context, name string) *x509.Certificate {
	GinkgoHelper()
	var data []byte
	Eventually(func(g Gomega) {
		cur, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cur.Status.Certificate).NotTo(BeEmpty())
		data = cur.Status.Certificate
	}).WithContext(ctx).WithTimeout(20 * time.Second).Should(Succeed())
	block, _ := pem.Decode(data)
	Expect(block).NotTo(BeNil())
	Expect(block.Type).To(Equal("CERTIFICATE"))
	cert, err := x509.ParseCertificate(block.Bytes)
	Expect(err).NotTo(HaveOccurred())
	return cert
}

// condition returns the request's condition of type t, or nil.
func condition(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) *certificatesv1.CertificateSigningRequestCondition {
	for i := range csr.Status.Conditions {
		if csr.Status.Conditions[i].Type == t {
			return &csr.Status.Conditions[i]
		}
	}
	return nil
}

// clusterCAs is the bundle the cluster publishes to every namespace as kube-root-ca.crt.
func clusterCAs(ctx context.Context) *x509.CertPool {
	GinkgoHelper()
	ns := newNamespace(ctx)
	var bundle string
	Eventually(func(g Gomega) {
		cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		bundle = cm.Data["ca.crt"]
	}).WithContext(ctx).Should(Succeed())
	pool := x509.NewCertPool()
	Expect(pool.AppendCertsFromPEM([]byte(bundle))).To(BeTrue())
	return pool
}

var _ = Describe("Certificate signing requests", func() {
	It("records the requester, and issues an approved client certificate that chains to the cluster CA and authenticates as its subject", func(ctx SpecContext) {
		me, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		user := "keelson-csr-user-" + utilrand.String(5)
		expires := int32(3600)
		csr, key := createCSR(ctx, csrRequest{
			subject: pkix.Name{CommonName: user, Organization: []string{"keelson-csr-group"}},
			signer:  certificatesv1.KubeAPIServerClientSignerName, usages: []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth},
			expiresIn: &expires,
		})
		Expect(csr.Spec.Username).To(Equal(me.Status.UserInfo.Username))
		Expect(csr.Spec.Groups).To(ConsistOf(me.Status.UserInfo.Groups))
		Expect(csr.Status.Conditions).To(BeEmpty())

		before := time.Now()
		setApproval(ctx, csr, certificatesv1.CertificateApproved, "KubectlApprove")
		cert := issued(ctx, csr.Name)
		Expect(cert.Subject.CommonName).To(Equal(user))
		Expect(cert.Subject.Organization).To(Equal([]string{"keelson-csr-group"}))
		Expect(cert.ExtKeyUsage).To(Equal([]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}))
		Expect(cert.IsCA).To(BeFalse())
		// Backdated by 5 minutes; a short-lived certificate keeps its whole requested hour.
		Expect(cert.NotBefore).To(BeTemporally("~", before.Add(-5*time.Minute), time.Minute))
		Expect(cert.NotAfter.Sub(cert.NotBefore)).To(BeNumerically("~", 65*time.Minute, 2*time.Second))
		_, err = cert.Verify(x509.VerifyOptions{Roots: clusterCAs(ctx), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		Expect(err).NotTo(HaveOccurred())

		keyDER, err := x509.MarshalECPrivateKey(key)
		Expect(err).NotTo(HaveOccurred())
		cfg := rest.AnonymousClientConfig(testCluster.Config)
		cfg.CertData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
		cfg.KeyData = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
		asUser, err := kubernetes.NewForConfig(cfg)
		Expect(err).NotTo(HaveOccurred())
		whoami, err := asUser.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(whoami.Status.UserInfo.Username).To(Equal(user))
		Expect(whoami.Status.UserInfo.Groups).To(ContainElements("keelson-csr-group", "system:authenticated"))
	})

	It("auto-approves and signs a kubelet client certificate requested by an authorized user", func(ctx SpecContext) {
		node := "system:node:keelson-csr-" + utilrand.String(5)
		csr, _ := createCSR(ctx, csrRequest{
			subject: pkix.Name{CommonName: node, Organization: []string{"system:nodes"}},
			signer:  certificatesv1.KubeAPIServerClientKubeletSignerName,
			usages:  []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		})
		cert := issued(ctx, csr.Name)
		Expect(cert.Subject.CommonName).To(Equal(node))
		Expect(cert.KeyUsage).To(Equal(x509.KeyUsageDigitalSignature))
		got, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, csr.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		approved := condition(got, certificatesv1.CertificateApproved)
		Expect(approved).NotTo(BeNil())
		// The suite's admin is not the node, so it is the bootstrap (nodeclient) permission that holds.
		Expect(approved.Status).To(Equal(corev1.ConditionTrue))
		Expect(approved.Reason).To(Equal("AutoApproved"))
		Expect(approved.Message).To(Equal("Auto approving kubelet client certificate after SubjectAccessReview."))
		Expect(approved.LastUpdateTime.IsZero()).To(BeFalse())
		Expect(approved.LastTransitionTime.IsZero()).To(BeFalse())
	})

	It("leaves pending a kubelet client request that is not a node's, and signs no denied request", func(ctx SpecContext) {
		notNode, _ := createCSR(ctx, csrRequest{
			subject: pkix.Name{CommonName: "keelson-not-a-node", Organization: []string{"system:nodes"}},
			signer:  certificatesv1.KubeAPIServerClientKubeletSignerName,
			usages:  []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		})
		denied, _ := createCSR(ctx, csrRequest{
			subject: pkix.Name{CommonName: "keelson-denied"},
			signer:  certificatesv1.KubeAPIServerClientSignerName, usages: []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth},
		})
		setApproval(ctx, denied, certificatesv1.CertificateDenied, "KubectlDeny")
		Consistently(func(g Gomega) {
			for _, name := range []string{notNode.Name, denied.Name} {
				cur, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(cur.Status.Certificate).To(BeEmpty())
				g.Expect(condition(cur, certificatesv1.CertificateApproved)).To(BeNil())
			}
		}).WithContext(ctx).WithTimeout(3 * time.Second).Should(Succeed())
	})

	It("marks Failed an approved request its signer refuses", func(ctx SpecContext) {
		csr, _ := createCSR(ctx, csrRequest{
			subject: pkix.Name{CommonName: "keelson-server-usage"},
			signer:  certificatesv1.KubeAPIServerClientSignerName, usages: []certificatesv1.KeyUsage{certificatesv1.UsageServerAuth},
		})
		setApproval(ctx, csr, certificatesv1.CertificateApproved, "KubectlApprove")
		Eventually(func(g Gomega) {
			cur, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, csr.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			failed := condition(cur, certificatesv1.CertificateFailed)
			g.Expect(failed).NotTo(BeNil())
			g.Expect(failed.Status).To(Equal(corev1.ConditionTrue))
			g.Expect(failed.Reason).To(Equal("SignerValidationFailure"))
			g.Expect(failed.Message).To(Equal("invalid usage for client certificate: server auth"))
			g.Expect(cur.Status.Certificate).To(BeEmpty())
		}).WithContext(ctx).WithTimeout(20 * time.Second).Should(Succeed())
	})

	It("issues an approved kubelet serving certificate with its DNS names and caps a long request at the signing duration", func(ctx SpecContext) {
		long := int32(10 * 365 * 24 * 3600)
		csr, _ := createCSR(ctx, csrRequest{
			subject:  pkix.Name{CommonName: "system:node:keelson-serving", Organization: []string{"system:nodes"}},
			dnsNames: []string{"keelson-serving.example"},
			signer:   certificatesv1.KubeletServingSignerName,
			usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment,
				certificatesv1.UsageServerAuth},
			expiresIn: &long,
		})
		setApproval(ctx, csr, certificatesv1.CertificateApproved, "KubectlApprove")
		cert := issued(ctx, csr.Name)
		Expect(cert.DNSNames).To(Equal([]string{"keelson-serving.example"}))
		Expect(cert.ExtKeyUsage).To(Equal([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}))
		Expect(cert.KeyUsage).To(Equal(x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment))
		// No longer than the default --cluster-signing-duration of a year.
		Expect(cert.NotAfter.Sub(cert.NotBefore)).To(BeNumerically("<=", 365*24*time.Hour))
	})

	It("keeps approval and issuance apart: a status write cannot approve, an approval write cannot issue", func(ctx SpecContext) {
		csr, _ := createCSR(ctx, csrRequest{
			subject: pkix.Name{CommonName: "keelson-separation"},
			signer:  "example.com/keelson-none", usages: []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth},
		})
		csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "ByStatus"}}
		_, err := client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, csr, metav1.UpdateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring(`status.conditions: Forbidden: updates may not add a condition of type "Approved"`))
		got, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, csr.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(condition(got, certificatesv1.CertificateApproved)).To(BeNil())

		got.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "ByApproval"}}
		got.Status.Certificate = []byte("not a certificate")
		got, err = client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, got.Name, got, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Status.Certificate).To(BeEmpty())
		approved := condition(got, certificatesv1.CertificateApproved)
		Expect(approved).NotTo(BeNil())
		Expect(approved.Reason).To(Equal("ByApproval"))
		Expect(approved.LastUpdateTime.IsZero()).To(BeFalse())
	})
})
