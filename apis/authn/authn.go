// Package authn authenticates requests: client certificates signed by the cluster CA, whose common
// name is the user and whose organizations are the groups, as upstream's x509 authenticator reads
// them; and bearer tokens, through a token authenticator (service-account tokens).
package authn

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"time"
)

// User is an authenticated identity.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// Well-known groups.
const (
	GroupAuthenticated   = "system:authenticated"
	GroupUnauthenticated = "system:unauthenticated"
	GroupMasters         = "system:masters"
	UserAnonymous        = "system:anonymous"
)

type userKey struct{}

// WithUser returns ctx carrying u.
func WithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the request's user, or nil.
func UserFrom(ctx context.Context) *User {
	u, _ := ctx.Value(userKey{}).(*User)
	return u
}

// TokenAuthenticator turns a bearer token into a user.
type TokenAuthenticator interface {
	AuthenticateToken(ctx context.Context, token string) (*User, error)
}

// Authenticator verifies client certificates against the cluster CA and bearer tokens with its
// token authenticator.
type Authenticator struct {
	roots  *x509.CertPool
	tokens TokenAuthenticator
}

// New returns an authenticator trusting client certificates signed by roots and the tokens
// tokens accepts (nil: none).
func New(roots *x509.CertPool, tokens TokenAuthenticator) *Authenticator {
	return &Authenticator{roots: roots, tokens: tokens}
}

// ErrInvalidCredential means the request presented a credential that does not hold; upstream
// answers 401 rather than treating the request as anonymous.
var ErrInvalidCredential = errors.New("authn: invalid credential")

// Authenticate returns the user of r, nil when the request carries no credential, or
// ErrInvalidCredential.
func (a *Authenticator) Authenticate(r *http.Request) (*User, error) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, token, ok := strings.Cut(auth, " ")
		if ok && strings.EqualFold(scheme, "bearer") && a.tokens != nil {
			u, err := a.tokens.AuthenticateToken(r.Context(), strings.TrimSpace(token))
			if err != nil {
				return nil, ErrInvalidCredential
			}
			return u, nil
		}
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, nil
	}
	leaf := r.TLS.PeerCertificates[0]
	if len(r.TLS.VerifiedChains) > 0 {
		// The handshake verified the chain against the same roots, for client auth; only the
		// validity period can have changed since, on a long-lived connection.
		if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
			return nil, ErrInvalidCredential
		}
	} else {
		inter := x509.NewCertPool()
		for _, c := range r.TLS.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: a.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return nil, ErrInvalidCredential
		}
	}
	groups := append([]string{}, leaf.Subject.Organization...)
	groups = append(groups, GroupAuthenticated)
	return &User{Name: leaf.Subject.CommonName, Groups: groups}, nil
}
