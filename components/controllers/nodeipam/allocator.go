package nodeipam

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// allocator hands out the blocks of an IPv4 range. It is not safe for
// concurrent use; the controller's single worker owns it.
type allocator struct {
	rng   netip.Prefix
	mask  int
	n     int            // number of blocks
	owner map[int]string // block index → Node name
}

func newAllocator(clusterCIDR string, mask int) (*allocator, error) {
	rng, err := netip.ParsePrefix(clusterCIDR)
	if err != nil {
		return nil, fmt.Errorf("nodeipam: Config.ClusterCIDR: %w", err)
	}
	if !rng.Addr().Is4() {
		return nil, fmt.Errorf("nodeipam: Config.ClusterCIDR %q: only IPv4 is supported", clusterCIDR)
	}
	if rng.Masked() != rng {
		return nil, fmt.Errorf("nodeipam: Config.ClusterCIDR %q has host bits set (want %s)", clusterCIDR, rng.Masked())
	}
	if mask < rng.Bits() || mask > 32 {
		return nil, fmt.Errorf("nodeipam: Config.NodeMaskSize %d must be between ClusterCIDR's prefix length %d and 32", mask, rng.Bits())
	}
	if mask-rng.Bits() > maxBlockBits {
		return nil, fmt.Errorf("nodeipam: Config.NodeMaskSize %d cuts ClusterCIDR %s into more than 2^%d blocks", mask, rng, maxBlockBits)
	}
	return &allocator{rng: rng, mask: mask, n: 1 << (mask - rng.Bits()), owner: map[int]string{}}, nil
}

func (a *allocator) base() uint32 {
	b := a.rng.Addr().As4()
	return binary.BigEndian.Uint32(b[:])
}

// block returns the CIDR of block i.
func (a *allocator) block(i int) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], a.base()+uint32(i)<<(32-a.mask))
	return netip.PrefixFrom(netip.AddrFrom4(b), a.mask).String()
}

// blocks returns the indexes of the blocks cidr overlaps, or ok=false if
// cidr does not parse or is not inside the range.
func (a *allocator) blocks(cidr string) (idx []int, ok bool) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p.Bits() < a.rng.Bits() || !a.rng.Contains(p.Addr()) {
		return nil, false
	}
	p = p.Masked()
	b := p.Addr().As4()
	first := int((binary.BigEndian.Uint32(b[:]) - a.base()) >> (32 - a.mask))
	count := 1
	if p.Bits() < a.mask {
		count = 1 << (a.mask - p.Bits())
	}
	for i := first; i < first+count; i++ {
		idx = append(idx, i)
	}
	return idx, true
}

// mark records that node holds cidr. It returns the owners of blocks
// already held by another Node (a conflict someone else made), and
// ok=false if cidr is outside the range.
func (a *allocator) mark(node, cidr string) (conflicts []string, ok bool) {
	idx, ok := a.blocks(cidr)
	if !ok {
		return nil, false
	}
	for _, i := range idx {
		if o, held := a.owner[i]; held && o != node {
			conflicts = append(conflicts, o)
			continue
		}
		a.owner[i] = node
	}
	return conflicts, true
}

// held returns the lowest block held by node, if any.
func (a *allocator) held(node string) (string, bool) {
	best := -1
	for i, o := range a.owner {
		if o == node && (best < 0 || i < best) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return a.block(best), true
}

// allocate gives node the lowest free block.
func (a *allocator) allocate(node string) (string, bool) {
	for i := range a.n {
		if _, held := a.owner[i]; !held {
			a.owner[i] = node
			return a.block(i), true
		}
	}
	return "", false
}

// release frees every block node holds and reports whether there was one.
func (a *allocator) release(node string) bool {
	freed := false
	for i, o := range a.owner {
		if o == node {
			delete(a.owner, i)
			freed = true
		}
	}
	return freed
}
