package store

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/flow"
)

// rng is a small deterministic generator for tests.
type rng uint64

func (r *rng) next() uint64 {
	*r = *r*6364136223846793005 + 1442695040888963407
	x := uint64(*r)
	return x ^ x>>29
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// randomFlow returns a varied flow; many share addresses and ports so that
// ties and key prefixes collide.
func randomFlow(r *rng, n int) flow.Flow {
	var f flow.Flow
	switch r.intn(4) {
	case 0, 1:
		f = tcpFlow(r.intn(300), uint16(r.intn(4)+80), flow.TCPState(1+r.intn(9)))
		f.Orig.SrcPort = uint16(n)
	case 2:
		f = udp6Flow(r.intn(50), uint16(r.intn(3)+53), r.intn(2) == 0)
		f.Orig.SrcPort = uint16(n)
		if r.intn(3) == 0 {
			// same /64, differing only in the low bits: key prefixes tie
			a := f.Orig.Src.As16()
			a[15] = byte(r.intn(3))
			f.Orig.Src = netip.AddrFrom16(a)
		}
	default:
		f = flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoICMP, Status: flow.StatusConfirmed,
			Orig: flow.Tuple{Src: netip.AddrFrom4([4]byte{10, 0, 0, byte(r.intn(5))}), Dst: netip.MustParseAddr("10.0.0.9"),
				Type: 8, ID: uint16(n)}}
		if r.intn(2) == 0 {
			f.Status |= flow.StatusSeenReply
		}
	}
	f.Reply = f.Orig.Reverse(f.Proto)
	if r.intn(5) == 0 {
		f.Status |= flow.StatusExpected
	}
	f.Mark = uint32(r.intn(3))
	f.Zone = uint16(r.intn(2))
	f.Timeout = uint32(r.intn(100))
	return f
}

// buildRandom fills a store with n random flows, some with counters and
// rates, some destroyed (lingering); it returns the keys.
func buildRandom(t testing.TB, n int, seed uint64) (*Store, []flow.Key) {
	return buildRandomWith(t, Options{}, n, seed)
}

// buildRandomWith is buildRandom for a store made with opts.
func buildRandomWith(t testing.TB, opts Options, n int, seed uint64) (*Store, []flow.Key) {
	r := rng(seed)
	s := newSynced(opts)
	var keys []flow.Key
	seen := map[flow.Key]bool{}
	for i := 0; len(keys) < n; i++ {
		f := randomFlow(&r, i)
		k := f.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		keys = append(keys, k)
		tm := at(time.Duration(r.intn(1000)) * time.Millisecond)
		s.Apply([]flow.Event{ev(flow.EventNew, tm, f)})
		if r.intn(2) == 0 {
			p, b := uint64(r.intn(50)), uint64(r.intn(5000))
			s.Apply([]flow.Event{ev(flow.EventCounters, tm.Add(time.Second), withCounters(f, p, b, p/2, b/3))})
			s.Apply([]flow.Event{ev(flow.EventCounters, tm.Add(2*time.Second), withCounters(f, 2*p, 2*b+uint64(r.intn(9)), p, b))})
		}
		if r.intn(8) == 0 {
			s.Apply([]flow.Event{ev(flow.EventDestroy, tm.Add(3*time.Second), f)})
		}
	}
	if s.Len()+s.lingering != n {
		t.Fatalf("built %d flows, want %d", s.Len()+s.lingering, n)
	}
	return s, keys
}

// refCmpKey orders flows by key as the store documents it.
func refCmpKey(a, b *flow.Flow) int {
	if c := cmp.Compare(a.Proto, b.Proto); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Family, b.Family); c != 0 {
		return c
	}
	if c := a.Orig.Src.Compare(b.Orig.Src); c != 0 {
		return c
	}
	if c := a.Orig.Dst.Compare(b.Orig.Dst); c != 0 {
		return c
	}
	ports := func(f *flow.Flow) (uint16, uint16) {
		if flow.IsICMP(f.Proto) {
			return uint16(f.Orig.Type)<<8 | uint16(f.Orig.Code), f.Orig.ID
		}
		return f.Orig.SrcPort, f.Orig.DstPort
	}
	as, ad := ports(a)
	bs, bd := ports(b)
	if c := cmp.Compare(as, bs); c != 0 {
		return c
	}
	if c := cmp.Compare(ad, bd); c != 0 {
		return c
	}
	return cmp.Compare(a.Zone, b.Zone)
}

