package store

import (
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// TestReserveForListing checks that the table count a source sends before
// its initial listing sizes the index and the records once: the listing
// then neither rehashes nor maps more, Ticks during it do not trim the
// reserved room away, and every listed flow is found.
func TestReserveForListing(t *testing.T) {
	const n = 100000
	s := New(Options{})
	defer s.Close()
	s.Tick(t0)
	s.Apply([]flow.Event{{Type: flow.EventStats, Time: t0, Stats: &flow.TableStats{Time: t0, Count: n, Max: 2 * n}}})
	slots, parts := len(s.tab.slots), len(s.tab.recs.parts)
	if uint64(n)*4 > uint64(slots)*3 || int(s.tab.recs.cap()) < n {
		t.Fatalf("reserved %d slots and %d records for %d flows", slots, s.tab.recs.cap(), n)
	}
	if len(s.changes.buf) < 2*n && len(s.changes.buf) < changeLogLen {
		t.Errorf("change log of %d entries for %d flows", len(s.changes.buf), n)
	}
	batch := make([]flow.Event, 0, 1024)
	for i := range n {
		batch = append(batch, ev(flow.EventNew, t0, tcpFlow(i, 443, flow.TCPEstablished)))
		if len(batch) == cap(batch) {
			s.Apply(batch)
			batch = batch[:0]
			if i%(16*1024) == 1023 { // a Tick in another second
				s.Tick(t0.Add(time.Duration(i) * time.Millisecond))
				if len(s.tab.recs.parts) != parts {
					t.Fatalf("a Tick during the listing left %d of the %d reserved slab parts", len(s.tab.recs.parts), parts)
				}
			}
		}
	}
	s.Apply(append(batch, synced(t0)))
	if len(s.tab.slots) != slots || len(s.tab.recs.parts) != parts {
		t.Errorf("the listing grew the table: %d slots (reserved %d), %d slab parts (reserved %d)", len(s.tab.slots), slots, len(s.tab.recs.parts), parts)
	}
	if s.Len() != n {
		t.Fatalf("Len %d, want %d", s.Len(), n)
	}
	for i := 0; i < n; i += 997 {
		k := keyOf(tcpFlow(i, 443, flow.TCPEstablished))
		if _, ok := s.tab.lookup(&k); !ok {
			t.Fatalf("flow %d not found", i)
		}
	}
	if d, ok := s.Detail(keyOf(tcpFlow(n-1, 443, flow.TCPEstablished))); !ok || len(d.History) != 1 {
		t.Errorf("history of the last listed flow: %+v", d.History)
	}
}
