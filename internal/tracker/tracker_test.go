package tracker

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/csum"
	"github.com/conntop/conntop/internal/flow"
)

const (
	cli = "10.0.0.1"
	srv = "10.0.0.2"
	s   = time.Second
)

const (
	fSYN    = thSYN
	fSYNACK = thSYN | thACK
	fACK    = thACK
	fPSHACK = thPSH | thACK
	fFINACK = thFIN | thACK
	fRST    = thRST
	fRSTACK = thRST | thACK
)

// c2s and s2c build TCP segments between cli:40000 and srv:80.
func c2s(seq, ack uint32, fl uint8, payload string) []byte {
	return ip4(cli, srv, flow.ProtoTCP, tcpHdr(40000, 80, seq, ack, fl, 1000, nil, []byte(payload)))
}
func s2c(seq, ack uint32, fl uint8, payload string) []byte {
	return ip4(srv, cli, flow.ProtoTCP, tcpHdr(80, 40000, seq, ack, fl, 1000, nil, []byte(payload)))
}

// handshake is a complete three-way handshake (client ISN 1000, server 5000).
var handshake = []step{
	{at: 0, data: c2s(1000, 0, fSYN, ""), want: CtNew, check: expectFlow(flow.TCPSynSent, 0, 120)},
	{at: s / 10, data: s2c(5000, 1001, fSYNACK, ""), want: CtEstablished, reply: true,
		check: expectFlow(flow.TCPSynRecv, flow.StatusSeenReply, 60)},
	{at: s / 5, data: c2s(1001, 5001, fACK, ""), want: CtEstablished,
		check: expectFlow(flow.TCPEstablished, flow.StatusSeenReply|flow.StatusAssured, 432000)},
}

func seq(steps ...[]step) []step {
	var out []step
	for _, s := range steps {
		out = append(out, s...)
	}
	return out
}

func TestTCPLifecycle(t *testing.T) {
	const both = flow.StatusSeenReply | flow.StatusAssured
	tr := New(DefaultConfig())
	run(t, tr, seq(handshake, []step{
		{at: 1 * s, data: c2s(1001, 5001, fPSHACK, "hello"), want: CtEstablished,
			check: expectFlow(flow.TCPEstablished, both, 300)}, // unacknowledged data
		{at: 1 * s, data: s2c(5001, 1006, fACK, ""), want: CtEstablished, reply: true,
			check: expectFlow(flow.TCPEstablished, both, 432000)},
		{at: 2 * s, data: c2s(1006, 5001, fFINACK, ""), want: CtEstablished,
			check: expectFlow(flow.TCPFinWait, both, 120)},
		{at: 2 * s, data: s2c(5001, 1007, fACK, ""), want: CtEstablished, reply: true,
			check: expectFlow(flow.TCPCloseWait, both, 60)},
		{at: 3 * s, data: s2c(5001, 1007, fFINACK, ""), want: CtEstablished, reply: true,
			check: expectFlow(flow.TCPLastAck, both, 30)},
		{at: 3 * s, data: c2s(1007, 5002, fACK, ""), want: CtEstablished,
			check: expectFlow(flow.TCPTimeWait, both, 120)},
	}))
	f := only(t, tr, t0.Add(3*s))
	if f.Counters != (flow.Counters{OrigPackets: 5, OrigBytes: 5*40 + 5, ReplyPackets: 4, ReplyBytes: 4 * 40}) {
		t.Fatalf("counters %+v", f.Counters)
	}
	tr.AppendEvents(nil)
	// A new SYN reopens the closed connection as a fresh entry.
	run(t, tr, []step{{at: 4 * s, data: c2s(90000, 0, fSYN, ""), want: CtNew,
		check: expectFlow(flow.TCPSynSent, 0, 120)}})
	evs := tr.AppendEvents(nil)
	if len(evs) != 2 || evs[0].Type != flow.EventDestroy || evs[1].Type != flow.EventNew {
		t.Fatalf("reopen events: %+v", evs)
	}
	if evs[0].Flow.TCPState != flow.TCPTimeWait || evs[0].Flow.Counters.OrigPackets != 5 {
		t.Fatalf("destroy event flow: %+v", evs[0].Flow)
	}
}

