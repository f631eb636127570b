//go:build linux

package conntrack

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/conntop/conntop/internal/flow"
)

// silentModel is the silent set as a plain map, as the source kept it
// before the compact set: the reference the set must behave like.
type silentModel struct {
	m   map[flow.Key]silentState
	gen uint32
}

func (m *silentModel) add(f *flow.Flow) {
	m.m[f.Key()] = silentState{family: f.Family, tcp: f.TCPState, status: f.Status, mark: f.Mark}
}

func (m *silentModel) remove(k flow.Key) bool {
	_, ok := m.m[k]
	delete(m.m, k)
	return ok
}

func (m *silentModel) seen(f *flow.Flow) (found, changed bool) {
	st, ok := m.m[f.Key()]
	if !ok {
		return false, false
	}
	changed = st.tcp != f.TCPState || st.status != f.Status || st.mark != f.Mark
	st.tcp, st.status, st.mark, st.gen = f.TCPState, f.Status, f.Mark, m.gen
	m.m[f.Key()] = st
	return true, changed
}

func (m *silentModel) sweep() []flow.Flow {
	var gone []flow.Flow
	for k, st := range m.m {
		if st.gen == m.gen {
			continue
		}
		delete(m.m, k)
		gone = append(gone, flow.Flow{Family: st.family, Proto: k.Proto, Zone: k.Zone, Orig: k.Orig,
			Reply: k.Orig.Reverse(k.Proto), Status: st.status, TCPState: st.tcp, Mark: st.mark})
	}
	return gone
}

// sortFlows orders flows by their text, for comparing sets.
func sortFlows(fs []flow.Flow) []string {
	out := make([]string, len(fs))
	for i := range fs {
		out[i] = fmt.Sprintf("%+v", fs[i])
	}
	slices.Sort(out)
	return out
}

func sweepAll(t *testing.T, s *silentSet) []flow.Flow {
	t.Helper()
	var gone []flow.Flow
	if err := s.sweep(func(f *flow.Flow) error { gone = append(gone, *f); return nil }); err != nil {
		t.Fatal(err)
	}
	return gone
}

// randomFlow draws an entry from small pools, so that keys repeat across
// draws, with every kind of key the set stores differently: IPv4 and IPv6
// with ports, ICMP and ICMPv6, a protocol without ports, and odd keys
// (an IPv6 zone, mixed families, ICMP fields on TCP).
func randomFlow(r *rand.Rand) flow.Flow {
	f := flow.Flow{Family: flow.FamilyIPv4, Zone: uint16(r.IntN(2)), Mark: uint32(r.IntN(3)),
		Status: flow.Status(r.IntN(4)) << 1}
	a4 := func() netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(4)), byte(r.IntN(8))}) }
	a6 := func() netip.Addr {
		return netip.AddrFrom16([16]byte{0: 0xfd, 14: byte(r.IntN(4)), 15: byte(r.IntN(8))})
	}
	switch r.IntN(10) {
	case 0, 1, 2:
		f.Proto, f.Orig = flow.ProtoTCP, flow.Tuple{Src: a4(), Dst: a4(), SrcPort: uint16(r.IntN(8)), DstPort: 80}
		f.TCPState = flow.TCPState(r.IntN(4))
	case 3, 4:
		f.Proto, f.Orig = flow.ProtoUDP, flow.Tuple{Src: a4(), Dst: a4(), SrcPort: uint16(r.IntN(8)), DstPort: 53}
	case 5:
		f.Proto, f.Orig = flow.ProtoICMP, flow.Tuple{Src: a4(), Dst: a4(), Type: 8, ID: uint16(r.IntN(8))}
	case 6:
		f.Family, f.Proto = flow.FamilyIPv6, flow.ProtoTCP
		f.Orig = flow.Tuple{Src: a6(), Dst: a6(), SrcPort: uint16(r.IntN(8)), DstPort: 443}
		f.TCPState = flow.TCPState(r.IntN(4))
	case 7:
		f.Family, f.Proto = flow.FamilyIPv6, flow.ProtoICMPv6
		f.Orig = flow.Tuple{Src: a6(), Dst: a6(), Type: 128, Code: 0, ID: uint16(r.IntN(8))}
	case 8:
		f.Proto, f.Orig = flow.ProtoGRE, flow.Tuple{Src: a4(), Dst: a4()}
	case 9:
		f.Family, f.Proto = flow.FamilyIPv6, flow.ProtoUDP
		switch r.IntN(3) {
		case 0:
			f.Orig = flow.Tuple{Src: a6().WithZone("eth0"), Dst: a6(), SrcPort: 1, DstPort: 2}
		case 1:
			f.Orig = flow.Tuple{Src: a4(), Dst: a6(), SrcPort: 1, DstPort: uint16(r.IntN(4))}
		default:
			f.Proto = flow.ProtoTCP
			f.Orig = flow.Tuple{Src: a6(), Dst: a6(), SrcPort: 1, DstPort: 2, Type: 3, ID: uint16(r.IntN(4))}
		}
	}
	f.Reply = f.Orig.Reverse(f.Proto)
	return f
}

