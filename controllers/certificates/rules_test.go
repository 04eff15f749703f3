package certificates

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"
	"time"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/apis/apiserver/apiservertest"
	certificatesv1 "k8s.io/api/certificates/v1"
	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	"k8s.io/client-go/kubernetes"
)

var (
	ds         = certificatesv1.UsageDigitalSignature
	ke         = certificatesv1.UsageKeyEncipherment
	clientAuth = certificatesv1.UsageClientAuth
	serverAuth = certificatesv1.UsageServerAuth
)

// Each signer's rules, as upstream words their refusals.
func TestSignerRules(t *testing.T) {
	node := pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}
	cases := []struct {
		name    string
		signer  string
		req     x509.CertificateRequest
		usages  []certificatesv1.KeyUsage
		wantErr string
	}{
		{"client: client auth alone", certificatesv1.KubeAPIServerClientSignerName, x509.CertificateRequest{Subject: pkix.Name{CommonName: "u"}}, []certificatesv1.KeyUsage{clientAuth}, ""},
		{"client: with signature and encipherment", certificatesv1.KubeAPIServerClientSignerName, x509.CertificateRequest{}, []certificatesv1.KeyUsage{ds, ke, clientAuth}, ""},
		{"client: server auth", certificatesv1.KubeAPIServerClientSignerName, x509.CertificateRequest{}, []certificatesv1.KeyUsage{clientAuth, serverAuth}, "invalid usage for client certificate: server auth"},
		{"client: no client auth", certificatesv1.KubeAPIServerClientSignerName, x509.CertificateRequest{}, []certificatesv1.KeyUsage{ds}, "missing required usage for client certificate: client auth"},
		{"kubelet client: node", certificatesv1.KubeAPIServerClientKubeletSignerName, x509.CertificateRequest{Subject: node}, []certificatesv1.KeyUsage{ds, clientAuth}, ""},
		{"kubelet client: RSA usages", certificatesv1.KubeAPIServerClientKubeletSignerName, x509.CertificateRequest{Subject: node}, []certificatesv1.KeyUsage{ds, ke, clientAuth}, ""},
		{"kubelet client: other organization", certificatesv1.KubeAPIServerClientKubeletSignerName, x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes", "x"}}}, []certificatesv1.KeyUsage{ds, clientAuth}, "subject organization is not system:nodes"},
		{"kubelet client: not a node", certificatesv1.KubeAPIServerClientKubeletSignerName, x509.CertificateRequest{Subject: pkix.Name{CommonName: "n1", Organization: []string{"system:nodes"}}}, []certificatesv1.KeyUsage{ds, clientAuth}, "subject common name does not begin with system:node:"},
		{"kubelet client: DNS name", certificatesv1.KubeAPIServerClientKubeletSignerName, x509.CertificateRequest{Subject: node, DNSNames: []string{"n1"}}, []certificatesv1.KeyUsage{ds, clientAuth}, "DNS subjectAltNames are not allowed"},
		{"kubelet client: server auth", certificatesv1.KubeAPIServerClientKubeletSignerName, x509.CertificateRequest{Subject: node}, []certificatesv1.KeyUsage{ds, serverAuth}, "usages did not match [client auth digital signature key encipherment]"},
		{"kubelet serving: IP", certificatesv1.KubeletServingSignerName, x509.CertificateRequest{Subject: node, IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}}, []certificatesv1.KeyUsage{ds, serverAuth}, ""},
		{"kubelet serving: no names", certificatesv1.KubeletServingSignerName, x509.CertificateRequest{Subject: node}, []certificatesv1.KeyUsage{ds, serverAuth}, "DNS or IP subjectAltName is required"},
		{"kubelet serving: email", certificatesv1.KubeletServingSignerName, x509.CertificateRequest{Subject: node, DNSNames: []string{"n1"}, EmailAddresses: []string{"a@b"}}, []certificatesv1.KeyUsage{ds, serverAuth}, "Email subjectAltNames are not allowed"},
		{"kubelet serving: client auth", certificatesv1.KubeletServingSignerName, x509.CertificateRequest{Subject: node, DNSNames: []string{"n1"}}, []certificatesv1.KeyUsage{ds, clientAuth}, "usages did not match [digital signature key encipherment server auth]"},
		{"legacy-unknown: anything", certificatesv1beta1.LegacyUnknownSignerName, x509.CertificateRequest{}, []certificatesv1.KeyUsage{certificatesv1.UsageCodeSigning}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkForSigner(tc.signer, &tc.req, tc.usages)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.wantErr {
				t.Errorf("got %q, want %q", got, tc.wantErr)
			}
		})
	}
}

// A requested lifetime is honoured between ten minutes and the signing duration.
func TestLifetime(t *testing.T) {
	s := &signer{duration: DefaultSigningDuration}
	seconds := func(n int32) *int32 { return &n }
	cases := []struct {
		name string
		in   *int32
		want time.Duration
	}{
		{"none", nil, DefaultSigningDuration},
		{"an hour", seconds(3600), time.Hour},
		{"below the minimum", seconds(60), 10 * time.Minute},
		{"beyond the signing duration", seconds(1 << 30), DefaultSigningDuration},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.lifetime(tc.in); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// The approver asks the API server: with its fixed policy a node or bootstrapper holds neither
// kubelet client permission, and system:masters holds both.
func TestApproverAsksSubjectAccessReview(t *testing.T) {
	cfg := apiservertest.Start(t, apiserver.Options{})
	a := &approver{client: kubernetes.NewForConfigOrDie(cfg)}
	// What kubeadm binds: nodes may renew their own client certificates, bootstrappers may
	// ask for new node client certificates; admins may do both.
	cases := []struct {
		name    string
		user    string
		groups  []string
		allowed map[string]bool
	}{
		{"node renewing", "system:node:n1", []string{"system:nodes", "system:authenticated"}, map[string]bool{"selfnodeclient": true, "nodeclient": false}},
		{"bootstrapper", "system:bootstrap:abcdef", []string{"system:bootstrappers", "system:authenticated"}, map[string]bool{"selfnodeclient": false, "nodeclient": true}},
		{"someone else", "jane", []string{"system:authenticated"}, map[string]bool{"selfnodeclient": false, "nodeclient": false}},
		{"cluster admin", "kubernetes-admin", []string{"system:masters", "system:authenticated"}, map[string]bool{"selfnodeclient": true, "nodeclient": true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			csr := &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{Username: tc.user, Groups: tc.groups}}
			for _, r := range recognizers {
				got, err := a.authorized(context.Background(), csr, r.permission)
				if err != nil {
					t.Fatal(err)
				}
				if want := tc.allowed[r.permission.Subresource]; got != want {
					t.Errorf("%s: allowed %v, want %v", r.permission.Subresource, got, want)
				}
			}
		})
	}
}
