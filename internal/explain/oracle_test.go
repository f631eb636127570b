package explain

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// randomRows returns n flows with many keys in every dimension (enough to
// fill a counter's table and spill into its column), IPv6 and missing
// addresses, ties, every class, remaining timeouts above the current
// value and unknown ones, first seen inside and outside the rate window.
func randomRows(n int, seed uint64) []store.Row {
	rng := rand.New(rand.NewPCG(seed, 1))
	pool := func(k int) int { return rng.IntN(k) }
	v4 := func(k int) netip.Addr {
		i := pool(k)
		return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	v6 := func(k int) netip.Addr {
		i := pool(k)
		return netip.AddrFrom16([16]byte{0xfd, 0, 0, byte(i % 7), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)})
	}
	protos := []uint8{flow.ProtoTCP, flow.ProtoTCP, flow.ProtoTCP, flow.ProtoUDP, flow.ProtoUDP, flow.ProtoICMP,
		flow.ProtoICMPv6, flow.ProtoGRE, flow.ProtoSCTP, flow.ProtoUDPLite, flow.ProtoDCCP, 50}
	statuses := []flow.Status{0, flow.StatusSeenReply, flow.StatusSeenReply | flow.StatusAssured}
	rows := make([]store.Row, n)
	for i := range rows {
		f := flow.Flow{Family: flow.FamilyIPv4, Proto: protos[pool(len(protos))], Status: statuses[pool(3)] | flow.StatusConfirmed,
			Mark: uint32(pool(n / 2)), Zone: uint16(pool(3))}
		if f.Proto == flow.ProtoTCP {
			f.TCPState = flow.TCPState(pool(int(flow.NumTCPStates)))
		}
		switch pool(10) {
		case 0:
			f.Family = flow.FamilyIPv6
			f.Orig.Src, f.Orig.Dst = v6(n/3), v6(n/20)
		case 1:
			f.Orig.Src = v4(n / 2) // no destination
		default:
			f.Orig.Src, f.Orig.Dst = v4(n/2), v4(n/4)
		}
		if flow.HasPorts(f.Proto) {
			f.Orig.SrcPort, f.Orig.DstPort = uint16(pool(65536)), uint16(pool(n/3))
		}
		first := t0.Add(-time.Duration(pool(120)) * time.Second)
		r := store.Row{Flow: f, FirstSeen: first, LastSeen: first}
		if pool(50) > 0 {
			rem := pool(600)
			if pool(4) == 0 {
				rem = pool(432100)
			}
			r.Expires = t0.Add(time.Duration(rem)*time.Second + time.Duration(pool(1000))*time.Millisecond)
		}
		rows[i] = r
	}
	return rows
}

// naiveTop counts a dimension's keys in a map and sorts them all.
func naiveTop(rows []store.Row, window time.Time, n int, key func(r *store.Row) (addrKey, bool)) []cand {
	m := map[addrKey]*cand{}
	for i := range rows {
		k, ok := key(&rows[i])
		if !ok {
			continue
		}
		c := m[k]
		if c == nil {
			c = &cand{key: k}
			m[k] = c
		}
		c.flows++
		if !rows[i].FirstSeen.Before(window) {
			c.fresh++
		}
	}
	var all []cand
	for _, c := range m {
		all = append(all, *c)
	}
	slices.SortFunc(all, func(a, b cand) int {
		if c := cmp.Compare(b.flows, a.flows); c != 0 {
			return c
		}
		return cmpAddrKey(a.key, b.key)
	})
	return all[:min(n, len(all))]
}

// naiveWhatIf counts, flow by flow, what value w frees now and within 60 s
// in class id (the package doc's definitions).
func naiveWhatIf(rows []*store.Row, s *Settings, id int, w int64) (now, within int) {
	d := classDefs[id]
	v32, ok := s.Timeouts[d.sysctl]
	if !ok || int64(v32) <= w {
		return 0, 0
	}
	v := int64(v32)
	capV := int64(max(s.Timeouts[SysTCPRetrans], s.Timeouts[SysTCPUnack]))
	for _, r := range rows {
		if r.Expires.IsZero() {
			continue
		}
		rem := max(int64(r.Expires.Sub(t0)/time.Second), 0)
		long := rem > 60
		idle, limit := v-rem, w
		if d.tcp && v > capV && rem <= capV {
			idle, limit = capV-rem, min(w, capV)
		}
		idle = min(max(idle, 0), maxHistogram-1)
		if idle >= limit {
			now++
		}
		if long && idle >= limit-60 {
			within++
		}
	}
	return now, within
}

