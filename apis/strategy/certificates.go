package strategy

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keelson/keelson/apis/authn"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// csrRules are upstream's rules for CertificateSigningRequests: the spec is fixed at creation, and
// the approval and status subresources each write their own part of the status, so that approval
// and issuance stay separate concerns.
func csrRules() Rules {
	return Rules{
		NameFn:           nameIsPathSegment,
		Validate:         validateCSR,
		ValidateUpdate:   validateCSRUpdate,
		PrepareForUpdate: keepCSRSpec,
		Subresources: map[string]SubresourceRules{
			"status":   {Keep: keepCSRForStatus, ValidateUpdate: validateCSRStatusUpdate},
			"approval": {Keep: keepCSRForApproval, ValidateUpdate: validateCSRUpdate},
		},
	}
}

// CSRRequester records the requesting user in a new CSR's spec, in place of whatever the client
// sent, as upstream's create strategy does; it is the resource's BeforeCreate hook.
func CSRRequester(ctx context.Context, obj runtime.Object, _ bool) (func(), error) {
	csr, ok := obj.(*certificatesv1.CertificateSigningRequest)
	if !ok {
		return nil, nil
	}
	csr.Spec.Username, csr.Spec.UID, csr.Spec.Groups, csr.Spec.Extra = "", "", nil, nil
	if u := authn.UserFrom(ctx); u != nil {
		csr.Spec.Username, csr.Spec.UID, csr.Spec.Groups = u.Name, u.UID, append([]string(nil), u.Groups...)
		if len(u.Extra) > 0 {
			csr.Spec.Extra = map[string]certificatesv1.ExtraValue{}
			for k, v := range u.Extra {
				csr.Spec.Extra[k] = append(certificatesv1.ExtraValue(nil), v...)
			}
		}
	}
	return nil, nil
}

func keepCSRSpec(obj, old runtime.Object) {
	obj.(*certificatesv1.CertificateSigningRequest).Spec = old.(*certificatesv1.CertificateSigningRequest).Spec
}

// keepCSRForStatus limits a status write to the certificate and the conditions: the existing
// Approved and Denied conditions are kept as they were; a write that adds or removes one is
// refused by validateCSRStatusUpdate, as upstream's.
func keepCSRForStatus(obj, old runtime.Object) {
	csr, oldCSR := obj.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
	csr.Spec = oldCSR.Spec
	preserveConditions(csr, oldCSR, certificatesv1.CertificateApproved)
	preserveConditions(csr, oldCSR, certificatesv1.CertificateDenied)
	stampConditions(csr, oldCSR, metav1.NewTime(time.Now()))
}

// validateCSRStatusUpdate is validateCSRUpdate for a status write, which may not add an
// Approved or Denied condition either.
func validateCSRStatusUpdate(obj, old runtime.Object) field.ErrorList {
	csr, oldCSR := obj.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
	errs := validateCSRUpdate(obj, old)
	for _, t := range []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved, certificatesv1.CertificateDenied} {
		if len(conditionIndices(csr, t)) > len(conditionIndices(oldCSR, t)) {
			errs = append(errs, field.Forbidden(field.NewPath("status", "conditions"), fmt.Sprintf("updates may not add a condition of type %q", t)))
		}
	}
	return errs
}

// keepCSRForApproval limits an approval write to the conditions.
func keepCSRForApproval(obj, old runtime.Object) {
	csr, oldCSR := obj.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
	csr.Spec = oldCSR.Spec
	csr.Status.Certificate = oldCSR.Status.Certificate
	stampConditions(csr, oldCSR, metav1.NewTime(time.Now()))
}

// preserveConditions puts back the old instances of a condition type, or reports false when the
// write added or removed instances of it.
func preserveConditions(csr, old *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) bool {
	oldAt, newAt := conditionIndices(old, t), conditionIndices(csr, t)
	if len(oldAt) != len(newAt) {
		return false
	}
	for i, j := range oldAt {
		csr.Status.Conditions[newAt[i]] = old.Status.Conditions[j]
	}
	return true
}

