package store

import (
	"sync"
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
	s, keys := buildRandom(t, 12000, 41)
	r := rng(5)
	m := filter.MustParse("not icmp")
	type vq struct {
		v *View
		q Query
	}
	var views []vq
	for _, q := range []Query{
		{Sort: SortBytes, Desc: true, Limit: 30},
		{Filter: m, Sort: SortSrc, Offset: 9000, Limit: 25},
		{Filter: m, Sort: SortAge, Offset: 4000, Limit: 40},
		{Sort: SortState, Offset: 11000, Limit: 20},
	} {
		views = append(views, vq{NewView(), q})
	}
	now := at(10 * time.Second)
	known := map[flow.Key]bool{}
	for _, k := range keys {
		known[k] = true
	}
	for round := range 30 {
		n := 1 + r.intn(30)
		if round%10 == 9 {
			n = 4000 // more than a catch-up is worth
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
	if testing.Short() {
		t.Skip("builds a 196,608-flow table")
	}
	s := loadBig(3 * scanChunk)
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
