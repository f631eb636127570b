package store

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/flow"
)

// TestViewFollowsChanges keeps views (top, mid-table and deep windows,
// with and without a filter) across rounds of changes: each answer must
// equal the reference order, whether the view caught up from the change
// log, placed flows before its buffer, or scanned again.
func TestViewFollowsChanges(t *testing.T) {
	s, keys := buildRandom(t, 6000, 41)
	r := rng(5)
	m := filter.MustParse("not icmp")
	type vq struct {
		v *View
		q Query
	}
	var views []vq
	for _, q := range []Query{
		{Sort: SortBytes, Desc: true, Limit: 30},
		{Filter: m, Sort: SortSrc, Offset: 4500, Limit: 25},
		{Filter: m, Sort: SortAge, Offset: 2000, Limit: 40},
		{Sort: SortState, Offset: 5500, Limit: 20},
	} {
		v := NewView()
		v.slack = 64  // buffers far smaller than the table: flows before them
		v.sample = 64 // deep windows found from a sparse sample
		views = append(views, vq{v, q})
	}
	now := at(10 * time.Second)
	known := map[flow.Key]bool{}
	for _, k := range keys {
		known[k] = true
	}
	for round := range 30 {
		n := 1 + r.intn(30)
		if round%10 == 9 {
			n = 2500 // more than a catch-up is worth
		}
		for range n {
			f := randomFlow(&r, 80000+r.intn(5000))
			typ := flow.EventNew
			switch r.intn(4) {
			case 0:
				typ = flow.EventDestroy
			case 1:
				typ = flow.EventCounters
				f = withCounters(f, uint64(r.intn(100)), uint64(r.intn(100000)), 1, 1)
			}
			if r.intn(2) == 0 {
				if d, ok := s.Detail(keys[r.intn(len(keys))]); ok {
					f = withCounters(d.Flow, uint64(r.intn(100)), uint64(r.intn(100000)), 1, 1)
					f.Mark = uint32(r.intn(3))
				}
			}
			s.Apply([]flow.Event{ev(typ, now, f)})
			if k := f.Key(); !known[k] {
				known[k] = true
				keys = append(keys, k)
			}
		}
		now = now.Add(time.Duration(r.intn(3000)) * time.Millisecond)
		s.Tick(now)
		for j := range views {
			x := &views[j]
			if round > 0 && !x.v.Changed(s, nil) && n > 20 {
				t.Fatalf("round %d view %d: %d changes, Changed says no", round, j, n)
			}
			if r.intn(3) == 0 {
				x.q.Offset += r.intn(200) - 100 // a move
				x.q.Offset = max(x.q.Offset, 0)
			}
			ref := reference(s, keys, x.q.Filter, x.q.Sort, x.q.Desc)
			res := x.v.Query(s, nil, x.q)
			if res.Matched != len(ref) {
				t.Fatalf("round %d view %d: Matched %d, want %d", round, j, res.Matched, len(ref))
			}
			wantOff := min(x.q.Offset, max(len(ref)-x.q.Limit, 0))
			want := ref[wantOff:min(wantOff+x.q.Limit, len(ref))]
			if res.Offset != wantOff || len(res.Rows) != len(want) {
				t.Fatalf("round %d view %d: offset %d rows %d, want %d %d", round, j, res.Offset, len(res.Rows), wantOff, len(want))
			}
			for i := range want {
				if res.Rows[i].Flow.Key() != want[i].Flow.Key() {
					t.Fatalf("round %d view %d: row %d = %v, want %v", round, j, i, res.Rows[i].Flow.Orig, want[i].Flow.Orig)
				}
			}
			if x.v.Changed(s, nil) {
				t.Fatalf("round %d view %d: Changed right after a query", round, j)
			}
		}
	}
}

// rwLocker adapts a RWMutex's read side for View.Query.
type rwLocker struct{ mu *sync.RWMutex }

func (l rwLocker) Lock()   { l.mu.RLock() }
func (l rwLocker) Unlock() { l.mu.RUnlock() }

