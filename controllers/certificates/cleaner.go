package certificates

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	certlisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/cache"
)

// The cleaner's periods, upstream's.
const (
	// cleanPeriod is how often every request is looked at.
	cleanPeriod = time.Hour
	// issuedKept is how long an approved request with its certificate is kept after approval.
	issuedKept = time.Hour
	// deniedKept is how long a denied or failed request is kept after the condition.
	deniedKept = time.Hour
	// pendingKept is how long a request nobody approved or denied is kept after creation.
	pendingKept = 24 * time.Hour
)

// cleanKey is the cleaner loop's only key: every pass looks at all requests.
const cleanKey = "csrs"

type cleaner struct {
	*manager.Loop
	client kubernetes.Interface
	lister certlisters.CertificateSigningRequestLister
	now    func() time.Time
}

// NewCleaner returns upstream's csrcleaner: every hour it deletes requests issued or denied or
// failed more than an hour ago, requests pending for more than a day, and requests whose
// certificate has expired.
func NewCleaner(c *manager.Context) (manager.Controller, error) {
	inf := c.Informers.Certificates().V1().CertificateSigningRequests()
	cl := &cleaner{client: c.Client, lister: inf.Lister(), now: time.Now}
	cl.Loop = manager.NewLoop("csrcleaner", 1, c.Log, cl.sync)
	cl.Synced = []cache.InformerSynced{inf.Informer().HasSynced}
	return cl, nil
}

// Run starts the periodic pass.
func (c *cleaner) Run(ctx context.Context) error {
	c.Enqueue(cleanKey)
	return c.Loop.Run(ctx)
}

func (c *cleaner) sync(ctx context.Context, _ string) (time.Duration, error) {
	csrs, err := c.lister.List(labels.Everything())
	if err != nil {
		return 0, err
	}
	now := c.now()
	// A request that cannot be deleted now is tried again on the next pass, as upstream's are:
	// the pass must keep its period, not fall to the retry limit.
	for _, csr := range csrs {
		if !expired(csr, now) {
			continue
		}
		err := c.client.CertificatesV1().CertificateSigningRequests().Delete(ctx, csr.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			c.Log.Error("unable to delete CSR", "csr", csr.Name, "err", err)
		}
	}
	return cleanPeriod, nil
}

// expired tells whether a request is past its keeping time.
func expired(csr *certificatesv1.CertificateSigningRequest, now time.Time) bool {
	older := func(t metav1.Time, d time.Duration) bool { return !t.IsZero() && now.Sub(t.Time) > d }
	issued := len(csr.Status.Certificate) > 0
	if len(csr.Status.Conditions) == 0 && older(csr.CreationTimestamp, pendingKept) {
		return true
	}
	for _, cond := range csr.Status.Conditions {
		switch cond.Type {
		case certificatesv1.CertificateApproved:
			if issued && (older(cond.LastUpdateTime, issuedKept) || certificateExpired(csr.Status.Certificate, now)) {
				return true
			}
		case certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			if older(cond.LastUpdateTime, deniedKept) {
				return true
			}
		}
	}
	return false
}

// certificateExpired tells whether the first certificate's NotAfter has passed.
func certificateExpired(data []byte, now time.Time) bool {
	block, _ := pem.Decode(data)
	if block == nil {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	return err == nil && now.After(cert.NotAfter)
}
