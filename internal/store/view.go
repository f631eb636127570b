package store

import (
	"runtime"
	"slices"
	"sync"

	"github.com/conntop/conntop/internal/flow"
)

// View is one reader's query state (a TUI, an SSH session): the filter
// and sort of its last query, which flows pass the filter (a bitmap over
// record indices, and their number), and the first flows of the sorted
// order (a bounded buffer, exact for its length). A query on an unchanged
// table costs only its window's rows; after changes, a view re-evaluates
// only the records changed since (from the store's change log); it scans
// the table again only for a new filter, a new sort, a window beyond its
// buffer, or after more changes than the log holds. A View is used by one
// goroutine at a time; views do not disturb each other.
type View struct {
	// The filter layer: valid once a scan evaluated flt.
	fok     bool
	flt     Matcher
	bits    []uint64 // records passing flt (nil when flt is nil)
	matched int
	seq     uint64 // change-log position the view is current with

	// The order layer: buf holds the first len(buf) matched flows in
	// order (all of them when complete).
	ook      bool
	ord      order
	buf      []item
	complete bool
	kmax     int

	// What the last answer showed, for Changed.
	shown   []uint32
	dirty   bool
	lastTot int

	scratch []uint32
	ins     []item
}

// NewView returns an empty view.
func NewView() *View { return &View{dirty: true} }

// Locker is the lock a View takes around its reads of the store (a read
// lock); scans release it between chunks so that writers are not held up
// for long.
type Locker = sync.Locker

// scanChunk is how many records a scan reads under one hold of the lock.
const scanChunk = 1 << 16

// viewSlack is how many flows a view keeps beyond the window it was asked
// for, so that moving down or flows leaving do not force a new scan.
const viewSlack = 2048

