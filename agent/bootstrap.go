package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
)

// JoinTokenDescription marks the join token `keelson server` creates.
const JoinTokenDescription = "keelson join token"

var tokenRe = regexp.MustCompile(bootstrapapi.BootstrapTokenPattern)

// KubeletKubeconfig is where a node joined with a token keeps its credentials.
func KubeletKubeconfig(dataDir string) string {
	return filepath.Join(Dir(dataDir), "kubelet.kubeconfig")
}

// TokenFile is where `keelson server` writes the cluster's join token.
func TokenFile(dataDir string) string { return filepath.Join(dataDir, "token") }

// CACertHash is kubeadm's pin of a CA: "sha256:" and the hex SHA-256 of the certificate's
// SubjectPublicKeyInfo.
func CACertHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CACertHashPEM is CACertHash of the first certificate of a PEM bundle.
func CACertHashPEM(caPEM []byte) (string, error) {
	certs, err := parseCerts(caPEM)
	if err != nil {
		return "", err
	}
	return CACertHash(certs[0]), nil
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate in PEM data")
	}
	return certs, nil
}

// EnsureJoinToken returns the cluster's join token, creating it at first start: a bootstrap
// token Secret without expiration, for authentication and signing, written to
// <dataDir>/token (0600). The token of the file is kept while its Secret holds it; once the
// Secret is gone (revoked by an admin) a new token takes its place. The
// kube-public/cluster-info ConfigMap gets the token's signature (jws-kubeconfig-<id>), as
// upstream's bootstrap signer adds it, so that a joining node can tell the server knows it.
func EnsureJoinToken(ctx context.Context, client kubernetes.Interface, dataDir string) (string, error) {
	path := TokenFile(dataDir)
	secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
	if b, err := os.ReadFile(path); err == nil {
		token := strings.TrimSpace(string(b))
		if !tokenRe.MatchString(token) {
			return "", fmt.Errorf("%s does not hold a bootstrap token", path)
		}
		id, secret, _ := strings.Cut(token, ".")
		s, err := secrets.Get(ctx, bootstrapapi.BootstrapTokenSecretPrefix+id, metav1.GetOptions{})
		switch {
		case err == nil && string(s.Data[bootstrapapi.BootstrapTokenSecretKey]) == secret:
			return token, signClusterInfo(ctx, client, id, secret)
		case err != nil && !apierrors.IsNotFound(err):
			return "", fmt.Errorf("join token: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	token, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return "", err
	}
	id, secret, _ := strings.Cut(token, ".")
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.BootstrapTokenSecretPrefix + id, Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: map[string]string{
			bootstrapapi.BootstrapTokenIDKey:               id,
			bootstrapapi.BootstrapTokenSecretKey:           secret,
			bootstrapapi.BootstrapTokenDescriptionKey:      JoinTokenDescription,
			bootstrapapi.BootstrapTokenUsageAuthentication: "true",
			bootstrapapi.BootstrapTokenUsageSigningKey:     "true",
		},
	}
	if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("join token: %w", err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", err
	}
	return token, signClusterInfo(ctx, client, id, secret)
}

// signClusterInfo adds the token's detached JWS of the cluster-info kubeconfig.
func signClusterInfo(ctx context.Context, client kubernetes.Interface, id, secret string) error {
	cms := client.CoreV1().ConfigMaps(metav1.NamespacePublic)
	for {
		cm, err := cms.Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("cluster-info: %w", err)
		}
		content := cm.Data[bootstrapapi.KubeConfigKey]
		sig, err := jws.ComputeDetachedSignature(content, id, secret)
		if err != nil {
			return err
		}
		key := bootstrapapi.JWSSignatureKeyPrefix + id
		changed := cm.Data[key] != sig
		cm.Data[key] = sig
		// Signatures of tokens that are gone go with them, as upstream's signer drops them.
		for k := range cm.Data {
			other, ok := strings.CutPrefix(k, bootstrapapi.JWSSignatureKeyPrefix)
			if !ok || other == id {
				continue
			}
			_, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, bootstrapapi.BootstrapTokenSecretPrefix+other, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				delete(cm.Data, k)
				changed = true
			}
		}
		if !changed {
			return nil
		}
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cluster-info: %w", err)
		}
		return nil
	}
}

