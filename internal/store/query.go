package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"math"
	"reflect"
	"slices"

	"github.com/conntop/conntop/internal/flow"
)

// item is one matched flow during a query: k1 is an order-preserving
// 64-bit prefix of its sort value, k2 and k3 the first 96 bits of its flow
// key in key order (k3 fills what would be padding); exact comparison
// (entryCmp) decides only when all three tie.
type item struct {
	k1, k2 uint64
	idx    uint32
	k3     uint32
}

// queryCache keeps the matched items of the last query so that the next
// query with the same filter and sort key on an unchanged table skips the
// scan (scrolling, frames with no change). The first query after a change
// only partly orders the items (the window, whose bounds are kept in
// fixedLo/fixedHi so that asking for it again costs only its rows); from
// the fifth query on an unchanged table they are sorted fully, so that any
// later window or selection costs O(window + log n).
type queryCache struct {
	valid  bool
	gen    uint64
	filter Matcher
	sort   SortKey
	items  []item
	total  int
	hits   int
	sorted bool
	// items[fixedLo:fixedHi] are sorted and in their final places.
	fixedLo, fixedHi int
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
// sorted by q.Sort. The cost is one pass over the table plus an expected
// linear-time selection of the window; only the window's rows are built,
// and repeated queries on an unchanged table reuse the pass. Ties are
// broken by the flow key, so the order is total and stable; Desc reverses
// the whole order. Limit <= 0 returns no rows (Matched and SelectedIndex
// are still computed). q.Filter must not change its answers while the
// store may reuse them (a *filter.Filter never does).
func (s *Store) Query(q Query) Result {
	if q.Sort >= NumSortKeys {
		q.Sort = SortAge
	}
	c := &s.q

	// The selected flow's item, when it is there and passes the filter.
	var sel *item
	if q.Select != nil {
		if i, ok := s.tab.lookup(q.Select); ok {
			e := s.tab.at(i)
			pass := true
			if q.Filter != nil {
				e.flow(&s.scratch)
				pass = q.Filter.Match(&s.scratch)
			}
			if pass {
				it := newItem(e, q.Sort, i)
				sel = &it
			}
		}
	}

	rank := -1
	same := c.valid && c.sort == q.Sort && sameMatcher(c.filter, q.Filter)
	if same && c.gen != s.gen && !s.dirty.overflow {
		s.refresh()
	}
	if !same || c.gen != s.gen {
		rank = s.collect(q.Filter, q.Sort, sel)
	} else {
		c.hits++
		if !c.sorted && c.hits >= 4 {
			slices.SortFunc(c.items, func(a, b item) int {
				if s.less(&a, &b, q.Sort) {
					return -1
				}
				if a.idx == b.idx {
					return 0
				}
				return 1
			})
			c.sorted = true
		}
		if sel != nil {
			if c.sorted {
				rank, _ = slices.BinarySearchFunc(c.items, sel, func(a item, b *item) int {
					if s.less(&a, b, q.Sort) {
						return -1
					}
					if a.idx == b.idx {
						return 0
					}
					return 1
				})
			} else {
				rank = 0
				for j := range c.items {
					if s.less(&c.items[j], sel, q.Sort) {
						rank++
					}
				}
			}
		}
	}
	items := c.items
	m := len(items)
	res := Result{Total: c.total, Matched: m, SelectedIndex: -1}

	limit := max(q.Limit, 0)
	off := max(q.Offset, 0)
	if sel != nil && rank >= 0 {
		r := rank
		if q.Desc {
			r = m - 1 - r
		}
		res.SelectedIndex = r
		if r < off {
			off = r
		} else if limit > 0 && r >= off+limit {
			off = r - limit + 1
		}
	}
	off = min(off, max(m-limit, 0))
	res.Offset = off
	end := min(off+limit, m)
	if end <= off {
		return res
	}
	// Ascending positions of the window.
	lo, hi := off, end
	if q.Desc {
		lo, hi = m-end, m-off
	}
	if !c.sorted && (lo < c.fixedLo || hi > c.fixedHi) {
		s.selectWindow(items, lo, hi, q.Sort)
		c.fixedLo, c.fixedHi = lo, hi
	}
	res.Rows = make([]Row, 0, hi-lo)
	for j := lo; j < hi; j++ {
		res.Rows = append(res.Rows, s.row(items[j].idx))
	}
	if q.Desc {
		slices.Reverse(res.Rows)
	}
	return res
}

// collect fills the cache with the items passing m and returns the rank
// of sel among them (-1 when sel is nil).
func (s *Store) collect(m Matcher, key SortKey, sel *item) int {
	c := &s.q
	items := c.items[:0]
	if n := s.live + s.lingering; cap(items) < n || cap(items) > 4096 && cap(items) > 4*n {
		// Room for some growth, without append's doubling; no huge
		// buffer kept after the table shrank.
		items = make([]item, 0, n+n/16)
	}
	total := 0
	rank := 0
	for i := uint32(0); i < s.tab.hw; i++ {
		e := s.tab.at(i)
		if e.flags&flagUsed == 0 {
			continue
		}
		total++
		if m != nil {
			e.flow(&s.scratch)
			if !m.Match(&s.scratch) {
				continue
			}
		}
		it := newItem(e, key, i)
		if sel != nil && s.less(&it, sel, key) {
			rank++
		}
		items = append(items, it)
	}
	*c = queryCache{valid: true, gen: s.gen, filter: m, sort: key, items: items, total: total}
	s.dirty.reset()
	if sel == nil {
		return -1
	}
	return rank
}

// refresh brings the cached items up to date with the entries changed
// since they were collected: one cheap pass drops the changed entries'
// items, then only those entries are evaluated again.
func (s *Store) refresh() {
	c := &s.q
	d := &s.dirty
	items := c.items[:0]
	for _, it := range c.items {
		if !d.has(it.idx) {
			items = append(items, it)
		}
	}
	for _, i := range d.list {
		e := s.tab.at(i)
		if e.flags&flagUsed == 0 {
			continue
		}
		if c.filter != nil {
			e.flow(&s.scratch)
			if !c.filter.Match(&s.scratch) {
				continue
			}
		}
		items = append(items, newItem(e, c.sort, i))
	}
	c.items = items
	c.total = s.live + s.lingering
	c.gen = s.gen
	c.hits = 0
	c.sorted = false
	c.fixedLo, c.fixedHi = 0, 0
	d.reset()
}

// dirtySet is the set of entry indices changed since the query cache was
// filled: a bitmap plus the list of members. Past its limit it stops
// tracking (overflow) and the next query rescans the table.
type dirtySet struct {
	bits     []uint64
	list     []uint32
	overflow bool
}

// mark adds i to the set; limit bounds the list.
func (d *dirtySet) mark(i uint32, limit int) {
	if d.overflow {
		return
	}
	w := int(i >> 6)
	if w >= len(d.bits) {
		d.bits = append(d.bits, make([]uint64, w+1-len(d.bits)+len(d.bits)/2)...)
	}
	if d.bits[w]&(1<<(i&63)) != 0 {
		return
	}
	if len(d.list) >= limit {
		d.overflow = true
		return
	}
	d.bits[w] |= 1 << (i & 63)
	d.list = append(d.list, i)
}

// has reports whether i is in the set.
func (d *dirtySet) has(i uint32) bool {
	w := int(i >> 6)
	return w < len(d.bits) && d.bits[w]&(1<<(i&63)) != 0
}

// reset empties the set.
func (d *dirtySet) reset() {
	for _, i := range d.list {
		d.bits[i>>6] &^= 1 << (i & 63)
	}
	d.list = d.list[:0]
	d.overflow = false
}

// less orders items by sort value, then flow key.
func (s *Store) less(a, b *item, key SortKey) bool {
	if a.k1 != b.k1 {
		return a.k1 < b.k1
	}
	if a.k2 != b.k2 {
		return a.k2 < b.k2
	}
	if a.k3 != b.k3 {
		return a.k3 < b.k3
	}
	if a.idx == b.idx {
		return false
	}
	return s.entryCmp(s.tab.at(a.idx), s.tab.at(b.idx), key) < 0
}

// selectWindow reorders items so that items[lo:hi] hold, sorted, the
// elements of ascending ranks lo..hi-1 (a partial quicksort: it recurses
// only into parts that overlap the window).
func (s *Store) selectWindow(items []item, lo, hi int, key SortKey) {
	s.psort(items, 0, len(items), lo, hi, key, 2*bitsLen(len(items))+8)
}

func bitsLen(n int) int {
	l := 0
	for ; n > 0; n >>= 1 {
		l++
	}
	return l
}

func (s *Store) psort(a []item, from, to, wlo, whi int, key SortKey, budget int) {
	for to-from > 16 {
		if budget == 0 {
			// Pathological pivots: finish this part with a full sort.
			slices.SortFunc(a[from:to], func(x, y item) int {
				if s.less(&x, &y, key) {
					return -1
				}
				if s.less(&y, &x, key) {
					return 1
				}
				return 0
			})
			return
		}
		budget--
		p := s.partition(a, from, to, key)
		left := wlo < p && whi > from
		right := whi > p+1 && wlo < to
		switch {
		case left && right:
			if p-from < to-p {
				s.psort(a, from, p, wlo, whi, key, budget)
				from = p + 1
			} else {
				s.psort(a, p+1, to, wlo, whi, key, budget)
				to = p
			}
		case left:
			to = p
		case right:
			from = p + 1
		default:
			return
		}
	}
	// Insertion sort for small parts.
	for i := from + 1; i < to; i++ {
		for j := i; j > from && s.less(&a[j], &a[j-1], key); j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// partition partitions a[from:to] around the median of three randomly
// chosen elements and returns the pivot's final position. Random pivots
// keep the expected cost linear whatever order earlier queries left the
// items in.
func (s *Store) partition(a []item, from, to int, key SortKey) int {
	n := uint64(to - from)
	x, y, z := from+int(s.rand()%n), from+int(s.rand()%n), from+int(s.rand()%n)
	// Median of a[x], a[y], a[z] into p.
	if s.less(&a[y], &a[x], key) {
		x, y = y, x
	}
	if s.less(&a[z], &a[y], key) {
		y = z
		if s.less(&a[y], &a[x], key) {
			y = x
		}
	}
	last := to - 1
	a[y], a[last] = a[last], a[y]
	pivot := a[last]
	i := from
	for j := from; j < last; j++ {
		if s.less(&a[j], &pivot, key) {
			a[i], a[j] = a[j], a[i]
			i++
		}
	}
	a[i], a[last] = a[last], a[i]
	return i
}

// rand returns the next value of the store's pivot generator
// (xorshift64*); it needs no quality beyond not following the data.
func (s *Store) rand() uint64 {
	if s.rnd == 0 {
		s.rnd = 0x9e3779b97f4a7c15
	}
	s.rnd ^= s.rnd >> 12
	s.rnd ^= s.rnd << 25
	s.rnd ^= s.rnd >> 27
	return s.rnd * 2685821657736338717
}

// row builds the Row of entry i.
func (s *Store) row(i uint32) Row {
	e := s.tab.at(i)
	var r Row
	e.flow(&r.Flow)
	r.FirstSeen = unixTime(e.firstSeen)
	r.LastSeen = unixTime(e.lastSeen)
	r.Expires = unixTime(e.expires)
	if e.flags&flagDestroyed != 0 {
		r.Destroyed = true
		r.DestroyedAt = r.LastSeen
	}
	r.OrigPPS, r.OrigBPS = float64(e.rates[0]), float64(e.rates[1])
	r.ReplyPPS, r.ReplyBPS = float64(e.rates[2]), float64(e.rates[3])
	return r
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

// sortPrefix returns the order-preserving prefix of e's sort value.
func sortPrefix(e *entry, key SortKey) uint64 {
	sp, dp := e.ports()
	switch key {
	case SortAge:
		return uint64(e.firstSeen) ^ 1<<63
	case SortState:
		return uint64(e.state())
	case SortTCPState:
		return uint64(e.tcpState)
	case SortProto:
		return uint64(e.proto)
	case SortSrc:
		return addrPrefix(e.family, &e.src, sp)
	case SortDst:
		return addrPrefix(e.family, &e.dst, dp)
	case SortSport:
		return uint64(sp)
	case SortDport:
		return uint64(dp)
	case SortPackets:
		return e.counters.OrigPackets + e.counters.ReplyPackets
	case SortBytes:
		return e.counters.OrigBytes + e.counters.ReplyBytes
	case SortRate:
		return uint64(math.Float32bits(e.rates[1] + e.rates[3]))
	case SortTimeout:
		return uint64(e.expires) ^ 1<<63
	case SortMark:
		return uint64(e.mark)
	}
	return 0
}

// newItem returns the query item of entry i.
func newItem(e *entry, key SortKey, i uint32) item {
	k2, k3 := keyPrefix(e)
	return item{k1: sortPrefix(e, key), k2: k2, k3: k3, idx: i}
}

// keyPrefix returns an order-preserving 96-bit prefix of e's flow key as
// cmpKey orders it (proto, family, source, destination, source port,
// destination port): 64 bits in k2, the next 32 in k3.
func keyPrefix(e *entry) (k2 uint64, k3 uint32) {
	v := uint64(e.proto) << 56
	switch {
	case e.family == flow.FamilyIPv4:
		src, dst := uint64(binary.BigEndian.Uint32(e.src[12:])), binary.BigEndian.Uint32(e.dst[12:])
		return v | 1<<54 | src<<22 | uint64(dst>>10),
			dst<<22 | uint32(e.sport)<<6 | uint32(e.dport>>10)
	case e.family == flow.FamilyIPv6:
		hi, lo := binary.BigEndian.Uint64(e.src[:8]), binary.BigEndian.Uint64(e.src[8:])
		return v | 2<<54 | hi>>10, uint32(hi&0x3ff)<<22 | uint32(lo>>42)
	case e.family < flow.FamilyIPv4:
		return v, 0
	case e.family < flow.FamilyIPv6:
		return v | 2<<54, 0
	}
	return v | 3<<54, 0
}

// entryCmp compares two entries exactly by sort value, then flow key.
func (s *Store) entryCmp(a, b *entry, key SortKey) int {
	if c := cmpSortValue(a, b, key); c != 0 {
		return c
	}
	return cmpKey(a, b)
}

// cmpSortValue compares the sort values exactly.
func cmpSortValue(a, b *entry, key SortKey) int {
	switch key {
	case SortSrc:
		as, _ := a.ports()
		bs, _ := b.ports()
		return cmpAddrPort(a.family, &a.src, as, b.family, &b.src, bs)
	case SortDst:
		_, ad := a.ports()
		_, bd := b.ports()
		return cmpAddrPort(a.family, &a.dst, ad, b.family, &b.dst, bd)
	}
	return cmp.Compare(sortPrefix(a, key), sortPrefix(b, key))
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

// cmpKey orders entries by flow key: proto, family, src, dst, sport,
// dport, zone, then the full tuples (for tuples not in compact form).
func cmpKey(a, b *entry) int {
	if c := cmp.Compare(a.proto, b.proto); c != 0 {
		return c
	}
	if c := cmp.Compare(a.family, b.family); c != 0 {
		return c
	}
	if c := bytes.Compare(a.src[:], b.src[:]); c != 0 {
		return c
	}
	if c := bytes.Compare(a.dst[:], b.dst[:]); c != 0 {
		return c
	}
	if c := cmp.Compare(a.sport, b.sport); c != 0 {
		return c
	}
	if c := cmp.Compare(a.dport, b.dport); c != 0 {
		return c
	}
	if c := cmp.Compare(a.zone, b.zone); c != 0 {
		return c
	}
	ta, tb := a.origTuple(), b.origTuple()
	return cmpTuple(&ta, &tb)
}

// cmpTuple orders tuples field by field.
func cmpTuple(a, b *flow.Tuple) int {
	if c := a.Src.Compare(b.Src); c != 0 {
		return c
	}
	if c := a.Dst.Compare(b.Dst); c != 0 {
		return c
	}
	if c := cmp.Compare(a.SrcPort, b.SrcPort); c != 0 {
		return c
	}
	if c := cmp.Compare(a.DstPort, b.DstPort); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Code, b.Code); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}
