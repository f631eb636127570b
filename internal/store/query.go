package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"math"
	"reflect"

	"github.com/conntop/conntop/internal/flow"
)

// item is one matched flow during a query: k1 is an order-preserving
// 64-bit prefix of its sort value, k2 and k3 the first 96 bits of its flow
// key in key order (k3 fills what would be padding); exact comparison
// (recCmp) decides only when all three tie. For a descending query the
// prefixes are stored inverted, so that items always sort ascending.
type item struct {
	k1, k2 uint64
	idx    uint32
	k3     uint32
}

// sameMatcher reports whether a and b are the same matcher without
// panicking on matchers of non-comparable types.
func sameMatcher(a, b Matcher) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	ta := reflect.TypeOf(a)
	if ta != reflect.TypeOf(b) || !ta.Comparable() {
		return false
	}
	return a == b
}

// Query returns a window of the filtered table (live and lingering flows)
// sorted by q.Sort, computed afresh (a View keeps the work between
// queries; see [View.Query]). Ties are broken by the flow key, so the
// order is total and stable; Desc reverses the whole order. Limit <= 0
// returns no rows (Matched and SelectedIndex are still computed).
func (s *Store) Query(q Query) Result {
	v := NewView()
	return v.Query(s, nil, q)
}

// order is a sort key and direction, with what comparing items needs.
type order struct {
	tab  *table
	key  SortKey
	desc bool
}

// less orders items in the query's order.
func (o *order) less(a, b *item) bool { return o.cmp(a, b) < 0 }

// cmp orders items in the query's order as a three-way comparison.
func (o *order) cmp(a, b *item) int {
	if a.k1 != b.k1 {
		return cmp.Compare(a.k1, b.k1)
	}
	if a.k2 != b.k2 {
		return cmp.Compare(a.k2, b.k2)
	}
	if a.k3 != b.k3 {
		return cmp.Compare(a.k3, b.k3)
	}
	if a.idx == b.idx {
		return 0
	}
	c := o.tab.recCmp(a.idx, b.idx, o.key)
	if o.desc {
		return -c
	}
	return c
}

// k1 returns the first word of record i's item (see newItem).
func (o *order) k1(i uint32) uint64 {
	k := o.tab.sortPrefix(i, o.key)
	if o.desc {
		k = ^k
	}
	return k
}

// newItem returns the query item of record i.
func (o *order) newItem(i uint32) item {
	t := o.tab
	k2, k3 := t.keyPrefix(i)
	it := item{k1: t.sortPrefix(i, o.key), k2: k2, k3: k3, idx: i}
	if o.desc {
		it.k1, it.k2, it.k3 = ^it.k1, ^it.k2, ^it.k3
	}
	return it
}

// row builds the Row of record i.
func (t *table) row(i uint32) Row {
	r := t.at(i)
	var w Row
	t.flow(i, &w.Flow)
	w.FirstSeen = unixTime(r.firstSeen)
	w.LastSeen = unixTime(r.lastSeenNs())
	w.Expires = unixTime(r.expiresNs())
	if r.flags&flagDestroyed != 0 {
		w.Destroyed = true
		w.DestroyedAt = w.LastSeen
	}
	v := t.ratesOf(i, r)
	w.OrigPPS, w.OrigBPS = v[0].float(), v[1].float()
	w.ReplyPPS, w.ReplyBPS = v[2].float(), v[3].float()
	return w
}

// addrs returns record i's orig addresses as 16-byte arrays (IPv4 in the
// last 4 bytes).
func (t *table) addrs(i uint32) (src, dst [16]byte) {
	r := t.at(i)
	switch {
	case r.flags&flagRare != 0 && t.rare[i].hasOrig:
		x := t.rare[i]
		return packAddr(x.orig.Src), packAddr(x.orig.Dst)
	case r.family == flow.FamilyIPv4:
		binary.BigEndian.PutUint32(src[12:], r.src4)
		binary.BigEndian.PutUint32(dst[12:], r.dst4)
		return src, dst
	}
	x := t.v6Of(r)
	return x.src, x.dst
}

// addrPrefix returns an order-preserving 64-bit prefix of (family,
// address, port) as cmpAddrPort orders them: IPv4 (with its port) before
// IPv6, other families where their number puts them.
func addrPrefix(fam flow.Family, a *[16]byte, port uint16) uint64 {
	switch {
	case fam == flow.FamilyIPv4:
		return uint64(binary.BigEndian.Uint32(a[12:]))<<16 | uint64(port)
	case fam == flow.FamilyIPv6:
		return 1<<63 | binary.BigEndian.Uint64(a[:8])>>1
	case fam < flow.FamilyIPv4:
		return 0
	case fam < flow.FamilyIPv6:
		return 1 << 63
	}
	return math.MaxUint64
}