// TestViewScanLetsWriterIn: a scan of a big table releases the read lock
// between chunks; a writer applying events meanwhile is not held up for
// the whole scan, and the answer still matches the table as it is at the
// end of the query.
func TestViewScanLetsWriterIn(t *testing.T) {
	s := loadBig(30000)
	s.chunk = 4096
	var mu sync.RWMutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	applied := 0
	wg.Go(func() {
		n := 0
		for {
			select {
			case <-done:
				return
			default:
			}
			mu.Lock()
			f := bigFlow(400000 + n%5000)
			s.Apply([]flow.Event{ev(flow.EventNew, at(5*time.Second), withCounters(f, 1, uint64(1e12+n), 1, 1))})
			applied++
			mu.Unlock()
			n++
			time.Sleep(50 * time.Microsecond)
		}
	})
	v := NewView()
	m := filter.MustParse("tcp")
	during := 0
	for i := range 6 {
		mu.RLock()
		before := applied
		mu.RUnlock()
		q := Query{Filter: m, Sort: SortBytes, Desc: true, Limit: 10}
		if i%2 == 1 {
			q.Filter = filter.MustParse("tcp") // a new filter: a full scan
		}
		res := v.Query(s, rwLocker{&mu}, q)
		mu.RLock()
		during += applied - before
		mu.RUnlock()
		if len(res.Rows) != 10 {
			t.Fatalf("%d rows", len(res.Rows))
		}
	}
	if during == 0 {
		t.Error("no event was applied while the views scanned: the scans held the lock throughout")
	}
	close(done)
	wg.Wait()
	// Quiet now: the view's answer is the reference.
	res := v.Query(s, rwLocker{&mu}, Query{Filter: m, Sort: SortBytes, Desc: true, Limit: 10})
	ref := reference(s, keysOf(s), m, SortBytes, true)
	for i := range res.Rows {
		if res.Rows[i].Flow.Key() != ref[i].Flow.Key() {
			t.Fatalf("row %d = %v, want %v", i, res.Rows[i].Flow.Orig, ref[i].Flow.Orig)
		}
	}
	if res.Matched != len(ref) {
		t.Fatalf("Matched %d, want %d", res.Matched, len(ref))
	}
}

// keysOf returns the keys of all held flows.
func keysOf(s *Store) []flow.Key {
	var out []flow.Key
	for k := range allRows(s) {
		out = append(out, k)
	}
	return out
}

// hookLocker runs fn each time it is unlocked: a writer getting in
// between the chunks of a reader.
type hookLocker struct{ fn func() }

func (l hookLocker) Lock()   {}
func (l hookLocker) Unlock() { l.fn() }

// TestSnapshotLocked: a snapshot taken in chunks while the table changes
// between them is exactly the table at its end, in Snapshot's order.
func TestSnapshotLocked(t *testing.T) {
	s := loadBig(3*2048 + 100)
	s.chunk = 2048
	n := 0
	m := filter.MustParse("not udp")
	var want []flow.Flow
	writer := hookLocker{func() {
		// The table as the reader leaves it (the last time: as the
		// snapshot returns), then the writer's turn.
		want = s.Snapshot(m)
		for range 100 {
			typ := flow.EventNew
			f := bigFlow(n % (4 * 2048))
			switch n % 3 {
			case 0:
				typ = flow.EventDestroy
			case 1:
				f.TCPState = flow.TCPClose
			}
			s.Apply([]flow.Event{ev(typ, at(5*time.Second), f)})
			n++
		}
	}}
	got := s.SnapshotLocked(m, writer)
	if n <= 100 {
		t.Fatal("the snapshot never let the writer in")
	}
	if len(got) != len(want) {
		t.Fatalf("%d flows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Key() != want[i].Key() || got[i].TCPState != want[i].TCPState {
			t.Fatalf("flow %d = %v %v, want %v %v", i, got[i].Orig, got[i].TCPState, want[i].Orig, want[i].TCPState)
		}
	}
}

// TestViewScanWithWriterBetweenChunks: a view's scans (a new filter, a
// new sort, a selection outside its buffer) while the table changes
// between their chunks answer exactly for the table at their end.
func TestViewScanWithWriterBetweenChunks(t *testing.T) {
	s := loadBig(3*4096 + 100)
	s.chunk = 4096
	n := 0
	var snapAt func()
	writer := hookLocker{func() {
		snapAt()
		for range 100 {
			f := withCounters(bigFlow(n%(4*4096)), uint64(n), uint64(n*7%100000), 1, 1)
			typ := flow.EventUpdate
			if n%5 == 0 {
				typ = flow.EventDestroy
			}
			s.Apply([]flow.Event{ev(typ, at(5*time.Second), f)})
			n++
		}
	}}
	v := NewView()
	v.slack = 100
	sel := keyOf(bigFlow(7777))
	for i, q := range []Query{
		{Filter: filter.MustParse("tcp"), Sort: SortBytes, Desc: true, Limit: 20},
		{Filter: filter.MustParse("tcp"), Sort: SortSrc, Offset: 5000, Limit: 20},
		{Filter: filter.MustParse("not udp"), Sort: SortPackets, Limit: 20, Select: &sel},
	} {
		var all map[flow.Key]Row
		snapAt = func() { all = allRows(s) }
		res := v.Query(s, writer, q)
		ref := referenceFrom(all, q.Filter, q.Sort, q.Desc)
		if res.Matched != len(ref) {
			t.Fatalf("query %d: Matched %d, want %d", i, res.Matched, len(ref))
		}
		if len(res.Rows) == 0 {
			t.Fatalf("query %d: no rows", i)
		}
		for j := range res.Rows {
			if res.Rows[j].Flow.Key() != ref[res.Offset+j].Flow.Key() {
				t.Fatalf("query %d: row %d = %v, want %v", i, j, res.Rows[j].Flow.Orig, ref[res.Offset+j].Flow.Orig)
			}
		}
		if q.Select != nil && res.SelectedIndex >= 0 && ref[res.SelectedIndex].Flow.Key() != sel {
			t.Fatalf("query %d: selected index %d is %v", i, res.SelectedIndex, ref[res.SelectedIndex].Flow.Orig)
		}
	}
}

