// Package flow is conntop's model of one connection-tracking entry: its
// tuples, netfilter and TCP state, status bits, counters and the names the
// kernel and conntrack-tools give them. Every source (kernel netlink, packet
// capture, pcap replay) produces these values, as Events and TableStats, and
// every consumer (store, filter, exporters, TUI) reads them.
package flow

import (
	"cmp"
	"net/netip"
)

// Family is the layer-3 address family, with the kernel's numbering.
type Family uint8

// Address families (AF_INET, AF_INET6).
const (
	FamilyIPv4 Family = 2
	FamilyIPv6 Family = 10
)

// String returns "ipv4" or "ipv6" (the snapshot JSON names).
func (f Family) String() string {
	switch f {
	case FamilyIPv4:
		return "ipv4"
	case FamilyIPv6:
		return "ipv6"
	}
	return "unknown"
}

// IP protocol numbers conntop names.
const (
	ProtoICMP    uint8 = 1
	ProtoTCP     uint8 = 6
	ProtoUDP     uint8 = 17
	ProtoDCCP    uint8 = 33
	ProtoGRE     uint8 = 47
	ProtoICMPv6  uint8 = 58
	ProtoSCTP    uint8 = 132
	ProtoUDPLite uint8 = 136
)

// HasPorts reports whether tuples of protocol p carry source and destination
// ports (TCP, UDP, UDPLite, SCTP, DCCP), as the kernel's tuple does.
func HasPorts(p uint8) bool {
	switch p {
	case ProtoTCP, ProtoUDP, ProtoUDPLite, ProtoSCTP, ProtoDCCP:
		return true
	}
	return false
}

// IsICMP reports whether p is ICMP or ICMPv6, whose tuples carry type, code
// and identifier instead of ports.
func IsICMP(p uint8) bool { return p == ProtoICMP || p == ProtoICMPv6 }

// Tuple is one direction of a flow. For protocols with ports, SrcPort and
// DstPort are set; for ICMP and ICMPv6, Type, Code and ID; for others only the
// addresses. Tuple is comparable and usable as a map key.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Type, Code       uint8  // ICMP/ICMPv6 only
	ID               uint16 // ICMP/ICMPv6 echo identifier only
}

// Counters are the per-direction packet and byte counters kept by conntrack
// accounting (nf_conntrack_acct) or by the in-process tracker. Bytes are
// layer-3 lengths, as the kernel counts them.
type Counters struct {
	OrigPackets, OrigBytes   uint64
	ReplyPackets, ReplyBytes uint64
}

// Key identifies a flow while it lives: protocol, zone and original tuple,
// exactly what the kernel hashes on. It is comparable.
type Key struct {
	Proto uint8
	Zone  uint16
	Orig  Tuple
}

// Flow is one connection-tracking entry. It is a value: copying it is safe
// and the copy shares only the immutable Master tuple.
type Flow struct {
	// ID is the kernel's conntrack id (CTA_ID), or the tracker's own id.
	ID       uint32
	Family   Family
	Proto    uint8
	TCPState TCPState // TCPNone for non-TCP flows
	Status   Status
	Orig     Tuple
	Reply    Tuple
	// Timeout is the number of seconds left before the entry expires, as of
	// the event that carried this flow.
	Timeout uint32
	Mark    uint32
	Zone    uint16
	// HasCounters says whether Counters are known (accounting on, or the
	// event carried them: NEW/UPDATE events from the kernel do not).
	HasCounters bool
	Counters    Counters
	// Helper is the conntrack helper attached ("ftp"), as the kernel names it.
	// It comes from the kernel: escape it before printing it to a terminal.
	Helper string
	// Master is the original tuple of the master flow of a RELATED flow
	// (one created from an expectation), else nil. Never modified once set.
	Master *Tuple
	// Invalid counts packets of this flow that the in-process tracker found
	// INVALID (the kernel does not report this); InvalidReason says why the
	// last one was. Both stay zero for the kernel source.
	Invalid       uint32
	InvalidReason string
	// Compare is the kernel-versus-wire mark set by the compare source
	// (`--source conntrack,capture`); zero for every other source.
	Compare Compare
	// SCTPState is the kernel's SCTP state (SCTP flows only).
	SCTPState SCTPState
	// Use is the kernel's reference count of the entry (CTA_USE: 1, plus
	// one while a RELATED flow of it lives, as Linux 6.18 counts); the
	// kernel source keeps the last listed count over events, which carry
	// none. The tracker reports 1 plus its pending expectations. 0 means
	// unknown.
	Use uint32
	// Verdicts counts this flow's packets by the ct state the kernel's
	// `ct state` match gave them (tracker sources only; RELATED ICMP
	// errors are counted on the flow they relate to).
	Verdicts Verdicts
}

