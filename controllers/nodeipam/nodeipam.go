// Package nodeipam gives every node a pod range (spec.podCIDR and spec.podCIDRs) cut from the
// cluster CIDR, as upstream's node-ipam-controller does with its range allocator: ranges nodes
// already hold are kept, a new node gets the next free one, a deleted node's is freed.
package nodeipam

import (
	"context"
	"fmt"
	"math/big"
	"net/netip"
	"sync"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// DefaultNodeMaskSize is upstream's --node-cidr-mask-size for IPv4.
const DefaultNodeMaskSize = 24

// ranges hands out the subnets of size maskSize within a cluster CIDR.
type ranges struct {
	cidr     netip.Prefix
	maskSize int
	used     map[int]string // subnet index → node
	next     int
}

func newRanges(cidr netip.Prefix, maskSize int) (*ranges, error) {
	if maskSize < cidr.Bits() || maskSize > cidr.Addr().BitLen() {
		return nil, fmt.Errorf("node CIDR mask size %d does not fit the cluster CIDR %s", maskSize, cidr)
	}
	if maskSize-cidr.Bits() > 24 {
		return nil, fmt.Errorf("cluster CIDR %s holds too many /%d subnets", cidr, maskSize)
	}
	return &ranges{cidr: cidr.Masked(), maskSize: maskSize, used: map[int]string{}}, nil
}

func (r *ranges) count() int { return 1 << (r.maskSize - r.cidr.Bits()) }

// subnet is the i-th subnet.
func (r *ranges) subnet(i int) netip.Prefix {
	base := new(big.Int).SetBytes(r.cidr.Addr().AsSlice())
	offset := new(big.Int).Lsh(big.NewInt(int64(i)), uint(r.cidr.Addr().BitLen()-r.maskSize))
	b := base.Add(base, offset).FillBytes(make([]byte, r.cidr.Addr().BitLen()/8))
	addr, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(addr, r.maskSize)
}

// index is the position of a subnet, or -1 if it is not one of ours.
func (r *ranges) index(p netip.Prefix) int {
	if p.Bits() != r.maskSize || !r.cidr.Contains(p.Addr()) {
		return -1
	}
	base := new(big.Int).SetBytes(r.cidr.Addr().AsSlice())
	off := new(big.Int).Sub(new(big.Int).SetBytes(p.Masked().Addr().AsSlice()), base)
	return int(off.Rsh(off, uint(r.cidr.Addr().BitLen()-r.maskSize)).Int64())
}

// allocate takes the next free subnet for node, round robin; a node that already has one (its
// patch not yet seen) gets the same again.
func (r *ranges) allocate(node string) (netip.Prefix, bool) {
	for i, holder := range r.used {
		if holder == node {
			return r.subnet(i), true
		}
	}
	n := r.count()
	for k := range n {
		i := (r.next + k) % n
		if _, taken := r.used[i]; !taken {
			r.used[i] = node
			r.next = (i + 1) % n
			return r.subnet(i), true
		}
	}
	return netip.Prefix{}, false
}

type controller struct {
	*manager.Loop
	client   kubernetes.Interface
	recorder record.EventRecorder
	nodes    corelisters.NodeLister

	mu     sync.Mutex
	ranges *ranges
	// occupied says the ranges nodes already hold have been recorded, which must come before
	// any allocation.
	occupied bool
}

// New registers the controller to allocate /maskSize ranges from clusterCIDR.
func New(c *manager.Context, clusterCIDR string, maskSize int) (manager.Controller, error) {
	cidr, err := netip.ParsePrefix(clusterCIDR)
	if err != nil {
		return nil, fmt.Errorf("cluster CIDR: %w", err)
	}
	if maskSize == 0 {
		maskSize = DefaultNodeMaskSize
		if cidr.Addr().Is6() {
			maskSize = 64
		}
	}
	r, err := newRanges(cidr, maskSize)
	if err != nil {
		return nil, err
	}
	nodes := c.Informers.Core().V1().Nodes()
	ctl := &controller{client: c.Client, recorder: c.Recorder("cidrAllocator"), nodes: nodes.Lister(), ranges: r}
	ctl.Loop = manager.NewLoop("node-ipam-controller", 1, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{nodes.Informer().HasSynced}
	enqueue := func(o any) {
		if n, ok := o.(*corev1.Node); ok && len(n.Spec.PodCIDRs) == 0 {
			ctl.Enqueue(n.Name)
		}
	}
	_, err = nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if n, ok := o.(*corev1.Node); ok {
				ctl.release(n)
			}
		}})
	return ctl, err
}

func (c *controller) release(n *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range n.Spec.PodCIDRs {
		if p, err := netip.ParsePrefix(s); err == nil {
			if i := c.ranges.index(p); i >= 0 && c.ranges.used[i] == n.Name {
				delete(c.ranges.used, i)
			}
		}
	}
}

// occupyAll records the ranges every node holds, once the informer has them all.
func (c *controller) occupyAll() error {
	if c.occupied {
		return nil
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, n := range nodes {
		for _, s := range n.Spec.PodCIDRs {
			if p, err := netip.ParsePrefix(s); err == nil {
				if i := c.ranges.index(p); i >= 0 {
					c.ranges.used[i] = n.Name
				}
			}
		}
	}
	c.occupied = true
	return nil
}

func (c *controller) sync(ctx context.Context, name string) (time.Duration, error) {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) || (err == nil && len(node.Spec.PodCIDRs) > 0) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if err := c.occupyAll(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	subnet, ok := c.ranges.allocate(node.Name)
	c.mu.Unlock()
	if !ok {
		c.recorder.Eventf(node, corev1.EventTypeWarning, "CIDRNotAvailable", "Node %s status is now: %s", node.Name, "CIDRNotAvailable")
		return time.Minute, nil
	}
	patch := fmt.Appendf(nil, `{"metadata":{"uid":%q},"spec":{"podCIDR":%q,"podCIDRs":[%q]}}`, node.UID, subnet, subnet)
	if _, err := c.client.CoreV1().Nodes().Patch(ctx, node.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		c.mu.Lock()
		delete(c.ranges.used, c.ranges.index(subnet))
		c.mu.Unlock()
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return 0, nil
		}
		c.recorder.Eventf(node, corev1.EventTypeWarning, "CIDRAssignmentFailed", "Node %s status is now: %s", node.Name, "CIDRAssignmentFailed")
		return 0, err
	}
	return 0, nil
}