// Query answers q for this view (see Store.Query for the order): the
// store must be held by the caller when lk is nil; else the view takes
// lk itself (a read lock of the store) and releases it between chunks of
// a scan. q.Filter must be safe for concurrent use and must not change its
// answers while the view may reuse them (a *filter.Filter never does).
func (v *View) Query(s *Store, lk Locker, q Query) Result {
	if lk != nil {
		lk.Lock()
		defer lk.Unlock()
	}
	if s.tab == nil {
		return Result{SelectedIndex: -1} // counts only
	}
	if q.Sort >= NumSortKeys {
		q.Sort = SortAge
	}
	limit := max(q.Limit, 0)
	off := max(q.Offset, 0)

	sameF := v.fok && sameMatcher(v.flt, q.Filter)
	sameO := sameF && v.ook && v.ord.key == q.Sort && v.ord.desc == q.Desc
	if !sameO {
		v.ook = false
		v.ord = order{tab: s.tab, key: q.Sort, desc: q.Desc}
		v.dirty = true
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
	need := off + limit
	if !v.fok || !v.ook || (!v.complete && len(v.buf) < min(need, v.matched)) {
		v.scan(s, lk, need)
	}

	total := s.live + s.lingering
	m := v.matched
	res := Result{Total: total, Matched: m, SelectedIndex: -1}

	// The selected flow's rank.
	rank := -1
	if q.Select != nil {
		rank = v.rank(s, lk, q.Select)
	}
	if rank >= 0 {
		res.SelectedIndex = rank
		if rank < off {
			off = rank
		} else if limit > 0 && rank >= off+limit {
			off = rank - limit + 1
		}
	}
	off = min(off, max(m-limit, 0))
	res.Offset = off
	end := min(off+limit, m)
	if end > len(v.buf) && !v.complete {
		v.scan(s, lk, end)
		// The table may have changed while the scan released the lock.
		m = v.matched
		res.Matched, res.Total = m, s.live+s.lingering
		off = min(off, max(m-limit, 0))
		res.Offset = off
		end = min(off+limit, m, len(v.buf))
	}
	end = min(end, len(v.buf))
	v.shown = v.shown[:0]
	if end > off {
		res.Rows = make([]Row, 0, end-off)
		for j := off; j < end; j++ {
			i := v.buf[j].idx
			res.Rows = append(res.Rows, s.tab.row(i))
			v.shown = append(v.shown, i)
		}
	}
	v.dirty = false
	v.lastTot = res.Total
	return res
}

// Changed reports whether the answer to the view's last query may have
// changed since (its rows, their order, the counts): the store must be
// held, or lk is taken. It costs what re-evaluating the changed records
// costs, which the next Query then saves.
func (v *View) Changed(s *Store, lk Locker) bool {
	if lk != nil {
		lk.Lock()
		defer lk.Unlock()
	}
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
func (v *View) Close() { *v = View{dirty: true} }

// rank returns the position of the flow with key k in the view's order,
// or -1 when it is not there or does not pass the filter.
func (v *View) rank(s *Store, lk Locker, k *flow.Key) int {
	i, ok := s.tab.lookup(k)
	if !ok {
		return -1
	}
	if v.bits != nil && !bitSet(v.bits, i) {
		return -1
	}
	it := v.ord.newItem(i)
	p, found := slices.BinarySearchFunc(v.buf, &it, func(a item, b *item) int { return v.ord.cmp(&a, b) })
	if found && v.buf[p].idx == i {
		return p
	}
	if v.complete || (len(v.buf) > 0 && v.ord.less(&it, &v.buf[len(v.buf)-1])) {
		return -1 // not where it should be: not matched
	}
	// Beyond the buffer: count the matched flows before it.
	return v.countBefore(s, lk, it)
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
	if !force && n > max(int(s.tab.hw)/4, 4096) {
		return false
	}
	ch := append(append(v.scratch[:0], a...), b...)
	slices.Sort(ch)
	ch = slices.Compact(ch)
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
	}
	v.growBits(s)
	var fl flow.Flow
	ins := v.ins[:0]
	for _, i := range ch {
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
		if now && v.ook {
			it := v.ord.newItem(i)
			if v.complete || (len(v.buf) > 0 && v.ord.less(&it, &v.buf[len(v.buf)-1])) {
				ins = append(ins, it)
			}
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
			v.complete = false
		}
	}
	v.ins = ins[:0]
	return true
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
	if w := int(s.tab.hw+63) / 64; len(v.bits) < w {
		v.bits = append(v.bits, make([]uint64, w-len(v.bits)+w/8)...)
	}
}

func bitSet(b []uint64, i uint32) bool {
	w := int(i >> 6)
	return w < len(b) && b[w]&(1<<(i&63)) != 0
}

// scan fills the view from the table: the filter layer when it is not
// valid (evaluating the filter on every record), and the order layer with
// the first need+viewSlack flows. With lk set it releases the lock
// between chunks of records and catches up with the changes made
// meanwhile; after two scans overtaken by more changes than the log
// holds, it scans once more without releasing the lock.
func (v *View) scan(s *Store, lk Locker, need int) {
	k := need + max(viewSlack, need/4)
	for attempt := 0; ; attempt++ {
		release := lk != nil && attempt < 2
		full := !v.fok
		start := s.changes.seq
		hw := s.tab.hw
		if full {
			v.growBits(s)
			clear(v.bits)
		}
		workers := min(runtime.GOMAXPROCS(0), max(int(hw)/8192, 1), 16)
		heaps := make([][]item, workers)
		counts := make([]int, workers)
		o := v.ord
		o.tab = s.tab
		filter := v.flt
		bits := v.bits
		for lo := uint32(0); lo < hw; lo += scanChunk {
			hi := min(lo+scanChunk, hw)
			parallel(workers, lo, hi, func(w int, a, b uint32) {
				var fl flow.Flow
				h := heaps[w]
				n := 0
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
					it := o.newItem(i)
					h = heapPush(h, it, k, &o)
				}
				heaps[w] = h
				counts[w] += n
			})
			if release && hi < hw {
				lk.Unlock()
				lk.Lock()
				o.tab = s.tab
			}
		}
		merged := v.buf[:0]
		total := 0
		for w := range heaps {
			merged = append(merged, heaps[w]...)
			total += counts[w]
		}
		slices.SortFunc(merged, func(x, y item) int { return o.cmp(&x, &y) })
		v.complete = len(merged) <= k && total == len(merged)
		if len(merged) > k {
			merged = merged[:k]
		}
		v.buf = merged
		v.kmax = k
		v.ook = true
		if full {
			v.matched = total
			v.fok = true
			v.seq = start
		}
		if v.flt == nil && full {
			// Unfiltered: matched is the table's count, reconciled below.
			v.matched = total
		}
		v.dirty = true
		if v.catchUp(s, true) {
			return
		}
		v.fok, v.ook = false, false
	}
}

// countBefore counts the matched flows ordered before it (the rank of a
// selected flow beyond the view's buffer).
func (v *View) countBefore(s *Store, lk Locker, it item) int {
	hw := s.tab.hw
	workers := min(runtime.GOMAXPROCS(0), max(int(hw)/8192, 1), 16)
	counts := make([]int, workers)
	o := v.ord
	bits := v.bits
	// The lock stays held: the rank must be of one state of the table.
	for lo := uint32(0); lo < hw; lo += scanChunk {
		hi := min(lo+scanChunk, hw)
		parallel(workers, lo, hi, func(w int, a, b uint32) {
			n := 0
			for i := a; i < b; i++ {
				if s.tab.at(i).flags&flagUsed == 0 || (bits != nil && bits[i>>6]&(1<<(i&63)) == 0) {
					continue
				}
				x := o.newItem(i)
				if o.less(&x, &it) {
					n++
				}
			}
			counts[w] += n
		})
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	_ = lk
	return n
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
// order, the last of them at the root) and returns the heap.
func heapPush(h []item, it item, k int, o *order) []item {
	if len(h) < k {
		h = append(h, it)
		// Sift up.
		j := len(h) - 1
		for j > 0 {
			p := (j - 1) / 2
			if !o.less(&h[p], &h[j]) {
				break
			}
			h[p], h[j] = h[j], h[p]
			j = p
		}
		return h
	}
	if k == 0 || !o.less(&it, &h[0]) {
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
		if r := l + 1; r < len(h) && o.less(&h[l], &h[r]) {
			c = r
		}
		if !o.less(&h[j], &h[c]) {
			break
		}
		h[j], h[c] = h[c], h[j]
		j = c
	}
	return h
}