// TestViewDeepWindowFromSample finds deep and wide windows of every sort
// key (with and without a filter, both directions) from samples far
// sparser than the table, down to a few flows, and with a margin so thin
// that the bracket around the window often misses and is widened: every answer must equal the
// reference order.
func TestViewDeepWindowFromSample(t *testing.T) {
	s, keys := buildRandom(t, 5000, 23)
	r := rng(17)
	// Nothing matched: no sample to bracket with.
	if res := NewView().Query(s, nil, Query{Filter: filter.MustParse("port 1 and port 2"), Offset: 3000, Limit: 40}); res.Matched != 0 || len(res.Rows) != 0 {
		t.Fatalf("nothing matched: %d matched, %d rows", res.Matched, len(res.Rows))
	}
	for key := SortKey(0); key < NumSortKeys; key++ {
		for _, m := range []Matcher{nil, filter.MustParse("tcp or ipv6")} {
			for _, desc := range []bool{false, true} {
				ref := reference(s, keys, m, key, desc)
				for _, sample := range []int{3, 40, 500} {
					v := NewView()
					v.slack, v.sample = 16, sample
					if sample == 500 {
						v.margin = 1 // brackets that miss, widened
					}
					for range 4 {
						off, limit := r.intn(len(ref)), 1+r.intn(50)
						switch r.intn(5) {
						case 0:
							limit = 400 + r.intn(2000) // wider than the sample's spacing
						case 1:
							off = len(ref) + r.intn(3000) // past the end: the last rows
						}
						res := v.Query(s, nil, Query{Filter: m, Sort: key, Desc: desc, Offset: off, Limit: limit})
						wantOff := min(off, max(len(ref)-limit, 0))
						want := ref[wantOff:min(wantOff+limit, len(ref))]
						if res.Matched != len(ref) || res.Offset != wantOff || len(res.Rows) != len(want) {
							t.Fatalf("key %d filter %v desc %v sample %d: matched %d offset %d rows %d, want %d %d %d",
								key, m, desc, sample, res.Matched, res.Offset, len(res.Rows), len(ref), wantOff, len(want))
						}
						for j := range want {
							if res.Rows[j].Flow.Key() != want[j].Flow.Key() {
								t.Fatalf("key %d filter %v desc %v sample %d offset %d: row %d = %v, want %v",
									key, m, desc, sample, off, j, res.Rows[j].Flow.Orig, want[j].Flow.Orig)
							}
						}
						v.Close() // the next window is found by a new scan
					}
				}
			}
		}
	}
}

// countingMatcher is a filter that counts its evaluations.
type countingMatcher struct {
	f *filter.Filter
	n *atomic.Int64
}

func (m countingMatcher) Match(fl *flow.Flow) bool { m.n.Add(1); return m.f.Match(fl) }
func (m countingMatcher) String() string           { return m.f.String() }