func conditionIndices(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) []int {
	var at []int
	for i, c := range csr.Status.Conditions {
		if c.Type == t {
			at = append(at, i)
		}
	}
	return at
}

// stampConditions fills a missing lastUpdateTime with now, and a missing lastTransitionTime with
// that of the old condition of the same type and status, or now.
func stampConditions(csr, old *certificatesv1.CertificateSigningRequest, now metav1.Time) {
	for i := range csr.Status.Conditions {
		c := &csr.Status.Conditions[i]
		if c.LastUpdateTime.IsZero() {
			c.LastUpdateTime = now
		}
		if c.LastTransitionTime.IsZero() {
			c.LastTransitionTime = now
			for _, o := range old.Status.Conditions {
				if o.Type == c.Type && o.Status == c.Status && !o.LastTransitionTime.IsZero() {
					c.LastTransitionTime = o.LastTransitionTime
					break
				}
			}
		}
	}
}

// ParseCSR reads a PEM-encoded PKCS#10 request, as spec.request holds it.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("PEM block type must be CERTIFICATE REQUEST")
	}
	return x509.ParseCertificateRequest(block.Bytes)
}

var knownUsages = sets.New(
	certificatesv1.UsageSigning, certificatesv1.UsageDigitalSignature, certificatesv1.UsageContentCommitment,
	certificatesv1.UsageKeyEncipherment, certificatesv1.UsageKeyAgreement, certificatesv1.UsageDataEncipherment,
	certificatesv1.UsageCertSign, certificatesv1.UsageCRLSign, certificatesv1.UsageEncipherOnly,
	certificatesv1.UsageDecipherOnly, certificatesv1.UsageAny, certificatesv1.UsageServerAuth,
	certificatesv1.UsageClientAuth, certificatesv1.UsageCodeSigning, certificatesv1.UsageEmailProtection,
	certificatesv1.UsageSMIME, certificatesv1.UsageIPsecEndSystem, certificatesv1.UsageIPsecTunnel,
	certificatesv1.UsageIPsecUser, certificatesv1.UsageTimestamping, certificatesv1.UsageOCSPSigning,
	certificatesv1.UsageMicrosoftSGC, certificatesv1.UsageNetscapeSGC,
)

// minCSRExpirationSeconds is the shortest certificate a request may ask for.
const minCSRExpirationSeconds = 600

func validateCSR(obj runtime.Object) field.ErrorList {
	csr := obj.(*certificatesv1.CertificateSigningRequest)
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if req, err := ParseCSR(csr.Spec.Request); err != nil {
		errs = append(errs, field.Invalid(spec.Child("request"), csr.Spec.Request, err.Error()))
	} else if err := req.CheckSignature(); err != nil {
		errs = append(errs, field.Invalid(spec.Child("request"), csr.Spec.Request, err.Error()))
	}
	if len(csr.Spec.Usages) == 0 {
		errs = append(errs, field.Required(spec.Child("usages"), ""))
	}
	seen := sets.New[certificatesv1.KeyUsage]()
	for i, u := range csr.Spec.Usages {
		switch {
		case !knownUsages.Has(u):
			errs = append(errs, field.NotSupported(spec.Child("usages").Index(i), u, sets.List(knownUsages)))
		case seen.Has(u):
			errs = append(errs, field.Duplicate(spec.Child("usages").Index(i), u))
		}
		seen.Insert(u)
	}
	errs = append(errs, validateSignerName(spec.Child("signerName"), csr.Spec.SignerName)...)
	if s := csr.Spec.ExpirationSeconds; s != nil && *s < minCSRExpirationSeconds {
		errs = append(errs, field.Invalid(spec.Child("expirationSeconds"), *s, "may not specify a duration less than 600 seconds (10 minutes)"))
	}
	return append(errs, validateCSRStatus(csr)...)
}