// refSortValue compares two rows by sort key only.
func refSortValue(a, b *Row, key SortKey) int {
	port := func(r *Row, src bool) uint16 {
		if !flow.HasPorts(r.Flow.Proto) {
			return 0
		}
		if src {
			return r.Flow.Orig.SrcPort
		}
		return r.Flow.Orig.DstPort
	}
	ns := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixNano()
	}
	switch key {
	case SortAge:
		return cmp.Compare(ns(a.FirstSeen), ns(b.FirstSeen))
	case SortState:
		return cmp.Compare(a.Flow.State(), b.Flow.State())
	case SortTCPState:
		return cmp.Compare(a.Flow.TCPState, b.Flow.TCPState)
	case SortProto:
		return cmp.Compare(a.Flow.Proto, b.Flow.Proto)
	case SortSrc:
		if c := a.Flow.Orig.Src.Compare(b.Flow.Orig.Src); c != 0 {
			return c
		}
		return cmp.Compare(port(a, true), port(b, true))
	case SortDst:
		if c := a.Flow.Orig.Dst.Compare(b.Flow.Orig.Dst); c != 0 {
			return c
		}
		return cmp.Compare(port(a, false), port(b, false))
	case SortSport:
		return cmp.Compare(port(a, true), port(b, true))
	case SortDport:
		return cmp.Compare(port(a, false), port(b, false))
	case SortPackets:
		return cmp.Compare(a.Flow.Counters.OrigPackets+a.Flow.Counters.ReplyPackets, b.Flow.Counters.OrigPackets+b.Flow.Counters.ReplyPackets)
	case SortBytes:
		return cmp.Compare(a.Flow.Counters.OrigBytes+a.Flow.Counters.ReplyBytes, b.Flow.Counters.OrigBytes+b.Flow.Counters.ReplyBytes)
	case SortRate:
		return cmp.Compare(a.OrigBPS+a.ReplyBPS, b.OrigBPS+b.ReplyBPS)
	case SortTimeout:
		return cmp.Compare(ns(a.Expires), ns(b.Expires))
	case SortMark:
		return cmp.Compare(a.Flow.Mark, b.Flow.Mark)
	}
	panic("bad key")
}

// allRows returns the rows of all held flows (live and lingering) by key,
// read straight from the table.
func allRows(s *Store) map[flow.Key]Row {
	out := map[flow.Key]Row{}
	for i := uint32(0); i < s.tab.hw; i++ {
		if s.tab.at(i).flags&flagUsed != 0 {
			r := s.tab.row(i)
			out[r.Flow.Key()] = r
		}
	}
	return out
}

// reference returns all rows passing m, fully sorted the slow way.
func reference(s *Store, keys []flow.Key, m Matcher, key SortKey, desc bool) []Row {
	all := allRows(s)
	var rows []Row
	for _, k := range keys {
		r, ok := all[k]
		if !ok || (m != nil && !m.Match(&r.Flow)) {
			continue
		}
		rows = append(rows, r)
	}
	return sortRows(rows, key, desc)
}

// referenceFrom is reference over the rows of allRows.
func referenceFrom(all map[flow.Key]Row, m Matcher, key SortKey, desc bool) []Row {
	var rows []Row
	for _, r := range all {
		if m == nil || m.Match(&r.Flow) {
			rows = append(rows, r)
		}
	}
	return sortRows(rows, key, desc)
}

// sortRows sorts rows the slow way.
func sortRows(rows []Row, key SortKey, desc bool) []Row {
	slices.SortFunc(rows, func(a, b Row) int {
		c := refSortValue(&a, &b, key)
		if c == 0 {
			c = refCmpKey(&a.Flow, &b.Flow)
		}
		if desc {
			c = -c
		}
		return c
	})
	return rows
}

