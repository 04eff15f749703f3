package api

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// tokenClient is a client that authenticates with a bearer token only.
func tokenClient(token string) kubernetes.Interface {
	cfg := rest.AnonymousClientConfig(testCluster.Config)
	cfg.BearerToken = token
	return kubernetes.NewForConfigOrDie(cfg)
}

var _ = Describe("Service account tokens", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("issues tokens that authenticate as the account, with no permissions granted yet", func(ctx SpecContext) {
		_, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		tr, err := client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "robot",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(tr.Status.Token).NotTo(BeEmpty())
		Expect(tr.Status.ExpirationTimestamp.Time).To(BeTemporally(">", tr.CreationTimestamp.Time))

		robot := tokenClient(tr.Status.Token)
		who, err := robot.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		username := "system:serviceaccount:" + ns + ":robot"
		Expect(who.Status.UserInfo.Username).To(Equal(username))
		Expect(who.Status.UserInfo.Groups).To(ContainElements("system:serviceaccounts", "system:serviceaccounts:"+ns, "system:authenticated"))

		_, err = robot.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`pods is forbidden: User "` + username + `" cannot list resource "pods" in API group "" in the namespace "` + ns + `"`))
		_, err = robot.AppsV1().Deployments(ns).Get(ctx, "x", metav1.GetOptions{})
		Expect(err.Error()).To(Equal(`deployments.apps "x" is forbidden: User "` + username + `" cannot get resource "deployments" in API group "apps" in the namespace "` + ns + `"`))
		_, err = robot.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		Expect(err.Error()).To(Equal(`nodes is forbidden: User "` + username + `" cannot list resource "nodes" in API group "" at the cluster scope`))

		review, err := robot.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "pods"}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(review.Status.Allowed).To(BeFalse())
		_, err = robot.Discovery().ServerVersion()
		Expect(err).NotTo(HaveOccurred())

		reviewed, err := client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: tr.Status.Token}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(reviewed.Status.Authenticated).To(BeTrue())
		Expect(reviewed.Status.User.Username).To(Equal(username))

		// A token outlives nothing it names: once the account is gone, it no longer authenticates.
		Expect(client.CoreV1().ServiceAccounts(ns).Delete(ctx, "robot", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() bool {
			_, err := robot.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			return apierrors.IsUnauthorized(err)
		}).Should(BeTrue())
	})

	It("refuses token lifetimes under ten minutes and binds tokens to existing objects only", func(ctx SpecContext) {
		_, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "robot",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](60)}}, metav1.CreateOptions{})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"))
		_, err = client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "robot", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "missing"}}}, metav1.CreateOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
		_, err = client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "nobody", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
	})

	It("answers a request with an invalid bearer token with 401", func(ctx SpecContext) {
		_, err := tokenClient("not-a-token").CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		Expect(apierrors.IsUnauthorized(err)).To(BeTrue(), "%v", err)
	})
})
