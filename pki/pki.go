// Package pki creates and loads the cluster's certificates: a CA, the API server's serving
// certificate, the admin client certificate and the service-account signing key.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Bundle is the cluster's key material, as files under a directory.
type Bundle struct {
	Dir   string
	CA    *x509.Certificate
	caKey crypto.Signer
	CAPEM []byte
	Pool  *x509.CertPool
}

// Paths of the files, relative to the bundle directory.
const (
	CACert         = "ca.crt"
	CAKey          = "ca.key"
	ServingCert    = "serving.crt"
	ServingKey     = "serving.key"
	AdminCert      = "admin.crt"
	AdminKey       = "admin.key"
	ServiceAcctKey = "service-account.key"
)

// Load reads the CA under dir, creating it (and the service-account key) when missing.
func Load(dir string) (*Bundle, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	b := &Bundle{Dir: dir}
	certPath, keyPath := filepath.Join(dir, CACert), filepath.Join(dir, CAKey)
	if _, err := os.Stat(certPath); errors.Is(err, os.ErrNotExist) {
		key, err := newKey()
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: fmt.Sprintf("keelson-ca@%d", time.Now().Unix())},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().AddDate(10, 0, 0),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			return nil, err
		}
		if err := writePair(certPath, keyPath, der, key); err != nil {
			return nil, err
		}
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("pki: loading CA: %w", err)
	}
	b.CA, err = x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	b.caKey = pair.PrivateKey.(crypto.Signer)
	b.CAPEM, _ = os.ReadFile(certPath)
	b.Pool = x509.NewCertPool()
	b.Pool.AddCert(b.CA)
	if _, err := os.Stat(filepath.Join(dir, ServiceAcctKey)); errors.Is(err, os.ErrNotExist) {
		key, err := newKey()
		if err != nil {
			return nil, err
		}
		if err := writeKey(filepath.Join(dir, ServiceAcctKey), key); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// ServingPair returns the API server's certificate for hosts and ips, reissuing it when the
// names it covers change.
func (b *Bundle) ServingPair(hosts []string, ips []net.IP) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(b.Dir, ServingCert), filepath.Join(b.Dir, ServingKey)
	if pair, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		if leaf, err := x509.ParseCertificate(pair.Certificate[0]); err == nil && covers(leaf, hosts, ips) && time.Until(leaf.NotAfter) > 30*24*time.Hour {
			return pair, nil
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     hosts,
		IPAddresses:  ips,
	}
	if err := b.issue(tmpl, certPath, keyPath); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certPath, keyPath)
}

func covers(leaf *x509.Certificate, hosts []string, ips []net.IP) bool {
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	for _, ip := range ips {
		if leaf.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}

// ClientPair returns a client certificate for user in groups, stored as name.crt/name.key,
// creating it when missing.
func (b *Bundle) ClientPair(name, user string, groups []string) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(b.Dir, name+".crt"), filepath.Join(b.Dir, name+".key")
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		return certPath, keyPath, nil
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: user, Organization: groups},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return certPath, keyPath, b.issue(tmpl, certPath, keyPath)
}

func (b *Bundle) issue(tmpl *x509.Certificate, certPath, keyPath string) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, b.CA, key.Public(), b.caKey)
	if err != nil {
		return fmt.Errorf("pki: issuing %s: %w", tmpl.Subject.CommonName, err)
	}
	return writePair(certPath, keyPath, der, key)
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	if err := writeKey(keyPath, key); err != nil {
		return err
	}
	return writeAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writeAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

// writeAtomic writes through a temporary file and a rename, so a crash never leaves half a file.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// SelfSigned returns the serving certificate kept in dir as certFile and keyFile, creating a
// self-signed one for host and ips when it is missing, expires within a month or no longer
// covers them, as upstream's kubelet does without --tls-cert-file.
func SelfSigned(dir, certFile, keyFile, host string, ips []net.IP) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, certFile), filepath.Join(dir, keyFile)
	if pair, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		if leaf, err := x509.ParseCertificate(pair.Certificate[0]); err == nil && time.Until(leaf.NotAfter) > 30*24*time.Hour && covers(leaf, []string{host}, ips) {
			return pair, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, err
	}
	key, err := newKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s@%d", host, now.Unix())},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{host},
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certPath, keyPath)
}
