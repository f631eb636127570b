package store

import (
	"net/netip"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// entry is one flow as the store keeps it: a compact form of flow.Flow plus
// the store's bookkeeping. It is about 180 bytes; the rare parts (NAT reply
// tuple, helper, master, tracker invalid counts) live behind extra.
type entry struct {
	src, dst [16]byte // orig addresses, IPv4 in the last 4 bytes

	// Unix nanoseconds; 0 means unknown.
	firstSeen, lastSeen, expires, countersAt int64

	counters flow.Counters
	extra    *extra
	// hist is the transition history ring: packed transitions (see
	// packTransition), at most Options.HistoryLen; histHead is the oldest
	// once the ring is full.
	hist []uint64

	id, status, timeout, mark uint32
	// epoch is the store's resync epoch when the flow was last listed or
	// touched by an event.
	epoch uint32
	// rates: orig pps, orig bps, reply pps, reply bps.
	rates [4]float32

	// sport and dport are the orig ports; for ICMP, type<<8|code and id.
	sport, dport uint16
	zone         uint16
	proto        uint8
	family       flow.Family
	tcpState     flow.TCPState
	flags        uint8
	histHead     uint8
	// cmp is the compare source's kernel-versus-wire mark, packed (see
	// packCompare); it fills the last padding byte.
	cmp uint8
}

// entry flags.
const (
	flagUsed uint8 = 1 << iota
	flagDestroyed
	flagHasCounters
	// flagUseOne: the flow's use count is 1 (the common case; other
	// counts live in extra).
	flagUseOne
)

// extra holds the rarely set parts of a flow.
type extra struct {
	// origFull is set when the orig tuple does not fit the compact form
	// (ports on ICMP, ICMP fields on other protocols).
	origFull *flow.Tuple
	// reply is set when the reply tuple is not the inverse of orig (NAT).
	reply         *flow.Tuple
	master        *flow.Tuple
	helper        string
	invalid       uint32
	cmp           flow.Compare // when it does not pack into entry.cmp
	invalidReason string
	// fid holds the fidelity fields (SCTP state, a use count other than 1,
	// the tracker's per-verdict packet counts) when any is set.
	fid *fidelity
}

// fidelity is the rare per-flow detail of issue 11.
type fidelity struct {
	sctp     flow.SCTPState
	use      uint32
	verdicts flow.Verdicts
}

// fidelityOf returns fl's fidelity fields, nil when they are the common
// case (no SCTP state, use 1 or unknown, no verdicts).
func fidelityOf(fl *flow.Flow) *fidelity {
	if fl.SCTPState == 0 && fl.Use <= 1 && fl.Verdicts == (flow.Verdicts{}) {
		return nil
	}
	return &fidelity{sctp: fl.SCTPState, use: fl.Use, verdicts: fl.Verdicts}
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

// unpackAddr is the inverse of packAddr for family fam.
func unpackAddr(b *[16]byte, fam flow.Family) netip.Addr {
	if fam == flow.FamilyIPv4 {
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	return netip.AddrFrom16(*b)
}

// compactTuple reports whether t fits the compact form for proto and
// returns the compact ports.
func compactTuple(proto uint8, t *flow.Tuple) (sport, dport uint16, ok bool) {
	if flow.IsICMP(proto) {
		return uint16(t.Type)<<8 | uint16(t.Code), t.ID, t.SrcPort == 0 && t.DstPort == 0
	}
	return t.SrcPort, t.DstPort, t.Type == 0 && t.Code == 0 && t.ID == 0
}

// origTuple returns the original tuple.
func (e *entry) origTuple() flow.Tuple {
	if e.extra != nil && e.extra.origFull != nil {
		return *e.extra.origFull
	}
	t := flow.Tuple{Src: unpackAddr(&e.src, e.family), Dst: unpackAddr(&e.dst, e.family)}
	if flow.IsICMP(e.proto) {
		t.Type, t.Code, t.ID = uint8(e.sport>>8), uint8(e.sport), e.dport
	} else {
		t.SrcPort, t.DstPort = e.sport, e.dport
	}
	return t
}

// ports returns the orig source and destination ports (zero for ICMP).
func (e *entry) ports() (uint16, uint16) {
	if flow.IsICMP(e.proto) {
		return 0, 0
	}
	return e.sport, e.dport
}

// set stores fl into e (keeping the store's bookkeeping fields).
func (e *entry) set(fl *flow.Flow) {
	e.family = fl.Family
	e.proto = fl.Proto
	e.zone = fl.Zone
	e.src = packAddr(fl.Orig.Src)
	e.dst = packAddr(fl.Orig.Dst)
	sp, dp, compact := compactTuple(fl.Proto, &fl.Orig)
	// Addresses of another family than fl.Family (or none) do not fit
	// either.
	if (fl.Family != flow.FamilyIPv4 && fl.Family != flow.FamilyIPv6) ||
		fl.Orig.Src.Is4() != (fl.Family == flow.FamilyIPv4) || fl.Orig.Dst.Is4() != (fl.Family == flow.FamilyIPv4) ||
		!fl.Orig.Src.IsValid() || !fl.Orig.Dst.IsValid() || fl.Orig.Src.Zone() != "" || fl.Orig.Dst.Zone() != "" {
		compact = false
	}
	e.sport, e.dport = sp, dp
	e.id = fl.ID
	e.status = uint32(fl.Status)
	e.timeout = fl.Timeout
	e.mark = fl.Mark
	e.tcpState = fl.TCPState
	cmp, cmpPacked := packCompare(fl.Compare)
	e.cmp = cmp
	if fl.HasCounters {
		e.flags |= flagHasCounters
		e.counters = fl.Counters
	}
	e.flags &^= flagUseOne
	if fl.Use == 1 {
		e.flags |= flagUseOne
	}

	nat := fl.Reply != fl.Orig.Reverse(fl.Proto)
	fid := fidelityOf(fl)
	rare := fl.Master != nil || fl.Helper != "" || fl.Invalid != 0 || fl.InvalidReason != "" || !cmpPacked || fid != nil
	switch {
	case compact && !nat && !rare:
		e.extra = nil
	case e.extra != nil && e.extra.same(fl, compact, nat):
		// unchanged: keep it (no allocation per update)
	default:
		x := &extra{helper: fl.Helper, master: fl.Master, invalid: fl.Invalid, invalidReason: fl.InvalidReason, cmp: fl.Compare, fid: fid}
		if !compact {
			t := fl.Orig
			x.origFull = &t
		}
		if nat {
			t := fl.Reply
			x.reply = &t
		}
		e.extra = x
	}
}

// same reports whether x already holds what fl needs.
func (x *extra) same(fl *flow.Flow, compact, nat bool) bool {
	if (x.origFull == nil) != compact || (x.origFull != nil && *x.origFull != fl.Orig) {
		return false
	}
	if (x.reply != nil) != nat || (x.reply != nil && *x.reply != fl.Reply) {
		return false
	}
	if (x.master == nil) != (fl.Master == nil) || (x.master != nil && *x.master != *fl.Master) {
		return false
	}
	if f := fidelityOf(fl); (f == nil) != (x.fid == nil) || (f != nil && *f != *x.fid) {
		return false
	}
	return x.helper == fl.Helper && x.invalid == fl.Invalid && x.invalidReason == fl.InvalidReason && x.cmp == fl.Compare
}

// packCompare packs a kernel-versus-wire mark into one byte (Seen in the
// low nibble, Disagree in the high one). ok is false when it does not fit
// (the wire's states are set, only for a state disagreement): the mark
// then lives in extra.
func packCompare(c flow.Compare) (b uint8, ok bool) {
	if c.WireState != 0 || c.WireTCPState != 0 || c.Seen > 15 || c.Disagree > 15 {
		return 0, false
	}
	return uint8(c.Seen) | uint8(c.Disagree)<<4, true
}

// flow materializes the flow into fl. It assigns field by field (every
// field of flow.Flow): this runs for every flow of every filtered query.
func (e *entry) flow(fl *flow.Flow) {
	if e.extra != nil && e.extra.origFull != nil {
		fl.Orig = *e.extra.origFull
	} else {
		fl.Orig.Src = unpackAddr(&e.src, e.family)
		fl.Orig.Dst = unpackAddr(&e.dst, e.family)
		if flow.IsICMP(e.proto) {
			fl.Orig.SrcPort, fl.Orig.DstPort = 0, 0
			fl.Orig.Type, fl.Orig.Code, fl.Orig.ID = uint8(e.sport>>8), uint8(e.sport), e.dport
		} else {
			fl.Orig.SrcPort, fl.Orig.DstPort = e.sport, e.dport
			fl.Orig.Type, fl.Orig.Code, fl.Orig.ID = 0, 0, 0
		}
	}
	fl.ID = e.id
	fl.Family = e.family
	fl.Proto = e.proto
	fl.TCPState = e.tcpState
	fl.Status = flow.Status(e.status)
	fl.Timeout = e.timeout
	fl.Mark = e.mark
	fl.Zone = e.zone
	fl.HasCounters = e.flags&flagHasCounters != 0
	fl.Counters = e.counters
	if x := e.extra; x != nil {
		if x.reply != nil {
			fl.Reply = *x.reply
		} else {
			fl.Reply = fl.Orig.Reverse(e.proto)
		}
		fl.Master, fl.Helper, fl.Invalid, fl.InvalidReason = x.master, x.helper, x.invalid, x.invalidReason
		fl.Compare = x.cmp
		fl.SCTPState, fl.Use, fl.Verdicts = 0, uint32(e.flags&flagUseOne)/uint32(flagUseOne), flow.Verdicts{}
		if f := x.fid; f != nil {
			fl.SCTPState, fl.Use, fl.Verdicts = f.sctp, f.use, f.verdicts
		}
		return
	}
	if flow.IsICMP(e.proto) {
		fl.Reply = fl.Orig.Reverse(e.proto)
	} else {
		fl.Reply = flow.Tuple{Src: fl.Orig.Dst, Dst: fl.Orig.Src, SrcPort: fl.Orig.DstPort, DstPort: fl.Orig.SrcPort}
	}
	fl.Master, fl.Helper, fl.Invalid, fl.InvalidReason = nil, "", 0, ""
	fl.Compare = flow.Compare{Seen: flow.Seen(e.cmp & 15), Disagree: flow.Disagree(e.cmp >> 4)}
	fl.SCTPState, fl.Use, fl.Verdicts = 0, uint32(e.flags&flagUseOne)/uint32(flagUseOne), flow.Verdicts{}
}

// hasKey reports whether e is the flow with key k.
func (e *entry) hasKey(k *flow.Key) bool {
	if e.proto != k.Proto || e.zone != k.Zone {
		return false
	}
	if e.extra != nil && e.extra.origFull != nil {
		return *e.extra.origFull == k.Orig
	}
	sp, dp, ok := compactTuple(k.Proto, &k.Orig)
	if !ok || sp != e.sport || dp != e.dport {
		return false
	}
	if (e.family != flow.FamilyIPv4 && e.family != flow.FamilyIPv6) || !k.Orig.Src.IsValid() || !k.Orig.Dst.IsValid() || k.Orig.Src.Zone() != "" || k.Orig.Dst.Zone() != "" ||
		k.Orig.Src.Is4() != (e.family == flow.FamilyIPv4) || k.Orig.Dst.Is4() != (e.family == flow.FamilyIPv4) {
		return false
	}
	return packAddr(k.Orig.Src) == e.src && packAddr(k.Orig.Dst) == e.dst
}

// state returns the netfilter state.
func (e *entry) state() flow.State {
	switch s := flow.Status(e.status); {
	case s&flow.StatusExpected != 0:
		return flow.StateRelated
	case s&flow.StatusSeenReply != 0:
		return flow.StateEstablished
	}
	return flow.StateNew
}

// phase returns the flow's current phase (destroyed or not).
func (e *entry) phase() Phase {
	if e.flags&flagDestroyed != 0 {
		return PhaseDestroyed
	}
	return phaseOf(e.proto, e.tcpState, e.state())
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

// packTransition packs a transition as (ms since first seen)<<16 | from<<8 | to.
func packTransition(firstSeen, at int64, from, to Phase) uint64 {
	ms := max((at-firstSeen)/int64(time.Millisecond), 0)
	return uint64(ms)<<16 | uint64(from)<<8 | uint64(to)
}

// unpackTransition is the inverse of packTransition.
func unpackTransition(firstSeen int64, v uint64) Transition {
	return Transition{
		Time: unixTime(firstSeen + int64(v>>16)*int64(time.Millisecond)),
		From: Phase(v >> 8), To: Phase(v),
	}
}

// addHistory appends a transition to e's bounded history.
func (e *entry) addHistory(limit int, at int64, from, to Phase) {
	v := packTransition(e.firstSeen, at, from, to)
	if len(e.hist) < limit {
		e.hist = append(e.hist, v)
		return
	}
	e.hist[e.histHead] = v
	e.histHead++
	if int(e.histHead) >= len(e.hist) {
		e.histHead = 0
	}
}

// history returns the transitions, oldest first.
func (e *entry) history() []Transition {
	out := make([]Transition, 0, len(e.hist))
	for i := range e.hist {
		out = append(out, unpackTransition(e.firstSeen, e.hist[(int(e.histHead)+i)%len(e.hist)]))
	}
	return out
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
