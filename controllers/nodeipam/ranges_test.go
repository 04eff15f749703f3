package nodeipam

import (
	"net/netip"
	"testing"
)

func TestRangesAllocateInOrderReuseAndRunOut(t *testing.T) {
	r, err := newRanges(netip.MustParsePrefix("10.244.0.0/22"), 24)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range []string{"a", "b", "c", "d"} {
		p, ok := r.allocate(n)
		if !ok {
			t.Fatalf("no range for %s", n)
		}
		got = append(got, p.String())
	}
	want := []string{"10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if p, _ := r.allocate("b"); p.String() != "10.244.1.0/24" {
		t.Fatalf("b got %s again", p)
	}
	if _, ok := r.allocate("e"); ok {
		t.Fatal("allocated beyond the cluster CIDR")
	}
	delete(r.used, r.index(netip.MustParsePrefix("10.244.2.0/24")))
	if p, ok := r.allocate("e"); !ok || p.String() != "10.244.2.0/24" {
		t.Fatalf("e got %s, %v", p, ok)
	}
	if r.index(netip.MustParsePrefix("10.245.0.0/24")) != -1 || r.index(netip.MustParsePrefix("10.244.1.0/25")) != -1 {
		t.Fatal("foreign ranges indexed")
	}
}

func TestRangesIPv6(t *testing.T) {
	r, err := newRanges(netip.MustParsePrefix("fd00:10:244::/56"), 64)
	if err != nil {
		t.Fatal(err)
	}
	r.allocate("a")
	if p, _ := r.allocate("b"); p.String() != "fd00:10:244:1::/64" {
		t.Fatalf("got %s", p)
	}
}