// TestViewsShareFilter has views with equal filters (separate filter
// values of the same text) but their own sorts and windows follow rounds
// of changes: a view that starts after another evaluated the filter
// starts from its bitmap (it evaluates the filter on far fewer flows than
// the table holds), and every view still answers exactly its own window.
func TestViewsShareFilter(t *testing.T) {
	s, keys := buildRandom(t, 6000, 31)
	r := rng(8)
	const text = "tcp or port 53"
	var evals atomic.Int64
	first := NewView()
	m0 := countingMatcher{filter.MustParse(text), &evals}
	if res := first.Query(s, nil, Query{Filter: m0, Sort: SortBytes, Limit: 20}); res.Matched == 0 {
		t.Fatal("the filter matches nothing")
	}
	if evals.Load() < 6000 {
		t.Fatalf("the first view evaluated the filter %d times, want every flow", evals.Load())
	}
	type vq struct {
		v *View
		q Query
	}
	var views []vq
	for j, q := range []Query{
		{Sort: SortSrc, Offset: 3000, Limit: 25},
		{Sort: SortAge, Desc: true, Limit: 40},
		{Sort: SortState, Offset: 1500, Limit: 30},
		{Sort: SortBytes, Limit: 20},
	} {
		v := NewView()
		v.slack, v.sample = 64, 64
		q.Filter = countingMatcher{filter.MustParse(text), &evals}
		evals.Store(0)
		v.Query(s, nil, q)
		if n := evals.Load(); n > 100 {
			t.Fatalf("view %d evaluated the filter %d times: it did not start from the shared bitmap", j, n)
		}
		views = append(views, vq{v, q})
	}
	now := at(10 * time.Second)
	known := map[flow.Key]bool{}
	for _, k := range keys {
		known[k] = true
	}
	for round := range 20 {
		for range 1 + r.intn(40) {
			f := randomFlow(&r, 90000+r.intn(3000))
			typ := flow.EventNew
			if r.intn(3) == 0 {
				typ = flow.EventDestroy
			}
			if r.intn(2) == 0 {
				if d, ok := s.Detail(keys[r.intn(len(keys))]); ok {
					f = withCounters(d.Flow, uint64(r.intn(100)), uint64(r.intn(100000)), 1, 1)
				}
			}
			s.Apply([]flow.Event{ev(typ, now, f)})
			if k := f.Key(); !known[k] {
				known[k] = true
				keys = append(keys, k)
			}
		}
		now = now.Add(time.Duration(r.intn(2000)) * time.Millisecond)
		s.Tick(now)
		for j := range views {
			x := &views[j]
			if round%5 == 4 {
				// A new filter value of the same text: from the shared
				// bitmap again.
				x.q.Filter = countingMatcher{filter.MustParse(text), &evals}
			}
			ref := reference(s, keys, x.q.Filter, x.q.Sort, x.q.Desc)
			res := x.v.Query(s, nil, x.q)
			wantOff := min(x.q.Offset, max(len(ref)-x.q.Limit, 0))
			want := ref[wantOff:min(wantOff+x.q.Limit, len(ref))]
			if res.Matched != len(ref) || res.Offset != wantOff || len(res.Rows) != len(want) {
				t.Fatalf("round %d view %d: matched %d offset %d rows %d, want %d %d %d", round, j, res.Matched, res.Offset, len(res.Rows), len(ref), wantOff, len(want))
			}
			for i := range want {
				if res.Rows[i].Flow.Key() != want[i].Flow.Key() {
					t.Fatalf("round %d view %d: row %d = %v, want %v", round, j, i, res.Rows[i].Flow.Orig, want[i].Flow.Orig)
				}
			}
		}
	}
}

// passAll is a Matcher that says it passes every flow, and counts the
// flows it was asked about anyway.
type passAll struct{ asked *atomic.Int64 }

func (p passAll) Match(*flow.Flow) bool { p.asked.Add(1); return true }
func (passAll) MatchesAll() bool        { return true }

// TestMatchAllIsNoFilter: a Matcher that passes every flow (the TUI's
// filter with nothing typed) costs nothing per flow: a view keeps no
// bitmap for it, and no reader evaluates it.
func TestMatchAllIsNoFilter(t *testing.T) {
	s, _ := buildRandom(t, 3000, 7)
	var asked atomic.Int64
	m := passAll{&asked}
	v := NewView()
	got := v.Query(s, nil, Query{Filter: m, Sort: SortBytes, Desc: true, Limit: 20})
	want := NewView().Query(s, nil, Query{Sort: SortBytes, Desc: true, Limit: 20})
	if got.Matched != want.Matched || got.Total != want.Total || len(got.Rows) != len(want.Rows) {
		t.Fatalf("matched %d of %d (%d rows), want %d of %d (%d rows)", got.Matched, got.Total, len(got.Rows), want.Matched, want.Total, len(want.Rows))
	}
	for i := range got.Rows {
		if got.Rows[i].Flow.Key() != want.Rows[i].Flow.Key() {
			t.Fatalf("row %d: %v, want %v", i, got.Rows[i].Flow.Key(), want.Rows[i].Flow.Key())
		}
	}
	if v.bits != nil {
		t.Errorf("the view keeps a bitmap of %d words for a filter that passes everything", len(v.bits))
	}
	if n := len(s.Snapshot(m)); n != len(s.Snapshot(nil)) {
		t.Errorf("snapshot: %d flows, want %d", n, len(s.Snapshot(nil)))
	}
	if n := len(s.Groups(GroupProto, m, 0)); n != len(s.Groups(GroupProto, nil, 0)) {
		t.Errorf("groups: %d, want %d", n, len(s.Groups(GroupProto, nil, 0)))
	}
	if n := len(s.EventsTail(100, m)); n != len(s.EventsTail(100, nil)) {
		t.Errorf("events: %d, want %d", n, len(s.EventsTail(100, nil)))
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the filter was evaluated %d times", n)
	}
	// The filter package's empty expression says so.
	if f := filter.MustParse(""); !f.MatchesAll() {
		t.Error(`filter "" does not say it passes every flow`)
	}
	if filter.MustParse("tcp").MatchesAll() {
		t.Error(`filter "tcp" says it passes every flow`)
	}
}

