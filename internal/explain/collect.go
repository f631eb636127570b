package explain

import (
	"cmp"
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

// maxHistogram bounds a class's idle-time histogram (seconds); idle times
// beyond it are counted in its last slot (about 12 days).
const maxHistogram = 1 << 20

// classAcc accumulates one class.
type classAcc struct {
	flows, assured int
	// expiring counts entries with at most 60 s left.
	expiring int
	// unknown counts entries without a known expiry.
	unknown int
	// above counts entries with more time left than the current value
	// (the sysctl was lowered after their last packet).
	above int
	// idle[i] counts entries idle i seconds (timer set from the class's
	// value); idleLong those of them with more than 60 s left.
	idle, idleLong []int32
	// capped and cappedLong are the same for TCP entries taken as capped
	// by the retransmission/unacknowledged timeout.
	capped, cappedLong []int32
}

// Dimensions of the top consumers.
const (
	dimDport = iota
	dimDstHost
	dimSrcHost
	dimSrcNet
	dimZone
	dimMark
	numDims
)

// addrKey is an address (or network) as a comparable pair of words; IPv4
// has v4Tag in hi.
type addrKey struct{ hi, lo uint64 }

const v4Tag = 1<<64 - 1

func keyOf(a netip.Addr) addrKey {
	if a.Is4() {
		b := a.As4()
		return addrKey{hi: v4Tag, lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var k addrKey
	for i := 0; i < 8; i++ {
		k.hi = k.hi<<8 | uint64(b[i])
		k.lo = k.lo<<8 | uint64(b[8+i])
	}
	return k
}

// netKey is the /24 (IPv4) or /64 (IPv6) network of a.
func netKey(a netip.Addr) addrKey {
	k := keyOf(a)
	if k.hi == v4Tag {
		k.lo &^= 0xff
	} else {
		k.lo = 0
	}
	return k
}

func (k addrKey) addr() netip.Addr {
	if k.hi == v4Tag {
		return netip.AddrFrom4([4]byte{byte(k.lo >> 24), byte(k.lo >> 16), byte(k.lo >> 8), byte(k.lo)})
	}
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(k.hi >> (56 - 8*i))
		b[8+i] = byte(k.lo >> (56 - 8*i))
	}
	return netip.AddrFrom16(b)
}

func cmpAddrKey(a, b addrKey) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// dimAcc accumulates one consumer.
type dimAcc struct {
	flows, fresh int // fresh: first seen inside the rate window
}

// tally counts consumers by key.
type tally[K comparable] struct {
	idx  map[K]int32
	keys []K
	acc  []dimAcc
}

func newTally[K comparable]() *tally[K] { return &tally[K]{idx: make(map[K]int32)} }

// addrTally counts addresses: IPv4 in a map with 32-bit keys (the
// runtime's fast path), IPv6 in another, sharing one list of keys.
type addrTally struct {
	v4   map[uint32]int32
	v6   map[addrKey]int32
	keys []addrKey
	acc  []dimAcc
}

func newAddrTally() *addrTally {
	return &addrTally{v4: make(map[uint32]int32), v6: make(map[addrKey]int32)}
}

func (t *addrTally) add(a netip.Addr, fresh bool) {
	var i int32
	var ok bool
	if a.Is4() {
		b := a.As4()
		k := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		if i, ok = t.v4[k]; !ok {
			i = int32(len(t.keys))
			t.v4[k] = i
			t.keys = append(t.keys, addrKey{hi: v4Tag, lo: uint64(k)})
			t.acc = append(t.acc, dimAcc{})
		}
	} else {
		k := keyOf(a)
		if i, ok = t.v6[k]; !ok {
			i = int32(len(t.keys))
			t.v6[k] = i
			t.keys = append(t.keys, k)
			t.acc = append(t.acc, dimAcc{})
		}
	}
	acc := &t.acc[i]
	acc.flows++
	if fresh {
		acc.fresh++
	}
}

// tally returns the counts as a generic tally (for top).
func (t *addrTally) tally() *tally[addrKey] { return &tally[addrKey]{keys: t.keys, acc: t.acc} }

// nets sums host counts into their /24 (IPv4) or /64 (IPv6) networks.
func (t *addrTally) nets() *tally[addrKey] {
	n := newTally[addrKey]()
	for i, k := range t.keys {
		nk := k
		if nk.hi == v4Tag {
			nk.lo &^= 0xff
		} else {
			nk.lo = 0
		}
		j, ok := n.idx[nk]
		if !ok {
			j = int32(len(n.keys))
			n.idx[nk] = j
			n.keys = append(n.keys, nk)
			n.acc = append(n.acc, dimAcc{})
		}
		n.acc[j].flows += t.acc[i].flows
		n.acc[j].fresh += t.acc[i].fresh
	}
	return n
}

func (t *tally[K]) add(k K, fresh bool) {
	i, ok := t.idx[k]
	if !ok {
		i = int32(len(t.keys))
		t.idx[k] = i
		t.keys = append(t.keys, k)
		t.acc = append(t.acc, dimAcc{})
	}
	a := &t.acc[i]
	a.flows++
	if fresh {
		a.fresh++
	}
}

// top returns the indices of the n largest consumers, largest first, ties
// in key order.
func (t *tally[K]) top(n int, less func(a, b K) int) []int32 {
	better := func(i, j int32) bool {
		if t.acc[i].flows != t.acc[j].flows {
			return t.acc[i].flows > t.acc[j].flows
		}
		return less(t.keys[i], t.keys[j]) < 0
	}
	out := make([]int32, 0, n+1)
	for i := range t.acc {
		i := int32(i)
		if len(out) == n && !better(i, out[n-1]) {
			continue
		}
		// Insert in order (n is small).
		p := len(out)
		for p > 0 && better(i, out[p-1]) {
			p--
		}
		out = append(out, 0)
		copy(out[p+1:], out[p:])
		out[p] = i
		if len(out) > n {
			out = out[:n]
		}
	}
	return out
}

// Collector gathers what a Report needs from the flows of the table, one
// Add per flow. It is not safe for concurrent use.
type Collector struct {
	now         time.Time
	windowStart time.Time
	settings    *Settings
	value       [numClasses]int64 // the class's timeout, -1 if unknown
	capValue    int64             // TCP cap (max of max_retrans and unacknowledged), -1 if unknown

	flows, assured, fresh int
	classes               [numClasses]classAcc

	dport *tally[uint32]
	dst   *addrTally
	src   *addrTally
	zone  *tally[uint32]
	mark  *tally[uint32]
}

// NewCollector returns a Collector for the table as of now under the given
// settings. Flows first seen at or after windowStart count as new entries
// (zero windowStart: no rate is measured).
func NewCollector(now, windowStart time.Time, s *Settings) *Collector {
	c := &Collector{now: now, windowStart: windowStart, settings: s, capValue: -1,
		dport: newTally[uint32](), dst: newAddrTally(), src: newAddrTally(),
		zone: newTally[uint32](), mark: newTally[uint32](),
	}
	for i, d := range classDefs {
		c.value[i] = -1
		if d.sysctl == "" {
			continue
		}
		if v, ok := s.timeout(d.sysctl); ok {
			c.value[i] = int64(v)
		}
	}
	r, rok := s.timeout(SysTCPRetrans)
	u, uok := s.timeout(SysTCPUnack)
	if rok && uok {
		c.capValue = int64(max(r, u))
	}
	return c
}

// Expect presizes the address tallies for about n flows, so that a big
// table does not pay for growing them row by row.
func (c *Collector) Expect(n int) {
	if n <= len(c.src.keys) {
		return
	}
	c.src.v4 = make(map[uint32]int32, n)
	c.dst.v4 = make(map[uint32]int32, n)
	c.src.keys, c.src.acc = make([]addrKey, 0, n), make([]dimAcc, 0, n)
	c.dst.keys, c.dst.acc = make([]addrKey, 0, n), make([]dimAcc, 0, n)
}

// Add counts one flow.
func (c *Collector) Add(r *store.Row) {
	f := &r.Flow
	c.flows++
	assured := f.Status&flow.StatusAssured != 0
	if assured {
		c.assured++
	}
	id := classOf(f)
	ca := &c.classes[id]
	ca.flows++
	if assured {
		ca.assured++
	}
	c.timer(id, ca, r)

	fresh := !c.windowStart.IsZero() && !r.FirstSeen.Before(c.windowStart)
	if fresh {
		c.fresh++
	}
	var dport uint16
	if flow.HasPorts(f.Proto) {
		dport = f.Orig.DstPort
	}
	c.dport.add(uint32(f.Proto)<<16|uint32(dport), fresh)
	if f.Orig.Dst.IsValid() {
		c.dst.add(f.Orig.Dst, fresh)
	}
	if f.Orig.Src.IsValid() {
		c.src.add(f.Orig.Src, fresh)
	}
	c.zone.add(uint32(f.Zone), fresh)
	c.mark.add(f.Mark, fresh)
}

// timer files the entry's idle time in its class's histograms.
func (c *Collector) timer(id int, ca *classAcc, r *store.Row) {
	if r.Expires.IsZero() {
		ca.unknown++
		return
	}
	rem := int64(r.Expires.Sub(c.now) / time.Second)
	rem = max(rem, 0)
	if rem <= 60 {
		ca.expiring++
	}
	v := c.value[id]
	if v < 0 {
		return
	}
	long := rem > 60
	if classDefs[id].tcp && c.capValue >= 0 && v > c.capValue && rem <= c.capValue {
		if ca.capped == nil {
			ca.capped = make([]int32, c.capValue+1)
			ca.cappedLong = make([]int32, c.capValue+1)
		}
		idle := c.capValue - rem
		ca.capped[idle]++
		if long {
			ca.cappedLong[idle]++
		}
		return
	}
	if ca.idle == nil {
		n := min(v, maxHistogram-1) + 1
		ca.idle = make([]int32, n)
		ca.idleLong = make([]int32, n)
	}
	idle := v - rem
	if idle < 0 {
		idle = 0
		ca.above++
	}
	idle = min(idle, int64(len(ca.idle)-1))
	ca.idle[idle]++
	if long {
		ca.idleLong[idle]++
	}
}

// suffix sums h[from:] (from clamped to the histogram).
func suffix(h []int32, from int64) int {
	from = max(from, 0)
	n := 0
	for i := from; i < int64(len(h)); i++ {
		n += int(h[i])
	}
	return n
}

// whatIf returns how many entries of class id value w frees now and within
// 60 s (see the package doc).
func (c *Collector) whatIf(id int, w int64) (now, within60 int) {
	ca := &c.classes[id]
	v := c.value[id]
	if v < 0 || w >= v {
		return 0, 0
	}
	now = suffix(ca.idle, w)
	within60 = suffix(ca.idleLong, w-60)
	if ca.capped != nil {
		cw := min(w, c.capValue)
		now += suffix(ca.capped, cw)
		within60 += suffix(ca.cappedLong, cw-60)
	}
	return now, within60
}
