// Package serviceaccount issues and verifies service-account tokens: JWTs signed with the cluster's
// service-account key, carrying upstream's claims, optionally bound to a pod, secret or node.
package serviceaccount

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
)

// DefaultAudience is the audience of tokens that name none, and the issuer, as upstream's default.
const DefaultAudience = "https://kubernetes.default.svc.cluster.local"

// Ref names an object a token belongs or is bound to.
type Ref struct {
	Name string    `json:"name"`
	UID  types.UID `json:"uid"`
}

// KubernetesClaims are the private claims upstream puts under "kubernetes.io".
type KubernetesClaims struct {
	Namespace      string `json:"namespace"`
	ServiceAccount Ref    `json:"serviceaccount"`
	Pod            *Ref   `json:"pod,omitempty"`
	Secret         *Ref   `json:"secret,omitempty"`
	Node           *Ref   `json:"node,omitempty"`
}

// Claims are a token's claims.
type Claims struct {
	Issuer     string            `json:"iss"`
	Subject    string            `json:"sub"`
	Audience   []string          `json:"aud"`
	Expiry     int64             `json:"exp"`
	IssuedAt   int64             `json:"iat"`
	NotBefore  int64             `json:"nbf"`
	ID         string            `json:"jti"`
	Kubernetes *KubernetesClaims `json:"kubernetes.io"`
}

// Username is the user name of a service account, as upstream forms it.
func Username(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// Issuer signs and verifies tokens with one key.
type Issuer struct {
	key   *ecdsa.PrivateKey
	keyID string
	iss   string
	now   func() time.Time
}

// LoadIssuer reads the PEM EC private key at path.
func LoadIssuer(path string) (*Issuer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("serviceaccount: no PEM data in %s", path)
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("serviceaccount: %s: %w", path, err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return &Issuer{key: key, keyID: base64.RawURLEncoding.EncodeToString(sum[:]), iss: DefaultAudience, now: time.Now}, nil
}

var enc = base64.RawURLEncoding

// Issue signs a token for the service account with the given audiences and lifetime.
func (i *Issuer) Issue(k KubernetesClaims, audiences []string, lifetime time.Duration) (string, time.Time, error) {
	now := i.now()
	exp := now.Add(lifetime)
	c := Claims{
		Issuer: i.iss, Subject: Username(k.Namespace, k.ServiceAccount.Name), Audience: audiences,
		Expiry: exp.Unix(), IssuedAt: now.Unix(), NotBefore: now.Unix(), ID: string(uuid.NewUUID()), Kubernetes: &k,
	}
	header, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": i.keyID})
	payload, err := json.Marshal(c)
	if err != nil {
		return "", time.Time{}, err
	}
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	digest := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, i.key, digest[:])
	if err != nil {
		return "", time.Time{}, err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig), exp, nil
}

// Errors of Verify.
var (
	ErrMalformed = errors.New("serviceaccount: malformed token")
	ErrSignature = errors.New("serviceaccount: invalid signature")
	ErrExpired   = errors.New("serviceaccount: token has expired")
	ErrAudience  = errors.New("serviceaccount: token audiences do not match")
	ErrNotOurs   = errors.New("serviceaccount: token not issued by this cluster")
)

// Verify checks a token's signature, lifetime and audience (any of audiences) and returns its
// claims. Whether the objects it names still exist is the caller's to check.
func (i *Issuer) Verify(token string, audiences []string) (*Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, ErrMalformed
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, ErrMalformed
	}
	var header struct{ Alg, Kid string }
	hb, err := enc.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &header) != nil {
		return nil, ErrMalformed
	}
	if header.Alg != "ES256" {
		return nil, ErrNotOurs
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	pub := i.key.Public().(*ecdsa.PublicKey)
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, ErrSignature
	}
	var c Claims
	pb, err := enc.DecodeString(parts[1])
	if err != nil || json.Unmarshal(pb, &c) != nil {
		return nil, ErrMalformed
	}
	if c.Issuer != i.iss || c.Kubernetes == nil {
		return nil, ErrNotOurs
	}
	now := i.now().Unix()
	if now >= c.Expiry || now < c.NotBefore-60 {
		return nil, ErrExpired
	}
	if !intersects(c.Audience, audiences) {
		return nil, ErrAudience
	}
	return &c, nil
}

func intersects(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// Signer exposes the key for components that publish it (service-account issuer discovery).
func (i *Issuer) Signer() crypto.Signer { return i.key }

// Objects looks up what a token names, to refuse tokens whose account or bound object is gone.
type Objects interface {
	ServiceAccountUID(ctx context.Context, namespace, name string) (types.UID, bool)
	PodUID(ctx context.Context, namespace, name string) (types.UID, bool)
	SecretUID(ctx context.Context, namespace, name string) (types.UID, bool)
	NodeUID(ctx context.Context, name string) (types.UID, bool)
}

// ErrStale means the account or bound object of a token no longer exists as it was.
var ErrStale = errors.New("serviceaccount: the token's service account or bound object no longer exists")

// CheckLive refuses claims whose service account or bound object is gone or was recreated.
func CheckLive(ctx context.Context, c *Claims, objs Objects) error {
	k := c.Kubernetes
	if uid, ok := objs.ServiceAccountUID(ctx, k.Namespace, k.ServiceAccount.Name); !ok || uid != k.ServiceAccount.UID {
		return ErrStale
	}
	if k.Pod != nil {
		if uid, ok := objs.PodUID(ctx, k.Namespace, k.Pod.Name); !ok || uid != k.Pod.UID {
			return ErrStale
		}
	}
	if k.Secret != nil {
		if uid, ok := objs.SecretUID(ctx, k.Namespace, k.Secret.Name); !ok || uid != k.Secret.UID {
			return ErrStale
		}
	}
	if k.Node != nil {
		if uid, ok := objs.NodeUID(ctx, k.Node.Name); !ok || uid != k.Node.UID {
			return ErrStale
		}
	}
	return nil
}
