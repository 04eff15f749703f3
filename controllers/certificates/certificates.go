// Package certificates runs the controllers of CertificateSigningRequests, as upstream's
// kube-controller-manager does: csrapproving auto-approves kubelet client certificates whose
// requester is authorized, csrsigning signs approved requests for the kubernetes.io signers with
// the cluster CA, and csrcleaner deletes old requests.
package certificates

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/sets"
	certlisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/cache"
)

// csrLoop is the shape upstream's certificate controllers share: every added, changed or deleted
// request is a key, and handle sees a copy of each request that has no certificate yet.
type csrLoop struct {
	*manager.Loop
	lister certlisters.CertificateSigningRequestLister
	handle func(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error
}

func newCSRLoop(c *manager.Context, name string, workers int, handle func(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error) (*csrLoop, error) {
	inf := c.Informers.Certificates().V1().CertificateSigningRequests()
	l := &csrLoop{lister: inf.Lister(), handle: handle}
	l.Loop = manager.NewLoop(name, workers, c.Log, l.sync)
	l.Synced = []cache.InformerSynced{inf.Informer().HasSynced}
	enqueue := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		if csr, ok := o.(*certificatesv1.CertificateSigningRequest); ok {
			l.Enqueue(csr.Name)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	}); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *csrLoop) sync(ctx context.Context, name string) (time.Duration, error) {
	csr, err := l.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(csr.Status.Certificate) > 0 {
		return 0, nil
	}
	return 0, l.handle(ctx, csr.DeepCopy())
}

// conditionTrue tells whether the request has a condition of type t with status True.
func conditionTrue(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// approvedOrDenied reads the approval conditions as upstream does: any Approved or Denied
// condition counts, whatever its status (the API allows only True).
func approvedOrDenied(csr *certificatesv1.CertificateSigningRequest) (approved, denied bool) {
	for _, c := range csr.Status.Conditions {
		switch c.Type {
		case certificatesv1.CertificateApproved:
			approved = true
		case certificatesv1.CertificateDenied:
			denied = true
		}
	}
	return approved, denied
}

// Errors of the kubelet certificate checks, with upstream's wording.
var (
	errOrganizationNotNodes = errors.New("subject organization is not system:nodes")
	//lint:ignore ST1005 upstream's message, which clients see in the Failed condition
	errCommonNameNotNode = errors.New("subject common name does not begin with system:node:")
	errDNSOrIPRequired   = errors.New("DNS or IP subjectAltName is required")
	errDNSNotAllowed     = errors.New("DNS subjectAltNames are not allowed")
	//lint:ignore ST1005 upstream's message, which clients see in the Failed condition
	errEmailNotAllowed = errors.New("Email subjectAltNames are not allowed")
	errIPNotAllowed    = errors.New("IP subjectAltNames are not allowed")
	errURINotAllowed   = errors.New("URI subjectAltNames are not allowed")
)

// The usage sets a kubelet certificate may ask for: with key encipherment (RSA keys) or without.
var (
	kubeletClientUsages      = usageSet(certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageClientAuth)
	kubeletClientUsagesNoRSA = usageSet(certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth)
	kubeletServingUsages     = usageSet(certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth)
	kubeletServingUsagesNoRS = usageSet(certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth)
)

func usageSet(usages ...certificatesv1.KeyUsage) sets.Set[string] {
	s := sets.New[string]()
	for _, u := range usages {
		s.Insert(string(u))
	}
	return s
}

func onlyNodesOrganization(req *x509.CertificateRequest) bool {
	return len(req.Subject.Organization) == 1 && req.Subject.Organization[0] == "system:nodes"
}

func hasNodePrefix(cn string) bool { return strings.HasPrefix(cn, "system:node:") }

// parseRequest reads spec.request, a PEM-encoded PKCS#10 request.
func parseRequest(data []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("PEM block type must be CERTIFICATE REQUEST")
	}
	return x509.ParseCertificateRequest(block.Bytes)
}

// validateKubeletClient is upstream's check of a kubelet client certificate request: organization
// system:nodes, common name system:node:<name>, no subject alternative names, client usages.
func validateKubeletClient(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) error {
	if !onlyNodesOrganization(req) {
		return errOrganizationNotNodes
	}
	switch {
	case len(req.DNSNames) > 0:
		return errDNSNotAllowed
	case len(req.EmailAddresses) > 0:
		return errEmailNotAllowed
	case len(req.IPAddresses) > 0:
		return errIPNotAllowed
	case len(req.URIs) > 0:
		return errURINotAllowed
	}
	if !hasNodePrefix(req.Subject.CommonName) {
		return errCommonNameNotNode
	}
	got := usageSet(usages...)
	if !got.Equal(kubeletClientUsages) && !got.Equal(kubeletClientUsagesNoRSA) {
		return fmt.Errorf("usages did not match %v", sets.List(kubeletClientUsages))
	}
	return nil
}

// validateKubeletServing is upstream's check of a kubelet serving certificate request:
// organization system:nodes, DNS or IP names only, server usages, common name system:node:<name>.
func validateKubeletServing(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) error {
	if !onlyNodesOrganization(req) {
		return errOrganizationNotNodes
	}
	switch {
	case len(req.DNSNames) == 0 && len(req.IPAddresses) == 0:
		return errDNSOrIPRequired
	case len(req.EmailAddresses) > 0:
		return errEmailNotAllowed
	case len(req.URIs) > 0:
		return errURINotAllowed
	}
	got := usageSet(usages...)
	if !got.Equal(kubeletServingUsages) && !got.Equal(kubeletServingUsagesNoRS) {
		return fmt.Errorf("usages did not match %v", sets.List(kubeletServingUsages))
	}
	if !hasNodePrefix(req.Subject.CommonName) {
		return errCommonNameNotNode
	}
	return nil
}

// validateAPIServerClient allows client auth, with digital signature and key encipherment
// optional, and nothing else.
func validateAPIServerClient(usages []certificatesv1.KeyUsage) error {
	clientAuth := false
	for _, u := range usages {
		switch u {
		case certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment:
		case certificatesv1.UsageClientAuth:
			clientAuth = true
		default:
			return fmt.Errorf("invalid usage for client certificate: %s", u)
		}
	}
	if !clientAuth {
		return fmt.Errorf("missing required usage for client certificate: %s", certificatesv1.UsageClientAuth)
	}
	return nil
}