// TestSilentSetMatchesMap drives the set and the map it replaces with the
// same random listings, events and reconciliations, and wants the same
// answers and the same vanished entries, field by field.
func TestSilentSetMatchesMap(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 1))
			n := 1 + r.IntN(3000)
			s := newSilentSet(r.IntN(2 * n))
			defer s.free()
			m := &silentModel{m: make(map[flow.Key]silentState)}
			for range n {
				f := randomFlow(r)
				if _, dup := m.m[f.Key()]; dup {
					continue // see TestSilentSetDuplicate
				}
				s.add(&f)
				m.add(&f)
			}
			s.seal()
			for round := range 12 {
				if s.len() != len(m.m) {
					t.Fatalf("round %d: len %d, map %d", round, s.len(), len(m.m))
				}
				// Events: some for silent entries, some for others.
				for range r.IntN(n/4 + 1) {
					f := randomFlow(r)
					k := f.Key()
					if got, want := s.remove(&k), m.remove(k); got != want {
						t.Fatalf("round %d: remove(%+v) = %v, map %v", round, k, got, want)
					}
				}
				// A reconciliation: the listing holds most entries, some
				// changed, and new ones.
				s.beginPoll()
				m.gen++
				var listed []flow.Flow
				for k, st := range m.m {
					if r.IntN(8) == 0 {
						continue // vanished
					}
					f := flow.Flow{Family: st.family, Proto: k.Proto, Zone: k.Zone, Orig: k.Orig,
						TCPState: st.tcp, Status: st.status, Mark: st.mark}
					switch r.IntN(6) {
					case 0:
						f.Status ^= flow.StatusAssured
					case 1:
						f.Mark++
					case 2:
						f.TCPState ^= 1
					}
					listed = append(listed, f)
				}
				for range r.IntN(n/4 + 1) {
					listed = append(listed, randomFlow(r))
				}
				r.Shuffle(len(listed), func(i, j int) { listed[i], listed[j] = listed[j], listed[i] })
				for i := range listed {
					gf, gc := s.seen(&listed[i])
					wf, wc := m.seen(&listed[i])
					if gf != wf || gc != wc {
						t.Fatalf("round %d: seen(%+v) = %v, %v; map %v, %v", round, listed[i], gf, gc, wf, wc)
					}
				}
				got, want := sortFlows(sweepAll(t, s)), sortFlows(m.sweep())
				if !slices.Equal(got, want) {
					t.Fatalf("round %d: vanished\n%v\nwant\n%v", round, got, want)
				}
			}
		})
	}
}

// synthFlow is entry i of a synthetic table of IPv4 (or IPv6) TCP flows
// from clients to a few services, all keys distinct.
func synthFlow(i int, v6 bool, f *flow.Flow) {
	src := [4]byte{10, byte(i >> 24), byte(i >> 16), byte(i >> 15 & 1)}
	dst := [4]byte{10, 96, 0, byte(i * 2654435761 >> 24)}
	*f = flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: flow.TCPEstablished,
		Status: flow.StatusSeenReply | flow.StatusAssured | flow.StatusConfirmed,
		Orig:   flow.Tuple{Src: netip.AddrFrom4(src), Dst: netip.AddrFrom4(dst), SrcPort: uint16(i), DstPort: 8080}}
	if i%5 == 0 {
		f.TCPState, f.Status = flow.TCPTimeWait, flow.StatusSeenReply|flow.StatusConfirmed
	}
	if v6 {
		f.Family = flow.FamilyIPv6
		f.Orig.Src = netip.AddrFrom16([16]byte{0: 0xfd, 12: src[0], 13: src[1], 14: src[2], 15: src[3]})
		f.Orig.Dst = netip.AddrFrom16([16]byte{0: 0xfd, 1: 1, 15: dst[3]})
	}
	f.Reply = f.Orig.Reverse(f.Proto)
}