// destroyTop destroys flows keep..n-1 (made by mk) at now and ticks two
// seconds later: the table trims to the keep flows left, in one part of
// records, or t fails.
func destroyTop(t *testing.T, s *Store, mk func(int) flow.Flow, keep, n int, now time.Duration) {
	t.Helper()
	evs := make([]flow.Event, 0, n-keep)
	for i := keep; i < n; i++ {
		evs = append(evs, ev(flow.EventDestroy, at(now), mk(i)))
	}
	s.Apply(evs)
	s.Tick(at(now + 2*time.Second))
	if s.tab.hw != uint32(keep) || len(s.tab.recs.parts) != 1 {
		t.Fatalf("the table did not shrink: high water %d, %d parts", s.tab.hw, len(s.tab.recs.parts))
	}
}

// checkWindow checks a query's answer against the reference: the matched
// count and the window's rows (at q.Offset, or where Select put it).
func checkWindow(t *testing.T, s *Store, q Query, res Result, what string) {
	t.Helper()
	ref := reference(s, keysOf(s), q.Filter, q.Sort, q.Desc)
	if res.Matched != len(ref) {
		t.Fatalf("%+v, %s: Matched %d, want %d", q, what, res.Matched, len(ref))
	}
	off := q.Offset
	if q.Select != nil {
		off = res.Offset
	}
	for i := range res.Rows {
		if res.Rows[i].Flow.Key() != ref[off+i].Flow.Key() {
			t.Fatalf("%+v, %s: row %d (offset %d) = %v, want %v", q, what, i, off, res.Rows[i].Flow.Orig, ref[off+i].Flow.Orig)
		}
	}
}

// TestScanWhileTableShrinks: a writer that gets in between the chunks of a
// scan may free the records at the top of the table and trim it (its high
// water comes down, slab parts are unmapped); the scan then reads the
// records above the new top as free ones instead of failing, and its
// answer is the table's as it is at the end of the query. The writer gets in at the
// first release of the lock and at the last before the query ends: for a
// filter's first scan and for a deep window's second pass.
func TestScanWhileTableShrinks(t *testing.T) {
	const bits = 12
	const n, keep = 1<<bits + 2000, 1500
	s := newSynced(Options{Linger: -1})
	smallParts(s, bits)
	s.chunk = 1 << 9
	now := time.Duration(0)
	// fill makes flows from..n-1 live.
	fill := func(from int) {
		batch := make([]flow.Event, 0, n-from)
		for i := from; i < n; i++ {
			batch = append(batch, ev(flow.EventNew, at(now), bigFlow(i)))
		}
		s.Apply(batch)
	}
	fill(0)
	for _, q := range []Query{
		{Filter: filter.MustParse("tcp"), Sort: SortBytes, Desc: true, Limit: 10},
		{Sort: SortSrc, Offset: 1000, Limit: 20},
	} {
		releases := 0
		NewView().Query(s, hookLocker{func() { releases++ }}, q)
		for _, at := range []int{1, releases - 1} {
			if s.tab.hw != n {
				fill(keep)
			}
			calls := 0
			res := NewView().Query(s, hookLocker{func() {
				if calls++; calls == at {
					destroyTop(t, s, bigFlow, keep, n, now)
					now += 2 * time.Second
				}
			}}, q)
			if calls < at {
				t.Fatalf("%+v: the lock was released %d times, want at least %d", q, calls, at)
			}
			checkWindow(t, s, q, res, fmt.Sprintf("writer at release %d", at))
		}
	}
}

