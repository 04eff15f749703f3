package certificates

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"sort"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	certificatesv1 "k8s.io/api/certificates/v1"
	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultSigningDuration is upstream's --cluster-signing-duration: the longest certificate the
// signer issues, and the length of those whose request names none.
const DefaultSigningDuration = 365 * 24 * time.Hour

const (
	// backdate is how far before now a certificate becomes valid, for clocks that lag. It must stay
	// under minDuration.
	backdate = 5 * time.Minute
	// shortLived certificates keep their whole requested lifetime after now: their NotAfter is not
	// moved back by the backdate (5 minutes is about 1% of 8 hours).
	shortLived = 8 * time.Hour
	// minDuration is the shortest certificate issued, twice the backdate.
	minDuration = 10 * time.Minute
)

// ca is the key pair the signer issues with.
type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// parseCA reads a PEM certificate and its PEM private key, as upstream's
// --cluster-signing-cert-file and --cluster-signing-key-file hold them.
func parseCA(certPEM, keyPEM []byte) (*ca, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificates: cluster signing key pair: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("certificates: cluster signing key of type %T cannot sign", pair.PrivateKey)
	}
	return &ca{cert: cert, key: key}, nil
}

type signer struct {
	client   kubernetes.Interface
	ca       *ca
	duration time.Duration
	now      func() time.Time
}

// NewSigner returns upstream's csrsigning controller for the kubernetes.io/kube-apiserver-client,
// kube-apiserver-client-kubelet, kubelet-serving and legacy-unknown signers, which issue with the
// given CA; duration caps each certificate's lifetime (0: DefaultSigningDuration).
func NewSigner(c *manager.Context, certPEM, keyPEM []byte, duration time.Duration) (manager.Controller, error) {
	authority, err := parseCA(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if duration <= 0 {
		duration = DefaultSigningDuration
	}
	s := &signer{client: c.Client, ca: authority, duration: duration, now: time.Now}
	l, err := newCSRLoop(c, "csrsigning", 5, s.handle)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// signers are the signer names this controller issues for.
var signers = map[string]bool{
	certificatesv1.KubeletServingSignerName:             true,
	certificatesv1.KubeAPIServerClientKubeletSignerName: true,
	certificatesv1.KubeAPIServerClientSignerName:        true,
	certificatesv1beta1.LegacyUnknownSignerName:         true,
}

// checkForSigner applies a signer's rules to a request.
func checkForSigner(signerName string, req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) error {
	switch signerName {
	case certificatesv1.KubeletServingSignerName:
		return validateKubeletServing(req, usages)
	case certificatesv1.KubeAPIServerClientKubeletSignerName:
		return validateKubeletClient(req, usages)
	case certificatesv1.KubeAPIServerClientSignerName:
		return validateAPIServerClient(usages)
	}
	// legacy-unknown has no rule, for compatibility with requests from before signers.
	return nil
}

func (s *signer) handle(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error {
	if approved, _ := approvedOrDenied(csr); !approved || conditionTrue(csr, certificatesv1.CertificateFailed) {
		return nil
	}
	if !signers[csr.Spec.SignerName] {
		return nil
	}
	req, err := parseRequest(csr.Spec.Request)
	if err != nil {
		return fmt.Errorf("unable to parse csr %q: %v", csr.Name, err)
	}
	if err := checkForSigner(csr.Spec.SignerName, req, csr.Spec.Usages); err != nil {
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateFailed, Status: corev1.ConditionTrue, Reason: "SignerValidationFailure",
			Message: err.Error(), LastUpdateTime: metav1.NewTime(s.now()),
		})
		if _, err := s.client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, csr, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("error adding failure condition for csr: %v", err)
		}
		return nil
	}
	cert, err := s.sign(req, csr.Spec.Usages, csr.Spec.ExpirationSeconds)
	if err != nil {
		return fmt.Errorf("error auto signing csr: %v", err)
	}
	csr.Status.Certificate = cert
	if _, err := s.client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, csr, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("error updating signature for csr: %v", err)
	}
	return nil
}

// lifetime is the requested duration within [minDuration, s.duration], or s.duration.
func (s *signer) lifetime(expirationSeconds *int32) time.Duration {
	if expirationSeconds == nil {
		return s.duration
	}
	d := time.Duration(*expirationSeconds) * time.Second
	return min(max(d, minDuration), s.duration)
}

