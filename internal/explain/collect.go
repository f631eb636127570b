package explain

import (
	"encoding/binary"
	"math"
	"net/netip"
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

// rec is one flow as the analysis needs it: 24 bytes without pointers.
type rec struct {
	// src and dst are the original direction's IPv4 addresses, or with
	// recSrc6/recDst6 indices into the chunk's v6.
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
	recSrc6                 // src is an index into the chunk's v6
	recDst6                 // dst is an index into the chunk's v6
	recNoSrc                // no valid source address
	recNoDst                // no valid destination address
)

// chunk is a batch of records on its way to be counted, with the IPv6
// addresses they point at.
type chunk struct {
	recs []rec
	v6   []addrKey
}

// chunkRecs is the size of a chunk: 16,384 records (384 KiB, in a core's
// L2 cache).
const chunkRecs = 1 << 14

// Queues between the walk and the counting: at least minQueued chunks (or
// as many as the expected flows fill) may wait to be counted before the
// walk waits; up to spareChunks counted ones are kept for reuse.
const (
	minQueued   = 64
	spareChunks = 8
)

// Collector gathers and counts the flows of the table, one Add per flow.
// Add only copies what the analysis needs into a compact record, so that
// a caller holding the engine's lock holds it little longer than the walk
// itself. Full chunks of records go to a goroutine of the collector's own
// that counts them meanwhile on another core (the counting never touches
// the store); the walk does not wait for it (a chunk is made when no
// counted one is free), and Analyze finishes the counts once the walk is
// done and the lock released. Add is not safe for concurrent use; Analyze
// must be called once all flows are added (it stops the goroutine).
type Collector struct {
	now         time.Time
	windowStart time.Time
	settings    *Settings
	// The same instants in Unix nanoseconds (the years 1678 to 2262),
	// cheaper to compare a row's times with.
	nowNs, windowStartNs int64
	window               bool

	n     int
	cur   *chunk
	full  chan *chunk // to the counting goroutine (nil: not started)
	free  chan *chunk // back from it
	done  chan struct{}
	tally *tally // written by the counting goroutine until it is done

	analysis *Analysis // once analyzed
}

// NewCollector returns a Collector for the table as of now under the given
// settings. Flows first seen at or after windowStart count as new entries
// (zero windowStart: no rate is measured).
func NewCollector(now, windowStart time.Time, s *Settings) *Collector {
	return &Collector{now: now, windowStart: windowStart, settings: s,
		nowNs: now.UnixNano(), windowStartNs: windowStart.UnixNano(), window: !windowStart.IsZero(),
		tally: newTally(s)}
}

// Expect says about n flows will be added: a consumer dimension with many
// keys then sizes its column once.
func (c *Collector) Expect(n int) { c.tally.hint = max(c.tally.hint, n) }

// Len is the number of flows added.
func (c *Collector) Len() int { return c.n }

// Add records one flow.
func (c *Collector) Add(r *store.Row) {
	if c.cur == nil {
		c.cur = &chunk{recs: make([]rec, 0, chunkRecs)}
	}
	ch := c.cur
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
	x.src, x.flags = ch.addr(f.Orig.Src, x.flags, recSrc6, recNoSrc)
	x.dst, x.flags = ch.addr(f.Orig.Dst, x.flags, recDst6, recNoDst)
	ch.recs = append(ch.recs, x)
	c.n++
	if len(ch.recs) == chunkRecs {
		c.handOff()
	}
}

// handOff sends the current chunk to the counting goroutine (started on
// the first one) and takes a counted chunk back, or none (Add makes one).
func (c *Collector) handOff() {
	if c.full == nil {
		c.full = make(chan *chunk, max(minQueued, c.tally.hint/chunkRecs+1))
		c.free = make(chan *chunk, spareChunks)
		c.done = make(chan struct{})
		go func(t *tally) {
			defer close(c.done)
			for ch := range c.full {
				t.count(ch)
				ch.recs, ch.v6 = ch.recs[:0], ch.v6[:0]
				select {
				case c.free <- ch:
				default: // enough spares
				}
			}
		}(c.tally)
	}
	c.full <- c.cur
	select {
	case c.cur = <-c.free:
	default:
		c.cur = nil
	}
}

// finish stops the counting goroutine and counts the last chunk.
func (c *Collector) finish() *tally {
	if c.full != nil {
		close(c.full)
		<-c.done
		c.full = nil
	}
	if c.cur != nil {
		c.tally.count(c.cur)
		c.cur = nil
	}
	return c.tally
}

// addr encodes an address for a record: an IPv4 address as itself, an
// IPv6 address as its index in ch.v6.
func (ch *chunk) addr(a netip.Addr, flags, is6, invalid uint8) (uint32, uint8) {
	switch {
	case a.Is4():
		b := a.As4()
		return binary.BigEndian.Uint32(b[:]), flags
	case !a.IsValid():
		return 0, flags | invalid
	}
	ch.v6 = append(ch.v6, keyOf(a))
	return uint32(len(ch.v6) - 1), flags | is6
}
