// Package authn authenticates requests: client certificates signed by the cluster CA, whose common
// name is the user and whose organizations are the groups, as upstream's x509 authenticator reads them.
package authn

import (
	"context"
	"crypto/x509"
	"net/http"
)

// User is an authenticated identity.
type User struct {
	Name   string
	UID    string
	Groups []string
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

// Authenticator verifies client certificates against the cluster CA.
type Authenticator struct {
	roots *x509.CertPool
}

// New returns an authenticator trusting client certificates signed by roots.
func New(roots *x509.CertPool) *Authenticator { return &Authenticator{roots: roots} }

// Authenticate returns the user of r, or nil when the request carries no valid credential.
func (a *Authenticator) Authenticate(r *http.Request) *User {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	leaf := r.TLS.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: a.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil
	}
	groups := append([]string{}, leaf.Subject.Organization...)
	groups = append(groups, GroupAuthenticated)
	return &User{Name: leaf.Subject.CommonName, Groups: groups}
}