// Key returns the flow's identity.
func (f *Flow) Key() Key { return Key{Proto: f.Proto, Zone: f.Zone, Orig: f.Orig} }

// State returns the netfilter state of the flow as `ct state` names it:
// RELATED for a flow created from an expectation, ESTABLISHED once a reply
// was seen, NEW before.
func (f *Flow) State() State {
	switch {
	case f.Status&StatusExpected != 0:
		return StateRelated
	case f.Status&StatusSeenReply != 0:
		return StateEstablished
	}
	return StateNew
}

// Assured reports whether the ASSURED bit is set (the entry is not evicted by
// early drop).
func (f *Flow) Assured() bool { return f.Status&StatusAssured != 0 }

// Replied reports whether a reply has been seen (SEEN_REPLY).
func (f *Flow) Replied() bool { return f.Status&StatusSeenReply != 0 }

// NAT reports whether the reply tuple is not simply the inverse of the
// original tuple (the flow is source- or destination-NATed).
func (f *Flow) NAT() bool { return f.Reply != f.Orig.Reverse(f.Proto) }

// Reverse returns the tuple of protocol proto seen from the other direction:
// addresses and ports swapped; for ICMP and ICMPv6 query messages the type is
// mapped to its reply (or request) type as the kernel's invert_tuple does.
func (t Tuple) Reverse(proto uint8) Tuple {
	r := Tuple{Src: t.Dst, Dst: t.Src, SrcPort: t.DstPort, DstPort: t.SrcPort, Type: t.Type, Code: t.Code, ID: t.ID}
	if IsICMP(proto) {
		if rt, ok := ICMPInverseType(proto, t.Type); ok {
			r.Type = rt
		}
	}
	return r
}

// ICMPInverseType maps an ICMP (proto 1) or ICMPv6 (proto 58) query type to
// its reply type and back. ok is false for types with no such pair.
func ICMPInverseType(proto, typ uint8) (inv uint8, ok bool) {
	if proto == ProtoICMP {
		switch typ {
		case 8:
			return 0, true
		case 0:
			return 8, true
		case 13:
			return 14, true
		case 14:
			return 13, true
		case 15:
			return 16, true
		case 16:
			return 15, true
		case 17:
			return 18, true
		case 18:
			return 17, true
		}
		return 0, false
	}
	switch typ {
	case 128:
		return 129, true
	case 129:
		return 128, true
	case 139:
		return 140, true
	case 140:
		return 139, true
	}
	return 0, false
}

// Compare orders tuples field by field (source, destination, ports, ICMP
// type, code and id): -1, 0 or +1 as t sorts before, with or after u. It is
// the last tie-break of the snapshot order.
func (t *Tuple) Compare(u *Tuple) int {
	if c := t.Src.Compare(u.Src); c != 0 {
		return c
	}
	if c := t.Dst.Compare(u.Dst); c != 0 {
		return c
	}
	if c := cmp.Compare(t.SrcPort, u.SrcPort); c != 0 {
		return c
	}
	if c := cmp.Compare(t.DstPort, u.DstPort); c != 0 {
		return c
	}
	if c := cmp.Compare(t.Type, u.Type); c != 0 {
		return c
	}
	if c := cmp.Compare(t.Code, u.Code); c != 0 {
		return c
	}
	return cmp.Compare(t.ID, u.ID)
}
