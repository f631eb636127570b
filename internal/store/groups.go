package store

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"

	"github.com/conntop/conntop/internal/flow"
)

// Detail returns the flow with key k (live or lingering) and its recent
// transitions, oldest first: at most Options.HistoryLen of those still in
// the store's bounded history ring (a flow that has not changed for a long
// time on a busy table has none), with millisecond resolution.
func (s *Store) Detail(k flow.Key) (Detail, bool) {
	if s.tab == nil {
		return Detail{}, false
	}
	i, ok := s.tab.lookup(&k)
	if !ok {
		return Detail{}, false
	}
	r := s.tab.at(i)
	return Detail{Row: s.tab.row(i), History: s.hist.of(i, r.firstSeen, s.opts.HistoryLen)}, true
}

// Row returns the flow with key k (live or lingering) without its history:
// Detail less the scan of the history ring, for callers that want the
// flow alone.
func (s *Store) Row(k flow.Key) (Row, bool) {
	if s.tab == nil {
		return Row{}, false
	}
	i, ok := s.tab.lookup(&k)
	if !ok {
		return Row{}, false
	}
	return s.tab.row(i), true
}

// Snapshot returns the live flows (not the lingering destroyed ones) that
// pass m, ordered by flow key (proto, family, source, destination, ports,
// zone), for export.
func (s *Store) Snapshot(m Matcher) []flow.Flow {
	if s.tab == nil {
		return nil
	}
	idx := make([]uint32, 0, s.live)
	s.eachLive(m, 0, s.tab.hw, func(i uint32) { idx = append(idx, i) })
	slices.SortFunc(idx, s.tab.cmpKey)
	out := make([]flow.Flow, len(idx))
	for j, i := range idx {
		s.tab.flow(i, &out[j])
	}
	return out
}

// eachLive calls fn for every live (not lingering) record in [lo, hi)
// that passes m, in table order.
func (s *Store) eachLive(m Matcher, lo, hi uint32, fn func(i uint32)) {
	var fl flow.Flow
	m = effective(m)
	for i := lo; i < min(hi, s.tab.hw); i++ {
		r := s.tab.at(i)
		if r.flags&flagUsed == 0 || r.flags&flagDestroyed != 0 {
			continue
		}
		if m != nil {
			s.tab.flow(i, &fl)
			if !m.Match(&fl) {
				continue
			}
		}
		fn(i)
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
	if s.tab == nil {
		return nil
	}
	acc := map[groupKey]*groupAcc{}
	s.eachLive(m, 0, s.tab.hw, func(i uint32) {
		r := s.tab.at(i)
		var k groupKey
		switch by {
		case GroupDport:
			_, dp := r.ports()
			k.n = uint32(r.proto)<<16 | uint32(dp)
		case GroupSrcHost:
			k.addr = s.tab.origTuple(i).Src
		case GroupDstHost:
			k.addr = s.tab.origTuple(i).Dst
		case GroupState:
			k.n = uint32(r.state())
		default:
			k.n = uint32(r.proto)
		}
		a := acc[k]
		if a == nil {
			a = &groupAcc{}
			acc[k] = a
		}
		c := s.tab.counters(i, r)
		a.count++
		a.packets += c.OrigPackets + c.ReplyPackets
		a.bytes += c.OrigBytes + c.ReplyBytes
		v := s.tab.ratesOf(i, r)
		a.bps += v[1].float() + v[3].float()
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
	s.WalkRange(m, 0, ^uint32(0), fn)
}

// WalkRange is Walk over the records with index in [from, to) only, and
// returns where the records end (the table's high-water mark): a reader
// that must not hold the store for long walks it in ranges, releasing its
// lock between them (a flow that changes in between may be seen twice or
// not at all).
func (s *Store) WalkRange(m Matcher, from, to uint32, fn func(r *Row) bool) uint32 {
	if s.tab == nil {
		return 0
	}
	var w Row
	stop := false
	s.eachLive(m, from, to, func(i uint32) {
		if stop {
			return
		}
		w = s.tab.row(i)
		stop = !fn(&w)
	})
	return s.tab.hw
}