func TestQueryMatchesReference(t *testing.T) {
	s, keys := buildRandom(t, 3000, 7)
	filters := []Matcher{nil, filter.MustParse("tcp or state new"), filter.MustParse("ipv6 and not unreplied"), filter.MustParse("port 9")}
	r := rng(99)
	for key := SortKey(0); key < NumSortKeys; key++ {
		for _, m := range filters {
			for _, desc := range []bool{false, true} {
				ref := reference(s, keys, m, key, desc)
				name := fmt.Sprintf("key%d/%v/desc=%v", key, m, desc)
				t.Run(name, func(t *testing.T) {
					for range 6 {
						off, limit := r.intn(len(ref)+5), 1+r.intn(60)
						if r.intn(3) == 0 {
							off = 0
						}
						res := s.Query(Query{Filter: m, Sort: key, Desc: desc, Offset: off, Limit: limit})
						if res.Matched != len(ref) || res.Total != len(keys) {
							t.Fatalf("Matched/Total = %d/%d, want %d/%d", res.Matched, res.Total, len(ref), len(keys))
						}
						wantOff := min(off, max(len(ref)-limit, 0))
						if res.Offset != wantOff {
							t.Fatalf("Offset = %d, want %d", res.Offset, wantOff)
						}
						want := ref[wantOff:min(wantOff+limit, len(ref))]
						if len(res.Rows) != len(want) {
							t.Fatalf("%d rows, want %d", len(res.Rows), len(want))
						}
						for j := range want {
							if res.Rows[j].Flow.Key() != want[j].Flow.Key() {
								t.Fatalf("offset %d limit %d: row %d = %v, want %v", off, limit, j, res.Rows[j].Flow.Orig, want[j].Flow.Orig)
							}
						}
						// Select: a random matched flow must end up in the window
						// at its reference position.
						if len(ref) == 0 {
							continue
						}
						pos := r.intn(len(ref))
						sk := ref[pos].Flow.Key()
						res = s.Query(Query{Filter: m, Sort: key, Desc: desc, Offset: off, Limit: limit, Select: &sk})
						if res.SelectedIndex != pos {
							t.Fatalf("SelectedIndex = %d, want %d", res.SelectedIndex, pos)
						}
						if i := pos - res.Offset; i < 0 || i >= len(res.Rows) || res.Rows[i].Flow.Key() != sk {
							t.Fatalf("selected flow at %d not in window offset %d len %d", pos, res.Offset, len(res.Rows))
						}
						// The window moved as little as possible.
						if pos >= wantOff && pos < wantOff+limit && res.Offset != wantOff {
							t.Fatalf("window moved from %d to %d though the selection was visible", wantOff, res.Offset)
						}
					}
				})
			}
		}
	}
}

func TestQuerySelectAbsent(t *testing.T) {
	s, _ := buildRandom(t, 100, 3)
	k := keyOf(tcpFlow(999999, 1, 0))
	res := s.Query(Query{Limit: 10, Offset: 5, Select: &k})
	if res.SelectedIndex != -1 || res.Offset != 5 || len(res.Rows) != 10 {
		t.Fatalf("absent selection: index %d offset %d rows %d", res.SelectedIndex, res.Offset, len(res.Rows))
	}
	// A selected flow that the filter hides is not selected either.
	f := tcpFlow(1, 80, flow.TCPEstablished)
	s.Apply([]flow.Event{ev(flow.EventNew, at(0), f)})
	k = f.Key()
	res = s.Query(Query{Limit: 10, Filter: filter.MustParse("udp"), Select: &k})
	if res.SelectedIndex != -1 {
		t.Fatalf("filtered-out selection index %d", res.SelectedIndex)
	}
	// Limit 0: counts only.
	res = s.Query(Query{Select: &k})
	if len(res.Rows) != 0 || res.SelectedIndex < 0 || res.Matched != res.Total {
		t.Fatalf("limit 0: %+v", res)
	}
}

