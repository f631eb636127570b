package store

import (
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"net/netip"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// at returns t0 + d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// tcpFlow returns an IPv4 TCP flow 10.a.b.c:sport -> 10.255.0.1:dport in
// state st.
func tcpFlow(n int, dport uint16, st flow.TCPState) flow.Flow {
	src := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
	f := flow.Flow{
		ID: uint32(n + 1), Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: st,
		Status:  flow.StatusConfirmed,
		Orig:    flow.Tuple{Src: src, Dst: netip.MustParseAddr("10.255.0.1"), SrcPort: uint16(40000 + n%20000), DstPort: dport},
		Timeout: 120,
	}
	if st >= flow.TCPSynRecv {
		f.Status |= flow.StatusSeenReply
	}
	if st >= flow.TCPEstablished {
		f.Status |= flow.StatusAssured
	}
	f.Reply = f.Orig.Reverse(f.Proto)
	return f
}

// udp6Flow returns an IPv6 UDP flow.
func udp6Flow(n int, dport uint16, replied bool) flow.Flow {
	var a [16]byte
	a[0], a[1] = 0xfd, 0
	a[14], a[15] = byte(n>>8), byte(n)
	f := flow.Flow{
		ID: uint32(n + 100000), Family: flow.FamilyIPv6, Proto: flow.ProtoUDP, Status: flow.StatusConfirmed,
		Orig:    flow.Tuple{Src: netip.AddrFrom16(a), Dst: netip.MustParseAddr("fd00::53"), SrcPort: uint16(1024 + n), DstPort: dport},
		Timeout: 30,
	}
	if replied {
		f.Status |= flow.StatusSeenReply
	}
	f.Reply = f.Orig.Reverse(f.Proto)
	return f
}

// ev builds an event.
func ev(typ flow.EventType, t time.Time, f flow.Flow) flow.Event {
	return flow.Event{Type: typ, Time: t, Flow: f}
}

// synced returns an EventSynced at t.
func synced(t time.Time) flow.Event { return flow.Event{Type: flow.EventSynced, Time: t} }

// newSynced returns a store whose initial (empty) listing is done, with
// its clock at t0.
func newSynced(opts Options) *Store {
	s := New(opts)
	s.Tick(t0)
	s.Apply([]flow.Event{synced(t0)})
	return s
}

// smallParts gives the empty store s record slab and column parts of
// 1<<bits values, so that tests of what happens at part boundaries need
// few flows.
func smallParts(s *Store, bits uint) {
	if s.tab.hw != 0 {
		panic("smallParts: the store holds records")
	}
	s.tab.recs.free()
	s.tab.acct.shrink(0)
	s.tab.marks.shrink(0)
	s.tab.rates.reset()
	s.tab.recs = newSlab[rec](bits)
	s.tab.acct = column[acct]{s: newSlab[acct](bits)}
	s.tab.marks = column[uint32]{s: newSlab[uint32](bits)}
	s.tab.rates = rateTable{dense: column[rates]{s: newSlab[rates](bits)}}
}

// withCounters returns f with counters set.
func withCounters(f flow.Flow, op, ob, rp, rb uint64) flow.Flow {
	f.HasCounters = true
	f.Counters = flow.Counters{OrigPackets: op, OrigBytes: ob, ReplyPackets: rp, ReplyBytes: rb}
	return f
}

// keyOf returns f's key.
func keyOf(f flow.Flow) flow.Key { return f.Key() }

// diff is cmp.Diff that compares netip.Addr values with ==.
func diff(want, got any) string {
	return cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{}))
}
