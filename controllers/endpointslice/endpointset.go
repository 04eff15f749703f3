package endpointslice

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/dump"
)

// EndpointKey identifies an endpoint across changes: its addresses, hostname and target. What
// else an endpoint carries (conditions, node, zone) may change in place under the same key.
func EndpointKey(e *discoveryv1.Endpoint) string {
	addrs := slices.Clone(e.Addresses)
	slices.Sort(addrs)
	var b strings.Builder
	b.WriteString(strings.Join(addrs, ","))
	b.WriteByte('|')
	if e.Hostname != nil {
		b.WriteString(*e.Hostname)
	}
	b.WriteByte('|')
	if e.TargetRef != nil {
		b.WriteString(e.TargetRef.Namespace + "/" + e.TargetRef.Name)
	}
	return b.String()
}

// EqualBeyondKey tells whether two endpoints of the same key also agree on the rest: node, zone,
// conditions and target (its resourceVersion aside).
func EqualBeyondKey(a, b *discoveryv1.Endpoint) bool {
	return eqPtr(a.NodeName, b.NodeName) && eqPtr(a.Zone, b.Zone) && eqPtr(a.Conditions.Ready, b.Conditions.Ready) &&
		eqPtr(a.Conditions.Serving, b.Conditions.Serving) && eqPtr(a.Conditions.Terminating, b.Conditions.Terminating) &&
		sameTarget(a.TargetRef, b.TargetRef)
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func sameTarget(a, b *corev1.ObjectReference) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.ResourceVersion, y.ResourceVersion = "", ""
	return x == y
}

// SortPorts puts ports in upstream's order: by the FNV-128a hash of their dump, as hex. The
// order is arbitrary, but it is the one clients see from upstream.
func SortPorts(ports []discoveryv1.EndpointPort) {
	key := func(p discoveryv1.EndpointPort) string {
		h := fnv.New128a()
		h.Write([]byte(dump.ForHash(p)))
		return hex.EncodeToString(h.Sum(nil))
	}
	slices.SortStableFunc(ports, func(a, b discoveryv1.EndpointPort) int { return cmp.Compare(key(a), key(b)) })
}

// PortsKey identifies a set of ports whatever their order.
func PortsKey(ports []discoveryv1.EndpointPort) string {
	keys := make([]string, len(ports))
	for i, p := range ports {
		keys[i] = portString(p)
	}
	slices.Sort(keys)
	return strings.Join(keys, ";")
}

func portString(p discoveryv1.EndpointPort) string {
	s := func(v *string) string {
		if v == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%q", *v)
	}
	proto := "<nil>"
	if p.Protocol != nil {
		proto = string(*p.Protocol)
	}
	port := "<nil>"
	if p.Port != nil {
		port = fmt.Sprint(*p.Port)
	}
	return s(p.Name) + "/" + proto + "/" + port + "/" + s(p.AppProtocol)
}

// EndpointSet is a set of endpoints by EndpointKey.
type EndpointSet map[string]*discoveryv1.Endpoint

// Insert adds e, replacing any endpoint of the same key.
func (s EndpointSet) Insert(e *discoveryv1.Endpoint) { s[EndpointKey(e)] = e }

// Get returns the endpoint of e's key, or nil.
func (s EndpointSet) Get(e *discoveryv1.Endpoint) *discoveryv1.Endpoint { return s[EndpointKey(e)] }

// Delete removes the endpoint of e's key.
func (s EndpointSet) Delete(e *discoveryv1.Endpoint) { delete(s, EndpointKey(e)) }

// Take removes and returns up to n endpoints, those of the smallest keys, so that slices fill in
// a stable order.
func (s EndpointSet) Take(n int) []discoveryv1.Endpoint {
	if n <= 0 {
		return nil
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]discoveryv1.Endpoint, 0, min(n, len(keys)))
	for _, k := range keys[:min(n, len(keys))] {
		out = append(out, *s[k])
		delete(s, k)
	}
	return out
}