// serialLimit bounds serial numbers to 128 bits.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// sign issues the certificate: the request's subject, names and key; the approved usages; valid
// from backdate before now; the CA's own expiry caps its NotAfter.
func (s *signer) sign(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage, expirationSeconds *int32) ([]byte, error) {
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("unable to verify certificate request signature: %v", err)
	}
	keyUsage, extKeyUsage, err := x509Usages(usages)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, serialLimit)
	if err != nil {
		return nil, fmt.Errorf("unable to generate a serial number for %s: %v", req.Subject.CommonName, err)
	}
	now, ttl := s.now(), s.lifetime(expirationSeconds)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: req.Subject,
		DNSNames: req.DNSNames, IPAddresses: req.IPAddresses, EmailAddresses: req.EmailAddresses, URIs: req.URIs,
		PublicKeyAlgorithm: req.PublicKeyAlgorithm, PublicKey: req.PublicKey,
		KeyUsage: keyUsage, ExtKeyUsage: extKeyUsage,
		BasicConstraintsValid: true, IsCA: false,
		NotBefore: now.Add(-backdate),
		NotAfter:  now.Add(ttl - backdate),
	}
	if ttl < shortLived {
		tmpl.NotAfter = now.Add(ttl)
	}
	caEnd := s.ca.cert.NotAfter
	if !tmpl.NotAfter.Before(caEnd) {
		tmpl.NotAfter = caEnd
	}
	if !tmpl.NotBefore.Before(caEnd) {
		return nil, fmt.Errorf("the signer has expired: NotAfter=%v", caEnd)
	}
	if !now.Before(caEnd) {
		return nil, fmt.Errorf("refusing to sign a certificate that expired in the past: NotAfter=%v", caEnd)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca.cert, req.PublicKey, s.ca.key)
	if err != nil {
		return nil, fmt.Errorf("failed to sign certificate: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

var keyUsages = map[certificatesv1.KeyUsage]x509.KeyUsage{
	certificatesv1.UsageSigning:           x509.KeyUsageDigitalSignature,
	certificatesv1.UsageDigitalSignature:  x509.KeyUsageDigitalSignature,
	certificatesv1.UsageContentCommitment: x509.KeyUsageContentCommitment,
	certificatesv1.UsageKeyEncipherment:   x509.KeyUsageKeyEncipherment,
	certificatesv1.UsageKeyAgreement:      x509.KeyUsageKeyAgreement,
	certificatesv1.UsageDataEncipherment:  x509.KeyUsageDataEncipherment,
	certificatesv1.UsageCertSign:          x509.KeyUsageCertSign,
	certificatesv1.UsageCRLSign:           x509.KeyUsageCRLSign,
	certificatesv1.UsageEncipherOnly:      x509.KeyUsageEncipherOnly,
	certificatesv1.UsageDecipherOnly:      x509.KeyUsageDecipherOnly,
}

var extKeyUsages = map[certificatesv1.KeyUsage]x509.ExtKeyUsage{
	certificatesv1.UsageAny:             x509.ExtKeyUsageAny,
	certificatesv1.UsageServerAuth:      x509.ExtKeyUsageServerAuth,
	certificatesv1.UsageClientAuth:      x509.ExtKeyUsageClientAuth,
	certificatesv1.UsageCodeSigning:     x509.ExtKeyUsageCodeSigning,
	certificatesv1.UsageEmailProtection: x509.ExtKeyUsageEmailProtection,
	certificatesv1.UsageSMIME:           x509.ExtKeyUsageEmailProtection,
	certificatesv1.UsageIPsecEndSystem:  x509.ExtKeyUsageIPSECEndSystem,
	certificatesv1.UsageIPsecTunnel:     x509.ExtKeyUsageIPSECTunnel,
	certificatesv1.UsageIPsecUser:       x509.ExtKeyUsageIPSECUser,
	certificatesv1.UsageTimestamping:    x509.ExtKeyUsageTimeStamping,
	certificatesv1.UsageOCSPSigning:     x509.ExtKeyUsageOCSPSigning,
	certificatesv1.UsageMicrosoftSGC:    x509.ExtKeyUsageMicrosoftServerGatedCrypto,
	certificatesv1.UsageNetscapeSGC:     x509.ExtKeyUsageNetscapeServerGatedCrypto,
}

// x509Usages turns the request's usages into the certificate's key usage bits and sorted extended
// key usages.
func x509Usages(usages []certificatesv1.KeyUsage) (x509.KeyUsage, []x509.ExtKeyUsage, error) {
	var bits x509.KeyUsage
	ext := map[x509.ExtKeyUsage]bool{}
	var unknown []certificatesv1.KeyUsage
	for _, u := range usages {
		if b, ok := keyUsages[u]; ok {
			bits |= b
		} else if e, ok := extKeyUsages[u]; ok {
			ext[e] = true
		} else {
			unknown = append(unknown, u)
		}
	}
	if len(unknown) > 0 {
		return 0, nil, fmt.Errorf("unrecognized usage values: %q", unknown)
	}
	sorted := make([]x509.ExtKeyUsage, 0, len(ext))
	for e := range ext {
		sorted = append(sorted, e)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	return bits, sorted, nil
}
