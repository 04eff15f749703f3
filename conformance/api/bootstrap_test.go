package api

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
	authorizationv1 "k8s.io/api/authorization/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// kubeadmGroup is the extra group of kubeadm's default tokens, which a kubeadm cluster
// auto-approves node client certificates for; tokens made here carry it so that the specs hold
// there too.
const kubeadmGroup = "system:bootstrappers:kubeadm:default-node-token"

// newBootstrapToken creates the Secret of a bootstrap token, with data over the defaults (an
// authentication token valid for an hour, in kubeadm's group); an empty value removes a key.
func newBootstrapToken(ctx context.Context, data map[string]string) (id, token string) {
	GinkgoHelper()
	id, secret := randomToken(6), randomToken(16)
	values := map[string]string{
		"token-id": id, "token-secret": secret, "usage-bootstrap-authentication": "true",
		"expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "auth-extra-groups": kubeadmGroup,
	}
	for k, v := range data {
		if v == "" {
			delete(values, k)
		} else {
			values[k] = v
		}
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id, Namespace: "kube-system"},
		Type: "bootstrap.kubernetes.io/token", StringData: values}
	_, err := client.CoreV1().Secrets("kube-system").Create(ctx, s, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		_ = client.CoreV1().Secrets("kube-system").Delete(ctx, s.Name, metav1.DeleteOptions{})
	})
	return id, id + "." + secret
}

// randomToken is n characters of [a-z0-9].
func randomToken(n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[utilrand.Intn(len(chars))]
	}
	return string(b)
}

func whoAmI(ctx context.Context, c kubernetes.Interface) (authenticationv1.UserInfo, error) {
	r, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	return r.Status.UserInfo, nil
}

// nodeCSR is a kubelet client certificate request for system:node:<name>, and its key.
func nodeCSR(name string) (*certificatesv1.CertificateSigningRequest, []byte) {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}}}, key)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalECPrivateKey(key)
	Expect(err).NotTo(HaveOccurred())
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "node-csr-"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		},
	}, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// joinNode does a kubelet's TLS bootstrap with a fresh token: it returns the CSR as signed and
// a client with the node's certificate.
func joinNode(ctx context.Context, name string) (*certificatesv1.CertificateSigningRequest, kubernetes.Interface) {
	GinkgoHelper()
	_, token := newBootstrapToken(ctx, nil)
	boot := tokenClient(token)
	req, key := nodeCSR(name)
	csr, err := boot.CertificatesV1().CertificateSigningRequests().Create(ctx, req, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		_ = client.CertificatesV1().CertificateSigningRequests().Delete(ctx, csr.Name, metav1.DeleteOptions{})
	})
	Eventually(func(g Gomega) {
		csr, err = boot.CertificatesV1().CertificateSigningRequests().Get(ctx, csr.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(csr.Status.Certificate).NotTo(BeEmpty())
	}).Should(Succeed())
	cfg := rest.AnonymousClientConfig(testCluster.Config)
	cfg.CertData, cfg.KeyData = csr.Status.Certificate, key
	return csr, kubernetes.NewForConfigOrDie(cfg)
}

