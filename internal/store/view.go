package store

import (
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// View is one reader's query state (a TUI, an SSH session): the filter
// and sort of its last query, which flows pass the filter (a bitmap over
// record indices, and their number), and a stretch of the sorted order
// around the window it was asked for (a buffer of the flows of ranks
// base..base+len, exact; the flows ranked before it are marked in a second
// bitmap). A query on an unchanged table costs only its window's rows;
// after changes, a view re-evaluates only the records changed since (from
// the store's change log); it scans the table again only for a new filter,
// a new sort, a window outside its buffer, or after more changes than the
// log holds. A deep window is found from a sample of the order (see
// windowPass), and a new filter whose text another view evaluated starts
// from that view's bitmap (see filterCache). A View is used by one
// goroutine at a time; views do not disturb each other.
type View struct {
	// The filter layer: valid once a scan evaluated flt.
	fok     bool
	flt     Matcher
	bits    []uint64 // records passing flt (nil when flt is nil)
	matched int
	seq     uint64 // change-log position the view is current with

	// The order layer: buf holds the matched flows of ranks base ..
	// base+len(buf)-1 in order; before marks the records ranked before
	// it (nil when base is 0); atEnd is set when no matched flow ranks
	// after the buffer.
	ook    bool
	ord    order
	buf    []item
	base   int
	before []uint64
	atEnd  bool
	kmax   int
	// bound is the flow the last scan (or trim) ended the buffer with,
	// as it was ordered then: every matched flow ordered at or before it
	// is in the buffer or counted before it (unless atEnd, when the
	// buffer runs to the end; bounded is false then). A changed flow is
	// placed against it, not against the buffer's last flow now: churn
	// that takes flows out of the buffer's end would otherwise shrink the
	// range it answers for until a scan.
	bound   item
	bounded bool

	// What the last answer showed, for Changed.
	shown   []uint32
	dirty   bool
	lastTot int

	scratch []uint32
	sortTmp []uint32 // sortUnique's other buffer
	// oneCore is the last query's Background (every query sets it
	// before it scans): its scans take no helpers. lastWorkers is how
	// many workers the last scan ran.
	oneCore     bool
	lastWorkers int
	// grow doubles the slack once for every scan that refilled the buffer
	// for the same filter and order within refillQuick of the scan before
	// it (churn moving the window past the buffer), up to maxSlackGrow; a
	// new filter or order starts again from the slack. scannedAt is the
	// store clock of the last scan.
	grow      uint8
	scannedAt int64
	ins       []item
	slack     int // flows kept beyond the window (0: viewSlack; tests set less)
	sample    int // a deep window's sample size (0: sampleSize; tests set less)
	margin    int // its first margin in sampled flows (0: from the sample size)
}

// NewView returns an empty view.
func NewView() *View { return &View{dirty: true} }

// Locker is the lock a View takes around its reads of the store (a read
// lock); scans release it between chunks so that writers are not held up
// for long.
type Locker = sync.Locker

// scanChunk is how many records a scan reads under one hold of the lock.
const scanChunk = 1 << 15

// viewSlack is how many flows a view keeps on either side of the window it
// was asked for, so that moving or flows leaving do not force a new scan.
const viewSlack = 2048

// refillQuick and maxSlackGrow: a view whose buffer churn empties within
// refillQuick of its last scan keeps twice the slack, up to 2^maxSlackGrow
// times viewSlack (8,192 flows, 200 KB, on either side).
const (
	refillQuick  = 30 * time.Second
	maxSlackGrow = 2
)

// heapMax is the largest buffer a scan selects with bounded heaps; a
// deeper one is selected from all matched flows in linear time.
const heapMax = 1 << 14

// enterRead takes what a view's read of the store holds: a core slot,
// then lk (always in that order; a background read has taken its
// background slot before, in inBackground). leaveRead gives them back.
func (s *Store) enterRead(lk Locker) {
	s.cpu.acquire()
	lk.Lock()
}

func (s *Store) leaveRead(lk Locker) {
	lk.Unlock()
	s.cpu.release()
}

// pause releases lk between two chunks of a scan and takes it again. A
// background scan also yields its core there, so that a goroutine that
// became ready meanwhile (the pump, a scrape) runs now rather than when
// the scheduler next preempts the scan (10 ms).
func (v *View) pause(lk Locker) {
	lk.Unlock()
	if v.oneCore {
		runtime.Gosched()
	}
	lk.Lock()
}

// covers reports whether the buffer holds ranks [lo, hi).
func (v *View) covers(lo, hi int) bool {
	return v.ook && lo >= v.base && (hi <= v.base+len(v.buf) || v.atEnd)
}

// Query answers q for this view (see Store.Query for the order): the
// store must be held by the caller when lk is nil; else the view takes
// lk itself (a read lock of the store) and releases it between chunks of
// a scan. q.Filter must be safe for concurrent use and must not change its
// answers while the view may reuse them (a *filter.Filter never does).
func (v *View) Query(s *Store, lk Locker, q Query) Result {
	if lk != nil && q.Background {
		var res Result
		s.inBackground(func() { res = v.query(s, lk, q) })
		return res
	}
	return v.query(s, lk, q)
}

func (v *View) query(s *Store, lk Locker, q Query) Result {
	if lk != nil {
		s.enterRead(lk)
		defer s.leaveRead(lk)
	}
	if s.tab == nil {
		return Result{SelectedIndex: -1} // counts only
	}
	if q.Sort >= NumSortKeys {
		q.Sort = SortAge
	}
	q.Filter = effective(q.Filter)
	v.oneCore = q.Background
	limit := max(q.Limit, 0)
	off := max(q.Offset, 0)

	sameF := v.fok && sameMatcher(v.flt, q.Filter)
	sameO := sameF && v.ook && v.ord.key == q.Sort && v.ord.desc == q.Desc
	if !sameO {
		v.ook = false
		v.ord = order{tab: s.tab, key: q.Sort, desc: q.Desc}
		v.dirty = true
		v.grow = 0
	}
	if sameF && !v.catchUp(s, false) {
		sameF = false
		v.ook = false
	}
	if !sameF {
		v.fok = false
		v.flt = q.Filter
		v.dirty = true
	}
	v.ord.tab = s.tab
	res := Result{SelectedIndex: -1}
	// The selected flow's rank: a new filter or order with a selection
	// is scanned around the selected flow (one scan finds its rank and
	// the flows around it).
	rank := -1
	if q.Select != nil {
		if v.fok && v.ook {
			rank = v.rank(s, lk, q.Select, q.Near)
		} else if i, ok := s.tab.lookup(q.Select); ok && v.passes(s, i) {
			piv := v.ord.newItem(i)
			v.scan(s, lk, off, off+limit, &piv)
			rank = v.rank(s, lk, q.Select, false)
		}
	}
	if rank < 0 && (!v.fok || !v.covers(min(off, max(v.matched-limit, 0)), min(off+limit, v.matched))) {
		v.scan(s, lk, off, off+limit, nil)
	}
	for range 3 {
		m := v.matched
		res.Matched, res.Total = m, s.live+s.lingering
		o := off
		if rank >= 0 {
			res.SelectedIndex = rank
			if rank < o {
				o = rank
			} else if limit > 0 && rank >= o+limit {
				o = rank - limit + 1
			}
		}
		o = min(o, max(m-limit, 0))
		res.Offset = o
		end := min(o+limit, m)
		if end <= o || v.covers(o, end) {
			break
		}
		// The table may change while the scan releases the lock: look
		// again (a bounded number of times).
		var piv *item
		if rank >= 0 {
			if i, ok := s.tab.lookup(q.Select); ok {
				it := v.ord.newItem(i)
				piv = &it
			}
		}
		v.scan(s, lk, o, end, piv)
		if q.Select != nil {
			rank = v.rank(s, lk, q.Select, q.Near)
		}
	}
	lo := res.Offset - v.base
	hi := min(res.Offset+limit, res.Matched) - v.base
	lo, hi = max(lo, 0), min(hi, len(v.buf))
	v.shown = v.shown[:0]
	if hi > lo {
		res.Rows = make([]Row, 0, hi-lo)
		for _, it := range v.buf[lo:hi] {
			res.Rows = append(res.Rows, s.tab.row(it.idx))
			v.shown = append(v.shown, it.idx)
		}
	}
	v.dirty = false
	v.lastTot = res.Total
	return res
}

// Changed reports whether the answer to the view's last query may have
// changed since (its rows, their order, the counts): the store must be
// held, or lk is taken. It costs what re-evaluating the changed records
// costs, which the next Query then saves. It is a background read (a
// viewer's periodic refresh asks it): with lk it runs in the background
// (Store.inBackground).
func (v *View) Changed(s *Store, lk Locker) bool {
	if lk != nil {
		var changed bool
		s.inBackground(func() {
			s.enterRead(lk)
			defer s.leaveRead(lk)
			changed = v.changed(s)
		})
		return changed
	}
	return v.changed(s)
}

func (v *View) changed(s *Store) bool {
	if s.tab == nil {
		return false
	}
	if !v.fok || !v.ook || !v.catchUp(s, false) {
		v.fok, v.ook = false, false
		return true
	}
	if s.live+s.lingering != v.lastTot {
		v.dirty = true
	}
	return v.dirty
}

// Close releases what the view holds.
func (v *View) Close() { *v = View{dirty: true, slack: v.slack, sample: v.sample, margin: v.margin} }

// rank returns the position of the flow with key k in the view's order,
// or -1 when it is not there or does not pass the filter; with near, also
// -1 when it is outside the view's buffer (see Query.Near).
func (v *View) rank(s *Store, lk Locker, k *flow.Key, near bool) int {
	i, ok := s.tab.lookup(k)
	if !ok {
		return -1
	}
	if v.bits != nil && !bitSet(v.bits, i) {
		return -1
	}
	it := v.ord.newItem(i)
	if !bitSet(v.before, i) {
		p, found := slices.BinarySearchFunc(v.buf, &it, func(a item, b *item) int { return v.ord.cmp(&a, b) })
		if found && v.buf[p].idx == i {
			return v.base + p
		}
		if v.atEnd && (len(v.buf) == 0 || !v.ord.less(&it, &v.buf[0])) {
			return -1 // not where it should be: not matched
		}
	}
	if near {
		return -1
	}
	// Outside the buffer: move the buffer around it.
	v.scan(s, lk, 0, 1, &it)
	p, found := slices.BinarySearchFunc(v.buf, &it, func(a item, b *item) int { return v.ord.cmp(&a, b) })
	if found && v.buf[p].idx == i && !bitSet(v.before, i) {
		return v.base + p
	}
	return -1
}

// passes reports whether record i is used and passes the view's filter
// (from the filter bitmap when it is valid).
func (v *View) passes(s *Store, i uint32) bool {
	if s.tab.at(i).flags&flagUsed == 0 {
		return false
	}
	if v.flt == nil {
		return true
	}
	if v.fok {
		return bitSet(v.bits, i)
	}
	var fl flow.Flow
	s.tab.flow(i, &fl)
	return v.flt.Match(&fl)
}

// catchUp applies the changes logged since the view was current. It
// returns false when the view must scan again instead: the log no longer
// holds them all, or (unless force) there are so many that a scan is
// cheaper.
func (v *View) catchUp(s *Store, force bool) bool {
	a, b, ok := s.changes.since(v.seq)
	if !ok {
		return false
	}
	n := len(a) + len(b)
	if n == 0 {
		return true
	}
	// Past this many, a (chunked) scan costs less, and holds the lock
	// in shorter slices.
	if !force && n > min(max(int(s.tab.hw)/4, 4096), 1<<16) {
		return false
	}
	if v.ook && v.base > 0 && len(v.buf) == 0 {
		return false // nothing to place flows against
	}
	ch := append(append(v.scratch[:0], a...), b...)
	ch, v.sortTmp = sortUnique(ch, v.sortTmp)
	v.scratch = ch
	v.seq = s.changes.seq

	// Which of the shown rows changed?
	for _, i := range v.shown {
		if _, hit := slices.BinarySearch(ch, i); hit {
			v.dirty = true
			break
		}
	}
	if v.ook {
		kept := v.buf[:0]
		for _, it := range v.buf {
			if _, hit := slices.BinarySearch(ch, it.idx); !hit {
				kept = append(kept, it)
			}
		}
		v.buf = kept
		if v.base > 0 && len(v.buf) == 0 {
			// Nothing left to place flows against: the order layer
			// needs a scan (the filter layer is still caught up).
			v.ook = false
		}
	}
	v.growBits(s)
	var fl flow.Flow
	ins := v.ins[:0]
	for _, i := range ch {
		if v.ook && bitSet(v.before, i) {
			v.before[i>>6] &^= 1 << (i & 63)
			v.base--
			v.dirty = true
		}
		now := i < s.tab.hw && s.tab.at(i).flags&flagUsed != 0
		if now && v.flt != nil {
			s.tab.flow(i, &fl)
			now = v.flt.Match(&fl)
		}
		if v.bits != nil {
			was := bitSet(v.bits, i)
			if was != now {
				v.dirty = true
				if now {
					v.bits[i>>6] |= 1 << (i & 63)
					v.matched++
				} else {
					v.bits[i>>6] &^= 1 << (i & 63)
					v.matched--
				}
			}
		}
		if !now || !v.ook {
			continue
		}
		it := v.ord.newItem(i)
		switch {
		case v.base > 0 && v.ord.less(&it, &v.buf[0]):
			v.before = growBitmap(v.before, s.tab.hw)
			v.before[i>>6] |= 1 << (i & 63)
			v.base++
			v.dirty = true
		case v.atEnd || (v.bounded && !v.ord.less(&v.bound, &it)):
			ins = append(ins, it)
		}
	}
	if v.bits == nil {
		if m := s.live + s.lingering; m != v.matched {
			v.matched = m
			v.dirty = true
		}
	}
	if v.ook && len(ins) > 0 {
		slices.SortFunc(ins, func(x, y item) int { return v.ord.cmp(&x, &y) })
		if len(v.shown) > 0 && (len(v.buf) == 0 || v.ord.less(&ins[0], &v.buf[min(len(v.shown), len(v.buf))-1])) {
			v.dirty = true
		}
		v.buf = mergeItems(v.buf, ins, &v.ord)
		if len(v.buf) > v.kmax {
			v.buf = v.buf[:v.kmax]
			v.atEnd = false
			v.setBound()
		}
	}
	v.ins = ins[:0]
	return true
}

// setBound records the buffer's last flow as its bound (see View.bound).
func (v *View) setBound() {
	v.bounded = !v.atEnd && len(v.buf) > 0
	if v.bounded {
		v.bound = v.buf[len(v.buf)-1]
	}
}

// mergeItems merges the sorted ins into the sorted buf.
func mergeItems(buf, ins []item, o *order) []item {
	n := len(buf)
	buf = slices.Grow(buf, len(ins))[:n+len(ins)]
	i, j, k := n-1, len(ins)-1, len(buf)-1
	for j >= 0 {
		if i >= 0 && o.less(&ins[j], &buf[i]) {
			buf[k] = buf[i]
			i--
		} else {
			buf[k] = ins[j]
			j--
		}
		k--
	}
	return buf
}

// growBits sizes the filter bitmap to the table.
func (v *View) growBits(s *Store) {
	if v.flt == nil {
		v.bits = nil
		return
	}
	v.bits = growBitmap(v.bits, s.tab.hw)
}

// growBitmap sizes a bitmap to hold n bits.
func growBitmap(b []uint64, n uint32) []uint64 {
	if w := int(n+63) / 64; len(b) < w {
		b = append(b, make([]uint64, w-len(b)+w/8)...)
	}
	return b
}

func bitSet(b []uint64, i uint32) bool {
	w := int(i >> 6)
	return w < len(b) && b[w]&(1<<(i&63)) != 0
}

// scan fills the view from the table: the filter layer when it is not
// valid (evaluating the filter on every record), and the order layer with
// the flows of ranks [lo-viewSlack, hi+viewSlack). With lk set it releases
// the lock between chunks of records and catches up with the changes made
// meanwhile; after two scans overtaken by more changes than the log
// holds, it scans once more without releasing the lock.
//
// With piv set (a selected flow, which passes the filter) the buffer is
// centred on it instead: one pass keeps the flows just before it and just
// after it in two bounded heaps and counts those before it, which is its
// rank.
func (v *View) scan(s *Store, lk Locker, lo, hi int, piv *item) {
	if v.fok && v.ook && s.now-v.scannedAt < int64(refillQuick) && v.grow < maxSlackGrow {
		v.grow++ // a refill soon after the last scan: keep more next time
	}
	v.scannedAt = s.now
	slack := v.slack
	if slack == 0 {
		slack = viewSlack
	}
	slack <<= v.grow
	bLo := max(lo-slack, 0)
	if lo < 4*slack {
		bLo = 0 // near the top: keep it all
	}
	bHi := hi + max(slack, (hi-lo)/4)
	side := max(hi-lo, 1) + slack // pivot mode: flows kept on each side
	// The view holds one of the store's CPU slots; helpers take free ones,
	// once for every attempt of the scan.
	helpers := -1 // every worker may run (the caller holds the store)
	if lk != nil {
		want := min(s.opts.Cores, max(int(s.tab.hw)/8192, 1), 16) - 1
		if v.oneCore {
			want = 0
		}
		helpers = s.cpu.tryAcquire(want)
		defer s.cpu.releaseN(helpers)
	}
	for attempt := 0; ; attempt++ {
		release := lk != nil && attempt < 2
		if !v.fok && attempt == 0 {
			v.shareFilter(s)
		}
		full := !v.fok
		start := s.changes.seq
		hw := s.tab.hw
		if full {
			v.growBits(s)
			clear(v.bits)
		}
		useHeap := bLo == 0 && bHi <= heapMax && piv == nil
		most := min(s.opts.Cores, max(int(hw)/8192, 1), 16)
		workers := most
		if helpers >= 0 {
			workers = min(most, 1+helpers)
		}
		v.lastWorkers = workers
		parts := make([][]item, most)
		lows := make([][]item, most) // pivot mode: flows before piv
		counts := make([]int, most)
		nlow := make([]int, most)
		if piv != nil {
			v.before = growBitmap(v.before[:0], s.tab.hw)
			clear(v.before)
		}
		before := v.before
		// A deep window (or a wide one) is found in two passes instead of
		// collecting every matched flow: this one keeps a sample of them
		// (every stride-th matched flow of each worker's part), windowPass
		// then collects only those between two flows of the sample that
		// bracket the window's ranks.
		stride := 1
		if !useHeap && piv == nil {
			est := int(hw)
			if !full {
				est = v.matched
			}
			size := v.sample
			if size == 0 {
				size = sampleSize
			}
			stride = max(est/size, 1)
		}
		o := v.ord
		filter := v.flt
		bits := v.bits
		for c := uint32(0); c < hw; c += s.chunk {
			parallel(workers, c, min(c+s.chunk, hw), func(w int, a, b uint32) {
				var fl flow.Flow
				h, lw := parts[w], lows[w]
				n, nl := 0, 0
				for i := a; i < b; i++ {
					r := s.tab.at(i)
					if r.flags&flagUsed == 0 {
						continue
					}
					if filter != nil {
						if full {
							s.tab.flow(i, &fl)
							if !filter.Match(&fl) {
								continue
							}
							bits[i>>6] |= 1 << (i & 63)
						} else if bits[i>>6]&(1<<(i&63)) == 0 {
							continue
						}
					}
					n++
					switch {
					case useHeap:
						if len(h) == bHi {
							// Most flows lose to the heap's root on the sort
							// value alone.
							if k1 := o.k1(i); k1 > h[0].k1 {
								continue
							}
						}
						h = heapPush(h, o.newItem(i), bHi, &o, false)
					case piv != nil:
						// Most flows are settled by the sort value alone:
						// before piv or after it, and farther than the
						// flows kept on their side.
						if k1 := o.k1(i); k1 < piv.k1 {
							before[i>>6] |= 1 << (i & 63)
							nl++
							if len(lw) < side || k1 >= lw[0].k1 {
								lw = heapPush(lw, o.newItem(i), side, &o, true)
							}
							continue
						} else if k1 > piv.k1 {
							if len(h) < side || k1 <= h[0].k1 {
								h = heapPush(h, o.newItem(i), side, &o, false)
							}
							continue
						}
						it := o.newItem(i)
						if o.less(&it, piv) {
							before[i>>6] |= 1 << (i & 63)
							nl++
							lw = heapPush(lw, it, side, &o, true)
						} else {
							h = heapPush(h, it, side, &o, false)
						}
					default:
						if (counts[w]+n)%stride == 0 {
							h = append(h, o.newItem(i))
						}
					}
				}
				parts[w] = h
				lows[w] = lw
				counts[w] += n
				nlow[w] += nl
			})
			if release && c+s.chunk < hw {
				v.pause(lk)
			}
		}
		all := parts[0]
		total := counts[0]
		for w := 1; w < len(parts); w++ {
			all = append(all, parts[w]...)
			total += counts[w]
		}
		parts = nil
		if piv != nil {
			// Ranks: the flows before piv, then piv and those after it.
			var low []item
			below := 0
			for w := range lows {
				low = append(low, lows[w]...)
				below += nlow[w]
			}
			slices.SortFunc(low, func(x, y item) int { return o.cmp(&x, &y) })
			if len(low) > side {
				low = low[len(low)-side:]
			}
			for _, it := range low {
				v.before[it.idx>>6] &^= 1 << (it.idx & 63)
			}
			slices.SortFunc(all, func(x, y item) int { return o.cmp(&x, &y) })
			if len(all) > side {
				all = all[:side]
			}
			v.base = below - len(low)
			after := total - below
			all = append(low, all...)
			v.atEnd = len(all)-len(low) >= after
			v.buf = append(v.buf[:0], all...)
			v.kmax = max(2*side, len(v.buf))
			v.setBound()
			v.ook = true
			if full {
				v.matched = total
				v.fok = true
				v.seq = start
				s.filters.put(v.flt, v.bits, total, start)
			}
			v.dirty = true
			if v.catchUp(s, true) {
				return
			}
			v.fok, v.ook = false, false
			continue
		}
		v.before = v.before[:0]
		if useHeap {
			slices.SortFunc(all, func(x, y item) int { return o.cmp(&x, &y) })
			v.base = 0
		} else {
			// all is a sample: collect the flows around the window, those
			// ranked before them marked in v.before and counted in below.
			if bHi > total {
				// Past the end (a window asked for where the rows were
				// before a new filter): the answer is the last rows.
				bLo, bHi = max(total-(bHi-bLo), 0), total
			}
			below := 0
			all, below = v.windowPass(s, lk, release, workers, all, total, bLo, bHi)
			// Linear-time selection of ranks [bLo, bHi) among them, then
			// sort only those.
			b0, b1 := min(max(bLo-below, 0), len(all)), min(max(bHi-below, 0), len(all))
			sel := selector{o: &o}
			sel.selectRange(all, b0, b1)
			slices.SortFunc(all[b0:b1], func(x, y item) int { return o.cmp(&x, &y) })
			if b0 > 0 {
				v.before = growBitmap(v.before, s.tab.hw)
				for _, it := range all[:b0] {
					v.before[it.idx>>6] |= 1 << (it.idx & 63)
				}
			}
			v.base = below + b0
			all = all[b0:b1:b1]
		}
		v.atEnd = v.base+len(all) >= total
		if len(all) > bHi-v.base {
			all = all[:bHi-v.base]
			v.atEnd = false
		}
		v.buf = append(v.buf[:0], all...)
		v.kmax = max(bHi-v.base, len(v.buf))
		v.setBound()
		v.ook = true
		if full {
			v.matched = total
			v.fok = true
			v.seq = start
			s.filters.put(v.flt, v.bits, total, start)
		}
		v.dirty = true
		if v.catchUp(s, true) {
			return
		}
		v.fok, v.ook = false, false
	}
}

// shareFilter makes the view's filter layer valid from the bitmap another
// view (or this one) published for an equal filter (the same text), when
// the change log still holds the changes since: a copy of the bitmap and
// a catch-up instead of evaluating the filter on every flow. Viewers that
// type or choose the same filter thus evaluate it once; each keeps its own
// order and window.
func (v *View) shareFilter(s *Store) {
	bits, matched, seq, ok := s.filters.get(v.flt)
	if !ok {
		return
	}
	if _, _, held := s.changes.since(seq); !held {
		return
	}
	v.bits = growBitmap(v.bits[:0], s.tab.hw)
	n := copy(v.bits, bits)
	clear(v.bits[n:])
	v.matched, v.seq, v.fok = matched, seq, true
	v.ook = false // the order layer is rebuilt by the scan
	if !v.catchUp(s, false) {
		v.fok = false
	}
}

// filterCache holds the filter bitmaps of the latest full scans, by the
// filter's text (a Matcher with a String method, as *filter.Filter; equal
// texts select the same flows), at most filterCacheLen of them: views
// with an equal filter start from a copy instead of evaluating the filter
// on every flow. It has its own lock: views use it under the store's read
// lock, concurrently.
type filterCache struct {
	mu      sync.Mutex
	entries []filterEntry // most recently used last
}

// filterCacheLen bounds the bitmaps kept (each a bit per record: 512 KiB
// at 4,194,304 records).
const filterCacheLen = 4

type filterEntry struct {
	text    string
	bits    []uint64
	matched int
	seq     uint64 // change-log position the bitmap is current with
}

// filterText is m's text, or "" when m cannot be shared.
func filterText(m Matcher) string {
	if st, ok := m.(interface{ String() string }); ok {
		return st.String()
	}
	return ""
}

// get returns a copy-able bitmap for m (not to be changed), and with it
// what it is current with.
func (c *filterCache) get(m Matcher) (bits []uint64, matched int, seq uint64, ok bool) {
	text := filterText(m)
	if m == nil || text == "" {
		return nil, 0, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.entries {
		if e.text == text {
			// Most recently used last.
			c.entries = append(append(c.entries[:i], c.entries[i+1:]...), e)
			return e.bits, e.matched, e.seq, true
		}
	}
	return nil, 0, 0, false
}

// put records the bitmap of a full scan of m (copied).
func (c *filterCache) put(m Matcher, bits []uint64, matched int, seq uint64) {
	text := filterText(m)
	if m == nil || text == "" {
		return
	}
	e := filterEntry{text: text, bits: slices.Clone(bits), matched: matched, seq: seq}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.entries {
		if c.entries[i].text == text {
			c.entries = append(c.entries[:i], c.entries[i+1:]...)
			break
		}
	}
	if len(c.entries) >= filterCacheLen {
		c.entries = append(c.entries[:0], c.entries[1:]...)
	}
	c.entries = append(c.entries, e)
}

// sampleSize is about how many matched flows a deep window's first pass
// keeps as a sample of the order.
const sampleSize = 1 << 14

// windowPass is the second pass of a deep window's scan: from sample (a
// sample of the total matched flows, every stride-th of a worker's part,
// in no order) it picks two flows whose ranks bracket [bLo, bHi) with a
// margin, then collects the matched flows between them (returned in no
// order) and marks those ranked before the first in v.before (below
// counts them). It holds about 2.5 percent of the matched flows at most
// (and the sample) where collecting them all would hold every one; a
// sample that misses the window is tried again with twice the margin.
// It reads the filter bitmap (valid after the first pass); changes made
// meanwhile are caught up afterwards from the first pass's start, as for
// any scan.
func (v *View) windowPass(s *Store, lk Locker, release bool, workers int, sample []item, total, bLo, bHi int) ([]item, int) {
	o := v.ord
	slices.SortFunc(sample, func(x, y item) int { return o.cmp(&x, &y) })
	n := len(sample)
	per := float64(total) / float64(max(n, 1)) // matched flows per sampled one
	margin := 3*int(math.Sqrt(float64(n)))/2 + 4
	if v.margin > 0 {
		margin = v.margin
	}
	for {
		v.before = growBitmap(v.before[:0], s.tab.hw)
		clear(v.before)
		var lo, hi *item
		if n > 0 && total > 0 {
			if j := int(float64(bLo)/per) - margin; j > 0 && j < n {
				lo = &sample[j]
			}
			if j := int(min(float64(bHi)/per, float64(n))) + 1 + margin; j < n {
				hi = &sample[j]
			}
		}
		hw := s.tab.hw
		parts := make([][]item, max(workers, 1))
		nlow := make([]int, max(workers, 1))
		before, bits := v.before, v.bits
		for c := uint32(0); c < hw; c += s.chunk {
			parallel(workers, c, min(c+s.chunk, hw), func(w int, a, b uint32) {
				h, nl := parts[w], 0
				for i := a; i < b; i++ {
					if s.tab.at(i).flags&flagUsed == 0 || (bits != nil && bits[i>>6]&(1<<(i&63)) == 0) {
						continue
					}
					if lo != nil && o.k1(i) < lo.k1 {
						before[i>>6] |= 1 << (i & 63)
						nl++
						continue
					}
					if hi != nil && o.k1(i) > hi.k1 {
						continue
					}
					it := o.newItem(i)
					switch {
					case lo != nil && o.less(&it, lo):
						before[i>>6] |= 1 << (i & 63)
						nl++
					case hi != nil && !o.less(&it, hi):
					default:
						h = append(h, it)
					}
				}
				parts[w] = h
				nlow[w] += nl
			})
			if release && c+s.chunk < hw {
				v.pause(lk)
			}
		}
		all, below := parts[0], nlow[0]
		for w := 1; w < len(parts); w++ {
			all = append(all, parts[w]...)
			below += nlow[w]
		}
		// The bracket holds the window unless the sample misjudged the
		// ranks (or the table changed under a released lock: the catch-up
		// corrects small changes, a second try large ones).
		if (lo == nil || below <= bLo) && (hi == nil || below+len(all) >= bHi) || margin >= n {
			return all, below
		}
		margin = min(2*margin, n)
	}
}

// selector is a randomized quickselect over items.
type selector struct {
	o   *order
	rnd uint64
}

// selectRange reorders a so that a[lo:hi] hold the elements of ranks
// lo..hi-1 (in any order), everything before them ranks lower and
// everything after higher. Expected linear time.
func (x *selector) selectRange(a []item, lo, hi int) {
	if lo >= hi || lo >= len(a) {
		return
	}
	x.nth(a, 0, len(a), lo)
	if hi < len(a) {
		x.nth(a, lo, len(a), hi)
	}
}

// nth places in a[k] the element of rank k within a[from:to], smaller
// ones before it and larger after.
func (x *selector) nth(a []item, from, to, k int) {
	for to-from > 1 {
		p := x.partition(a, from, to)
		switch {
		case k < p:
			to = p
		case k > p:
			from = p + 1
		default:
			return
		}
	}
}

// partition partitions a[from:to] around a random pivot and returns its
// final position.
func (x *selector) partition(a []item, from, to int) int {
	if x.rnd == 0 {
		x.rnd = 0x9e3779b97f4a7c15
	}
	x.rnd ^= x.rnd >> 12
	x.rnd ^= x.rnd << 25
	x.rnd ^= x.rnd >> 27
	p := from + int((x.rnd*2685821657736338717)%uint64(to-from))
	last := to - 1
	a[p], a[last] = a[last], a[p]
	pivot := a[last]
	i := from
	for j := from; j < last; j++ {
		if x.o.less(&a[j], &pivot) {
			a[i], a[j] = a[j], a[i]
			i++
		}
	}
	a[i], a[last] = a[last], a[i]
	return i
}

// parallel runs fn over [lo, hi) split into workers parts (at multiples
// of 64, so that bitmap words are not shared) and waits for them.
func parallel(workers int, lo, hi uint32, fn func(w int, a, b uint32)) {
	if workers <= 1 {
		fn(0, lo, hi)
		return
	}
	per := ((hi-lo)/uint32(workers) + 63) &^ 63
	var wg sync.WaitGroup
	for w := range workers {
		a := lo + uint32(w)*per
		b := min(a+per, hi)
		if w == workers-1 {
			b = hi
		}
		if a >= b {
			continue
		}
		wg.Go(func() { fn(w, a, b) })
	}
	wg.Wait()
}

// heapPush adds it to the bounded max-heap h (the k first items in o's
// order, or with rev the k last, the farthest of them at the root) and
// returns the heap.
func heapPush(h []item, it item, k int, o *order, rev bool) []item {
	less := func(a, b *item) bool {
		if rev {
			return o.less(b, a)
		}
		return o.less(a, b)
	}
	if len(h) < k {
		h = append(h, it)
		// Sift up.
		j := len(h) - 1
		for j > 0 {
			p := (j - 1) / 2
			if !less(&h[p], &h[j]) {
				break
			}
			h[p], h[j] = h[j], h[p]
			j = p
		}
		return h
	}
	if k == 0 || !less(&it, &h[0]) {
		return h
	}
	h[0] = it
	// Sift down.
	j := 0
	for {
		l := 2*j + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && less(&h[l], &h[r]) {
			c = r
		}
		if !less(&h[j], &h[c]) {
			break
		}
		h[j], h[c] = h[c], h[j]
		j = c
	}
	return h
}
