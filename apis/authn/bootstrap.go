package authn

import (
	"context"
	"crypto/subtle"
	"errors"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
)

// GroupBootstrappers is the group every bootstrap token's user is in.
const GroupBootstrappers = bootstrapapi.BootstrapDefaultGroup

var (
	bootstrapTokenRe = regexp.MustCompile(bootstrapapi.BootstrapTokenPattern)
	bootstrapGroupRe = regexp.MustCompile(bootstrapapi.BootstrapGroupPattern)
)

// ErrBootstrapToken is a bootstrap token that does not hold: no such Secret, the wrong secret,
// expired, not for authentication, or deleted.
var ErrBootstrapToken = errors.New("authn: invalid bootstrap token")

// IsBootstrapToken tells whether a bearer token has a bootstrap token's form.
func IsBootstrapToken(token string) bool { return bootstrapTokenRe.MatchString(token) }

// SecretGetter reads a Secret; the result is shared and must not be modified.
type SecretGetter func(ctx context.Context, namespace, name string) (*corev1.Secret, error)

// BootstrapTokens authenticates bootstrap tokens ("<id>.<secret>") against their kube-system
// Secrets, as upstream's bootstrap token authenticator does, and hands any other token to next.
type BootstrapTokens struct {
	Secrets SecretGetter
	Next    TokenAuthenticator
	// Now is the clock expirations are checked against (nil: time.Now).
	Now func() time.Time
}

// AuthenticateToken returns system:bootstrap:<id> in system:bootstrappers, the Secret's
// auth-extra-groups and system:authenticated, when the Secret
// kube-system/bootstrap-token-<id> of type bootstrap.kubernetes.io/token holds the same
// token-id and token-secret, is marked usage-bootstrap-authentication=true, has not expired and
// is not being deleted.
func (b *BootstrapTokens) AuthenticateToken(ctx context.Context, token string) (*User, error) {
	m := bootstrapTokenRe.FindStringSubmatch(token)
	if m == nil {
		if b.Next == nil {
			return nil, ErrInvalidCredential
		}
		return b.Next.AuthenticateToken(ctx, token)
	}
	id, secret := m[1], m[2]
	s, err := b.Secrets(ctx, metav1.NamespaceSystem, bootstrapapi.BootstrapTokenSecretPrefix+id)
	if err != nil || s == nil {
		return nil, ErrBootstrapToken
	}
	if s.DeletionTimestamp != nil || s.Type != bootstrapapi.SecretTypeBootstrapToken || s.Data == nil {
		return nil, ErrBootstrapToken
	}
	data := func(k string) string { return string(s.Data[k]) }
	if subtle.ConstantTimeCompare([]byte(data(bootstrapapi.BootstrapTokenSecretKey)), []byte(secret)) != 1 {
		return nil, ErrBootstrapToken
	}
	if data(bootstrapapi.BootstrapTokenIDKey) != id {
		return nil, ErrBootstrapToken
	}
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	if exp := data(bootstrapapi.BootstrapTokenExpirationKey); exp != "" {
		// An unparseable expiration counts as expired, as upstream treats it.
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil || !t.After(now()) {
			return nil, ErrBootstrapToken
		}
	}
	if data(bootstrapapi.BootstrapTokenUsageAuthentication) != "true" {
		return nil, ErrBootstrapToken
	}
	groups := []string{GroupBootstrappers}
	if extra := data(bootstrapapi.BootstrapTokenExtraGroupsKey); extra != "" {
		for _, g := range strings.Split(extra, ",") {
			if !bootstrapGroupRe.MatchString(g) {
				return nil, ErrBootstrapToken
			}
			groups = append(groups, g)
		}
	}
	slices.Sort(groups)
	groups = slices.Compact(groups)
	return &User{Name: bootstrapapi.BootstrapUserPrefix + id, Groups: append(groups, GroupAuthenticated)}, nil
}