// TestSilentSetCompaction removes most of a set by events and
// reconciliations and checks that the arrays shrink to the live entries
// and that the rest stays exact.
func TestSilentSetCompaction(t *testing.T) {
	const n = 20_000
	s := newSilentSet(n)
	defer s.free()
	var f flow.Flow
	for i := range n {
		synthFlow(i, i%4 == 3, &f)
		s.add(&f)
	}
	s.seal()
	if s.len() != n || s.v4.live != n-n/4 || s.v6.live != n/4 {
		t.Fatalf("sealed: len %d (v4 %d, v6 %d), want %d", s.len(), s.v4.live, s.v6.live, n)
	}
	if len(s.v4.dir) != 1<<s.v4.bits+1 || (1<<s.v4.bits)*silentPerBucket4 < s.v4.live {
		t.Fatalf("v4 directory: %d buckets for %d records", len(s.v4.dir)-1, s.v4.live)
	}
	// Events for 60% of the entries: the dead outnumber the live.
	for i := range n * 6 / 10 {
		synthFlow(i, i%4 == 3, &f)
		k := f.Key()
		if !s.remove(&k) {
			t.Fatalf("entry %d not found", i)
		}
		if s.remove(&k) {
			t.Fatalf("entry %d removed twice", i)
		}
	}
	for _, tb := range []struct {
		name             string
		live, dead, recs int
	}{{"v4", s.v4.live, s.v4.dead, len(s.v4.recs.a)}, {"v6", s.v6.live, s.v6.dead, len(s.v6.recs.a)}} {
		if tb.dead > tb.live || tb.recs != tb.live+tb.dead {
			t.Errorf("%s after removals: %d live, %d dead in %d records: not compacted", tb.name, tb.live, tb.dead, tb.recs)
		}
	}
	// A reconciliation lists half of the rest, one of them changed.
	s.beginPoll()
	left := n - n*6/10
	var want []flow.Flow
	for i := n * 6 / 10; i < n; i++ {
		synthFlow(i, i%4 == 3, &f)
		if i%2 == 0 {
			want = append(want, flow.Flow{Family: f.Family, Proto: f.Proto, Zone: f.Zone, Orig: f.Orig,
				Reply: f.Reply, Status: f.Status, TCPState: f.TCPState, Mark: f.Mark})
			continue
		}
		if i == n-1 {
			f.Mark = 7
		}
		found, changed := s.seen(&f)
		if !found || changed != (i == n-1) {
			t.Fatalf("seen entry %d: found %v changed %v", i, found, changed)
		}
	}
	gone := sweepAll(t, s)
	if !slices.Equal(sortFlows(gone), sortFlows(want)) {
		t.Fatalf("vanished %d entries, want %d", len(gone), len(want))
	}
	if s.len() != left/2 || s.v4.dead > s.v4.live || s.v6.dead > s.v6.live {
		t.Fatalf("after the sweep: len %d (v4 %d live %d dead, v6 %d live %d dead), want %d, compacted",
			s.len(), s.v4.live, s.v4.dead, s.v6.live, s.v6.dead, left/2)
	}
	// The changed mark is what a later vanish reports.
	s.beginPoll()
	gone = sweepAll(t, s)
	if len(gone) != left/2 || s.len() != 0 || s.mapped() != 0 {
		t.Fatalf("second sweep: %d gone, %d left", len(gone), s.len())
	}
	i := slices.IndexFunc(gone, func(g flow.Flow) bool { return g.Mark == 7 })
	if i < 0 {
		t.Fatal("the changed entry vanished without its last mark")
	}
	synthFlow(n-1, (n-1)%4 == 3, &f)
	if gone[i].Key() != f.Key() {
		t.Fatalf("the entry with the new mark is %+v, want key %+v", gone[i].Key(), f.Key())
	}
	if len(s.classes) > 1024 {
		t.Errorf("%d classes kept for an empty set", len(s.classes))
	}
}

