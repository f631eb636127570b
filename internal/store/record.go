package store

import (
	"encoding/binary"
	"math"
	"net/netip"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// rec is one flow as the store keeps it: a fixed-size, pointer-free record
// (48 bytes) in a slab outside the Go heap. IPv4 addresses take 4 bytes
// each; IPv6 addresses (32 bytes) and an IPv4 NAT flow's reply tuple (12
// bytes) live in slabs of their own (see ext); the counters and the time
// of their last sample (20 bytes, see acct), the rates (see rateTable) and
// the conntrack mark (4 bytes) beside the records, taking memory only
// where flows have them (see column); whatever else is rare (a tuple that does not fit this
// form, the helper, the master, INVALID figures, a compare mark with the
// wire's states, counters too big for the compact ones, and fields added
// to flow.Flow later) lives in the store's rare side table (see rare).
//
// Times are Unix nanoseconds (firstSeen) and milliseconds after firstSeen
// (lastSeen, acct.countersAt). Counters keep 32 bits of packets and 36
// bits of bytes per direction (the top 4 in bytesHi); bigger ones go to
// the side table.
type rec struct {
	firstSeen int64
	// src4 and dst4 are the orig addresses of an IPv4 flow, or the first
	// 32 bits of an IPv6 flow's (whose addresses are in v6addrs), as
	// big-endian numbers.
	src4, dst4          uint32
	status, id, timeout uint32
	// ext references the flow's IPv6 addresses (v6addrs) for an IPv6
	// flow, its NAT reply tuple (nat4) for an IPv4 flow; 0 for none.
	ext      uint32
	lastSeen uint32
	// sport and dport are the orig ports; for ICMP, type<<8|code and id.
	sport, dport, zone uint16
	proto              uint8
	family             flow.Family
	flags              uint8
	tcpState           flow.TCPState
	// aux holds the compare source's kernel-versus-wire mark, packed in
	// its low bits (auxCompare, see packCompare), and the silent mark
	// (auxSilent, auxSilentSeen).
	aux uint8
	// bytesHi holds bits 32..35 of the orig bytes (low nibble) and the
	// reply bytes; their low 32 bits are in the flow's acct.
	bytesHi uint8
}

// acct holds a flow's counters (their low 32 bits) and the time of their
// last sample, in a column beside the records (table.acct), index for
// index. The kernel keeps counters only with
// net.netfilter.nf_conntrack_acct=1, off by default: a table without them
// never maps the column (see column), so such a flow costs the record's
// 48 bytes, not 68. acct is all zero for a flow with neither
// flagHasCounters nor flagCountersAt.
type acct struct {
	origPkts, replyPkts, origBytes, replyBytes uint32
	// countersAt is when the counters were last sampled, in milliseconds
	// after the record's firstSeen (with flagCountersAt).
	countersAt uint32
}

// rates are a flow's orig pps, orig bps, reply pps and reply bps (see
// rate16).
type rates [4]rate16

// rateTable holds the flows' rates (see rates), which are 0 for most flows
// of a big table even with counters: a rate is set from two counter
// samples (kernel polls minutes apart at millions of entries, or a
// destroy's final counters) that differ, so only a flow that outlived two
// samples and moved traffic between them has one. It keeps them in a map
// by record index while those flows are few (a flow with a rate has
// auxRate), and in a column beside the records (8 bytes a record) once
// they are more than one in denseRates: past that the map would take more.
type rateTable struct {
	sparse map[uint32]rates
	dense  column[rates]
	// isDense is set once the column holds the rates (and the map is
	// gone); it stays set until the table empties.
	isDense bool
}

// denseRates is the share of the records (one in denseRates) with a rate
// past which rates go to the column. A map entry takes about 20 bytes
// (Go's map: 12-byte slots in groups of 8 with a control word, 7/8 full
// at most, doubled when full) and the collector's headroom over it as
// much again; the column takes 8 bytes a record.
const denseRates = 6

// get returns record i's rates (r.aux&auxRate set).
func (rt *rateTable) get(i uint32) rates {
	if rt.isDense {
		return rt.dense.get(i)
	}
	return rt.sparse[i]
}

// set stores record i's rates, not all zero; hw is the table's high water
// (past which no record is in use).
func (rt *rateTable) set(i uint32, v rates, hw uint32) {
	if rt.isDense {
		rt.dense.set(i, v)
		return
	}
	if rt.sparse == nil {
		rt.sparse = map[uint32]rates{}
	}
	rt.sparse[i] = v
	if n := len(rt.sparse); n >= 1024 && uint64(n)*denseRates > uint64(hw) {
		for j, x := range rt.sparse {
			rt.dense.set(j, x)
		}
		rt.sparse, rt.isDense = nil, true
	}
}

// clear removes record i's rates.
func (rt *rateTable) clear(i uint32) {
	if rt.isDense {
		rt.dense.set(i, rates{})
	} else {
		delete(rt.sparse, i)
	}
}

// reset empties the table (sparse again).
func (rt *rateTable) reset() {
	rt.dense.shrink(0)
	rt.sparse, rt.isDense = nil, false
}

// bytes estimates the memory the rates take.
func (rt *rateTable) bytes(hw uint32) int64 {
	if rt.isDense {
		return rt.dense.bytesBelow(hw)
	}
	return int64(len(rt.sparse)) * 20
}

// column is a slab kept beside the records, index for index, of values
// that are zero for most tables (acct): a part is mapped only when a
// value in it is first written (the slab's other parts are nil), and
// reading a value of an unmapped part yields zero without mapping it. T
// must contain no Go pointers.
type column[T comparable] struct{ s slab[T] }

// ptr returns value i to change in place, or nil when its part is not
// mapped (the value is zero).
func (c *column[T]) ptr(i uint32) *T {
	j := int(i >> c.s.bits)
	if j >= len(c.s.parts) || c.s.parts[j] == nil {
		return nil
	}
	return c.s.at(i)
}

// get returns value i (zero when its part is not mapped).
func (c *column[T]) get(i uint32) T {
	if p := c.ptr(i); p != nil {
		return *p
	}
	var z T
	return z
}

// set stores v as value i; a zero value needs no part mapped.
func (c *column[T]) set(i uint32, v T) {
	var z T
	if v == z {
		if p := c.ptr(i); p != nil {
			*p = z
		}
		return
	}
	*c.at(i) = v
}

// at returns value i to write, mapping its part first if need be.
func (c *column[T]) at(i uint32) *T {
	j := int(i >> c.s.bits)
	for len(c.s.parts) <= j {
		c.s.parts = append(c.s.parts, nil)
	}
	if c.s.parts[j] == nil {
		c.s.parts[j] = mapArray[T](1 << c.s.bits)
		adviseHuge(c.s.parts[j])
	}
	return c.s.at(i)
}

// shrink unmaps the parts from the n-th on.
func (c *column[T]) shrink(n int) { c.s.shrink(n) }

// bytes returns the bytes mapped.
func (c *column[T]) bytes() int64 { return c.s.bytesBelow(math.MaxUint32) }

// bytesBelow is the slab's (an unmapped part counts nothing).
func (c *column[T]) bytesBelow(n uint32) int64 { return c.s.bytesBelow(n) }

// rec flags.
const (
	flagUsed uint8 = 1 << iota
	flagDestroyed
	flagHasCounters
	flagCountersAt // countersAt is set
	flagRare       // the rare side table has an entry for this record
	flagEpoch      // resync epoch parity when last listed or touched
	flagBigCounters
	// flagUseOne: the flow's use count is 1 (the common case; another
	// count lives in the side table, 0 means unknown).
	flagUseOne
)

// v6addrs holds an IPv6 flow's orig addresses, in their own slab.
type v6addrs struct {
	src, dst [16]byte
}

// nat4 holds the reply tuple of an IPv4 NAT flow, in its own slab (the
// reply tuple of an IPv6 NAT flow, rarer still, is in the side table).
type nat4 struct {
	src, dst     uint32
	sport, dport uint16 // for ICMP type<<8|code and id
}

// pool is a slab with a free list: fixed-size values referenced by
// 1 + their index (0 meaning none).
type pool[T any] struct {
	s    slab[T]
	hw   uint32
	free []uint32
}

// alloc returns the reference of a zeroed value.
func (p *pool[T]) alloc() uint32 {
	var i uint32
	if n := len(p.free); n > 0 {
		i = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		if p.hw >= p.s.cap() {
			p.s.grow()
		}
		i = p.hw
		p.hw++
	}
	var z T
	*p.s.at(i) = z
	return i + 1
}

// at returns the value of reference ref.
func (p *pool[T]) at(ref uint32) *T { return p.s.at(ref - 1) }

// release frees reference ref.
func (p *pool[T]) release(ref uint32) { p.free = append(p.free, ref-1) }

// reset frees everything.
func (p *pool[T]) reset() {
	p.s.free()
	p.hw, p.free = 0, nil
}

func (p *pool[T]) bytes() int64 { return p.s.bytes() + int64(cap(p.free))*4 }

// rare holds the rarely set parts of a flow, in a side table keyed by the
// record's index. A field added to flow.Flow goes here first.
type rare struct {
	// orig is set when the orig tuple does not fit the record (ports on
	// ICMP, ICMP fields on other protocols, another family).
	hasOrig bool
	orig    flow.Tuple
	// reply is set when the reply tuple is not the inverse of orig and
	// does not fit nat4.
	hasReply      bool
	reply         flow.Tuple
	master        *flow.Tuple
	helper        string
	invalid       uint32
	invalidReason string
	cmp           flow.Compare
	// counters when they do not fit the record (flagBigCounters).
	counters flow.Counters
	// The per-packet fidelity fields: SCTP state, a use count other than
	// 0 or 1, the tracker's packets by verdict.
	sctp     flow.SCTPState
	use      uint32
	verdicts flow.Verdicts
}

// packAddr stores a into a 16-byte array (IPv4 in the last 4 bytes).
func packAddr(a netip.Addr) [16]byte {
	if a.Is4() {
		var b [16]byte
		v4 := a.As4()
		copy(b[12:], v4[:])
		return b
	}
	return a.As16()
}

// addr4 returns an IPv4 address as a big-endian number.
func addr4(a netip.Addr) uint32 {
	v := a.As4()
	return binary.BigEndian.Uint32(v[:])
}

// unpack4 is the inverse of addr4.
func unpack4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// compactTuple reports whether t fits the compact form for proto and
// returns the compact ports.
func compactTuple(proto uint8, t *flow.Tuple) (sport, dport uint16, ok bool) {
	if flow.IsICMP(proto) {
		return uint16(t.Type)<<8 | uint16(t.Code), t.ID, t.SrcPort == 0 && t.DstPort == 0
	}
	return t.SrcPort, t.DstPort, t.Type == 0 && t.Code == 0 && t.ID == 0
}

// fitsFamily reports whether the addresses of t are of family fam (IPv4
// or IPv6), valid and without zone: the record's form.
func fitsFamily(fam flow.Family, t *flow.Tuple) bool {
	if fam != flow.FamilyIPv4 && fam != flow.FamilyIPv6 {
		return false
	}
	v4 := fam == flow.FamilyIPv4
	return t.Src.IsValid() && t.Dst.IsValid() && t.Src.Is4() == v4 && t.Dst.Is4() == v4 &&
		t.Src.Zone() == "" && t.Dst.Zone() == ""
}

// tupleFromParts builds a tuple of the record form.
func tupleFromParts(proto uint8, src, dst netip.Addr, sport, dport uint16) flow.Tuple {
	t := flow.Tuple{Src: src, Dst: dst}
	if flow.IsICMP(proto) {
		t.Type, t.Code, t.ID = uint8(sport>>8), uint8(sport), dport
	} else {
		t.SrcPort, t.DstPort = sport, dport
	}
	return t
}

// Bits of rec.aux.
const (
	// auxCompare selects the packed kernel-versus-wire mark: Seen in bits
	// 0-1, Disagree in bits 2-4.
	auxCompare uint8 = 1<<5 - 1
	// auxSilent marks a flow of the initial listing that has reported no
	// event since (see Store.SilentLeft): only the source's polls can tell
	// that it changed or vanished.
	auxSilent uint8 = 1 << 6
	// auxSilentSeen is the poll parity of the last poll that listed a
	// silent flow (see Store.pollParity).
	auxSilentSeen uint8 = 1 << 7
	// auxRate marks a flow with a rate (see rateTable).
	auxRate uint8 = 1 << 5
)

// packCompare packs a kernel-versus-wire mark into the auxCompare bits.
// ok is false when it does not fit (the wire's states are set, only for a
// state disagreement): the mark then lives in the side table.
func packCompare(c flow.Compare) (b uint8, ok bool) {
	if c.WireState != 0 || c.WireTCPState != 0 || c.Seen > 3 || c.Disagree > 7 {
		return 0, false
	}
	return uint8(c.Seen) | uint8(c.Disagree)<<2, true
}

// unpackCompare is the inverse of packCompare.
func unpackCompare(b uint8) flow.Compare {
	return flow.Compare{Seen: flow.Seen(b & 3), Disagree: flow.Disagree(b >> 2 & 7)}
}

// packCounters stores c into the record's bytesHi and a (its acct); ok
// is false when it does not fit (both are then zeroed).
func (r *rec) packCounters(a *acct, c *flow.Counters) (ok bool) {
	const maxBytes = 1<<36 - 1
	if c.OrigPackets > math.MaxUint32 || c.ReplyPackets > math.MaxUint32 || c.OrigBytes > maxBytes || c.ReplyBytes > maxBytes {
		a.origPkts, a.replyPkts, a.origBytes, a.replyBytes, r.bytesHi = 0, 0, 0, 0, 0
		return false
	}
	a.origPkts, a.replyPkts = uint32(c.OrigPackets), uint32(c.ReplyPackets)
	a.origBytes, a.replyBytes = uint32(c.OrigBytes), uint32(c.ReplyBytes)
	r.bytesHi = uint8(c.OrigBytes>>32) | uint8(c.ReplyBytes>>32)<<4
	return true
}

// unpackCounters is the inverse of packCounters.
func (r *rec) unpackCounters(a *acct) flow.Counters {
	return flow.Counters{
		OrigPackets: uint64(a.origPkts), ReplyPackets: uint64(a.replyPkts),
		OrigBytes:  uint64(a.origBytes) | uint64(r.bytesHi&15)<<32,
		ReplyBytes: uint64(a.replyBytes) | uint64(r.bytesHi>>4)<<32,
	}
}

// state returns the netfilter state.
func (r *rec) state() flow.State {
	switch s := flow.Status(r.status); {
	case s&flow.StatusExpected != 0:
		return flow.StateRelated
	case s&flow.StatusSeenReply != 0:
		return flow.StateEstablished
	}
	return flow.StateNew
}

// ports returns the orig source and destination ports (zero for ICMP).
func (r *rec) ports() (uint16, uint16) {
	if flow.IsICMP(r.proto) {
		return 0, 0
	}
	return r.sport, r.dport
}

// phase returns the flow's current phase (destroyed or not).
func (r *rec) phase() Phase {
	if r.flags&flagDestroyed != 0 {
		return PhaseDestroyed
	}
	return phaseOf(r.proto, r.tcpState, r.state())
}

// phaseOf is the phase of a live flow: the TCP state for TCP flows that
// have one, else the netfilter state.
func phaseOf(proto uint8, tcp flow.TCPState, st flow.State) Phase {
	if proto == flow.ProtoTCP && tcp != flow.TCPNone && tcp < flow.NumTCPStates {
		return PhaseTCP + Phase(tcp)
	}
	return PhaseNew + Phase(st)
}

// flowPhase is phaseOf for a flow.Flow.
func flowPhase(fl *flow.Flow) Phase { return phaseOf(fl.Proto, fl.TCPState, fl.State()) }

// msAfter returns at as milliseconds after base (clamped to uint32).
func msAfter(base, at int64) uint32 {
	d := (at - base) / int64(time.Millisecond)
	return uint32(min(max(d, 0), math.MaxUint32))
}

// lastSeenNs returns the record's last-seen time in Unix ns.
func (r *rec) lastSeenNs() int64 {
	return r.firstSeen + int64(r.lastSeen)*int64(time.Millisecond)
}

// setLastSeen raises the last-seen time to at.
func (r *rec) setLastSeen(at int64) {
	r.lastSeen = max(r.lastSeen, msAfter(r.firstSeen, at))
}

// expiresNs returns when the flow times out (0 for a destroyed flow).
func (r *rec) expiresNs() int64 {
	if r.flags&flagDestroyed != 0 {
		return 0
	}
	return r.lastSeenNs() + int64(r.timeout)*int64(time.Second)
}

// unixNano converts t to the store's int64 form (0 for the zero time).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// unixTime is the inverse of unixNano; times are returned in UTC.
func unixTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