// TestFreedRecordReads: a reader may still hold the index of a record
// that the writer freed while it let the writer in (a sample or a scan's
// items, compared before the catch-up): every read of the sort keys, the
// flow and its row then sees zeros instead of failing.
func TestFreedRecordReads(t *testing.T) {
	s := newSynced(Options{Linger: -1})
	v4, v6 := tcpFlow(1, 80, flow.TCPEstablished), udp6Flow(2, 53, true)
	nat := tcpFlow(3, 443, flow.TCPEstablished)
	nat.Reply.Src = netip.MustParseAddr("192.0.2.9")
	s.Apply([]flow.Event{ev(flow.EventNew, at(0), v4), ev(flow.EventNew, at(0), v6), ev(flow.EventNew, at(0), nat)})
	var idx []uint32
	for _, f := range []flow.Flow{v4, v6, nat} {
		i, ok := s.tab.lookup(new(f.Key()))
		if !ok {
			t.Fatal("flow not found")
		}
		idx = append(idx, i)
	}
	s.Apply([]flow.Event{ev(flow.EventDestroy, at(time.Second), v6), ev(flow.EventDestroy, at(time.Second), nat)})
	freed := idx[1:]
	for _, i := range freed {
		var fl flow.Flow
		s.tab.flow(i, &fl)
		if src, dst := s.tab.addrs(i); src != ([16]byte{}) || dst != ([16]byte{}) {
			t.Errorf("freed record %d: addresses %v %v", i, src, dst)
		}
		_ = s.tab.row(i)
		_, _ = s.tab.keyPrefix(i)
		for key := SortKey(0); key < NumSortKeys; key++ {
			_ = s.tab.sortPrefix(i, key)
			_ = s.tab.recCmp(i, idx[0], key)
			_ = s.tab.recCmp(idx[0], i, key)
		}
		_ = s.tab.cmpKey(i, idx[0])
	}
}

// oneHostFlow is IPv6 flow n from one busy host: every flow ties with the
// others on the source address (and on state and age), and later ones go
// to lower destinations, so that high record indices sort first.
func oneHostFlow(n int) flow.Flow {
	var d [16]byte
	d[0], d[1] = 0xfd, 1
	m := 1<<20 - n
	d[13], d[14], d[15] = byte(m>>16), byte(m>>8), byte(m)
	f := flow.Flow{ID: uint32(n + 1), Family: flow.FamilyIPv6, Proto: flow.ProtoTCP, TCPState: flow.TCPEstablished,
		Status: flow.StatusConfirmed | flow.StatusSeenReply | flow.StatusAssured,
		Orig:   flow.Tuple{Src: netip.MustParseAddr("fd00::1"), Dst: netip.AddrFrom16(d), SrcPort: 40000, DstPort: 443}, Timeout: 120}
	f.Reply = f.Orig.Reverse(f.Proto)
	return f
}

// TestHeldItemsTrimmedAway: the flows a scan has already collected (the
// top of its heap, its sample, a pivot) may be trimmed away with their
// slab part while the scan lets the writer in; comparing them (they tie on
// the sort value and on most of the key) reads them as freed records, and
// the answer is still the table's at the end of the query.
func TestHeldItemsTrimmedAway(t *testing.T) {
	const bits = 12
	const n, keep = 1<<bits + 2000, 1500
	selected := oneHostFlow(100)
	sel := selected.Key()
	for _, q := range []Query{
		{Sort: SortSrc, Limit: 10},                 // the heap
		{Sort: SortState, Offset: 1000, Limit: 20}, // a wide heap
		{Sort: SortState, Offset: 1200, Limit: 20}, // the sample, then a window pass
		{Sort: SortSrc, Limit: 20, Select: &sel},   // around a pivot
	} {
		s := newSynced(Options{Linger: -1})
		smallParts(s, bits)
		s.chunk = 1 << 9
		evs := make([]flow.Event, 0, n)
		for i := range n {
			evs = append(evs, ev(flow.EventNew, at(0), oneHostFlow(i)))
		}
		s.Apply(evs)
		calls := 0
		res := NewView().Query(s, hookLocker{func() {
			if calls++; calls == 10 {
				destroyTop(t, s, oneHostFlow, keep, n, time.Second)
			}
		}}, q)
		if calls < 10 {
			t.Fatalf("%+v: the lock was released %d times", q, calls)
		}
		if res.Matched != keep {
			t.Fatalf("%+v: Matched %d, want %d", q, res.Matched, keep)
		}
		checkWindow(t, s, q, res, "items trimmed away")
	}
}