// validateSignerName requires a fully qualified name: a DNS subdomain, a slash, and a path.
func validateSignerName(path *field.Path, name string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(path, "")}
	}
	domain, rest, ok := strings.Cut(name, "/")
	if !ok || rest == "" {
		return field.ErrorList{field.Invalid(path, name, "must be a fully qualified domain and path of the form 'example.com/signer-name'")}
	}
	var errs field.ErrorList
	for _, msg := range utilvalidation.IsDNS1123Subdomain(domain) {
		errs = append(errs, field.Invalid(path, name, msg))
	}
	return errs
}

// validateCSRStatus checks the conditions and the certificate.
func validateCSRStatus(csr *certificatesv1.CertificateSigningRequest) field.ErrorList {
	status := field.NewPath("status")
	var errs field.ErrorList
	var approved, denied bool
	seen := map[certificatesv1.RequestConditionType]bool{}
	for i, c := range csr.Status.Conditions {
		p := status.Child("conditions").Index(i)
		if c.Type == "" {
			errs = append(errs, field.Required(p.Child("type"), ""))
		}
		switch c.Type {
		case certificatesv1.CertificateApproved, certificatesv1.CertificateDenied:
			if c.Status != corev1.ConditionTrue {
				errs = append(errs, field.NotSupported(p.Child("status"), c.Status, []corev1.ConditionStatus{corev1.ConditionTrue}))
			}
			approved = approved || c.Type == certificatesv1.CertificateApproved
			denied = denied || c.Type == certificatesv1.CertificateDenied
			fallthrough
		case certificatesv1.CertificateFailed:
			if seen[c.Type] {
				errs = append(errs, field.Duplicate(p.Child("type"), c.Type))
			}
		default:
			if c.Status == "" {
				errs = append(errs, field.Required(p.Child("status"), ""))
			} else if c.Status != corev1.ConditionTrue && c.Status != corev1.ConditionFalse && c.Status != corev1.ConditionUnknown {
				errs = append(errs, field.NotSupported(p.Child("status"), c.Status, []corev1.ConditionStatus{corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown}))
			}
		}
		seen[c.Type] = true
	}
	if approved && denied {
		errs = append(errs, field.Invalid(status.Child("conditions"), csr.Status.Conditions, "Approved and Denied conditions are mutually exclusive"))
	}
	if len(csr.Status.Certificate) > 0 {
		if err := validateCertificateData(csr.Status.Certificate); err != nil {
			errs = append(errs, field.Invalid(status.Child("certificate"), "<certificate data>", err.Error()))
		}
	}
	return errs
}

// validateCertificateData requires one or more PEM CERTIFICATE blocks and nothing else.
func validateCertificateData(data []byte) error {
	n := 0
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			if len(strings.TrimSpace(string(data))) > 0 {
				return errors.New("extra data after PEM blocks")
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("only CERTIFICATE PEM blocks are allowed, found %q", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return err
		}
		n++
		data = rest
	}
	if n == 0 {
		return errors.New("must contain at least one CERTIFICATE PEM block")
	}
	return nil
}

// validateCSRUpdate keeps Approved and Denied conditions once set and the certificate once issued.
func validateCSRUpdate(obj, old runtime.Object) field.ErrorList {
	csr, oldCSR := obj.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
	errs := validateCSRStatus(csr)
	for _, t := range []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved, certificatesv1.CertificateDenied} {
		if len(conditionIndices(oldCSR, t)) > len(conditionIndices(csr, t)) {
			errs = append(errs, field.Forbidden(field.NewPath("status", "conditions"), fmt.Sprintf("updates may not remove a condition of type %q", t)))
		}
	}
	if len(oldCSR.Status.Certificate) > 0 && string(oldCSR.Status.Certificate) != string(csr.Status.Certificate) {
		errs = append(errs, field.Invalid(field.NewPath("status", "certificate"), "<certificate data>", "updates may not modify existing certificate content"))
	}
	return errs
}