func TestTCPEvents(t *testing.T) {
	tr := New(DefaultConfig())
	run(t, tr, handshake)
	evs := tr.AppendEvents(nil)
	var types []flow.EventType
	for _, e := range evs {
		types = append(types, e.Type)
	}
	want := []flow.EventType{flow.EventNew, flow.EventUpdate, flow.EventUpdate}
	if len(types) != len(want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("events %v, want %v", types, want)
		}
	}
	if !evs[2].Flow.Assured() || evs[0].Flow.Replied() || !evs[1].Flow.Replied() {
		t.Fatalf("event flows: %+v", evs)
	}
	// A packet that changes nothing emits nothing.
	tr.Handle(t0.Add(s), &Packet{Data: c2s(1001, 5001, fACK, "")})
	if evs := tr.AppendEvents(nil); len(evs) != 0 {
		t.Fatalf("unexpected events %+v", evs)
	}
}

func TestTCPRefused(t *testing.T) {
	tr := New(DefaultConfig())
	run(t, tr, []step{
		{at: 0, data: c2s(1000, 0, fSYN, ""), want: CtNew},
		// RST/ACK answering the SYN: the unreplied entry is deleted at once.
		{at: s / 10, data: s2c(0, 1001, fRSTACK, ""), want: CtEstablished, reply: true, check: empty},
	})
	evs := tr.AppendEvents(nil)
	if len(evs) != 2 || evs[1].Type != flow.EventDestroy || evs[1].Flow.Counters.ReplyPackets != 1 {
		t.Fatalf("events %+v", evs)
	}
}

