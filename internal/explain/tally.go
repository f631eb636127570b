package explain

import (
	"cmp"
	"math/bits"
	"net/netip"
	"slices"
)

// addrKey is an address (or network) as a comparable pair of words; IPv4
// has v4Tag in hi. Consumers of every dimension are ordered by it (a
// number has hi 0), so that ties between equal counts break alike
// everywhere.
type addrKey struct{ hi, lo uint64 }

const v4Tag = 1<<64 - 1

func keyOf(a netip.Addr) addrKey {
	if a.Is4() {
		b := a.As4()
		return addrKey{hi: v4Tag, lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var k addrKey
	for i := 0; i < 8; i++ {
		k.hi = k.hi<<8 | uint64(b[i])
		k.lo = k.lo<<8 | uint64(b[8+i])
	}
	return k
}

// netKey is the /24 (IPv4) or /64 (IPv6) network of a.
func netKey(a netip.Addr) addrKey {
	k := keyOf(a)
	if k.hi == v4Tag {
		k.lo &^= 0xff
	} else {
		k.lo = 0
	}
	return k
}

func (k addrKey) addr() netip.Addr {
	if k.hi == v4Tag {
		return netip.AddrFrom4([4]byte{byte(k.lo >> 24), byte(k.lo >> 16), byte(k.lo >> 8), byte(k.lo)})
	}
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(k.hi >> (56 - 8*i))
		b[8+i] = byte(k.lo >> (56 - 8*i))
	}
	return netip.AddrFrom16(b)
}

func cmpAddrKey(a, b addrKey) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// cand is one consumer's count: its flows and those of them first seen
// inside the rate window.
type cand struct {
	key          addrKey
	flows, fresh int
}

// better orders consumers: more flows first, then by key.
func better(a, b *cand) bool {
	if a.flows != b.flows {
		return a.flows > b.flows
	}
	return cmpAddrKey(a.key, b.key) < 0
}

// topN keeps the n best consumers offered, best first. Consumers are
// totally ordered (by count, then key), so the result does not depend on
// the order they are offered in.
type topN struct {
	n   int
	out []cand
}

func newTopN(n int) *topN { return &topN{n: n, out: make([]cand, 0, n+1)} }

func (t *topN) offer(c cand) {
	if len(t.out) == t.n && !better(&c, &t.out[t.n-1]) {
		return
	}
	// Insert in order (n is small).
	p := len(t.out)
	for p > 0 && better(&c, &t.out[p-1]) {
		p--
	}
	t.out = slices.Insert(t.out, p, c)
	if len(t.out) > t.n {
		t.out = t.out[:t.n]
	}
}

// merge offers every consumer of o.
func (t *topN) merge(o *topN) {
	for _, c := range o.out {
		t.offer(c)
	}
}

// slot is one key of a counter's table.
type slot struct {
	key          uint64 // the key plus one; 0: empty
	flows, fresh uint32
}

// Bounds of a counter's table: it grows from 2^counterMinBits slots while
// at most half full, up to 2^counterMaxBits (16 B each: 512 KiB, about a
// core's L2 cache).
const (
	counterMinBits = 6
	counterMaxBits = 15
	hashMul        = 0x9e3779b97f4a7c15 // 2^64 / golden ratio
)

// counter counts flows by a key of at most 63 bits. It starts with a small
// open-addressing table that stays in cache: a dimension with few keys
// (ports, zones, marks) costs one cached probe a flow. When the table
// fills up (a dimension with many keys, such as hosts), the counter stops
// probing and appends every further flow to a column (key<<1 | fresh),
// which top radix-sorts and counts in runs, merged with the table's
// counts: 8 bytes and a few sequential passes a flow, never a lookup in a
// hash table far bigger than the cache. Every count is exact.
type counter struct {
	slots []slot
	shift uint // 64 - log2(len(slots))
	used  int
	// last is the slot of the key counted last, plus one (0: none): a
	// dimension where most flows share one key (zone 0, mark 0) skips the
	// hashing.
	last    int
	lastKey uint64
	// col holds the flows added after the table filled up; hint is the
	// most flows still to come (its capacity).
	col  []uint64
	full bool
	hint int
}

// newCounter returns a counter for at most n flows.
func newCounter(n int) *counter {
	return &counter{slots: make([]slot, 1<<counterMinBits), shift: 64 - counterMinBits, hint: n}
}

// add counts one flow of key (fresh is 0 or 1).
func (c *counter) add(key uint64, fresh uint32) {
	if c.last != 0 && key == c.lastKey {
		s := &c.slots[c.last-1]
		s.flows++
		s.fresh += fresh
		return
	}
	if c.full {
		c.col = append(c.col, key<<1|uint64(fresh))
		return
	}
	k := key + 1
	mask := uint64(len(c.slots) - 1)
	i := (k * hashMul) >> c.shift
	for {
		s := &c.slots[i&mask]
		if s.key == k {
			s.flows++
			s.fresh += fresh
			c.last, c.lastKey = int(i&mask)+1, key
			return
		}
		if s.key == 0 {
			break
		}
		i++
	}
	if 2*(c.used+1) > len(c.slots) {
		if len(c.slots) < 1<<counterMaxBits {
			c.grow()
			c.add(key, fresh)
			return
		}
		c.full = true
		c.col = make([]uint64, 0, c.hint)
		c.col = append(c.col, key<<1|uint64(fresh))
		return
	}
	c.slots[i&mask] = slot{key: k, flows: 1, fresh: fresh}
	c.used++
	c.last, c.lastKey = int(i&mask)+1, key
}

// grow doubles the table.
func (c *counter) grow() {
	old := c.slots
	c.last = 0
	c.slots = make([]slot, 2*len(old))
	c.shift--
	mask := uint64(len(c.slots) - 1)
	for _, s := range old {
		if s.key == 0 {
			continue
		}
		i := (s.key * hashMul) >> c.shift
		for c.slots[i&mask].key != 0 {
			i++
		}
		c.slots[i&mask] = s
	}
}

// top offers every key's count to t, the key made an addrKey by mk. It
// uses the counter up.
func (c *counter) top(t *topN, mk func(uint64) addrKey) {
	c.each(func(k uint64, flows, fresh int) { t.offer(cand{key: mk(k), flows: flows, fresh: fresh}) })
}

// each calls fn with every key's count, once a key. It uses the counter
// up.
func (c *counter) each(fn func(k uint64, flows, fresh int)) {
	if !c.full {
		for _, s := range c.slots {
			if s.key != 0 {
				fn(s.key-1, int(s.flows), int(s.fresh))
			}
		}
		return
	}
	// Merge the table's keys, in order, with the column's runs.
	tab := slices.DeleteFunc(c.slots, func(s slot) bool { return s.key == 0 })
	slices.SortFunc(tab, func(a, b slot) int { return cmp.Compare(a.key, b.key) })
	col := radixSort(c.col)
	ti := 0
	for i := 0; i < len(col) || ti < len(tab); {
		var k uint64
		var flows, fresh int
		switch {
		case i == len(col) || (ti < len(tab) && tab[ti].key-1 < col[i]>>1):
			k, flows, fresh = tab[ti].key-1, int(tab[ti].flows), int(tab[ti].fresh)
			ti++
		default:
			k = col[i] >> 1
			j := i
			for ; j < len(col) && col[j]>>1 == k; j++ {
				fresh += int(col[j] & 1)
			}
			flows, i = j-i, j
			if ti < len(tab) && tab[ti].key-1 == k {
				flows += int(tab[ti].flows)
				fresh += int(tab[ti].fresh)
				ti++
			}
		}
		fn(k, flows, fresh)
	}
	c.slots, c.col = nil, nil
}

// radixDigit is the widest digit of a radix sort pass: 2,048 counters
// fit in the first-level cache.
const radixDigit = 11

// radixSort sorts a and returns the sorted slice: a, or a buffer of the
// same length. It sorts least significant digit first, over only the bits
// that differ between values (a column of IPv4 hosts in one /16 takes two
// passes of 9 bits), with every pass's counts taken in one first read.
func radixSort(a []uint64) []uint64 {
	if len(a) < 2 {
		return a
	}
	or, and := uint64(0), ^uint64(0)
	for _, v := range a {
		or |= v
		and &= v
	}
	diff := or ^ and
	if diff == 0 {
		return a
	}
	lo, hi := bits.TrailingZeros64(diff), bits.Len64(diff)
	passes := (hi - lo + radixDigit - 1) / radixDigit
	width := (hi - lo + passes - 1) / passes
	mask := uint64(1)<<width - 1
	counts := make([][1 << radixDigit]int, passes)
	for _, v := range a {
		v >>= lo
		for p := range counts {
			counts[p][v>>(p*width)&mask]++
		}
	}
	buf := make([]uint64, len(a))
	for p := range counts {
		count := &counts[p]
		sum := 0
		for i, n := range count[:mask+1] {
			count[i] = sum
			sum += n
		}
		shift := lo + p*width
		for _, v := range a {
			d := v >> shift & mask
			buf[count[d]] = v
			count[d]++
		}
		a, buf = buf, a
	}
	return a
}
