// Package allocator hands out service cluster IPs and node ports. A cluster IP is held by an
// IPAddress object named after it, created with etcd's create-if-absent, so two API servers can
// never give one address twice (upstream's MultiCIDRServiceAllocator model).
package allocator

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/netip"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// IPStore creates and deletes IPAddress objects; the API layer provides it.
type IPStore interface {
	// Claim creates the IPAddress ip for a service; AlreadyExists means it is taken.
	Claim(ctx context.Context, ip, namespace, service string) error
	// Release deletes the IPAddress ip; a missing one is not an error.
	Release(ctx context.Context, ip string) error
}

// ServiceIPs allocates cluster IPs from one IPv4 range.
type ServiceIPs struct {
	prefix netip.Prefix
	store  IPStore
}

// ErrFull means every address of the range is taken.
var ErrFull = errors.New("allocator: range is full")

// ErrNotInRange means a requested address lies outside the range.
var ErrNotInRange = errors.New("allocator: address not in range")

// NewServiceIPs returns an allocator for cidr (e.g. 10.96.0.0/12).
func NewServiceIPs(cidr string, store IPStore) (*ServiceIPs, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("allocator: service CIDR %q: %w", cidr, err)
	}
	if !p.Addr().Is4() || p.Bits() > 30 {
		return nil, fmt.Errorf("allocator: service CIDR %q must be an IPv4 range of at least 4 addresses", cidr)
	}
	return &ServiceIPs{prefix: p.Masked(), store: store}, nil
}

// size is the number of usable addresses: the network and broadcast addresses are never given.
func (s *ServiceIPs) size() int64 { return int64(1)<<(32-s.prefix.Bits()) - 2 }

// Nth returns the n-th usable address of the range, counting from 1.
func (s *ServiceIPs) Nth(n int64) netip.Addr {
	base := new(big.Int).SetBytes(s.prefix.Addr().AsSlice())
	base.Add(base, big.NewInt(n))
	var b [4]byte
	base.FillBytes(b[:])
	return netip.AddrFrom4(b)
}

// Contains tells whether ip lies in the usable range.
func (s *ServiceIPs) Contains(ip netip.Addr) bool {
	return s.prefix.Contains(ip) && ip != s.prefix.Addr() && ip != s.Nth(s.size()+1)
}

// Allocate claims a free address for a service, starting the search at a random place in the
// upper part of the range; the lower part is left for addresses asked for by value, as upstream.
func (s *ServiceIPs) Allocate(ctx context.Context, namespace, name string) (netip.Addr, error) {
	size := s.size()
	low := min(max(size/16, 16), 256)
	if low >= size {
		low = 0
	}
	span := size - low
	start := rand.Int64N(span)
	for i := int64(0); i < span; i++ {
		ip := s.Nth(low + 1 + (start+i)%span)
		err := s.store.Claim(ctx, ip.String(), namespace, name)
		if err == nil {
			return ip, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return netip.Addr{}, err
		}
	}
	// The upper part is full: fall back to the lower part.
	for i := int64(1); i <= low; i++ {
		ip := s.Nth(i)
		err := s.store.Claim(ctx, ip.String(), namespace, name)
		if err == nil {
			return ip, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return netip.Addr{}, err
		}
	}
	return netip.Addr{}, ErrFull
}

// AllocateAddr claims one given address.
func (s *ServiceIPs) AllocateAddr(ctx context.Context, ip netip.Addr, namespace, name string) error {
	if !s.Contains(ip) {
		return ErrNotInRange
	}
	return s.store.Claim(ctx, ip.String(), namespace, name)
}

// Release frees an address.
func (s *ServiceIPs) Release(ctx context.Context, ip netip.Addr) error {
	return s.store.Release(ctx, ip.String())
}

// CIDR is the range served.
func (s *ServiceIPs) CIDR() netip.Prefix { return s.prefix }
