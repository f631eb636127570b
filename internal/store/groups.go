package store

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"

	"github.com/conntop/conntop/internal/flow"
)

// Detail returns the flow with key k (live or lingering) and its
// transition history, oldest first (at most Options.HistoryLen entries;
// transition times have millisecond resolution).
func (s *Store) Detail(k flow.Key) (Detail, bool) {
	i, ok := s.tab.lookup(&k)
	if !ok {
		return Detail{}, false
	}
	return Detail{Row: s.row(i), History: s.tab.at(i).history()}, true
}

// Snapshot returns the live flows (not the lingering destroyed ones) that
// pass m, ordered by flow key (proto, family, source, destination, ports,
// zone), for export.
func (s *Store) Snapshot(m Matcher) []flow.Flow {
	idx := make([]uint32, 0, s.live)
	s.eachLive(m, func(i uint32, _ *entry) { idx = append(idx, i) })
	slices.SortFunc(idx, func(a, b uint32) int { return cmpKey(s.tab.at(a), s.tab.at(b)) })
	out := make([]flow.Flow, len(idx))
	for j, i := range idx {
		s.tab.at(i).flow(&out[j])
	}
	return out
}

// eachLive calls fn for every live (not lingering) entry that passes m, in
// table order.
func (s *Store) eachLive(m Matcher, fn func(i uint32, e *entry)) {
	for i := uint32(0); i < s.tab.hw; i++ {
		e := s.tab.at(i)
		if e.flags&flagUsed == 0 || e.flags&flagDestroyed != 0 {
			continue
		}
		if m != nil {
			e.flow(&s.scratch)
			if !m.Match(&s.scratch) {
				continue
			}
		}
		fn(i, e)
	}
}

// groupKey identifies a group.
type groupKey struct {
	addr netip.Addr
	n    uint32
}

// groupAcc accumulates one group.
type groupAcc struct {
	count          int
	packets, bytes uint64
	bps            float64
}

// Groups groups the live flows passing m by the dimension by and returns
// the groups sorted by Count (descending, then Label), at most limit of
// them (limit <= 0: all). Each Group's Filter is an expression of the
// filter language (internal/filter) selecting the group's flows:
//
//	GroupDport   "tcp/443"      "tcp and dst port 443"   (protocols without ports: "icmp", "proto gre")
//	GroupSrcHost "10.0.0.1"     "src host 10.0.0.1"
//	GroupDstHost "fd00::1"      "dst host fd00::1"
//	GroupState   "ESTABLISHED"  "state ESTABLISHED"
//	GroupProto   "udp"          "proto udp"
func (s *Store) Groups(by GroupBy, m Matcher, limit int) []Group {
	acc := map[groupKey]*groupAcc{}
	s.eachLive(m, func(_ uint32, e *entry) {
		var k groupKey
		switch by {
		case GroupDport:
			_, dp := e.ports()
			k.n = uint32(e.proto)<<16 | uint32(dp)
		case GroupSrcHost:
			k.addr = e.origTuple().Src
		case GroupDstHost:
			k.addr = e.origTuple().Dst
		case GroupState:
			k.n = uint32(e.state())
		default:
			k.n = uint32(e.proto)
		}
		a := acc[k]
		if a == nil {
			a = &groupAcc{}
			acc[k] = a
		}
		a.count++
		a.packets += e.counters.OrigPackets + e.counters.ReplyPackets
		a.bytes += e.counters.OrigBytes + e.counters.ReplyBytes
		a.bps += float64(e.rates[1]) + float64(e.rates[3])
	})
	out := make([]Group, 0, len(acc))
	for k, a := range acc {
		label, expr := groupLabel(by, k)
		out = append(out, Group{Label: label, Filter: expr, Count: a.count, Packets: a.packets, Bytes: a.bytes, BPS: a.bps})
	}
	slices.SortFunc(out, func(a, b Group) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Label, b.Label)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// protoExpr is a filter expression selecting protocol p.
func protoExpr(p uint8) string {
	switch p {
	case flow.ProtoTCP, flow.ProtoUDP, flow.ProtoICMP, flow.ProtoICMPv6:
		return flow.ProtoName(p)
	}
	return "proto " + flow.ProtoName(p)
}

// groupLabel returns the label and filter expression of a group.
func groupLabel(by GroupBy, k groupKey) (label, expr string) {
	switch by {
	case GroupDport:
		p, port := uint8(k.n>>16), uint16(k.n)
		if !flow.HasPorts(p) {
			return flow.ProtoName(p), protoExpr(p)
		}
		ps := strconv.Itoa(int(port))
		return flow.ProtoName(p) + "/" + ps, protoExpr(p) + " and dst port " + ps
	case GroupSrcHost, GroupDstHost:
		if !k.addr.IsValid() {
			return "-", "not ipv4 and not ipv6"
		}
		a := k.addr.String()
		if by == GroupSrcHost {
			return a, "src host " + a
		}
		return a, "dst host " + a
	case GroupState:
		st := flow.State(k.n).String()
		return st, "state " + st
	}
	p := uint8(k.n)
	return flow.ProtoName(p), "proto " + flow.ProtoName(p)
}

// Walk calls fn with every live flow (not the lingering destroyed ones)
// that passes m, in no particular order, until fn returns false. The Row
// is only valid during the call: fn must copy what it keeps.
func (s *Store) Walk(m Matcher, fn func(r *Row) bool) {
	var r Row
	for i := uint32(0); i < s.tab.hw; i++ {
		e := s.tab.at(i)
		if e.flags&flagUsed == 0 || e.flags&flagDestroyed != 0 {
			continue
		}
		if m != nil {
			e.flow(&s.scratch)
			if !m.Match(&s.scratch) {
				continue
			}
		}
		r = s.row(i)
		if !fn(&r) {
			return
		}
	}
}