// TestAgainstNaive checks the counted report against naive counting of
// the same flows (maps for the consumers, a flow-by-flow what-if), on the
// sequential and the parallel path, with tables full enough that every
// address dimension spills into its sorted column.
func TestAgainstNaive(t *testing.T) {
	for _, n := range []int{500, parallelFlows + 20000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rows := randomRows(n, uint64(n))
			window := t0.Add(-time.Minute)
			set := kernelSettings(map[string]uint32{SysUDP: 400, SysTCPTimeWait: 500})
			c := NewCollector(t0, window, set)
			for i := range rows {
				c.Add(&rows[i])
			}
			const top = 12
			a := c.Analyze(top)
			byClass := make([][]*store.Row, numClasses)
			for i := range rows {
				id := classOf(&rows[i].Flow)
				byClass[id] = append(byClass[id], &rows[i])
			}

			addrOK := func(a netip.Addr) (addrKey, bool) { return keyOf(a), a.IsValid() }
			dims := map[int]func(r *store.Row) (addrKey, bool){
				dimDport: func(r *store.Row) (addrKey, bool) {
					var p uint16
					if flow.HasPorts(r.Flow.Proto) {
						p = r.Flow.Orig.DstPort
					}
					return addrKey{lo: uint64(r.Flow.Proto)<<16 | uint64(p)}, true
				},
				dimDstHost: func(r *store.Row) (addrKey, bool) { return addrOK(r.Flow.Orig.Dst) },
				dimSrcHost: func(r *store.Row) (addrKey, bool) { return addrOK(r.Flow.Orig.Src) },
				dimSrcNet: func(r *store.Row) (addrKey, bool) {
					return netKey(r.Flow.Orig.Src), r.Flow.Orig.Src.IsValid()
				},
				dimZone: func(r *store.Row) (addrKey, bool) { return addrKey{lo: uint64(r.Flow.Zone)}, true },
				dimMark: func(r *store.Row) (addrKey, bool) { return addrKey{lo: uint64(r.Flow.Mark)}, true },
			}
			for dim, key := range dims {
				want := naiveTop(rows, window, top, key)
				if !slices.Equal(a.top[dim], want) {
					t.Errorf("dimension %d:\n got %+v\nwant %+v", dim, a.top[dim], want)
				}
			}

			// Classes and what-if, for several values reported from the
			// same analysis.
			for _, w := range []uint32{1, 29, 45, 61, 119, 299, 300, 301, 3600, 400000} {
				r := a.Report(Input{TableRows: n, FreshTimeouts: true, WhatIf: map[string]uint32{"": w}})
				if r.Table.Flows != n {
					t.Fatalf("flows %d, want %d", r.Table.Flows, n)
				}
				for _, cl := range r.Classes {
					id := -1
					for i, d := range classDefs {
						if d.proto == cl.Proto && d.state == cl.State {
							id = i
						}
					}
					flows, assured := len(byClass[id]), 0
					for _, r := range byClass[id] {
						if r.Flow.Status&flow.StatusAssured != 0 {
							assured++
						}
					}
					if cl.Flows != flows || cl.Assured != assured {
						t.Errorf("%s %s: flows %d assured %d, want %d %d", cl.Proto, cl.State, cl.Flows, cl.Assured, flows, assured)
					}
					for _, x := range cl.WhatIf {
						now, within := naiveWhatIf(byClass[id], set, id, int64(x.Value))
						if x.FreedNow != now || x.FreedWithin60s != within {
							t.Errorf("%s %s what-if %d (%s): %d/%d, want %d/%d", cl.Proto, cl.State, x.Value, x.Label,
								x.FreedNow, x.FreedWithin60s, now, within)
						}
					}
				}
			}
		})
	}
}

// TestCounterColumn drives one counter past its table into the column,
// with keys that are both in the table and in the column, and checks
// every count.
func TestCounterColumn(t *testing.T) {
	const keys = 3 << counterMaxBits
	c := newCounter(10 * keys)
	want := map[uint64][2]int{}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 10 * keys {
		k := uint64(rng.IntN(keys)) * 977 // spread out, some large
		fresh := uint32(rng.IntN(2))
		c.add(k, fresh)
		w := want[k]
		w[0]++
		w[1] += int(fresh)
		want[k] = w
	}
	if !c.full {
		t.Fatal("the table never filled up")
	}
	seen := map[uint64]bool{}
	c.each(func(k uint64, flows, fresh int) {
		if seen[k] {
			t.Errorf("key %d twice", k)
		}
		seen[k] = true
		if w := want[k]; flows != w[0] || fresh != w[1] {
			t.Errorf("key %d: %d/%d, want %d/%d", k, flows, fresh, w[0], w[1])
		}
	})
	if len(seen) != len(want) {
		t.Errorf("%d keys, want %d", len(seen), len(want))
	}
}

func TestRadixSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, n := range []int{0, 1, 2, 100, 5000} {
		for _, bitsN := range []int{1, 11, 12, 33, 63} {
			a := make([]uint64, n)
			for i := range a {
				a[i] = rng.Uint64() >> (64 - bitsN)
			}
			want := slices.Clone(a)
			slices.Sort(want)
			if got := radixSort(a); !slices.Equal(got, want) {
				t.Errorf("n %d bits %d: not sorted", n, bitsN)
			}
		}
	}
}

// TestCollectorChunks adds more chunks' worth of flows than may be queued
// (no Expect), so that the walk may wait for the counting goroutine, and
// checks the totals; a second Analyze returns the same analysis.
func TestCollectorChunks(t *testing.T) {
	rows := randomRows(1000, 9)
	const n = (minQueued+20)*chunkRecs + 5
	c := NewCollector(t0, t0.Add(-time.Minute), kernelSettings(nil))
	wantDport := map[uint64]int{}
	for i := range n {
		r := &rows[i%len(rows)]
		c.Add(r)
		var p uint16
		if flow.HasPorts(r.Flow.Proto) {
			p = r.Flow.Orig.DstPort
		}
		wantDport[uint64(r.Flow.Proto)<<16|uint64(p)]++
	}
	if c.Len() != n {
		t.Fatalf("Len %d, want %d", c.Len(), n)
	}
	a := c.Analyze(3)
	if a.flows != n {
		t.Errorf("counted %d flows, want %d", a.flows, n)
	}
	for _, got := range a.top[dimDport] {
		if want := wantDport[got.key.lo]; got.flows != want {
			t.Errorf("dport %x: %d flows, want %d", got.key.lo, got.flows, want)
		}
	}
	if c.Analyze(3) != a {
		t.Error("a second Analyze should return the same analysis")
	}
}