// TestSilentSetDuplicate: a key the listing gave twice (the entry was
// deleted and created again while the dump ran) is one entry, whose
// state is one of the two listed.
func TestSilentSetDuplicate(t *testing.T) {
	var a, b flow.Flow
	synthFlow(1, false, &a)
	b = a
	b.Mark = 9
	s := newSilentSet(2)
	defer s.free()
	s.add(&a)
	s.add(&b)
	s.seal()
	if s.len() != 1 {
		t.Fatalf("len %d, want 1", s.len())
	}
	s.beginPoll()
	gone := sweepAll(t, s)
	if len(gone) != 1 || gone[0].Key() != a.Key() || (gone[0].Mark != 0 && gone[0].Mark != 9) {
		t.Fatalf("vanished %+v, want the one entry", gone)
	}
}

// TestSilentSetClasses: entries that share nothing (a mark each) cost a
// class each; when most are gone the classes of the rest are reindexed and
// still give the exact mark.
func TestSilentSetClasses(t *testing.T) {
	const n = 5000
	s := newSilentSet(n)
	defer s.free()
	var f flow.Flow
	for i := range n {
		synthFlow(i, i%2 == 1, &f)
		f.Mark = uint32(i)
		s.add(&f)
	}
	s.seal()
	if len(s.classes) < n {
		t.Fatalf("%d classes for %d marks", len(s.classes), n)
	}
	for i := range n - 100 {
		synthFlow(i, i%2 == 1, &f)
		k := f.Key()
		if !s.remove(&k) {
			t.Fatalf("entry %d not found", i)
		}
	}
	if len(s.classes) > 2*100+1024 {
		t.Fatalf("%d classes kept for 100 entries", len(s.classes))
	}
	s.beginPoll()
	gone := sweepAll(t, s)
	if len(gone) != 100 {
		t.Fatalf("%d vanished, want 100", len(gone))
	}
	for _, g := range gone {
		synthFlow(int(g.Mark), g.Mark%2 == 1, &f)
		if g.Key() != f.Key() {
			t.Fatalf("entry with mark %d has key %+v, want %+v", g.Mark, g.Key(), f.Key())
		}
	}
}

// TestSilentSetSweepError: an error from the callback (the consumer went
// away) ends the sweep and is returned.
func TestSilentSetSweepError(t *testing.T) {
	s := newSilentSet(0)
	defer s.free()
	var f flow.Flow
	for i := range 10 {
		synthFlow(i, false, &f)
		s.add(&f)
	}
	s.seal()
	s.beginPoll()
	stop := errors.New("stop")
	calls := 0
	if err := s.sweep(func(*flow.Flow) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("sweep = %v after %d calls, want stop after 1", err, calls)
	}
}

// TestSilentKeyRoundTrip: every key a record holds comes back exact.
func TestSilentKeyRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		f := randomFlow(r)
		if k, ok := pack4(f.Proto, &f.Orig); ok {
			if got := k.tuple(f.Proto); got != f.Orig {
				t.Fatalf("IPv4 %+v came back as %+v", f.Orig, got)
			}
		} else if k, ok := pack6(f.Proto, &f.Orig); ok {
			if got := k.tuple(f.Proto); got != f.Orig {
				t.Fatalf("IPv6 %+v came back as %+v", f.Orig, got)
			}
		}
	}
}

// silentBytes builds a sealed set of n synthetic entries and returns the
// memory it holds per entry: live heap plus mapped outside the heap.
func silentBytes(n int, v6 bool) (*silentSet, float64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := newSilentSet(n)
	var f flow.Flow
	for i := range n {
		synthFlow(i, v6, &f)
		s.add(&f)
	}
	s.seal()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return s, float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)+int64(s.mapped())) / float64(n)
}

// silentSizes are the table sizes of the memory benchmarks: 4,194,304
// only with CONNTOP_BIG=1.
func silentSizes() []int {
	if os.Getenv("CONNTOP_BIG") == "1" {
		return []int{262_144, 4_194_304}
	}
	return []int{262_144}
}

// BenchmarkSilentSetMemory builds the silent set of a table of n IPv4 (or
// IPv6) entries, as the initial listing does, and reports the memory it
// holds per entry (B/entry: live heap plus the records mapped outside the
// heap, which the GC neither scans nor counts). The "map" cases measure the
// map[flow.Key]silentState the set replaced, for comparison.
func BenchmarkSilentSetMemory(b *testing.B) {
	for _, n := range silentSizes() {
		for _, v6 := range []bool{false, true} {
			fam := "ipv4"
			if v6 {
				fam = "ipv6"
			}
			b.Run(fmt.Sprintf("set/%s/%d", fam, n), func(b *testing.B) {
				b.ReportAllocs()
				var per float64
				for b.Loop() {
					var s *silentSet
					s, per = silentBytes(n, v6)
					if s.len() != n {
						b.Fatalf("%d entries, want %d", s.len(), n)
					}
					s.free()
				}
				b.ReportMetric(per, "B/entry")
			})
		}
		b.Run(fmt.Sprintf("map/ipv4/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var per float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				m := &silentModel{m: make(map[flow.Key]silentState)}
				var f flow.Flow
				for i := range n {
					synthFlow(i, false, &f)
					m.add(&f)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				per = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
				runtime.KeepAlive(m)
			}
			b.ReportMetric(per, "B/entry")
		})
	}
}

