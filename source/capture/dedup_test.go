package capture

import (
	"testing"
	"time"
)

func ipv4Packet(ttl byte, id byte, sport byte) []byte {
	p := make([]byte, 28)
	p[0] = 0x45
	p[3] = 28
	p[5] = id
	p[8] = ttl
	p[9] = 17
	p[10], p[11] = ttl, ttl // the header checksum changes with the TTL
	copy(p[12:], []byte{10, 0, 0, 1, 10, 0, 1, 1})
	p[21] = sport
	p[23] = 53
	return p
}

// TestForwardDedup: the way-out copy of a forwarded packet (TTL one less)
// is recognised once, in either arrival order; packets seen in one
// direction only (an endpoint's) never are; records expire.
func TestForwardDedup(t *testing.T) {
	t0 := time.Unix(1000, 0)
	d := newForwardDedup(4, time.Second)
	in, out := ipv4Packet(64, 1, 7), ipv4Packet(63, 1, 7)
	if d.duplicate(t0, in, false) {
		t.Fatal("first copy taken for a duplicate")
	}
	if !d.duplicate(t0, out, true) {
		t.Fatal("forwarded copy not recognised")
	}
	if d.duplicate(t0, out, true) {
		t.Fatal("a record matched twice")
	}
	// The way out first (separate rings), then the way in.
	d = newForwardDedup(4, time.Second)
	if d.duplicate(t0, ipv4Packet(63, 2, 7), true) || !d.duplicate(t0, ipv4Packet(64, 2, 7), false) {
		t.Fatal("out-then-in pair not recognised")
	}
	// An endpoint receiving the same packet twice (a retransmission with
	// the same id) tracks both.
	d = newForwardDedup(4, time.Second)
	first := d.duplicate(t0, in, false)
	if second := d.duplicate(t0, in, false); first || second {
		t.Fatal("same-direction copies taken for duplicates")
	}
	// A different packet does not match.
	if d.duplicate(t0, ipv4Packet(63, 3, 7), true) || d.duplicate(t0, ipv4Packet(63, 1, 8), true) {
		t.Fatal("a different packet matched")
	}
	// Expiry.
	d = newForwardDedup(4, time.Second)
	d.duplicate(t0, in, false)
	if d.duplicate(t0.Add(2*time.Second), out, true) {
		t.Fatal("an expired record matched")
	}
	// Capacity: the oldest record is forgotten first.
	d = newForwardDedup(2, time.Minute)
	for id := byte(10); id < 13; id++ {
		d.duplicate(t0, ipv4Packet(64, id, 1), false)
	}
	if d.duplicate(t0, ipv4Packet(63, 10, 1), true) || !d.duplicate(t0, ipv4Packet(63, 12, 1), true) {
		t.Fatal("capacity eviction order")
	}
	if len(d.pending) > 2 {
		t.Fatalf("%d records kept, capacity 2", len(d.pending))
	}
	// Not IP: never a duplicate.
	if d.duplicate(t0, []byte{1, 2, 3}, true) {
		t.Fatal("garbage matched")
	}
}