func TestQueryCacheInvalidation(t *testing.T) {
	s := newSynced(Options{})
	for i := range 50 {
		s.Apply([]flow.Event{ev(flow.EventNew, at(time.Duration(i)), tcpFlow(i, 80, flow.TCPEstablished))})
	}
	q := Query{Sort: SortAge, Desc: true, Limit: 3}
	v := s.Version()
	if r := s.Query(q); r.Rows[0].Flow.ID != 50 {
		t.Fatalf("first row ID %d, want 50", r.Rows[0].Flow.ID)
	}
	if s.Version() != v {
		t.Fatal("Query changed Version")
	}
	s.Apply([]flow.Event{ev(flow.EventNew, at(time.Second), tcpFlow(77, 80, flow.TCPSynSent))})
	if s.Version() == v {
		t.Fatal("Apply did not change Version")
	}
	if r := s.Query(q); r.Rows[0].Flow.ID != 78 || r.Total != 51 {
		t.Fatalf("after a new flow: first row ID %d total %d", r.Rows[0].Flow.ID, r.Total)
	}
	// A filter value of a non-comparable type must not break the cache.
	fm := funcMatcher(func(f *flow.Flow) bool { return f.ID%2 == 0 })
	if r := s.Query(Query{Filter: fm, Limit: 100}); r.Matched != 26 {
		t.Fatalf("func matcher matched %d", r.Matched)
	}
	fm2 := funcMatcher(func(f *flow.Flow) bool { return f.ID%2 == 1 })
	if r := s.Query(Query{Filter: fm2, Limit: 100}); r.Matched != 25 {
		t.Fatalf("second func matcher matched %d", r.Matched)
	}
}

// funcMatcher adapts a func (a non-comparable type) to Matcher.
type funcMatcher func(*flow.Flow) bool

func (f funcMatcher) Match(fl *flow.Flow) bool { return f(fl) }

func TestEvents(t *testing.T) {
	s := newSynced(Options{EventLog: 5})
	for i := range 8 {
		var f flow.Flow
		if i%2 == 0 {
			f = tcpFlow(i, 80, flow.TCPSynSent)
		} else {
			f = udp6Flow(i, 53, false)
		}
		s.Apply([]flow.Event{ev(flow.EventNew, at(time.Duration(i)*time.Second), f)})
	}
	s.Apply([]flow.Event{{Type: flow.EventResync, Time: at(9 * time.Second), Lost: 3}})
	seqs := func(rs []EventRecord) []uint64 {
		var out []uint64
		for _, r := range rs {
			out = append(out, r.Seq)
		}
		return out
	}
	if s.LastSeq() != 9 {
		t.Fatalf("LastSeq = %d", s.LastSeq())
	}
	tcp := filter.MustParse("tcp")
	tests := []struct {
		name  string
		after uint64
		max   int
		m     Matcher
		want  []uint64
	}{
		{"all held", 0, 0, nil, []uint64{5, 6, 7, 8, 9}},
		{"after 6", 6, 0, nil, []uint64{7, 8, 9}},
		{"max 2", 0, 2, nil, []uint64{5, 6}},
		{"page on", 6, 2, nil, []uint64{7, 8}},
		{"filtered (resync passes)", 0, 0, tcp, []uint64{5, 7, 9}},
		{"after the last", 9, 0, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := diff(tt.want, seqs(s.Events(tt.after, tt.max, tt.m))); d != "" {
				t.Errorf("Events (-want +got):\n%s", d)
			}
		})
	}
	if d := diff([]uint64{8, 9}, seqs(s.EventsTail(2, nil))); d != "" {
		t.Errorf("EventsTail (-want +got):\n%s", d)
	}
	if d := diff([]uint64{7, 9}, seqs(s.EventsTail(2, tcp))); d != "" {
		t.Errorf("EventsTail filtered (-want +got):\n%s", d)
	}
	if r := s.Events(8, 1, nil); r[0].Type != flow.EventResync || r[0].Lost != 3 {
		t.Errorf("resync record = %+v", r[0])
	}
	if r := s.Events(4, 1, nil); r[0].Type != flow.EventNew || r[0].To != PhaseTCP+Phase(flow.TCPSynSent) || r[0].Flow.Orig.SrcPort != 40004 {
		t.Errorf("record 5 = %+v", r[0])
	}
}

