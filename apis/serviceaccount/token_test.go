package serviceaccount

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newIssuer(t *testing.T) *Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(key)
	path := filepath.Join(t.TempDir(), "sa.key")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	i, err := LoadIssuer(path)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestVerify(t *testing.T) {
	i := newIssuer(t)
	claims := KubernetesClaims{Namespace: "ns", ServiceAccount: Ref{Name: "sa", UID: "u1"}}
	token, _, err := i.Issue(claims, []string{DefaultAudience}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other := newIssuer(t)
	parts := strings.Split(token, ".")
	tampered := parts[0] + "." + parts[1] + "x." + parts[2]
	for _, tc := range []struct {
		name      string
		issuer    *Issuer
		token     string
		audiences []string
		want      error
	}{
		{"valid", i, token, []string{DefaultAudience}, nil},
		{"other audience", i, token, []string{"vault"}, ErrAudience},
		{"another cluster's key", other, token, []string{DefaultAudience}, ErrSignature},
		{"tampered payload", i, tampered, []string{DefaultAudience}, ErrSignature},
		{"not a JWT", i, "abc", []string{DefaultAudience}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.issuer.Verify(tc.token, tc.audiences)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && c.Subject != "system:serviceaccount:ns:sa" {
				t.Fatalf("subject %q", c.Subject)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		i.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		defer func() { i.now = time.Now }()
		if _, err := i.Verify(token, []string{DefaultAudience}); !errors.Is(err, ErrExpired) {
			t.Fatalf("err = %v, want ErrExpired", err)
		}
	})
}