// TestQueryNearKeepsRow checks Query.Near: a selected flow whose rank
// jumped beyond what the view holds is reported not there, without a scan
// (the view's buffer stays where it was); without Near the view finds it
// at its new rank.
func TestQueryNearKeepsRow(t *testing.T) {
	s := newSynced(Options{})
	const n = 5000
	evs := make([]flow.Event, 0, n)
	for i := range n {
		evs = append(evs, ev(flow.EventNew, at(0), withCounters(tcpFlow(i, 80, flow.TCPEstablished), 1, uint64(1000+i), 1, 0)))
	}
	s.Apply(evs)
	v := NewView()
	v.slack = 100
	q := Query{Sort: SortBytes, Desc: true, Limit: 20}
	res := v.Query(s, nil, q)
	sel := res.Rows[10].Flow.Key()
	q.Select = &sel
	if res = v.Query(s, nil, q); res.SelectedIndex != 10 {
		t.Fatalf("selected index %d, want 10", res.SelectedIndex)
	}
	// A small move stays within the buffer: found, with or without Near.
	f := res.Rows[10].Flow
	s.Apply([]flow.Event{ev(flow.EventUpdate, at(time.Second), withCounters(f, 1, f.Counters.OrigBytes-15, 1, 0))})
	q.Near = true
	if res = v.Query(s, nil, q); res.SelectedIndex < 10 || res.SelectedIndex > 30 {
		t.Fatalf("after a small move: selected index %d", res.SelectedIndex)
	}
	// The selected flow drops to the end of the order.
	s.Apply([]flow.Event{ev(flow.EventUpdate, at(2*time.Second), withCounters(f, 1, 1, 1, 0))})
	if res = v.Query(s, nil, q); res.SelectedIndex != -1 || v.base != 0 || res.Offset != 0 {
		t.Fatalf("Near, the flow far away: selected index %d, view base %d, offset %d; want -1, 0, 0 (no scan)", res.SelectedIndex, v.base, res.Offset)
	}
	q.Near = false
	if res = v.Query(s, nil, q); res.SelectedIndex != n-1 || len(res.Rows) == 0 || res.Rows[len(res.Rows)-1].Flow.Key() != sel {
		t.Fatalf("without Near: selected index %d, want %d, the last row", res.SelectedIndex, n-1)
	}
}

// TestViewKeepsItsRangeUnderChurnAtItsEnd: a flow at the end of a view's
// buffer that changes without moving in the order (here its counters, the
// table sorted by source) goes back into the buffer. Placed against the
// buffer's last flow after it was taken out, it used to be dropped: churn
// there shrank the buffer a flow at a time until a scan of the table.
func TestViewKeepsItsRangeUnderChurnAtItsEnd(t *testing.T) {
	s, keys := buildRandom(t, 3000, 17)
	v := NewView()
	v.slack = 64
	q := Query{Sort: SortSrc, Offset: 500, Limit: 20}
	check := func(round int) {
		t.Helper()
		ref := reference(s, keys, nil, q.Sort, q.Desc)
		res := v.Query(s, nil, q)
		if res.Offset != q.Offset || len(res.Rows) != q.Limit {
			t.Fatalf("round %d: offset %d rows %d", round, res.Offset, len(res.Rows))
		}
		for i, r := range res.Rows {
			if r.Flow.Key() != ref[q.Offset+i].Flow.Key() {
				t.Fatalf("round %d: row %d = %v, want %v", round, i, r.Flow.Orig, ref[q.Offset+i].Flow.Orig)
			}
		}
	}
	check(0)
	n0 := len(v.buf)
	if n0 < q.Limit+64 || v.atEnd {
		t.Fatalf("buffer of %d flows (at end %v): want the window and its slack", n0, v.atEnd)
	}
	now := at(time.Minute)
	var fl flow.Flow
	for round := 1; round <= 40; round++ {
		s.tab.flow(v.buf[len(v.buf)-1].idx, &fl)
		s.Apply([]flow.Event{ev(flow.EventCounters, now, withCounters(fl, uint64(round), uint64(round)*100, 1, 1))})
		check(round)
		if len(v.buf) != n0 {
			t.Fatalf("round %d: buffer of %d flows, was %d", round, len(v.buf), n0)
		}
	}
}

