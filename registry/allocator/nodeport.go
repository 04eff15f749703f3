package allocator

import (
	"math/rand/v2"
	"sync"
	"time"
)

// NodePorts hands out node ports from a range. Ports in use are read from the stored services;
// ports handed out but not yet visible there are held for a while so that two creates racing in
// this server never get the same port.
type NodePorts struct {
	Base, Size int
	// used lists the ports stored services hold.
	used func() []int32

	mu      sync.Mutex // guards pending
	pending map[int32]time.Time
}

// NewNodePorts returns an allocator for [base, base+size).
func NewNodePorts(base, size int, used func() []int32) *NodePorts {
	return &NodePorts{Base: base, Size: size, used: used, pending: map[int32]time.Time{}}
}

const pendingHold = time.Minute

// InRange tells whether port belongs to the range.
func (n *NodePorts) InRange(port int32) bool {
	return int(port) >= n.Base && int(port) < n.Base+n.Size
}

func (n *NodePorts) takenLocked() map[int32]bool {
	taken := map[int32]bool{}
	for _, p := range n.used() {
		taken[p] = true
	}
	now := time.Now()
	for p, at := range n.pending {
		if now.Sub(at) > pendingHold {
			delete(n.pending, p)
			continue
		}
		taken[p] = true
	}
	return taken
}

// Allocate returns a free port, or 0 when the range is full.
func (n *NodePorts) Allocate() int32 {
	n.mu.Lock()
	defer n.mu.Unlock()
	taken := n.takenLocked()
	start := rand.IntN(n.Size)
	for i := 0; i < n.Size; i++ {
		p := int32(n.Base + (start+i)%n.Size)
		if !taken[p] {
			n.pending[p] = time.Now()
			return p
		}
	}
	return 0
}

// AllocatePort claims a given port; false means it is taken.
func (n *NodePorts) AllocatePort(port int32) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.takenLocked()[port] {
		return false
	}
	n.pending[port] = time.Now()
	return true
}

// Release forgets a pending port (its create failed).
func (n *NodePorts) Release(port int32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.pending, port)
}
