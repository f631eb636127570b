package capture

import (
	"hash/maphash"
	"time"
)

// forwardDedup recognises the second copy of a forwarded packet. On a host
// that forwards, a capture on all interfaces (or on both the way in and the
// way out) sees a forwarded packet twice: received on one interface, sent
// on another. Conntrack sees it once (at PRE_ROUTING; the way out passes
// POST_ROUTING, where it is only confirmed), so only one copy may reach the
// tracker. Locally sent and locally received packets are seen once and
// never match: the copies of a forwarded packet are the only packets with
// the same identity (addresses, protocol, IP id or flow label, lengths and
// the first bytes of the transport header) seen once in each direction.
//
// A packet's identity leaves out what forwarding changes (TTL or hop limit,
// the IPv4 header checksum). Each copy is remembered for window; the first
// copy of the other direction that matches consumes the record and is
// skipped, whichever of the two comes first (separate rings need not
// deliver them in order). Memory is bounded: at most capacity records,
// the oldest forgotten first.
type forwardDedup struct {
	seed   maphash.Seed
	window int64
	// pending maps an identity (with the direction in its low bit) to the
	// number of unmatched copies.
	pending map[uint64]uint32
	// fifo holds the records in arrival order for expiry.
	fifo       []dedupRecord
	head, size int
	// Skipped counts the copies recognised as the second of a pair.
	skipped uint64
}

type dedupRecord struct {
	key uint64
	at  int64
}

// newForwardDedup returns a dedup remembering at most capacity copies for
// window each.
func newForwardDedup(capacity int, window time.Duration) *forwardDedup {
	return &forwardDedup{
		seed:    maphash.MakeSeed(),
		window:  int64(window),
		pending: make(map[uint64]uint32, capacity),
		fifo:    make([]dedupRecord, capacity),
	}
}

// duplicate reports whether data (a packet from its network header on,
// received, or sent when outgoing) is the second copy of a forwarded
// packet whose first copy went the other way; otherwise it remembers it.
func (d *forwardDedup) duplicate(now time.Time, data []byte, outgoing bool) bool {
	id, ok := d.identity(data)
	if !ok {
		return false
	}
	ns := now.UnixNano()
	d.expire(ns)
	mine, other := id&^1, id|1
	if outgoing {
		mine, other = other, mine
	}
	if n := d.pending[other]; n > 0 {
		if n == 1 {
			delete(d.pending, other)
		} else {
			d.pending[other] = n - 1
		}
		d.skipped++
		return true
	}
	if d.size == len(d.fifo) {
		d.forgetOldest()
	}
	d.fifo[(d.head+d.size)%len(d.fifo)] = dedupRecord{key: mine, at: ns}
	d.size++
	d.pending[mine]++
	return false
}

// expire forgets records older than the window.
func (d *forwardDedup) expire(ns int64) {
	for d.size > 0 && ns-d.fifo[d.head].at > d.window {
		d.forgetOldest()
	}
}

func (d *forwardDedup) forgetOldest() {
	r := d.fifo[d.head]
	d.head = (d.head + 1) % len(d.fifo)
	d.size--
	if n := d.pending[r.key]; n > 1 {
		d.pending[r.key] = n - 1
	} else if n == 1 {
		delete(d.pending, r.key)
	}
}

// identity hashes what forwarding leaves unchanged of an IPv4 or IPv6
// packet: the header without TTL/hop limit and checksum, and the first 8
// bytes after it (ports and sequence number, ICMP type/code/id/sequence).
// ok is false for anything else.
func (d *forwardDedup) identity(data []byte) (uint64, bool) {
	var h maphash.Hash
	h.SetSeed(d.seed)
	if len(data) < 20 {
		return 0, false
	}
	switch data[0] >> 4 {
	case 4:
		ihl := int(data[0]&0x0F) * 4
		if ihl < 20 || len(data) < ihl {
			return 0, false
		}
		_, _ = h.Write(data[0:8])   // version, tos, length, id, fragment
		_ = h.WriteByte(data[9])    // protocol
		_, _ = h.Write(data[12:20]) // addresses
		_, _ = h.Write(data[ihl:min(len(data), ihl+8)])
	case 6:
		if len(data) < 40 {
			return 0, false
		}
		_, _ = h.Write(data[0:7])  // version, class, flow label, length, next header
		_, _ = h.Write(data[8:40]) // addresses
		_, _ = h.Write(data[40:min(len(data), 48)])
	default:
		return 0, false
	}
	return h.Sum64(), true
}