func TestTCPInvalid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		data   []byte
		reason string
	}{
		{"syn-fin", c2s(1, 0, thSYN|thFIN, ""), reasonTCPFlags},
		{"bare-fin", c2s(1, 0, thFIN, ""), reasonTCPFlags},
		{"no-flags", c2s(1, 0, 0, ""), reasonTCPFlags},
		{"xmas", c2s(1, 0, thFIN|thPSH|thURG, ""), reasonTCPFlags},
		{"syn-rst", c2s(1, 0, thSYN|thRST, ""), reasonTCPFlags},
		{"new-synack", c2s(1, 1, fSYNACK, ""), reasonTCPNew},
		{"new-finack", c2s(1, 1, fFINACK, ""), reasonTCPNew},
		{"new-rst", c2s(1, 1, fRSTACK, "data"), reasonTCPNew},
		{"bad-checksum", corrupt(c2s(1, 0, fSYN, "x")), reasonTCPChecksum},
		{"short-doff", func() []byte {
			b := c2s(1, 0, fSYN, "")
			b[20+12] = 4 << 4
			return b
		}(), reasonTCPTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(DefaultConfig())
			run(t, tr, []step{{data: tc.data, want: CtInvalid, reason: tc.reason, check: empty}})
			if st := tr.Stats(); st.Invalid != 1 || st.InvalidReasons[tc.reason] != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestChecksumSwitches(t *testing.T) {
	bad := corrupt(c2s(1, 0, fSYN, "x"))
	tr := New(DefaultConfig())
	if v := tr.Handle(t0, &Packet{Data: bad, ChecksumOK: true}); v.CtInfo != CtNew {
		t.Fatalf("ChecksumOK: %+v", v)
	}
	cfg := DefaultConfig()
	cfg.Checksum = false
	tr = New(cfg)
	if v := tr.Handle(t0, &Packet{Data: bad}); v.CtInfo != CtNew {
		t.Fatalf("Checksum off: %+v", v)
	}
}

func TestTCPLoosePickup(t *testing.T) {
	tr := New(DefaultConfig())
	run(t, tr, []step{
		{data: c2s(7000, 9000, fACK, ""), want: CtNew, check: expectFlow(flow.TCPEstablished, 0, 300)},
		{at: s, data: s2c(9000, 7000, fACK, ""), want: CtEstablished, reply: true,
			check: expectFlow(flow.TCPEstablished, flow.StatusSeenReply, 300)},
		{at: 2 * s, data: c2s(7000, 9000, fACK, ""), want: CtEstablished,
			check: expectFlow(flow.TCPEstablished, flow.StatusSeenReply|flow.StatusAssured, 432000)},
	})
	cfg := DefaultConfig()
	cfg.Loose = false
	run(t, New(cfg), []step{{data: c2s(7000, 9000, fACK, ""), want: CtInvalid, reason: reasonTCPNew}})
}

func TestTCPSimultaneousOpen(t *testing.T) {
	tr := New(DefaultConfig())
	run(t, tr, []step{
		{data: c2s(100, 0, fSYN, ""), want: CtNew},
		{data: s2c(200, 0, fSYN, ""), want: CtEstablished, reply: true,
			check: expectFlow(flow.TCPSynSent2, flow.StatusSeenReply, 120)},
		{data: c2s(100, 201, fSYNACK, ""), want: CtEstablished,
			check: expectFlow(flow.TCPSynRecv, flow.StatusSeenReply, 60)},
		{data: s2c(201, 101, fACK, ""), want: CtEstablished, reply: true,
			check: expectFlow(flow.TCPEstablished, flow.StatusSeenReply|flow.StatusAssured, 432000)},
	})
}

func TestTCPWindowAndRST(t *testing.T) {
	const both = flow.StatusSeenReply | flow.StatusAssured
	tr := New(DefaultConfig())
	run(t, tr, seq(handshake, []step{
		// Far beyond the receiver's window: INVALID, counted on the flow.
		{at: s, data: c2s(1001+1<<20, 5001, fPSHACK, "x"), want: CtInvalid, reason: reasonTCPSeqOver},
		// ACK of data never sent.
		{at: s, data: s2c(5001, 1001+1<<20, fACK, ""), want: CtInvalid, reason: reasonTCPAckOver},
		// RST below the acknowledged sequence.
		{at: s, data: c2s(500, 0, fRST, ""), want: CtInvalid, reason: reasonTCPRST},
		// RST at the exact sequence closes.
		{at: s, data: c2s(1001, 0, fRST, ""), want: CtEstablished, check: expectFlow(flow.TCPClose, both, 10)},
	}))
	f := only(t, tr, t0.Add(s))
	if f.Invalid != 3 || f.InvalidReason != reasonTCPRST {
		t.Fatalf("flow invalid %d %q", f.Invalid, f.InvalidReason)
	}
	if st := tr.Stats(); st.Invalid != 3 {
		t.Fatalf("stats invalid %d", st.Invalid)
	}
	cfg := DefaultConfig()
	cfg.BeLiberal = true
	run(t, New(cfg), seq(handshake, []step{
		{at: s, data: c2s(1001+1<<20, 5001, fPSHACK, "x"), want: CtEstablished},
	}))
}

func TestTCPRetransCap(t *testing.T) {
	const both = flow.StatusSeenReply | flow.StatusAssured
	tr := New(DefaultConfig())
	ack := c2s(1001, 5001, fACK, "")
	run(t, tr, seq(handshake, []step{
		// The handshake's ACK was the first; its third repetition caps the timeout.
		{at: s, data: ack, want: CtEstablished, check: expectFlow(flow.TCPEstablished, both, 432000)},
		{at: s, data: ack, want: CtEstablished, check: expectFlow(flow.TCPEstablished, both, 432000)},
		{at: s, data: ack, want: CtEstablished, check: expectFlow(flow.TCPEstablished, both, 300)},
		{at: s, data: c2s(1001, 5001, fPSHACK, "x"), want: CtEstablished, check: expectFlow(flow.TCPEstablished, both, 300)},
		{at: s, data: s2c(5001, 1002, fACK, ""), want: CtEstablished, reply: true,
			check: expectFlow(flow.TCPEstablished, both, 432000)},
	}))
}

func TestUDP(t *testing.T) {
	up := ip4(cli, srv, flow.ProtoUDP, udpHdr(5353, 53, []byte("query")))
	down := ip4(srv, cli, flow.ProtoUDP, udpHdr(53, 5353, []byte("answer")))
	tr := New(DefaultConfig())
	run(t, tr, []step{
		{at: 0, data: up, want: CtNew, check: expectFlow(flow.TCPNone, 0, 30)},
		{at: s, data: down, want: CtEstablished, reply: true, check: expectFlow(flow.TCPNone, flow.StatusSeenReply, 30)},
		{at: s * 3 / 2, data: up, want: CtEstablished, check: expectFlow(flow.TCPNone, flow.StatusSeenReply, 30)},
		{at: 3 * s, data: up, want: CtEstablished,
			check: expectFlow(flow.TCPNone, flow.StatusSeenReply|flow.StatusAssured, 120)},
	})
	noSum := append([]byte(nil), up...)
	binary.BigEndian.PutUint16(noSum[26:], 0)
	noSum[len(noSum)-1] ^= 1 // no checksum: not checked
	badLen := append([]byte(nil), up...)
	binary.BigEndian.PutUint16(badLen[24:], 200)
	for _, tc := range []struct {
		name   string
		data   []byte
		want   CtInfo
		reason string
	}{
		{"bad-checksum", corrupt(up), CtInvalid, reasonUDPChecksum},
		{"zero-checksum", noSum, CtNew, ""},
		{"bad-length", badLen, CtInvalid, reasonUDPLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run(t, New(DefaultConfig()), []step{{data: tc.data, want: tc.want, reason: tc.reason}})
		})
	}
}

func TestICMP(t *testing.T) {
	req := ip4(cli, srv, flow.ProtoICMP, icmpHdr(8, 0, 77, 1, []byte("ping")))
	rep := ip4(srv, cli, flow.ProtoICMP, icmpHdr(0, 0, 77, 1, []byte("ping")))
	tr := New(DefaultConfig())
	run(t, tr, []step{
		{data: req, want: CtNew, check: expectFlow(flow.TCPNone, 0, 30)},
		{at: s, data: rep, want: CtEstablished, reply: true, check: expectFlow(flow.TCPNone, flow.StatusSeenReply, 30)},
		{at: 2 * s, data: req, want: CtEstablished, check: expectFlow(flow.TCPNone, flow.StatusSeenReply, 30)},
	})
	f := only(t, tr, t0)
	if f.Orig.Type != 8 || f.Reply.Type != 0 || f.Orig.ID != 77 {
		t.Fatalf("tuples %+v %+v", f.Orig, f.Reply)
	}
	run(t, New(DefaultConfig()), []step{
		{data: rep, want: CtInvalid, reason: reasonICMPNew, check: empty},
		{data: ip4(srv, cli, flow.ProtoICMP, icmpHdr(9, 0, 0, 0, nil)), want: CtInvalid, reason: reasonNoInverse},
	})
	tr = New(DefaultConfig())
	run(t, tr, []step{{data: corrupt(req), want: CtInvalid, reason: reasonICMPChecksum}})
	if st := tr.Stats(); st.Error != 1 || st.Invalid != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestICMPErrorRelated(t *testing.T) {
	query := ip4(cli, srv, flow.ProtoUDP, udpHdr(5353, 53, []byte("query")))
	unreach := func(from, to string, quoted []byte) []byte {
		return ip4(from, to, flow.ProtoICMP, icmpHdr(3, 3, 0, 0, quoted[:28]))
	}
	tr := New(DefaultConfig())
	run(t, tr, []step{
		{data: query, want: CtNew},
		{at: s, data: unreach(srv, cli, query), want: CtRelated, reply: true,
			check: expectFlow(flow.TCPNone, 0, 29)}, // no refresh, no SEEN_REPLY
		{at: s, data: unreach(srv, "10.0.0.9", query), want: CtInvalid, reason: reasonICMPOuterDst},
		{at: s, data: unreach(srv, cli, ip4(cli, "10.9.9.9", flow.ProtoUDP, udpHdr(1, 2, nil))),
			want: CtInvalid, reason: reasonICMPNoFlow},
	})
	f := only(t, tr, t0)
	if f.Counters.ReplyPackets != 0 || f.Counters.OrigPackets != 1 {
		t.Fatalf("counters %+v", f.Counters)
	}
	if st := tr.Stats(); st.Error != 2 || st.Invalid != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestICMPv6(t *testing.T) {
	const a, b = "fd00::1", "fd00::2"
	req := ip6(a, b, flow.ProtoICMPv6, 64, icmpHdr(128, 0, 5, 1, nil))
	rep := ip6(b, a, flow.ProtoICMPv6, 64, icmpHdr(129, 0, 5, 1, nil))
	ns := ip6(a, "ff02::1:ff00:2", flow.ProtoICMPv6, 255, icmpHdr(135, 0, 0, 0, make([]byte, 16)))
	tr := New(DefaultConfig())
	run(t, tr, []step{
		{data: ns, want: CtUntracked, check: empty},
		{data: req, want: CtNew},
		{data: rep, want: CtEstablished, reply: true, check: expectFlow(flow.TCPNone, flow.StatusSeenReply, 30)},
	})
	f := only(t, tr, t0)
	if f.Family != flow.FamilyIPv6 || f.Proto != flow.ProtoICMPv6 || f.Reply.Type != 129 {
		t.Fatalf("flow %+v", f)
	}
}

func TestGeneric(t *testing.T) {
	esp := ip4(cli, srv, 50, []byte{0, 0, 0, 1, 0, 0, 0, 1})
	back := ip4(srv, cli, 50, []byte{0, 0, 0, 2, 0, 0, 0, 1})
	run(t, New(DefaultConfig()), []step{
		{data: esp, want: CtNew, check: expectFlow(flow.TCPNone, 0, 600)},
		{at: s, data: back, want: CtEstablished, reply: true, check: expectFlow(flow.TCPNone, flow.StatusSeenReply, 600)},
	})
}

func TestIPLayerDrops(t *testing.T) {
	udp := ip4(cli, srv, flow.ProtoUDP, udpHdr(1, 2, []byte("x")))
	badSum := append([]byte(nil), udp...)
	badSum[10] ^= 0xFF
	frag := ip4(cli, srv, flow.ProtoUDP, udpHdr(1, 2, []byte("x")))
	frag[6] = 0x20 // MF
	binary.BigEndian.PutUint16(frag[10:], 0)
	binary.BigEndian.PutUint16(frag[10:], csum.Checksum(frag[:20]))
	long := append([]byte(nil), udp...)
	binary.BigEndian.PutUint16(long[2:], uint16(len(udp)+1))
	binary.BigEndian.PutUint16(long[10:], 0)
	binary.BigEndian.PutUint16(long[10:], csum.Checksum(long[:20]))
	for _, tc := range []struct {
		name   string
		data   []byte
		reason string
	}{
		{"empty", nil, reasonShortIP},
		{"version", []byte{0x55, 0, 0, 0}, reasonIPVersion},
		{"header-checksum", badSum, reasonIPChecksum},
		{"fragment", frag, reasonFragment},
		{"total-length", long, reasonIPLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(DefaultConfig())
			v := tr.Handle(t0, &Packet{Data: tc.data})
			if v.CtInfo != CtInvalid || !v.Dropped || v.Reason != tc.reason {
				t.Fatalf("verdict %+v", v)
			}
			if st := tr.Stats(); st.Invalid != 0 || st.InvalidReasons[tc.reason] != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
	// A caller that verified the header (internal/decode) says so and the
	// tracker does not check it again.
	t.Run("header-checksum-vouched", func(t *testing.T) {
		tr := New(DefaultConfig())
		if v := tr.Handle(t0, &Packet{Data: badSum, IPHeaderOK: true}); v.CtInfo != CtNew {
			t.Fatalf("verdict %+v", v)
		}
	})
}

func TestTruncatedCapture(t *testing.T) {
	full := ip4(cli, srv, flow.ProtoUDP, udpHdr(1, 2, make([]byte, 500)))
	tr := New(DefaultConfig())
	run(t, tr, nil)
	v := tr.Handle(t0, &Packet{Data: full[:40], Length: len(full)})
	if v.CtInfo != CtNew {
		t.Fatalf("verdict %+v", v)
	}
	if f := only(t, tr, t0); f.Counters.OrigBytes != uint64(len(full)) {
		t.Fatalf("bytes %d, want %d", f.Counters.OrigBytes, len(full))
	}
	// Cut inside the TCP header: cannot be tracked, not counted invalid.
	syn := c2s(1, 0, fSYN, "")
	if v := tr.Handle(t0, &Packet{Data: syn[:30], Length: len(syn)}); !v.Dropped || v.Reason != reasonTruncatedCapture {
		t.Fatalf("verdict %+v", v)
	}
	if tr.Stats().Invalid != 0 {
		t.Fatal("truncated capture counted invalid")
	}
}

func TestExpire(t *testing.T) {
	tr := New(DefaultConfig())
	tr.Handle(t0, &Packet{Data: ip4(cli, srv, flow.ProtoUDP, udpHdr(1, 2, nil))})
	tr.AppendEvents(nil)
	tr.Expire(t0.Add(29 * s))
	if tr.Len() != 1 {
		t.Fatal("expired too early")
	}
	tr.Expire(t0.Add(30 * s))
	if tr.Len() != 0 {
		t.Fatal("not expired")
	}
	if evs := tr.AppendEvents(nil); len(evs) != 1 || evs[0].Type != flow.EventDestroy {
		t.Fatalf("events %+v", evs)
	}
	// A lookup of an expired entry starts a new one.
	tr.Handle(t0, &Packet{Data: ip4(cli, srv, flow.ProtoUDP, udpHdr(1, 2, nil))})
	v := tr.Handle(t0.Add(31*s), &Packet{Data: ip4(cli, srv, flow.ProtoUDP, udpHdr(1, 2, nil))})
	if v.CtInfo != CtNew || tr.Len() != 1 {
		t.Fatalf("verdict %+v len %d", v, tr.Len())
	}
}

func TestTableFull(t *testing.T) {
	udp := func(port uint16) []byte { return ip4(cli, srv, flow.ProtoUDP, udpHdr(port, 53, nil)) }
	cfg := DefaultConfig()
	cfg.Max = 2
	tr := New(cfg)
	for _, p := range []uint16{1, 2, 3} {
		if v := tr.Handle(t0, &Packet{Data: udp(p)}); v.CtInfo != CtNew {
			t.Fatalf("port %d: %+v", p, v)
		}
	}
	fl := tr.AppendFlows(nil, t0)
	if len(fl) != 2 || fl[0].Orig.SrcPort != 2 || fl[1].Orig.SrcPort != 3 {
		t.Fatalf("flows %+v", fl)
	}
	if st := tr.Stats(); st.EarlyDrop != 1 || st.Count != 2 || st.Max != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Only assured entries: nothing to evict, the packet is dropped.
	cfg.Max = 1
	tr = New(cfg)
	run(t, tr, handshake)
	v := tr.Handle(t0.Add(s), &Packet{Data: udp(9)})
	if v.CtInfo != CtInvalid || !v.Dropped || v.Reason != reasonTableFull {
		t.Fatalf("verdict %+v", v)
	}
	if st := tr.Stats(); st.Drop != 1 || st.EarlyDrop != 0 || st.Count != 1 {
		t.Fatalf("stats %+v", st)
	}
}