// BenchmarkSilentSetLookup measures what an event costs the set (remove:
// an entry not in the set, the common case, and one in it) and what each
// entry of a reconciling dump costs (seen), in a set of 262,144 entries.
func BenchmarkSilentSetLookup(b *testing.B) {
	const n = 262_144
	s, _ := silentBytes(n, false)
	defer func() { s.free() }()
	var f flow.Flow
	b.Run("remove-miss", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			synthFlow(n+i%n, false, &f)
			k := f.Key()
			if s.remove(&k) {
				b.Fatal("found an entry not in the set")
			}
			i++
		}
	})
	b.Run("seen", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			synthFlow(i%n, false, &f)
			if found, _ := s.seen(&f); !found {
				b.Fatal("entry not found")
			}
			i++
		}
	})
	b.Run("remove-hit", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == n {
				b.StopTimer()
				s.free()
				s, _ = silentBytes(n, false)
				i = 0
				b.StartTimer()
			}
			synthFlow(i, false, &f)
			k := f.Key()
			if !s.remove(&k) {
				b.Fatal("entry not found")
			}
			i++
		}
	})
}

// BenchmarkUseCountsMemory measures the use counts kept for a table whose
// every entry has a use above 1 (all offloaded to a flowtable): B/entry of
// live heap, against the map[flow.Key]uint32 they replaced ("map").
func BenchmarkUseCountsMemory(b *testing.B) {
	for _, n := range silentSizes() {
		for _, old := range []bool{false, true} {
			name := fmt.Sprintf("counts/%d", n)
			if old {
				name = fmt.Sprintf("map/%d", n)
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				var per float64
				for b.Loop() {
					var before, after runtime.MemStats
					runtime.GC()
					runtime.ReadMemStats(&before)
					var u useCounts
					m := make(map[flow.Key]uint32)
					var f flow.Flow
					for i := range n {
						synthFlow(i, false, &f)
						k := f.Key()
						if old {
							m[k] = 2
						} else {
							u.set(&k, 2)
						}
					}
					runtime.GC()
					runtime.ReadMemStats(&after)
					per = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
					runtime.KeepAlive(m)
					runtime.KeepAlive(&u)
				}
				b.ReportMetric(per, "B/entry")
			})
		}
	}
}

// TestOffArray: values survive growth, trim gives back the pages past the
// values, free everything; a set reserved for a big table that turns out
// small keeps only the pages it fills.
func TestOffArray(t *testing.T) {
	var o offArray[silentRec[v4Key]]
	defer o.free()
	for i := range 5000 {
		o.push(silentRec[v4Key]{key: v4Key{src: uint32(i)}, cls: uint32(i)})
	}
	page := uintptr(os.Getpagesize())
	if len(o.a) != 5000 || o.mapped < 5000*16 {
		t.Fatalf("%d values in %d bytes", len(o.a), o.mapped)
	}
	o.trim()
	if want := (5000*16 + page - 1) / page * page; o.mapped != want {
		t.Errorf("trimmed to %d bytes, want %d", o.mapped, want)
	}
	for i, r := range o.a {
		if r.key.src != uint32(i) || r.cls != uint32(i) {
			t.Fatalf("value %d is %+v", i, r)
		}
	}
	o.free()
	if o.mapped != 0 || o.a != nil {
		t.Fatalf("after free: %d bytes", o.mapped)
	}

	s := newSilentSet(1 << 20)
	defer s.free()
	var f flow.Flow
	for i := range 10 {
		synthFlow(i, false, &f)
		s.add(&f)
	}
	if s.v6.mapped() != 0 {
		t.Errorf("IPv6 records mapped (%d bytes) with no IPv6 entry", s.v6.mapped())
	}
	s.seal()
	if s.mapped() > page {
		t.Errorf("10 entries hold %d bytes after seal", s.mapped())
	}
}
