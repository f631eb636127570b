package tracker

import (
	"net/netip"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// CtInfo is what the kernel's state match (`ct state`) sees for a packet.
type CtInfo uint8

// Packet classifications.
const (
	CtNew CtInfo = iota
	CtEstablished
	CtRelated
	CtInvalid
	CtUntracked
)

var ctInfoNames = [...]string{"NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"}

// String returns the state match name (NEW, ESTABLISHED, RELATED, INVALID,
// UNTRACKED).
func (c CtInfo) String() string {
	if int(c) < len(ctInfoNames) {
		return ctInfoNames[c]
	}
	return "CtInfo(?)"
}

// Verdict is the tracker's classification of one packet.
type Verdict struct {
	CtInfo CtInfo
	// Reply says the packet went in the flow's reply direction.
	Reply bool
	// Reason says why the packet is INVALID, or why a packet the router
	// model routes nowhere is dropped (one of a fixed set of constant
	// strings).
	Reason string
	// Dropped says the kernel would not let the packet through: its IP
	// layer rejects it before conntrack (not counted in the conntrack
	// statistics), the table is full, the FTP helper saw a partial
	// command, or (Config.Router) routing drops it after conntrack saw it.
	Dropped bool
	// Key is the flow the packet belongs to (for RELATED ICMP errors: the
	// flow it relates to); zero for INVALID packets that match no flow and
	// for new flows routing drops before their entry is confirmed.
	Key flow.Key
	// Unseen says the packet never reaches the `ct state` match at
	// prerouting: the IP layer drops it first, conntrack itself drops it
	// (table full), or the capture cut it inside its headers. Such packets
	// are not counted in Verdicts.
	Unseen bool
}

// Tracker is an in-process conntrack table. Create it with New.
type Tracker struct {
	cfg       Config
	max       int
	expectMax int
	tcpTO     [tcpTimeoutSlots]int64
	to        Timeouts

	table index
	// all lists every confirmed entry, oldest first; unassured lists the
	// confirmed entries without ASSURED, oldest first (early drop order).
	allHead, allTail *conn
	uaHead, uaTail   *conn
	count            int
	free             *conn
	nextID           uint32
	nextExpectID     uint32

	expects []expectation

	events   []flow.Event
	stats    flow.TableStats
	reasons  map[string]uint64
	verdicts flow.Verdicts
	// cur is the confirmed entry the packet being handled is counted on
	// (its flow's per-verdict counts), nil when none.
	cur *conn

	now   time.Time
	nowNS int64
}

// New returns an empty tracker configured by cfg.
func New(cfg Config) *Tracker {
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	if cfg.MaxRetrans < 0 {
		cfg.MaxRetrans = 0
	}
	t := &Tracker{
		cfg:     cfg,
		max:     cfg.Max,
		to:      cfg.Timeouts,
		table:   newIndex(),
		reasons: make(map[string]uint64),
		nextID:  1,
	}
	// nf_ct_expect_max = 4 * max(1, buckets/256), with buckets = max.
	t.expectMax = 4 * max(1, cfg.Max/256)
	to := cfg.Timeouts
	t.tcpTO = [tcpTimeoutSlots]int64{
		flow.TCPNone:        int64(to.TCPSynSent),
		flow.TCPSynSent:     int64(to.TCPSynSent),
		flow.TCPSynRecv:     int64(to.TCPSynRecv),
		flow.TCPEstablished: int64(to.TCPEstablished),
		flow.TCPFinWait:     int64(to.TCPFinWait),
		flow.TCPCloseWait:   int64(to.TCPCloseWait),
		flow.TCPLastAck:     int64(to.TCPLastAck),
		flow.TCPTimeWait:    int64(to.TCPTimeWait),
		flow.TCPClose:       int64(to.TCPClose),
		flow.TCPSynSent2:    int64(to.TCPSynSent2),
		tcpSlotRetrans:      int64(to.TCPRetrans),
		tcpSlotUnack:        int64(to.TCPUnack),
	}
	t.stats.Max = uint64(cfg.Max)
	t.stats.Accounting = true
	return t
}

// Len returns the number of entries in the table (expired entries not yet
// removed by Expire or a lookup included).
func (t *Tracker) Len() int { return t.count }

// Stats returns the table statistics as the kernel keeps them: Count, Max,
// Invalid (packets conntrack found invalid), Drop (packets dropped because
// the table was full), EarlyDrop (entries evicted to make room), Error (ICMP
// errors that quote no tracked flow or are malformed). InvalidReasons counts
// every INVALID verdict by reason, including those the kernel counts as
// error and those its IP layer drops before conntrack, so its sum can
// exceed Invalid.
func (t *Tracker) Stats() flow.TableStats {
	s := t.stats
	s.Time = t.now
	s.Count = uint64(t.count)
	s.InvalidReasons = make(map[string]uint64, len(t.reasons))
	for k, v := range t.reasons {
		s.InvalidReasons[k] = v
	}
	s.Verdicts, s.HasVerdicts = t.verdicts, true
	s.Expectations, s.HasExpectations = t.AppendExpectations(nil, t.now), true
	return s
}

// Verdicts returns the packets handled so far by verdict (the ct state the
// kernel's `ct state` match gives them at prerouting); packets that never
// reach that match (Verdict.Unseen) are not counted.
func (t *Tracker) Verdicts() flow.Verdicts { return t.verdicts }

// AppendEvents appends the events that happened since the last call to dst
// and returns it; the tracker forgets them. Call it regularly: events
// accumulate until then.
func (t *Tracker) AppendEvents(dst []flow.Event) []flow.Event {
	dst = append(dst, t.events...)
	clear(t.events)
	t.events = t.events[:0]
	return dst
}

// AppendFlows appends the entries alive at now (oldest first), with their
// timeouts as of now, to dst and returns it. Entries that expired by now are
// left out (Expire removes them).
func (t *Tracker) AppendFlows(dst []flow.Flow, now time.Time) []flow.Flow {
	ns := now.UnixNano()
	for c := t.allHead; c != nil; c = c.allNext {
		if c.expires-ns <= 0 {
			continue
		}
		dst = append(dst, c.flow(ns))
	}
	return dst
}

// Expire removes the entries whose timeout passed as of now (emitting a
// destroy event for each) and forgets expired expectations.
func (t *Tracker) Expire(now time.Time) {
	t.setNow(now)
	for c := t.allHead; c != nil; {
		next := c.allNext
		if c.expires-t.nowNS <= 0 {
			t.destroy(c)
		}
		c = next
	}
	t.expireExpectations()
}

func (t *Tracker) setNow(now time.Time) {
	t.now = now
	t.nowNS = now.UnixNano()
}

// countReason records an INVALID verdict's reason.
func (t *Tracker) countReason(reason string) { t.reasons[reason]++ }

// invalid counts a packet conntrack finds invalid (stat invalid), on c too
// when it belongs to a confirmed entry.
func (t *Tracker) invalid(c *conn, reason string) {
	t.stats.Invalid++
	t.countReason(reason)
	if c != nil && c.confirmed {
		t.cur = c
		c.invalid++
		c.invalidReason = reason
	}
}

// icmpFailure counts an ICMP error the error handler rejects (stat error).
func (t *Tracker) icmpFailure(c *conn, reason string) Verdict {
	t.stats.Error++
	t.countReason(reason)
	v := Verdict{CtInfo: CtInvalid, Reason: reason}
	if c != nil {
		t.cur = c
		c.invalid++
		c.invalidReason = reason
		v.Key = c.key
	}
	return v
}

// dropped reports a packet the IP layer drops before conntrack.
func (t *Tracker) dropped(reason string) Verdict {
	t.countReason(reason)
	return Verdict{CtInfo: CtInvalid, Reason: reason, Dropped: true, Unseen: true}
}

// Handle tracks one datagram seen at now and returns its classification.
// now must not go backwards by more than the timeouts involved.
func (t *Tracker) Handle(now time.Time, d *Packet) Verdict {
	t.cur = nil
	v := t.handle(now, d)
	if !v.Unseen {
		t.verdicts[v.CtInfo]++
		// A destroyed entry (an unreplied RST) is no longer confirmed.
		if c := t.cur; c != nil && c.confirmed {
			c.verdicts[v.CtInfo]++
		}
	}
	t.cur = nil
	return v
}

func (t *Tracker) handle(now time.Time, d *Packet) Verdict {
	t.setNow(now)
	var p pkt
	switch st, reason := parseIP(d, &p); st {
	case parseDropped:
		return t.dropped(reason)
	case parseInvalid:
		t.invalid(nil, reason)
		return Verdict{CtInfo: CtInvalid, Reason: reason}
	}
	fate, routeReason := routeKeep, ""
	if t.cfg.Router {
		if fate, routeReason = routeOf(&p); fate == routeDropEarly {
			return t.dropped(routeReason)
		}
	}
	p.zone = d.Zone
	p.csumOK = d.ChecksumOK || !t.cfg.Checksum || p.truncated
	if (p.proto == flow.ProtoICMP && p.family == flow.FamilyIPv4) ||
		(p.proto == flow.ProtoICMPv6 && p.family == flow.FamilyIPv6) {
		if v, done := t.icmpError(&p); done {
			return v
		}
	}
	var key flow.Key
	key.Proto = p.proto
	key.Zone = p.zone
	switch ok, cut := l4Tuple(&p, p.data, p.l4, &key.Orig); {
	case cut:
		return t.dropped(reasonTruncatedCapture)
	case !ok:
		reason := reasonShortL4
		if p.proto == flow.ProtoGRE {
			reason = reasonGREProto
		}
		t.invalid(nil, reason)
		return Verdict{CtInfo: CtInvalid, Reason: reason}
	}
	if headerCut(&p) {
		return t.dropped(reasonTruncatedCapture)
	}
	key.Orig.Src, key.Orig.Dst = p.src, p.dst

	for range 2 { // a TCP reopen repeats the lookup once
		c, reply := t.lookup(&key)
		isNew := c == nil
		if isNew {
			if !invertible(key.Proto, key.Orig) {
				t.invalid(nil, reasonNoInverse)
				return Verdict{CtInfo: CtInvalid, Reason: reasonNoInverse}
			}
			if !t.makeRoom() {
				t.stats.Drop++
				t.countReason(reasonTableFull)
				return Verdict{CtInfo: CtInvalid, Reason: reasonTableFull, Dropped: true, Unseen: true}
			}
			c = t.newConn(&p, key)
		}
		info := CtNew
		switch {
		case reply:
			info = CtEstablished
		case c.status&flow.StatusSeenReply != 0:
			info = CtEstablished
		case c.status&flow.StatusExpected != 0:
			info = CtRelated
		}
		r := t.l4Packet(c, &p, reply)
		switch r.kind {
		case resRepeat:
			t.destroy(c)
			continue
		case resInvalid:
			if isNew {
				t.release(c)
				t.invalid(nil, r.reason)
				return Verdict{CtInfo: CtInvalid, Reason: r.reason}
			}
			t.invalid(c, r.reason)
			return Verdict{CtInfo: CtInvalid, Reason: r.reason, Key: c.key}
		}
		v := Verdict{CtInfo: info, Reply: reply, Key: c.key}
		t.cur = c
		if r.kind == resKill {
			t.destroy(c)
			return v
		}
		changed := r.changed
		if reply && c.status&flow.StatusSeenReply == 0 {
			c.status |= flow.StatusSeenReply
			changed = true
		}
		if fate == routeDrop {
			// Routing drops the packet after PRE_ROUTING: it never
			// reaches nf_confirm, so a new entry is not confirmed and
			// the helper (run at confirmation) does not see it.
			if isNew {
				t.release(c)
				v.Key = flow.Key{}
			} else if changed {
				t.emit(flow.EventUpdate, c)
			}
			v.Dropped, v.Reason = true, routeReason
			return v
		}
		if isNew {
			t.confirm(c)
		} else if changed {
			t.emit(flow.EventUpdate, c)
		}
		if c.helper && t.ftpHelp(c, &p, reply, info) {
			v.Dropped = true
		}
		return v
	}
	// Unreachable: the second round always finds no entry.
	return Verdict{CtInfo: CtInvalid}
}

// lookup finds the live entry with tuple key in either direction. An entry
// found expired is destroyed and not returned.
func (t *Tracker) lookup(key *flow.Key) (*conn, bool) {
	// The reply hash entry is inserted last and found first, so a tuple that
	// is its own inverse is in the reply direction, as in the kernel
	// (index.find says so).
	c, reply := t.table.find(key.Proto, key.Zone, &key.Orig)
	if c == nil {
		return nil, false
	}
	if c.expires-t.nowNS <= 0 {
		t.destroy(c)
		return nil, false
	}
	return c, reply
}

// invertible reports whether the kernel can build a reply tuple.
func invertible(proto uint8, t flow.Tuple) bool {
	if !flow.IsICMP(proto) {
		return true
	}
	_, ok := flow.ICMPInverseType(proto, t.Type)
	return ok
}

// makeRoom makes room for one more entry when the table is full by evicting
// the oldest unassured entry (early drop). It reports false when the table
// is full and nothing can be evicted.
func (t *Tracker) makeRoom() bool {
	if t.count+1 <= t.max {
		return true
	}
	for c := t.uaHead; c != nil; c = t.uaHead {
		if c.expires-t.nowNS <= 0 {
			t.destroy(c) // expired: garbage, not an early drop
			if t.count+1 <= t.max {
				return true
			}
			continue
		}
		t.destroy(c)
		t.stats.EarlyDrop++
		return true
	}
	return false
}

// newConn allocates an unconfirmed entry for the original tuple key.
func (t *Tracker) newConn(p *pkt, key flow.Key) *conn {
	c := t.free
	if c != nil {
		t.free = c.allNext
		*c = conn{}
	} else {
		c = new(conn)
	}
	c.key = key
	c.reply = key.Orig.Reverse(key.Proto)
	c.family = p.family
	if t.findExpectation(c) {
		c.status |= flow.StatusExpected
	}
	if key.Proto == flow.ProtoTCP && t.ftpPort(key.Orig.DstPort) {
		c.helper = true
		c.status |= flow.StatusHelper
	}
	return c
}

// release returns an unconfirmed entry to the free list.
func (t *Tracker) release(c *conn) {
	*c = conn{}
	c.allNext = t.free
	t.free = c
}

// confirm inserts a new entry into the table (nf_confirm) and reports it.
func (t *Tracker) confirm(c *conn) {
	c.confirmed = true
	c.status |= flow.StatusConfirmed
	c.id = t.nextID
	t.nextID++
	t.table.insert(c)
	t.count++
	c.allPrev = t.allTail
	if t.allTail != nil {
		t.allTail.allNext = c
	} else {
		t.allHead = c
	}
	t.allTail = c
	if c.status&flow.StatusAssured == 0 {
		t.uaPush(c)
	}
	t.emit(flow.EventNew, c)
}

// destroy removes a confirmed entry (emitting its destroy event) or releases
// an unconfirmed one.
func (t *Tracker) destroy(c *conn) {
	if !c.confirmed {
		t.release(c)
		return
	}
	t.emit(flow.EventDestroy, c)
	t.table.remove(c)
	t.count--
	if c.allPrev != nil {
		c.allPrev.allNext = c.allNext
	} else {
		t.allHead = c.allNext
	}
	if c.allNext != nil {
		c.allNext.allPrev = c.allPrev
	} else {
		t.allTail = c.allPrev
	}
	t.uaRemove(c)
	t.removeExpectations(c)
	t.release(c)
}

// setAssured sets ASSURED and takes c off the early-drop list.
func (t *Tracker) setAssured(c *conn) {
	c.status |= flow.StatusAssured
	t.uaRemove(c)
}

func (t *Tracker) uaPush(c *conn) {
	c.inUA = true
	c.uaPrev = t.uaTail
	c.uaNext = nil
	if t.uaTail != nil {
		t.uaTail.uaNext = c
	} else {
		t.uaHead = c
	}
	t.uaTail = c
}

func (t *Tracker) uaRemove(c *conn) {
	if !c.inUA {
		return
	}
	c.inUA = false
	if c.uaPrev != nil {
		c.uaPrev.uaNext = c.uaNext
	} else {
		t.uaHead = c.uaNext
	}
	if c.uaNext != nil {
		c.uaNext.uaPrev = c.uaPrev
	} else {
		t.uaTail = c.uaPrev
	}
	c.uaPrev, c.uaNext = nil, nil
}

// refresh accounts the packet to c and sets its timeout
// (nf_ct_refresh_acct).
func (t *Tracker) refresh(c *conn, p *pkt, reply bool, timeout int64) {
	c.expires = t.nowNS + timeout
	t.account(c, p, reply)
}

// account adds the packet to c's counters.
func (t *Tracker) account(c *conn, p *pkt, reply bool) {
	if reply {
		c.counters.ReplyPackets++
		c.counters.ReplyBytes += uint64(p.length)
	} else {
		c.counters.OrigPackets++
		c.counters.OrigBytes += uint64(p.length)
	}
}

// emit queues an event about c.
func (t *Tracker) emit(typ flow.EventType, c *conn) {
	t.events = append(t.events, flow.Event{Type: typ, Time: t.now, Flow: c.flow(t.nowNS)})
}

// conn is one entry.
type conn struct {
	id       uint32
	key      flow.Key // original tuple, protocol, zone
	reply    flow.Tuple
	family   flow.Family
	status   flow.Status
	expires  int64 // Unix nanoseconds
	counters flow.Counters

	invalid       uint32
	invalidReason string
	master        *flow.Tuple
	verdicts      flow.Verdicts

	confirmed bool
	inUA      bool
	helper    bool // the FTP helper is attached

	tcp         tcpConn
	udpStreamTS int64
	sctp        sctpConn
	ftp         ftpState
	nexpect     int

	allPrev, allNext *conn
	uaPrev, uaNext   *conn
}

// flow returns c as a flow.Flow with its timeout as of nowNS.
func (c *conn) flow(nowNS int64) flow.Flow {
	f := flow.Flow{
		ID:            c.id,
		Family:        c.family,
		Proto:         c.key.Proto,
		Status:        c.status,
		Orig:          c.key.Orig,
		Reply:         c.reply,
		Zone:          c.key.Zone,
		HasCounters:   true,
		Counters:      c.counters,
		Master:        c.master,
		Invalid:       c.invalid,
		InvalidReason: c.invalidReason,
		Verdicts:      c.verdicts,
		Use:           1 + uint32(c.nexpect),
	}
	if left := c.expires - nowNS; left > 0 {
		f.Timeout = uint32(left / int64(time.Second))
	}
	switch c.key.Proto {
	case flow.ProtoTCP:
		f.TCPState = c.tcp.state
	case flow.ProtoSCTP:
		f.SCTPState = flow.SCTPState(c.sctp.state)
	}
	if c.helper {
		f.Helper = "ftp"
	}
	return f
}

// l4Tuple fills the L4 part of a tuple from the header at off of data (of
// the datagram p): ports, or ICMP type, code and id. ok is false when the
// header is too short; cut says it exists on the wire but was not captured.
func l4Tuple(p *pkt, data []byte, off int, tu *flow.Tuple) (ok, cut bool) {
	need := 0
	switch {
	case p.proto == flow.ProtoDCCP:
		// This kernel (6.16+) has no DCCP tracker: generic, no ports.
		return true, false
	case p.proto == flow.ProtoGRE:
		return greTuple(p, data, off, tu)
	case flow.HasPorts(p.proto):
		need = 4
	case flow.IsICMP(p.proto):
		need = 8
	}
	if need == 0 {
		return true, false
	}
	if off+need > len(data) {
		return false, off+need <= p.length
	}
	b := data[off:]
	if need == 4 {
		tu.SrcPort = uint16(b[0])<<8 | uint16(b[1])
		tu.DstPort = uint16(b[2])<<8 | uint16(b[3])
		return true, false
	}
	tu.Type, tu.Code = b[0], b[1]
	tu.ID = uint16(b[4])<<8 | uint16(b[5])
	return true, false
}

// greTuple is gre_pkt_to_tuple: only the PPTP enhanced GRE header
// (version 1) has keys, the call ID as the destination key (the source key
// comes from the PPTP helper's keymap, which we do not have: 0). Version 1
// with a protocol other than PPP has no tuple (stat invalid); other versions,
// or a version 1 header cut short, get zero keys.
func greTuple(p *pkt, data []byte, off int, tu *flow.Tuple) (ok, cut bool) {
	if off+4 > len(data) || data[off+1]&7 != 1 {
		return true, false
	}
	if off+8 > len(data) {
		return true, false
	}
	if data[off+2] != 0x88 || data[off+3] != 0x0b {
		return false, false
	}
	tu.DstPort = uint16(data[off+6])<<8 | uint16(data[off+7])
	return true, false
}

func addr4(b []byte) netip.Addr  { return netip.AddrFrom4([4]byte(b)) }
func addr16(b []byte) netip.Addr { return netip.AddrFrom16([16]byte(b)) }