// sortPrefix returns the order-preserving prefix of record i's sort value.
func (t *table) sortPrefix(i uint32, key SortKey) uint64 {
	r := t.at(i)
	switch key {
	case SortAge:
		return uint64(r.firstSeen) ^ 1<<63
	case SortState:
		return uint64(r.state())
	case SortTCPState:
		return uint64(r.tcpState)
	case SortProto:
		return uint64(r.proto)
	case SortSrc, SortDst:
		sp, dp := r.ports()
		if r.family == flow.FamilyIPv4 && r.flags&flagRare == 0 {
			if key == SortSrc {
				return uint64(r.src4)<<16 | uint64(sp)
			}
			return uint64(r.dst4)<<16 | uint64(dp)
		}
		src, dst := t.addrs(i)
		if key == SortSrc {
			return addrPrefix(r.family, &src, sp)
		}
		return addrPrefix(r.family, &dst, dp)
	case SortSport:
		sp, _ := r.ports()
		return uint64(sp)
	case SortDport:
		_, dp := r.ports()
		return uint64(dp)
	case SortPackets:
		c := t.counters(i, r)
		return c.OrigPackets + c.ReplyPackets
	case SortBytes:
		c := t.counters(i, r)
		return c.OrigBytes + c.ReplyBytes
	case SortRate:
		// The bits of a non-negative float64 are in its order; the sum
		// is Row's OrigBPS+ReplyBPS exactly.
		v := t.ratesOf(i, r)
		return math.Float64bits(v[1].float() + v[3].float())
	case SortTimeout:
		return uint64(r.expiresNs()) ^ 1<<63
	case SortMark:
		return uint64(t.marks.get(i))
	}
	return 0
}

// keyPrefix returns an order-preserving 96-bit prefix of record i's flow
// key as cmpKey orders it (proto, family, source, destination, source
// port, destination port): 64 bits in k2, the next 32 in k3.
func (t *table) keyPrefix(i uint32) (k2 uint64, k3 uint32) {
	r := t.at(i)
	v := uint64(r.proto) << 56
	switch {
	case r.family == flow.FamilyIPv4:
		src, dst := uint64(r.src4), r.dst4
		if r.flags&flagRare != 0 {
			a, b := t.addrs(i)
			src, dst = uint64(binary.BigEndian.Uint32(a[12:])), binary.BigEndian.Uint32(b[12:])
		}
		return v | 1<<54 | src<<22 | uint64(dst>>10),
			dst<<22 | uint32(r.sport)<<6 | uint32(r.dport>>10)
	case r.family == flow.FamilyIPv6:
		a, _ := t.addrs(i)
		hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
		return v | 2<<54 | hi>>10, uint32(hi&0x3ff)<<22 | uint32(lo>>42)
	case r.family < flow.FamilyIPv4:
		return v, 0
	case r.family < flow.FamilyIPv6:
		return v | 2<<54, 0
	}
	return v | 3<<54, 0
}

// recCmp compares two records exactly by sort value, then flow key.
func (t *table) recCmp(a, b uint32, key SortKey) int {
	if c := t.cmpSortValue(a, b, key); c != 0 {
		return c
	}
	return t.cmpKey(a, b)
}

// cmpSortValue compares the sort values exactly.
func (t *table) cmpSortValue(a, b uint32, key SortKey) int {
	switch key {
	case SortSrc, SortDst:
		ra, rb := t.at(a), t.at(b)
		as, ad := ra.ports()
		bs, bd := rb.ports()
		asrc, adst := t.addrs(a)
		bsrc, bdst := t.addrs(b)
		if key == SortSrc {
			return cmpAddrPort(ra.family, &asrc, as, rb.family, &bsrc, bs)
		}
		return cmpAddrPort(ra.family, &adst, ad, rb.family, &bdst, bd)
	}
	return cmp.Compare(t.sortPrefix(a, key), t.sortPrefix(b, key))
}

// cmpAddrPort orders (family, address, port).
func cmpAddrPort(fa flow.Family, a *[16]byte, pa uint16, fb flow.Family, b *[16]byte, pb uint16) int {
	if c := cmp.Compare(fa, fb); c != 0 {
		return c
	}
	if c := bytes.Compare(a[:], b[:]); c != 0 {
		return c
	}
	return cmp.Compare(pa, pb)
}

// cmpKey orders records by flow key: proto, family, src, dst, sport,
// dport, zone, then the full tuples (for tuples not in compact form).
func (t *table) cmpKey(a, b uint32) int {
	ra, rb := t.at(a), t.at(b)
	if c := cmp.Compare(ra.proto, rb.proto); c != 0 {
		return c
	}
	if c := cmp.Compare(ra.family, rb.family); c != 0 {
		return c
	}
	asrc, adst := t.addrs(a)
	bsrc, bdst := t.addrs(b)
	if c := bytes.Compare(asrc[:], bsrc[:]); c != 0 {
		return c
	}
	if c := bytes.Compare(adst[:], bdst[:]); c != 0 {
		return c
	}
	if c := cmp.Compare(ra.sport, rb.sport); c != 0 {
		return c
	}
	if c := cmp.Compare(ra.dport, rb.dport); c != 0 {
		return c
	}
	if c := cmp.Compare(ra.zone, rb.zone); c != 0 {
		return c
	}
	ta, tb := t.origTuple(a), t.origTuple(b)
	return ta.Compare(&tb)
}
