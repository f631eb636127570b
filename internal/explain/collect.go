package explain

import (
	"encoding/binary"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// classDef is a class of entries whose lifetime one sysctl governs.
type classDef struct {
	proto, state string
	sysctl       string // "" when no sysctl governs it
	tcp          bool   // a TCP state: the retransmission caps apply
}

// Class ids: TCP states first (indexed by flow.TCPState), then the rest.
const (
	clsTCP          = 0
	clsUDPUnreplied = int(flow.NumTCPStates) + iota - 1
	clsUDPReplied
	clsUDPAssured
	clsLiteUnreplied
	clsLiteReplied
	clsLiteAssured
	clsICMP
	clsICMPv6
	clsGREUnreplied
	clsGREReplied
	clsSCTP
	clsDCCP
	clsOther
	numClasses
)

// classDefs describes every class id.
var classDefs = func() [numClasses]classDef {
	var d [numClasses]classDef
	tcpSys := [flow.NumTCPStates]string{
		flow.TCPSynSent: SysTCPSynSent, flow.TCPSynRecv: SysTCPSynRecv, flow.TCPEstablished: SysTCPEstablished,
		flow.TCPFinWait: SysTCPFinWait, flow.TCPCloseWait: SysTCPCloseWait, flow.TCPLastAck: SysTCPLastAck,
		flow.TCPTimeWait: SysTCPTimeWait, flow.TCPClose: SysTCPClose,
	}
	for s := flow.TCPNone; s < flow.NumTCPStates; s++ {
		d[clsTCP+int(s)] = classDef{proto: "tcp", state: s.String(), sysctl: tcpSys[s], tcp: true}
	}
	d[clsUDPUnreplied] = classDef{proto: "udp", state: "UNREPLIED", sysctl: SysUDP}
	d[clsUDPReplied] = classDef{proto: "udp", state: "REPLIED", sysctl: SysUDP}
	d[clsUDPAssured] = classDef{proto: "udp", state: "ASSURED", sysctl: SysUDPStream}
	d[clsLiteUnreplied] = classDef{proto: "udplite", state: "UNREPLIED", sysctl: SysUDP}
	d[clsLiteReplied] = classDef{proto: "udplite", state: "REPLIED", sysctl: SysUDP}
	d[clsLiteAssured] = classDef{proto: "udplite", state: "ASSURED", sysctl: SysUDPStream}
	d[clsICMP] = classDef{proto: "icmp", state: "ANY", sysctl: SysICMP}
	d[clsICMPv6] = classDef{proto: "icmpv6", state: "ANY", sysctl: SysICMPv6}
	d[clsGREUnreplied] = classDef{proto: "gre", state: "UNREPLIED", sysctl: SysGRE}
	d[clsGREReplied] = classDef{proto: "gre", state: "REPLIED", sysctl: SysGREStream}
	d[clsSCTP] = classDef{proto: "sctp", state: "ANY"}
	d[clsDCCP] = classDef{proto: "dccp", state: "ANY"}
	d[clsOther] = classDef{proto: "other", state: "ANY", sysctl: SysGeneric}
	return d
}()

// classOf returns the class id of a flow.
func classOf(f *flow.Flow) int {
	udpLike := func(base int) int {
		switch {
		case f.Status&flow.StatusAssured != 0:
			return base + 2
		case f.Status&flow.StatusSeenReply != 0:
			return base + 1
		}
		return base
	}
	switch f.Proto {
	case flow.ProtoTCP:
		if f.TCPState < flow.NumTCPStates {
			return clsTCP + int(f.TCPState)
		}
		return clsTCP
	case flow.ProtoUDP:
		return udpLike(clsUDPUnreplied)
	case flow.ProtoUDPLite:
		return udpLike(clsLiteUnreplied)
	case flow.ProtoICMP:
		return clsICMP
	case flow.ProtoICMPv6:
		return clsICMPv6
	case flow.ProtoGRE:
		if f.Status&flow.StatusSeenReply != 0 {
			return clsGREReplied
		}
		return clsGREUnreplied
	case flow.ProtoSCTP:
		return clsSCTP
	case flow.ProtoDCCP:
		return clsDCCP
	}
	return clsOther
}

// rec is one flow as the analysis needs it: 24 bytes without pointers, so
// that a table of millions costs one flat array and nothing for the
// garbage collector to scan.
type rec struct {
	// src and dst are the original direction's IPv4 addresses, or with
	// recSrc6/recDst6 indices into Collector.v6.
	src, dst uint32
	mark     uint32
	// rem is the remaining timeout in whole seconds (unless recNoExpiry).
	rem   uint32
	dport uint16 // 0 for protocols without ports
	zone  uint16
	proto uint8
	cls   uint8
	flags uint8
}

// Flags of a rec.
const (
	recFresh    = 1 << iota // first seen inside the rate window
	recAssured              // ASSURED: early drop cannot evict it
	recNoExpiry             // no known expiry
	recSrc6                 // src is an index into Collector.v6
	recDst6                 // dst is an index into Collector.v6
	recNoSrc                // no valid source address
	recNoDst                // no valid destination address
)

// Collector gathers what an analysis needs from the flows of the table,
// one Add per flow: a compact record each, nothing else. Adding is cheap,
// so that a caller holding the engine's lock holds it little longer than
// the walk itself; Analyze does the counting afterwards, without the lock.
// It is not safe for concurrent use.
type Collector struct {
	now         time.Time
	windowStart time.Time
	settings    *Settings
	// The same instants in Unix nanoseconds (the years 1678 to 2262),
	// cheaper to compare a row's times with.
	nowNs, windowStartNs int64
	window               bool

	recs []rec
	// v6 holds the IPv6 addresses the records point at.
	v6 []addrKey
}

// NewCollector returns a Collector for the table as of now under the given
// settings. Flows first seen at or after windowStart count as new entries
// (zero windowStart: no rate is measured).
func NewCollector(now, windowStart time.Time, s *Settings) *Collector {
	return &Collector{now: now, windowStart: windowStart, settings: s,
		nowNs: now.UnixNano(), windowStartNs: windowStart.UnixNano(), window: !windowStart.IsZero()}
}

// Expect presizes the collector for about n flows, so that a big table
// does not pay for growing it row by row.
func (c *Collector) Expect(n int) {
	if n > cap(c.recs) {
		c.recs = slices.Grow(c.recs, n-len(c.recs))
	}
}

// Len is the number of flows added.
func (c *Collector) Len() int { return len(c.recs) }

// Add records one flow.
func (c *Collector) Add(r *store.Row) {
	f := &r.Flow
	x := rec{mark: f.Mark, zone: f.Zone, proto: f.Proto, cls: uint8(classOf(f))}
	if f.Status&flow.StatusAssured != 0 {
		x.flags |= recAssured
	}
	if c.window && r.FirstSeen.UnixNano() >= c.windowStartNs {
		x.flags |= recFresh
	}
	if r.Expires.IsZero() {
		x.flags |= recNoExpiry
	} else if d := r.Expires.UnixNano() - c.nowNs; d > 0 {
		// A remaining timeout never exceeds the flow's uint32 timeout.
		x.rem = uint32(min(d/int64(time.Second), math.MaxUint32))
	}
	if flow.HasPorts(f.Proto) {
		x.dport = f.Orig.DstPort
	}
	x.src, x.flags = c.addr(f.Orig.Src, x.flags, recSrc6, recNoSrc)
	x.dst, x.flags = c.addr(f.Orig.Dst, x.flags, recDst6, recNoDst)
	c.recs = append(c.recs, x)
}

// addr encodes an address for a record: an IPv4 address as itself, an
// IPv6 address as its index in c.v6.
func (c *Collector) addr(a netip.Addr, flags, is6, invalid uint8) (uint32, uint8) {
	switch {
	case a.Is4():
		b := a.As4()
		return binary.BigEndian.Uint32(b[:]), flags
	case !a.IsValid():
		return 0, flags | invalid
	}
	c.v6 = append(c.v6, keyOf(a))
	return uint32(len(c.v6) - 1), flags | is6
}