func TestGroups(t *testing.T) {
	s := newSynced(Options{})
	var evs []flow.Event
	for i := range 6 {
		evs = append(evs, ev(flow.EventNew, at(0), withCounters(tcpFlow(i, 443, flow.TCPEstablished), 1, 100, 1, 50)))
	}
	for i := range 3 {
		evs = append(evs, ev(flow.EventNew, at(0), tcpFlow(i+10, 22, flow.TCPSynSent)))
	}
	for i := range 4 {
		evs = append(evs, ev(flow.EventNew, at(0), udp6Flow(i, 53, i%2 == 0)))
	}
	gre := flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoGRE, Orig: flow.Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}}
	gre.Reply = gre.Orig.Reverse(gre.Proto)
	evs = append(evs, ev(flow.EventNew, at(0), gre))
	// A destroyed flow is not grouped.
	evs = append(evs, ev(flow.EventNew, at(0), tcpFlow(50, 443, flow.TCPEstablished)), ev(flow.EventDestroy, at(0), tcpFlow(50, 443, flow.TCPClose)))
	s.Apply(evs)

	type g struct {
		Label, Filter string
		Count         int
		Bytes         uint64
	}
	tests := []struct {
		by    GroupBy
		m     Matcher
		limit int
		want  []g
	}{
		{GroupDport, nil, 0, []g{{"tcp/443", "tcp and dst port 443", 6, 900}, {"udp/53", "udp and dst port 53", 4, 0}, {"tcp/22", "tcp and dst port 22", 3, 0}, {"gre", "proto gre", 1, 0}}},
		{GroupDport, nil, 2, []g{{"tcp/443", "tcp and dst port 443", 6, 900}, {"udp/53", "udp and dst port 53", 4, 0}}},
		{GroupDport, filter.MustParse("udp"), 0, []g{{"udp/53", "udp and dst port 53", 4, 0}}},
		{GroupState, nil, 0, []g{{"ESTABLISHED", "state ESTABLISHED", 8, 900}, {"NEW", "state NEW", 6, 0}}},
		{GroupProto, nil, 0, []g{{"tcp", "proto tcp", 9, 900}, {"udp", "proto udp", 4, 0}, {"gre", "proto gre", 1, 0}}},
		{GroupDstHost, nil, 0, []g{{"10.255.0.1", "dst host 10.255.0.1", 9, 900}, {"fd00::53", "dst host fd00::53", 4, 0}, {"10.0.0.2", "dst host 10.0.0.2", 1, 0}}},
		{GroupSrcHost, filter.MustParse("tcp port 22"), 0, []g{{"10.0.0.10", "src host 10.0.0.10", 1, 0}, {"10.0.0.11", "src host 10.0.0.11", 1, 0}, {"10.0.0.12", "src host 10.0.0.12", 1, 0}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("by%d/%v/%d", tt.by, tt.m, tt.limit), func(t *testing.T) {
			var got []g
			for _, x := range s.Groups(tt.by, tt.m, tt.limit) {
				got = append(got, g{x.Label, x.Filter, x.Count, x.Bytes})
				// The group's filter selects exactly its flows.
				fm, err := filter.Parse(x.Filter)
				if err != nil {
					t.Fatalf("group filter %q: %v", x.Filter, err)
				}
				var both Matcher = fm
				if tt.m != nil {
					both = funcMatcher(func(f *flow.Flow) bool { return fm.Match(f) && tt.m.Match(f) })
				}
				if n := len(s.Snapshot(both)); n != x.Count {
					t.Errorf("filter %q selects %d flows, group has %d", x.Filter, n, x.Count)
				}
			}
			if d := diff(tt.want, got); d != "" {
				t.Errorf("Groups (-want +got):\n%s", d)
			}
		})
	}
}

func TestSnapshot(t *testing.T) {
	s, keys := buildRandom(t, 500, 11)
	snap := s.Snapshot(nil)
	if len(snap) != s.Len() {
		t.Fatalf("Snapshot has %d flows, Len %d", len(snap), s.Len())
	}
	if !slices.IsSortedFunc(snap, func(a, b flow.Flow) int { return refCmpKey(&a, &b) }) {
		t.Fatal("Snapshot not in key order")
	}
	live := 0
	for _, k := range keys {
		if d, _ := s.Detail(k); !d.Destroyed {
			live++
		}
	}
	if live != len(snap) {
		t.Fatalf("%d live flows, snapshot %d", live, len(snap))
	}
	m := filter.MustParse("icmp")
	for _, f := range s.Snapshot(m) {
		if f.Proto != flow.ProtoICMP {
			t.Fatalf("filtered snapshot has %v", f.Proto)
		}
	}
	// Rates are finite and not negative.
	for _, k := range keys {
		d, _ := s.Detail(k)
		for _, v := range []float64{d.OrigBPS, d.OrigPPS, d.ReplyBPS, d.ReplyPPS} {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("bad rate %v", v)
			}
		}
	}
}