// TestQueryBackgroundScansOnOneCore: a scan for a Background query (a
// viewer's periodic redraw) takes no helpers; the same scan for a query
// someone waits for uses the free cores.
func TestQueryBackgroundScansOnOneCore(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	s, _ := buildRandom(t, 40000, 3)
	var mu sync.RWMutex
	for _, tt := range []struct {
		background bool
		want       func(int) bool
	}{
		{true, func(n int) bool { return n == 1 }},
		{false, func(n int) bool { return n > 1 }},
	} {
		v := NewView()
		res := v.Query(s, rwLocker{&mu}, Query{Sort: SortBytes, Desc: true, Limit: 30, Background: tt.background})
		if len(res.Rows) != 30 || res.Matched != 40000 {
			t.Fatalf("background %v: %d rows of %d matched", tt.background, len(res.Rows), res.Matched)
		}
		if !tt.want(v.lastWorkers) {
			t.Errorf("background %v: the scan ran %d workers", tt.background, v.lastWorkers)
		}
	}
}

// countingLocker is a read lock that records how many readers hold it at
// once, each for at least a millisecond (so that readers overlap).
type countingLocker struct {
	mu        *sync.RWMutex
	held, max *atomic.Int32
}

func (l countingLocker) Lock() {
	l.mu.RLock()
	n := l.held.Add(1)
	for m := l.max.Load(); n > m && !l.max.CompareAndSwap(m, n); m = l.max.Load() {
	}
	time.Sleep(time.Millisecond)
}

func (l countingLocker) Unlock() { l.held.Add(-1); l.mu.RUnlock() }

// TestBackgroundReadsLeaveACore: with 4 cores, 8 viewers refreshing in
// the background (queries that scan, and Changed) hold the store with at
// most 3 at once; queries somebody waits for may take all 4. Cores counts,
// not the scheduler's P count: a server with a spare P (6 here) gets the
// same bounds.
func TestBackgroundReadsLeaveACore(t *testing.T) {
	for _, tt := range []struct {
		procs, cores int
		background   bool
		want         int32
	}{
		{4, 0, true, 3}, {4, 0, false, 4},
		{6, 4, true, 3}, {6, 4, false, 4},
	} {
		t.Run(fmt.Sprintf("procs%d cores%d background %v", tt.procs, tt.cores, tt.background), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(tt.procs))
			readersAtOnce(t, Options{Cores: tt.cores}, tt.background, tt.want)
		})
	}
}

// readersAtOnce runs 8 viewers querying a store made with opts (in the
// background or not) and checks that at most want held it at once.
func readersAtOnce(t *testing.T, opts Options, background bool, want int32) {
	s, _ := buildRandomWith(t, opts, 3000, 5)
	var mu sync.RWMutex
	var held, most atomic.Int32
	lk := countingLocker{&mu, &held, &most}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				v := NewView() // a new view scans
				res := v.Query(s, lk, Query{Sort: SortKey((g + i) % int(NumSortKeys)), Limit: 20, Background: background})
				if len(res.Rows) != 20 {
					t.Errorf("%d rows", len(res.Rows))
					return
				}
				if background {
					v.Changed(s, lk)
				}
			}
		})
	}
	wg.Wait()
	if got := most.Load(); got != want {
		t.Errorf("at most %d readers held the store at once, want %d", got, want)
	}
}

// TestViewSlackGrowsWithQuickRefills: a view whose window keeps leaving
// its buffer soon after a scan keeps twice the flows around the window on
// the next scan, up to four times; a new order starts again.
func TestViewSlackGrowsWithQuickRefills(t *testing.T) {
	s, _ := buildRandom(t, 6000, 9)
	v := NewView()
	v.slack = 64
	q := Query{Sort: SortSrc, Offset: 3000, Limit: 20}
	v.Query(s, nil, q)
	if v.grow != 0 || len(v.buf) != 20+2*64 {
		t.Fatalf("first scan: grow %d, buffer %d", v.grow, len(v.buf))
	}
	for i, want := range []uint8{1, 2, 2} {
		q.Offset += 1000 // past the buffer, as churn moves a window
		s.Tick(at(time.Duration(i+1) * time.Second))
		v.Query(s, nil, q)
		if v.grow != want || len(v.buf) != 20+2*(64<<want) {
			t.Fatalf("refill %d: grow %d, buffer %d; want grow %d", i, v.grow, len(v.buf), want)
		}
	}
	// A refill long after the last scan keeps the slack it has.
	q.Offset = 500
	s.Tick(at(time.Hour))
	v.Query(s, nil, q)
	if v.grow != 2 {
		t.Fatalf("slow refill: grow %d", v.grow)
	}
	q.Sort = SortDst
	v.Query(s, nil, q)
	if v.grow != 0 || len(v.buf) != 20+2*64 {
		t.Fatalf("new order: grow %d, buffer %d", v.grow, len(v.buf))
	}
}
