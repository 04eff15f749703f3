package strategy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"
	"time"

	"github.com/keelson/keelson/apis/authn"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func validCSR(t *testing.T) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "u"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "csr"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certificatesv1.KubeAPIServerClientSignerName,
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth},
		},
	}
}

func approvedCondition(t certificatesv1.RequestConditionType) certificatesv1.CertificateSigningRequestCondition {
	return certificatesv1.CertificateSigningRequestCondition{Type: t, Status: corev1.ConditionTrue, Reason: "R"}
}

func TestValidateCSR(t *testing.T) {
	short := int32(60)
	cases := []struct {
		name   string
		mutate func(*certificatesv1.CertificateSigningRequest)
		want   []wantErr
	}{
		{"valid", func(*certificatesv1.CertificateSigningRequest) {}, nil},
		{"not a request", func(c *certificatesv1.CertificateSigningRequest) { c.Spec.Request = []byte("x") },
			[]wantErr{{field.ErrorTypeInvalid, "spec.request", "PEM block type must be CERTIFICATE REQUEST"}}},
		{"no usages", func(c *certificatesv1.CertificateSigningRequest) { c.Spec.Usages = nil },
			[]wantErr{{field.ErrorTypeRequired, "spec.usages", ""}}},
		{"unknown usage", func(c *certificatesv1.CertificateSigningRequest) { c.Spec.Usages = []certificatesv1.KeyUsage{"flying"} },
			[]wantErr{{field.ErrorTypeNotSupported, "spec.usages[0]", ""}}},
		{"no signer", func(c *certificatesv1.CertificateSigningRequest) { c.Spec.SignerName = "" },
			[]wantErr{{field.ErrorTypeRequired, "spec.signerName", ""}}},
		{"too short", func(c *certificatesv1.CertificateSigningRequest) { c.Spec.ExpirationSeconds = &short },
			[]wantErr{{field.ErrorTypeInvalid, "spec.expirationSeconds", "may not specify a duration less than 600 seconds (10 minutes)"}}},
		{"approved and denied", func(c *certificatesv1.CertificateSigningRequest) {
			c.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{approvedCondition(certificatesv1.CertificateApproved), approvedCondition(certificatesv1.CertificateDenied)}
		}, []wantErr{{field.ErrorTypeInvalid, "status.conditions", "Approved and Denied conditions are mutually exclusive"}}},
		{"approved twice", func(c *certificatesv1.CertificateSigningRequest) {
			c.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{approvedCondition(certificatesv1.CertificateApproved), approvedCondition(certificatesv1.CertificateApproved)}
		}, []wantErr{{field.ErrorTypeDuplicate, "status.conditions[1].type", ""}}},
		{"certificate not PEM", func(c *certificatesv1.CertificateSigningRequest) { c.Status.Certificate = []byte("x") },
			[]wantErr{{field.ErrorTypeInvalid, "status.certificate", ""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			csr := validCSR(t)
			tc.mutate(csr)
			checkErrs(t, validateCSR(csr), tc.want)
		})
	}
}

// The approval subresource writes conditions only; status writes keep the approval conditions;
// the requester comes from the request's user.
func TestCSRSubresources(t *testing.T) {
	old := validCSR(t)
	old.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: "Custom", Status: corev1.ConditionTrue,
		LastTransitionTime: metav1.NewTime(time.Unix(1000, 0))}}

	approval := old.DeepCopy()
	approval.Spec.SignerName = "example.com/changed"
	approval.Status.Certificate = []byte("x")
	approval.Status.Conditions = append(approval.Status.Conditions, approvedCondition(certificatesv1.CertificateApproved))
	keepCSRForApproval(approval, old)
	if approval.Spec.SignerName != old.Spec.SignerName || len(approval.Status.Certificate) != 0 {
		t.Errorf("an approval write changed the spec or the certificate")
	}
	if c := approval.Status.Conditions[1]; c.LastUpdateTime.IsZero() || c.LastTransitionTime.IsZero() {
		t.Errorf("the approval condition has no timestamps: %+v", c)
	}
	if c := approval.Status.Conditions[0]; !c.LastTransitionTime.Equal(&old.Status.Conditions[0].LastTransitionTime) {
		t.Errorf("an unchanged condition's transition time moved to %v", c.LastTransitionTime)
	}

	status := old.DeepCopy()
	status.Status.Conditions = append(status.Status.Conditions, approvedCondition(certificatesv1.CertificateApproved))
	keepCSRForStatus(status, old)
	// As upstream: the write is not quietly undone but refused.
	checkErrs(t, validateCSRStatusUpdate(status, old), []wantErr{{field.ErrorTypeForbidden, "status.conditions", `updates may not add a condition of type "Approved"`}})

	approved := old.DeepCopy()
	approved.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{approvedCondition(certificatesv1.CertificateApproved)}
	removed := old.DeepCopy()
	removed.Status.Conditions = nil
	checkErrs(t, validateCSRUpdate(removed, approved), []wantErr{{field.ErrorTypeForbidden, "status.conditions", `updates may not remove a condition of type "Approved"`}})

	created := validCSR(t)
	created.Spec.Username = "forged"
	ctx := authn.WithUser(context.Background(), &authn.User{Name: "jane", UID: "1", Groups: []string{"devs"}, Extra: map[string][]string{"k": {"v"}}})
	if _, err := CSRRequester(ctx, created, false); err != nil {
		t.Fatal(err)
	}
	if s := created.Spec; s.Username != "jane" || s.UID != "1" || len(s.Groups) != 1 || s.Groups[0] != "devs" || s.Extra["k"][0] != "v" {
		t.Errorf("requester not recorded: %+v", s)
	}
}
