package tracker

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/csum"
	"github.com/conntop/conntop/internal/flow"
)

// Packet builders for tests: whole datagrams with correct checksums.

func tcpHdr(sport, dport uint16, seq, ack uint32, flags uint8, win uint16, opts, payload []byte) []byte {
	hl := 20 + len(opts)
	b := make([]byte, hl+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = byte(hl/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], win)
	copy(b[20:], opts)
	copy(b[hl:], payload)
	return b
}

func udpHdr(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], payload)
	return b
}

func icmpHdr(typ, code uint8, id, seq uint16, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[8:], payload)
	return b
}

// csumOffset is where the L4 checksum field of proto lives.
func csumOffset(proto uint8) int {
	switch proto {
	case flow.ProtoTCP:
		return 16
	case flow.ProtoUDP:
		return 6
	case flow.ProtoICMP, flow.ProtoICMPv6:
		return 2
	}
	return -1
}

// ip4 wraps l4 in an IPv4 header and fills both checksums.
func ip4(src, dst string, proto uint8, l4 []byte) []byte {
	b := make([]byte, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8] = 64
	b[9] = proto
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	copy(b[12:], s.AsSlice())
	copy(b[16:], d.AsSlice())
	binary.BigEndian.PutUint16(b[10:], csum.Checksum(b[:20]))
	copy(b[20:], l4)
	if o := csumOffset(proto); o >= 0 {
		seg := b[20:]
		var acc uint64
		if proto != flow.ProtoICMP {
			acc = pseudoSum(b[12:20], proto, len(seg))
		}
		binary.BigEndian.PutUint16(seg[o:], ^csum.Fold(csum.Partial(seg, acc)))
	}
	return b
}

// ip6 wraps l4 in an IPv6 header (hop limit hl) and fills the checksum.
func ip6(src, dst string, proto uint8, hl uint8, l4 []byte) []byte {
	b := make([]byte, 40+len(l4))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(l4)))
	b[6] = proto
	b[7] = hl
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	copy(b[8:], s.AsSlice())
	copy(b[24:], d.AsSlice())
	copy(b[40:], l4)
	if o := csumOffset(proto); o >= 0 {
		seg := b[40:]
		binary.BigEndian.PutUint16(seg[o:], ^csum.Fold(csum.Partial(seg, pseudoSum(b[8:40], proto, len(seg)))))
	}
	return b
}

// corrupt flips the last byte of a datagram (breaking its L4 checksum).
func corrupt(b []byte) []byte {
	c := append([]byte(nil), b...)
	c[len(c)-1] ^= 0xFF
	return c
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// step is one packet of a scenario and what the tracker must say.
type step struct {
	at     time.Duration // since t0
	data   []byte
	want   CtInfo
	reply  bool
	reason string // for CtInvalid; "" = don't care
	check  func(t *testing.T, tr *Tracker, now time.Time)
}

// run plays a scenario through tr.
func run(t *testing.T, tr *Tracker, steps []step) {
	t.Helper()
	for i, s := range steps {
		now := t0.Add(s.at)
		v := tr.Handle(now, &Packet{Data: s.data})
		if v.CtInfo != s.want || v.Reply != s.reply || (s.reason != "" && v.Reason != s.reason) {
			t.Fatalf("step %d: verdict %+v, want %v reply=%v reason=%q", i, v, s.want, s.reply, s.reason)
		}
		if s.check != nil {
			s.check(t, tr, now)
		}
	}
}

// only returns the single flow in the table.
func only(t *testing.T, tr *Tracker, now time.Time) flow.Flow {
	t.Helper()
	fl := tr.AppendFlows(nil, now)
	if len(fl) != 1 {
		t.Fatalf("table has %d flows, want 1: %+v", len(fl), fl)
	}
	return fl[0]
}

// expectFlow checks state, status bits and timeout of the only flow.
func expectFlow(state flow.TCPState, status flow.Status, timeout uint32) func(*testing.T, *Tracker, time.Time) {
	return func(t *testing.T, tr *Tracker, now time.Time) {
		t.Helper()
		f := only(t, tr, now)
		const mask = flow.StatusAssured | flow.StatusSeenReply | flow.StatusExpected | flow.StatusConfirmed
		if f.TCPState != state || f.Status&mask != status|flow.StatusConfirmed || f.Timeout != timeout {
			t.Fatalf("flow %v status %v timeout %d, want %v %v %d", f.TCPState, f.Status, f.Timeout, state, status|flow.StatusConfirmed, timeout)
		}
	}
}

// empty checks the table is empty.
func empty(t *testing.T, tr *Tracker, now time.Time) {
	t.Helper()
	if fl := tr.AppendFlows(nil, now); len(fl) != 0 {
		t.Fatalf("table not empty: %+v", fl)
	}
}