var _ = Describe("Bootstrap tokens", func() {
	It("authenticate as system:bootstrap:<id> in system:bootstrappers and the token's extra groups", func(ctx SpecContext) {
		id, token := newBootstrapToken(ctx, map[string]string{"auth-extra-groups": kubeadmGroup + ",system:bootstrappers:keelson-test"})
		who, err := whoAmI(ctx, tokenClient(token))
		Expect(err).NotTo(HaveOccurred())
		Expect(who.Username).To(Equal("system:bootstrap:" + id))
		Expect(who.Groups).To(ConsistOf("system:bootstrappers", kubeadmGroup, "system:bootstrappers:keelson-test", "system:authenticated"))

		// A TokenReview says the same, for the API server's own audience.
		review, err := client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(review.Status.Authenticated).To(BeTrue())
		Expect(review.Status.User.Username).To(Equal("system:bootstrap:" + id))
		Expect(review.Status.User.Groups).To(ConsistOf(who.Groups))
		Expect(review.Status.Audiences).NotTo(BeEmpty())
		review, err = client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{
			Token: token, Audiences: []string{"keelson-test-audience"}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(review.Status.Authenticated).To(BeFalse())
	})

	It("are refused with 401 when the secret is wrong, the token expired, is not for authentication, is unknown or is deleted", func(ctx SpecContext) {
		unauthorized := func(token string) {
			GinkgoHelper()
			_, err := whoAmI(ctx, tokenClient(token))
			Expect(apierrors.IsUnauthorized(err)).To(BeTrue(), "%v", err)
		}
		id, _ := newBootstrapToken(ctx, nil)
		unauthorized(id + "." + randomToken(16))
		_, expired := newBootstrapToken(ctx, map[string]string{"expiration": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)})
		unauthorized(expired)
		_, signing := newBootstrapToken(ctx, map[string]string{"usage-bootstrap-authentication": "", "usage-bootstrap-signing": "true"})
		unauthorized(signing)
		unauthorized(randomToken(6) + "." + randomToken(16))

		id, token := newBootstrapToken(ctx, nil)
		_, err := whoAmI(ctx, tokenClient(token))
		Expect(err).NotTo(HaveOccurred())
		Expect(client.CoreV1().Secrets("kube-system").Delete(ctx, "bootstrap-token-"+id, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() bool {
			_, err := whoAmI(ctx, tokenClient(token))
			return apierrors.IsUnauthorized(err)
		}).Should(BeTrue())
	})
})

var _ = Describe("Joining nodes", func() {
	It("let a bootstrapper request a kubelet client certificate, auto-approved and signed, and nothing more", func(ctx SpecContext) {
		id, token := newBootstrapToken(ctx, nil)
		user := "system:bootstrap:" + id
		boot := tokenClient(token)

		_, err := boot.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`pods is forbidden: User "` + user + `" cannot list resource "pods" in API group "" at the cluster scope`))
		_, err = boot.CoreV1().Secrets("kube-system").Get(ctx, "bootstrap-token-"+id, metav1.GetOptions{})
		Expect(err.Error()).To(Equal(`secrets "bootstrap-token-` + id + `" is forbidden: User "` + user + `" cannot get resource "secrets" in API group "" in the namespace "kube-system"`))

		name := "join-" + randomToken(6)
		req, _ := nodeCSR(name)
		csr, err := boot.CertificatesV1().CertificateSigningRequests().Create(ctx, req, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_ = client.CertificatesV1().CertificateSigningRequests().Delete(ctx, csr.Name, metav1.DeleteOptions{})
		})
		Expect(csr.Spec.Username).To(Equal(user))
		Expect(csr.Spec.Groups).To(ContainElements("system:bootstrappers", "system:authenticated"))
		_, err = boot.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())

		rules, err := boot.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
			Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: "default"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(rules.Status.ResourceRules).To(ContainElement(And(
			HaveField("APIGroups", ConsistOf("certificates.k8s.io")), HaveField("Resources", ConsistOf("certificatesigningrequests/nodeclient")))))

		// A bootstrapper may not approve its own request.
		approve := csr.DeepCopy()
		approve.Status.Conditions = append(approve.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "SelfApproved"})
		_, err = boot.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, approve, metav1.UpdateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`certificatesigningrequests.certificates.k8s.io "` + csr.Name + `" is forbidden: User "` + user +
			`" cannot update resource "certificatesigningrequests/approval" in API group "certificates.k8s.io" at the cluster scope`))

		Eventually(func(g Gomega) {
			csr, err = boot.CertificatesV1().CertificateSigningRequests().Get(ctx, csr.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(csr.Status.Certificate).NotTo(BeEmpty())
		}).Should(Succeed())
		var approved *certificatesv1.CertificateSigningRequestCondition
		for i, c := range csr.Status.Conditions {
			if c.Type == certificatesv1.CertificateApproved {
				approved = &csr.Status.Conditions[i]
			}
		}
		Expect(approved).NotTo(BeNil())
		Expect(approved.Reason).To(Equal("AutoApproved"))
		Expect(approved.Message).To(Equal("Auto approving kubelet client certificate after SubjectAccessReview."))

		// The approver asked for certificatesigningrequests/nodeclient, which bootstrappers hold.
		review, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: csr.Spec.Groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Group: "certificates.k8s.io", Resource: "certificatesigningrequests", Subresource: "nodeclient", Verb: "create"},
		}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(review.Status.Allowed).To(BeTrue())
	})

	It("let a node do what its kubelet does for itself, and refuse what concerns other nodes", func(ctx SpecContext) {
		name, other := "join-"+randomToken(6), "join-other-"+randomToken(6)
		csr, node := joinNode(ctx, name)
		Expect(csr.Spec.Username).To(HavePrefix("system:bootstrap:"))
		user := "system:node:" + name
		who, err := whoAmI(ctx, node)
		Expect(err).NotTo(HaveOccurred())
		Expect(who.Username).To(Equal(user))
		Expect(who.Groups).To(ConsistOf("system:nodes", "system:authenticated"))
		DeferCleanup(func(ctx SpecContext) {
			_ = client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
			_ = client.CoreV1().Nodes().Delete(ctx, other, metav1.DeleteOptions{})
			_ = client.CoordinationV1().Leases("kube-node-lease").Delete(ctx, name, metav1.DeleteOptions{})
			_ = client.CoordinationV1().Leases("kube-node-lease").Delete(ctx, other, metav1.DeleteOptions{})
		})

		// A node's permissions follow its pods: they cannot be listed.
		rules, err := node.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
			Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: "default"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(rules.Status.Incomplete).To(BeTrue())

		// Its own Node, status and Lease.
		n, err := node.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		conditions := []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
		// Controllers write the new Node too (its podCIDR, taints): read, then write.
		Eventually(func() error {
			n, err = node.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			n.Status.Conditions = conditions
			_, err = node.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
			return err
		}).Should(Succeed())
		lease, err := node.CoordinationV1().Leases("kube-node-lease").Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To[int32](40)}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		lease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		_, err = node.CoordinationV1().Leases("kube-node-lease").Update(ctx, lease, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())

		// Its pods, the services, events.
		_, err = node.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", name).String()})
		Expect(err).NotTo(HaveOccurred())
		_, err = node.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		// A Node's events live in the default namespace, as the kubelet's recorder puts them.
		_, err = node.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e-" + name},
			InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: name}, Reason: "Starting", Message: "Starting kubelet.", Type: corev1.EventTypeNormal,
			Source: corev1.EventSource{Component: "kubelet", Host: name}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_ = client.CoreV1().Events(metav1.NamespaceDefault).Delete(ctx, "e-"+name, metav1.DeleteOptions{})
		})

		// Not other nodes'.
		_, err = node.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: other}}, metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`nodes "` + other + `" is forbidden: node "` + name + `" is not allowed to modify node "` + other + `"`))
		o, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: other}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		o.Status.Conditions = conditions
		_, err = node.CoreV1().Nodes().UpdateStatus(ctx, o, metav1.UpdateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`nodes "` + other + `" is forbidden: node "` + name + `" is not allowed to modify node "` + other + `"`))
		_, err = client.CoordinationV1().Leases("kube-node-lease").Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: other}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = node.CoordinationV1().Leases("kube-node-lease").Get(ctx, other, metav1.GetOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`leases.coordination.k8s.io "` + other + `" is forbidden: User "` + user +
			`" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "kube-node-lease": node: can only access node lease with the same name as the requesting node`))

		// Nor anything a kubelet does not do.
		ns := newNamespace(ctx)
		_, err = node.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "join-" + randomToken(6)}}, metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`namespaces is forbidden: User "` + user + `" cannot create resource "namespaces" in API group "" at the cluster scope`))
		_, err = node.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`secrets is forbidden: User "` + user + `" cannot create resource "secrets" in API group "" in the namespace "` + ns + `": node: can only read resources of this type`))
		// (Once the namespace's default service account exists, which admission looks up first.)
		Eventually(func() error {
			_, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err
		}).Should(Succeed())
		_, err = node.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
			Spec: corev1.PodSpec{NodeName: name, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`pods "p" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "` + name + `" can only create mirror pods`))
	})
})
