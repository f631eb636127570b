package store

import (
	"net/netip"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// TestCountsOnly: a counts-only store keeps the Summary counts exactly as
// a full store does (through updates, destroys and a resync), and holds
// no flows.
func TestCountsOnly(t *testing.T) {
	full, counts := newSynced(Options{Linger: -1}), newSynced(Options{CountsOnly: true})
	defer counts.Close()
	r := rng(3)
	var evs []flow.Event
	var listed []flow.Flow
	for i := range 20000 {
		f := randomFlow(&r, i)
		typ := flow.EventNew
		switch r.intn(6) {
		case 0:
			typ = flow.EventDestroy
		case 1:
			typ = flow.EventUpdate
			f.TCPState = flow.TCPState(r.intn(int(flow.NumTCPStates)))
			f.Status |= flow.StatusAssured
		}
		if typ == flow.EventDestroy && r.intn(2) == 0 {
			f.TCPState = flow.TCPNone // as the kernel's DESTROY
		}
		evs = append(evs, ev(typ, at(time.Duration(i)*time.Millisecond), f))
		if typ != flow.EventDestroy && r.intn(3) == 0 {
			listed = append(listed, f)
		}
	}
	// A resync listing a part of what is there.
	evs = append(evs, flow.Event{Type: flow.EventResync, Time: at(30 * time.Second), Lost: 5})
	for _, f := range listed {
		evs = append(evs, ev(flow.EventNew, at(30*time.Second), f))
	}
	evs = append(evs, synced(at(30*time.Second)))
	for _, s := range []*Store{full, counts} {
		for i := 0; i < len(evs); i += 500 {
			s.Apply(evs[i:min(i+500, len(evs))])
		}
		s.Tick(at(40 * time.Second))
	}
	a, b := full.Summary(), counts.Summary()
	if a.Live == 0 || a.Live != b.Live || a.ByState != b.ByState || a.ByProto != b.ByProto || a.ByTCP != b.ByTCP ||
		a.IPv4 != b.IPv4 || a.IPv6 != b.IPv6 || a.Assured != b.Assured || a.Unassured != b.Unassured {
		t.Errorf("counts-only summary differs:\nfull   %d %v %v %d/%d %d/%d\ncounts %d %v %v %d/%d %d/%d",
			a.Live, a.ByState, a.ByTCP, a.IPv4, a.IPv6, a.Assured, a.Unassured,
			b.Live, b.ByState, b.ByTCP, b.IPv4, b.IPv6, b.Assured, b.Unassured)
	}
	if a.Events != b.Events || a.NewRate != b.NewRate || a.DestroyRate != b.DestroyRate {
		t.Errorf("events %v/%v, rates %v %v / %v %v", a.Events, b.Events, a.NewRate, a.DestroyRate, b.NewRate, b.DestroyRate)
	}
	if counts.Len() != full.Len() {
		t.Errorf("Len %d, want %d", counts.Len(), full.Len())
	}
	if r := counts.Query(Query{Limit: 10}); len(r.Rows) != 0 || counts.Snapshot(nil) != nil || counts.Groups(GroupProto, nil, 0) != nil {
		t.Error("a counts-only store returned flows")
	}
	if _, ok := counts.Detail(listed[0].Key()); ok {
		t.Error("a counts-only store has a detail")
	}
}

// TestMemoryLimitDegrades: with a limit smaller than the table needs, the
// store gives up history, then lingering, says so in the Summary, and the
// counts and the snapshot stay exact; with room again, both come back.
func TestMemoryLimitDegrades(t *testing.T) {
	const n = 150000
	s := New(Options{MemoryLimit: 12 << 20, Linger: time.Minute})
	defer s.Close()
	s.Tick(t0)
	batch := make([]flow.Event, 0, 1000)
	for i := range n {
		batch = append(batch, ev(flow.EventNew, t0, bigFlow(i)))
		if len(batch) == cap(batch) {
			s.Apply(batch)
			batch = batch[:0]
		}
	}
	batch = append(batch, synced(t0))
	// Some destroyed flows: they would linger for a minute.
	for i := range 1000 {
		batch = append(batch, ev(flow.EventDestroy, at(time.Second), bigFlow(i)))
	}
	s.Apply(batch)
	s.Tick(at(2 * time.Second))
	sm := s.Summary()
	d := sm.Degraded
	if !d.Any() || !d.NoHistory || !d.NoLinger || d.Limit != 12<<20 || d.Used <= d.Limit {
		t.Fatalf("Degraded = %+v, want history and lingering given up, used above the limit", d)
	}
	if sm.Live != n-1000 || s.Len() != n-1000 || sm.Lingering != 0 {
		t.Errorf("Live %d Len %d Lingering %d, want %d, %d, 0", sm.Live, s.Len(), sm.Lingering, n-1000, n-1000)
	}
	if snap := s.Snapshot(nil); len(snap) != n-1000 {
		t.Errorf("snapshot has %d flows, want %d", len(snap), n-1000)
	}
	if d, ok := s.Detail(keyOf(bigFlow(5000))); !ok || len(d.History) != 0 {
		t.Errorf("detail %v, history %v: want the flow without history", ok, d.History)
	}
	sum := 0
	for _, c := range sm.ByState {
		sum += c
	}
	if sum != n-1000 {
		t.Errorf("counts by state add up to %d", sum)
	}
	// The table shrinks far below the limit: lingering and history return.
	batch = batch[:0]
	for i := 1000; i < n; i++ {
		batch = append(batch, ev(flow.EventDestroy, at(3*time.Second), bigFlow(i)))
	}
	s.Apply(batch)
	s.Tick(at(4 * time.Second))
	if d := s.Summary().Degraded; d.Any() || d.Used > d.Limit*3/4 {
		t.Errorf("after the table emptied: %+v, want nothing given up", d)
	}
	if s.Len() != 0 {
		t.Errorf("Len %d", s.Len())
	}
	s.Apply([]flow.Event{ev(flow.EventNew, at(5*time.Second), bigFlow(1)), ev(flow.EventDestroy, at(5*time.Second), bigFlow(1))})
	if sm := s.Summary(); sm.Lingering != 1 {
		t.Errorf("lingering %d after recovery, want 1", sm.Lingering)
	}
	if d, _ := s.Detail(keyOf(bigFlow(1))); len(d.History) != 2 {
		t.Errorf("history %v after recovery, want 2 transitions", d.History)
	}
}

// TestCountsOnlyCollisions: flows whose fingerprints collide are still
// counted exactly when anything else that identifies them differs. Every
// flow gets the same forced fingerprint, so all of them collide: first
// with their own check bits (the flows are chosen so that these differ,
// as two flows sharing a real 64-bit fingerprint almost surely do), then
// with the check bits forced equal too, where only protocol and family
// tell them apart.
func TestCountsOnlyCollisions(t *testing.T) {
	r := rng(9)
	var flows []flow.Flow
	for i := range 300 {
		flows = append(flows, randomFlow(&r, i))
	}
	check := func(t *testing.T, flows []flow.Flow, force func(c *countsTable) func(*flow.Flow) (uint64, uint32)) {
		t.Helper()
		full, counts := newSynced(Options{Linger: -1}), newSynced(Options{CountsOnly: true})
		defer full.Close()
		defer counts.Close()
		counts.cnt.forceKeys = force(counts.cnt)
		ids := map[uint32]bool{}
		var evs []flow.Event
		for i, f := range flows {
			if _, id := counts.cnt.keys(&f); ids[id] {
				continue // the one case that cannot be told apart
			} else {
				ids[id] = true
			}
			evs = append(evs, ev(flow.EventNew, at(time.Duration(i)*time.Millisecond), f))
			switch i % 3 {
			case 0:
				evs = append(evs, ev(flow.EventDestroy, at(time.Second), f))
			case 1:
				f.TCPState, f.Status = flow.TCPTimeWait, f.Status|flow.StatusAssured
				evs = append(evs, ev(flow.EventUpdate, at(time.Second), f))
			}
		}
		if len(ids) < len(flows)*3/4 {
			t.Fatalf("only %d of %d flows have distinct identity bits", len(ids), len(flows))
		}
		for _, s := range []*Store{full, counts} {
			s.Apply(evs)
		}
		a, b := full.Summary(), counts.Summary()
		if a.Live == 0 || a.Live != b.Live || a.ByState != b.ByState || a.ByProto != b.ByProto || a.ByTCP != b.ByTCP ||
			a.IPv4 != b.IPv4 || a.IPv6 != b.IPv6 || a.Assured != b.Assured || a.Unassured != b.Unassured {
			t.Errorf("counts-only summary differs:\nfull   %d %v %v %d/%d\ncounts %d %v %v %d/%d",
				a.Live, a.ByTCP, a.ByProto[6], a.IPv4, a.IPv6, b.Live, b.ByTCP, b.ByProto[6], b.IPv4, b.IPv6)
		}
		if counts.cnt.collided == 0 {
			t.Error("no collision detected")
		}
	}
	t.Run("fingerprint", func(t *testing.T) {
		check(t, flows, func(c *countsTable) func(*flow.Flow) (uint64, uint32) {
			return func(fl *flow.Flow) (uint64, uint32) {
				_, id := c.hashKeys(fl)
				return 42, id
			}
		})
	})
	t.Run("fingerprint and check bits", func(t *testing.T) {
		a4, b4 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
		a6, b6 := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
		var same []flow.Flow
		for _, p := range []uint8{flow.ProtoTCP, flow.ProtoUDP, flow.ProtoICMP, flow.ProtoSCTP} {
			for _, fam := range []flow.Family{flow.FamilyIPv4, flow.FamilyIPv6} {
				f := flow.Flow{Family: fam, Proto: p, Status: flow.StatusConfirmed, Orig: flow.Tuple{Src: a4, Dst: b4, SrcPort: 1000, DstPort: 80}}
				if fam == flow.FamilyIPv6 {
					f.Orig.Src, f.Orig.Dst = a6, b6
				}
				if p == flow.ProtoTCP {
					f.TCPState = flow.TCPEstablished
				}
				same = append(same, f)
			}
		}
		check(t, same, func(*countsTable) func(*flow.Flow) (uint64, uint32) {
			return func(fl *flow.Flow) (uint64, uint32) { return 42, identity(fl, 7) }
		})
	})
}

// TestCountsTableGrowAndDelete: the table keeps every flow through
// growth (with its pages released as it goes), reservation and deletion,
// with fingerprints near both ends (wrapping clusters).
func TestCountsTableGrowAndDelete(t *testing.T) {
	c := newCountsTable()
	defer c.release()
	r := rng(5)
	type key struct {
		fp uint64
		id uint32
	}
	live := map[key]bool{}
	for round := range 3 {
		for i := range 40000 {
			k := key{r.next() | 1, uint32(i % 3)}
			if i%7 == 0 {
				k.fp = ^uint64(0) - uint64(i%5) // home at the very end
			}
			if i%11 == 0 {
				k.fp = 1 + uint64(i%5)
			}
			p, ok, _ := c.find(k.fp, k.id)
			if ok != live[k] {
				t.Fatalf("round %d: find %v, live %v", round, ok, live[k])
			}
			if !ok {
				c.put(p, k.fp, k.id)
				live[k] = true
			}
		}
		if round == 1 {
			c.reserve(200000)
		}
		n := 0
		for k := range live {
			if n%2 == 0 {
				p, ok, _ := c.find(k.fp, k.id)
				if !ok {
					t.Fatalf("round %d: flow lost", round)
				}
				c.del(p)
				delete(live, k)
			}
			n++
		}
		for k := range live {
			if _, ok, _ := c.find(k.fp, k.id); !ok {
				t.Fatalf("round %d: flow lost after deletes", round)
			}
		}
		if c.used != len(live) {
			t.Fatalf("used %d, live %d", c.used, len(live))
		}
	}
}