func TestQueryAfterChanges(t *testing.T) {
	// Queries between batches of changes take the incremental path
	// (refresh); big batches overflow it into a rescan. Both must agree
	// with the reference order.
	s, keys := buildRandom(t, 1500, 5)
	r := rng(17)
	m := filter.MustParse("not udp or state new")
	now := at(10 * time.Second)
	known := map[flow.Key]bool{}
	for _, k := range keys {
		known[k] = true
	}
	for round := range 40 {
		n := 1 + r.intn(20)
		if round%10 == 9 {
			n = 1500 // overflows the dirty set
		}
		for range n {
			f := randomFlow(&r, 70000+r.intn(3000))
			var typ flow.EventType
			switch r.intn(4) {
			case 0:
				typ = flow.EventDestroy
			case 1:
				typ = flow.EventCounters
				f = withCounters(f, uint64(r.intn(100)), uint64(r.intn(100000)), 1, 1)
			default:
				typ = flow.EventNew
			}
			if r.intn(2) == 0 {
				// touch an existing flow instead
				k := keys[r.intn(len(keys))]
				if d, ok := s.Detail(k); ok {
					f = d.Flow
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
		for _, key := range []SortKey{SortBytes, SortBytes, SortBytes, SortSrc} {
			desc := r.intn(2) == 0
			ref := reference(s, keys, m, key, desc)
			off, limit := r.intn(len(ref)+1), 1+r.intn(40)
			res := s.Query(Query{Filter: m, Sort: key, Desc: desc, Offset: off, Limit: limit})
			if res.Matched != len(ref) || res.Total != s.Len()+s.Summary().Lingering {
				t.Fatalf("round %d: Matched/Total = %d/%d, want %d/%d", round, res.Matched, res.Total, len(ref), s.Len()+s.Summary().Lingering)
			}
			wantOff := min(off, max(len(ref)-limit, 0))
			want := ref[wantOff:min(wantOff+limit, len(ref))]
			if len(res.Rows) != len(want) {
				t.Fatalf("round %d: %d rows, want %d", round, len(res.Rows), len(want))
			}
			for j := range want {
				if res.Rows[j].Flow.Key() != want[j].Flow.Key() || res.Rows[j].Flow.Mark != want[j].Flow.Mark {
					t.Fatalf("round %d key %d: row %d = %v, want %v", round, key, j, res.Rows[j].Flow.Orig, want[j].Flow.Orig)
				}
			}
		}
	}
}

func TestQueryRepeated(t *testing.T) {
	// The same query over and over on an unchanged table goes through the
	// cached paths (fixed window, then full sort); answers must not change.
	s, _ := buildRandom(t, 2000, 23)
	m := filter.MustParse("not icmp")
	for _, q := range []Query{
		{Filter: m, Sort: SortBytes, Desc: true, Offset: 0, Limit: 20},
		{Filter: m, Sort: SortSrc, Offset: 700, Limit: 30},
		{Filter: m, Sort: SortState, Offset: 1200, Limit: 25},
	} {
		first := s.Query(q)
		for i := range 8 {
			qq := q
			if i == 5 {
				qq.Offset += 3 // a neighbouring window in between
				s.Query(qq)
				qq.Offset -= 3
			}
			got := s.Query(qq)
			if got.Offset != first.Offset || len(got.Rows) != len(first.Rows) {
				t.Fatalf("repeat %d: offset %d rows %d, first %d %d", i, got.Offset, len(got.Rows), first.Offset, len(first.Rows))
			}
			for j := range got.Rows {
				if got.Rows[j].Flow.Key() != first.Rows[j].Flow.Key() {
					t.Fatalf("repeat %d: row %d differs", i, j)
				}
			}
		}
	}
}