// Bootstrap gives a node its credentials, as kubeadm join and the kubelet's TLS bootstrap do:
// it reads the cluster CA from kube-public/cluster-info (anonymously, the server not yet
// trusted), checks the ConfigMap's signature by the token and, when caHash is set, the CA's
// pin (without one it trusts the CA on first use, with a warning); then, authenticated by the
// token, it requests a client certificate for system:node:<nodeName> in system:nodes from the
// kubernetes.io/kube-apiserver-client-kubelet signer, waits for it to be approved and signed,
// and writes <dataDir>/agent/kubelet.kubeconfig with the key and certificate. A kubeconfig
// written before whose certificate still holds, for the same node, is reused without asking
// the server (token and caHash unused then). log may be nil.
func Bootstrap(ctx context.Context, server, token, caHash, dataDir, nodeName string, log *slog.Logger) (*rest.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path := KubeletKubeconfig(dataDir)
	if cfg, err := reuse(path, nodeName); err == nil {
		log.Info("using the node's credentials", "kubeconfig", path)
		return cfg, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		log.Warn("node credentials unusable, bootstrapping again", "kubeconfig", path, "err", err)
	}
	m := tokenRe.FindStringSubmatch(token)
	if m == nil {
		return nil, errors.New("bootstrap: the token is not of the form [a-z0-9]{6}.[a-z0-9]{16}")
	}
	if nodeName == "" {
		return nil, errors.New("bootstrap: no node name")
	}
	caPEM, err := clusterCA(ctx, server, m[1], m[2], caHash, log)
	if err != nil {
		return nil, err
	}
	boot := &rest.Config{Host: server, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, UserAgent: "keelson-agent/bootstrap"}
	client, err := kubernetes.NewForConfig(boot)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	certPEM, err := requestCertificate(ctx, client, key, nodeName, log)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["default-cluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	kc.AuthInfos["default-auth"] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM,
		ClientKeyData: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}
	kc.Contexts["default-context"] = &clientcmdapi.Context{Cluster: "default-cluster", AuthInfo: "default-auth"}
	kc.CurrentContext = "default-context"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	content, err := clientcmd.Write(*kc)
	if err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	log.Info("node credentials written", "kubeconfig", path, "user", "system:node:"+nodeName)
	return clientcmd.RESTConfigFromKubeConfig(content)
}

// reuse loads a kubeconfig written by an earlier bootstrap whose certificate, for this node,
// has not expired.
func reuse(path, nodeName string) (*rest.Config, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(content)
	if err != nil {
		return nil, err
	}
	certs, err := parseCerts(cfg.CertData)
	if err != nil {
		return nil, err
	}
	if time.Now().After(certs[0].NotAfter) {
		return nil, fmt.Errorf("certificate expired at %s", certs[0].NotAfter)
	}
	if nodeName != "" && certs[0].Subject.CommonName != "system:node:"+nodeName {
		return nil, fmt.Errorf("certificate is %s's, not system:node:%s", certs[0].Subject.CommonName, nodeName)
	}
	return cfg, nil
}

// clusterCA reads and checks the CA of kube-public/cluster-info.
func clusterCA(ctx context.Context, server, id, secret, caHash string, log *slog.Logger) ([]byte, error) {
	anon, err := kubernetes.NewForConfig(&rest.Config{Host: server, TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		UserAgent: "keelson-agent/bootstrap"})
	if err != nil {
		return nil, err
	}
	var cm *corev1.ConfigMap
	// The signature may come a moment after the token (the server adds it once the token
	// exists), as kubeadm join waits for the bootstrap signer.
	for {
		cm, err = anon.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("bootstrap: reading %s/%s: %w", metav1.NamespacePublic, bootstrapapi.ConfigMapClusterInfo, err)
		}
		if _, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id]; ok {
			break
		}
		log.Info("waiting for cluster-info to be signed by the token", "token-id", id)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bootstrap: there is no JWS signed token in the cluster-info ConfigMap: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
	content := cm.Data[bootstrapapi.KubeConfigKey]
	if !jws.DetachedTokenIsValid(cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id], content, id, secret) {
		return nil, fmt.Errorf("bootstrap: failed to verify JWS signature of received cluster info object, can't trust this API Server")
	}
	kc, err := clientcmd.Load([]byte(content))
	if err != nil {
		return nil, fmt.Errorf("bootstrap: cluster-info kubeconfig: %w", err)
	}
	var caPEM []byte
	for _, c := range kc.Clusters {
		caPEM = c.CertificateAuthorityData
		break
	}
	certs, err := parseCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: cluster-info CA: %w", err)
	}
	if caHash == "" {
		log.Warn("no --ca-cert-hash: trusting the cluster CA on first use", "ca-cert-hash", CACertHash(certs[0]))
		return caPEM, nil
	}
	for _, c := range certs {
		if strings.EqualFold(CACertHash(c), caHash) {
			return caPEM, nil
		}
	}
	return nil, fmt.Errorf("bootstrap: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys %q are pinned", CACertHash(certs[0]))
}

// requestCertificate creates the node's CSR and waits for its certificate.
func requestCertificate(ctx context.Context, client kubernetes.Interface, key *ecdsa.PrivateKey, nodeName string, log *slog.Logger) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
	}, key)
	if err != nil {
		return nil, err
	}
	csrs := client.CertificatesV1().CertificateSigningRequests()
	csr, err := csrs.Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "node-csr-"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("bootstrap: creating the certificate signing request: %w", err)
	}
	log.Info("waiting for the node's client certificate", "csr", csr.Name)
	for {
		for _, c := range csr.Status.Conditions {
			if c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed {
				return nil, fmt.Errorf("bootstrap: certificate signing request %s %s: %s %s", csr.Name, strings.ToLower(string(c.Type)), c.Reason, c.Message)
			}
		}
		if len(csr.Status.Certificate) > 0 {
			return csr.Status.Certificate, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bootstrap: certificate signing request %s not signed: %w", csr.Name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		if csr, err = csrs.Get(ctx, csr.Name, metav1.GetOptions{}); err != nil {
			return nil, fmt.Errorf("bootstrap: reading certificate signing request: %w", err)
		}
	}
}
