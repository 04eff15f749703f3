package certificates

import (
	"context"
	"crypto/x509"
	"fmt"

	"github.com/keelson/keelson/controllers/manager"
	authorizationv1 "k8s.io/api/authorization/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// recognizer is one kind of request the approver knows: how to recognize it, the permission its
// requester needs, and the message of its approval.
type recognizer struct {
	recognize  func(csr *certificatesv1.CertificateSigningRequest, req *x509.CertificateRequest) bool
	permission authorizationv1.ResourceAttributes
	message    string
}

// recognizers are upstream's, in its order: a node renewing its own client certificate, then any
// kubelet client certificate (a bootstrapper's first request).
var recognizers = []recognizer{
	{
		recognize:  isSelfNodeClient,
		permission: authorizationv1.ResourceAttributes{Group: "certificates.k8s.io", Resource: "certificatesigningrequests", Verb: "create", Subresource: "selfnodeclient"},
		message:    "Auto approving self kubelet client certificate after SubjectAccessReview.",
	},
	{
		recognize:  isNodeClient,
		permission: authorizationv1.ResourceAttributes{Group: "certificates.k8s.io", Resource: "certificatesigningrequests", Verb: "create", Subresource: "nodeclient"},
		message:    "Auto approving kubelet client certificate after SubjectAccessReview.",
	},
}

func isNodeClient(csr *certificatesv1.CertificateSigningRequest, req *x509.CertificateRequest) bool {
	return csr.Spec.SignerName == certificatesv1.KubeAPIServerClientKubeletSignerName && validateKubeletClient(req, csr.Spec.Usages) == nil
}

func isSelfNodeClient(csr *certificatesv1.CertificateSigningRequest, req *x509.CertificateRequest) bool {
	return csr.Spec.Username == req.Subject.CommonName && isNodeClient(csr, req)
}

type approver struct {
	client kubernetes.Interface
}

// NewApprover returns upstream's csrapproving controller.
func NewApprover(c *manager.Context) (manager.Controller, error) {
	a := &approver{client: c.Client}
	l, err := newCSRLoop(c, "csrapproving", 5, a.handle)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// errNotAuthorized says a recognized request's requester may not have it approved; the loop
// retries it, as upstream's does, in case a permission is granted meanwhile.
type errNotAuthorized struct {
	name  string
	tried []string
}

func (e errNotAuthorized) Error() string {
	return fmt.Sprintf("recognized csr %q as %v but subject access review was not approved", e.name, e.tried)
}

func (a *approver) handle(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error {
	if approved, denied := approvedOrDenied(csr); approved || denied {
		return nil
	}
	req, err := parseRequest(csr.Spec.Request)
	if err != nil {
		return fmt.Errorf("unable to parse csr %q: %v", csr.Name, err)
	}
	var tried []string
	for _, r := range recognizers {
		if !r.recognize(csr, req) {
			continue
		}
		tried = append(tried, r.permission.Subresource)
		allowed, err := a.authorized(ctx, csr, r.permission)
		if err != nil {
			return err
		}
		if !allowed {
			continue
		}
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "AutoApproved", Message: r.message,
		})
		if _, err := a.client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("error updating approval for csr: %v", err)
		}
		return nil
	}
	if len(tried) > 0 {
		return errNotAuthorized{name: csr.Name, tried: tried}
	}
	return nil
}

// authorized asks the API server, by a SubjectAccessReview, whether the requester holds the
// permission.
func (a *approver) authorized(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, permission authorizationv1.ResourceAttributes) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range csr.Spec.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: csr.Spec.Username, UID: csr.Spec.UID, Groups: csr.Spec.Groups, Extra: extra, ResourceAttributes: &permission,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return sar.Status.Allowed, nil
}
