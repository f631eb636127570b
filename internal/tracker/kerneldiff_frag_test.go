//go:build linux

package tracker

import (
	"encoding/binary"

	"github.com/conntop/conntop/internal/csum"
	"github.com/conntop/conntop/internal/flow"
)

// Fragment scenarios for the kernel-oracle harness. The kernel's defrag
// queues outlive a conntrack flush, so every scenario uses its own
// fragment identification: a train left incomplete by one scenario must
// not complete (or be discarded by) the next one.

// fr4 builds the IPv4 fragment of datagram d (a 20-byte header) carrying
// its payload bytes [off, end) at offset off, with identification id.
func fr4(d []byte, id uint16, off, end int, mf bool) []byte {
	return fr4Raw(d[:20], id, off, d[20+off:20+end], mf)
}

// fr4Raw builds an IPv4 fragment with header hdr, any offset and payload.
func fr4Raw(hdr []byte, id uint16, off int, pay []byte, mf bool) []byte {
	f := append(append([]byte{}, hdr[:20]...), pay...)
	binary.BigEndian.PutUint16(f[2:], uint16(len(f)))
	fo := uint16(off / 8)
	if mf {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(f[4:], id)
	binary.BigEndian.PutUint16(f[6:], fo)
	f[10], f[11] = 0, 0
	binary.BigEndian.PutUint16(f[10:], csum.Checksum(f[:20]))
	return f
}

// fr6 builds the IPv6 fragment of datagram d (a 40-byte header, no
// extension headers) carrying payload bytes [off, end); ext are extension
// headers placed before the fragment header (their first byte, the next
// header, is set here).
func fr6(d []byte, id uint32, off, end int, mf bool, ext ...[]byte) []byte {
	return fr6Raw(d[:40], id, off, d[40+off:40+end], mf, ext...)
}

// fr6Raw builds an IPv6 fragment with header hdr, any offset and payload.
func fr6Raw(hdr []byte, id uint32, off int, pay []byte, mf bool, ext ...[]byte) []byte {
	f := append([]byte{}, hdr[:40]...)
	nh := hdr[6]
	nhOff := 6
	for _, e := range ext {
		// e[0] holds the header's own type until linked.
		typ := e[0]
		f[nhOff] = typ
		nhOff = len(f)
		e2 := append([]byte{}, e...)
		f = append(f, e2...)
	}
	f[nhOff] = 44
	fh := make([]byte, 8)
	fh[0] = nh
	fo := uint16(off)
	if mf {
		fo |= 1
	}
	binary.BigEndian.PutUint16(fh[2:], fo)
	binary.BigEndian.PutUint32(fh[4:], id)
	f = append(append(f, fh...), pay...)
	binary.BigEndian.PutUint16(f[4:], uint16(len(f)-40))
	return f
}

// optHdr is an 8-byte hop-by-hop (typ 0) or destination options (typ 60)
// header holding one PadN option; its first byte is its own type until
// fr6Raw links it.
func optHdr(typ byte) []byte { return []byte{typ, 0, 1, 4, 0, 0, 0, 0} }

// piece is a fragment of a train: payload bytes [off, end), more to come.
type piece struct {
	off, end int
	mf       bool
}

func fragScenarios() []scenario {
	var out []scenario
	id := uint16(0x1200)
	add := func(name string, dgs ...[]byte) {
		s := scen{name: "frag-" + name}
		s.add(dgs...)
		out = append(out, s.done())
	}
	payload := make([]byte, 100)
	for i := range payload {
		payload[i] = byte(i)
	}
	u4 := ip4("10.1.0.1", "10.2.0.2", flow.ProtoUDP, udpHdr(7000, 7001, payload)) // 108 bytes of payload
	train4 := func(name string, d []byte, ps ...piece) {
		id++
		var dgs [][]byte
		for _, p := range ps {
			dgs = append(dgs, fr4(d, id, p.off, p.end, p.mf))
		}
		add(name, dgs...)
	}
	p := func(off, end int) piece { return piece{off, end, true} }
	last := piece{96, 108, false}
	train4("v4-in-order", u4, p(0, 32), p(32, 64), p(64, 96), last)
	train4("v4-reverse", u4, last, p(64, 96), p(32, 64), p(0, 32))
	train4("v4-out-of-order", u4, p(32, 64), p(0, 32), last, p(64, 96))
	train4("v4-duplicate", u4, p(0, 32), p(32, 64), p(32, 64), p(64, 96), last)
	train4("v4-duplicate-last", u4, p(0, 32), last, p(32, 64), last, p(64, 96))
	train4("v4-incomplete", u4, p(0, 32), p(32, 64), last)
	// Overlaps: the kernel discards the whole train (inet_frag_queue_insert).
	train4("v4-overlap", u4, p(0, 32), p(0, 64), p(64, 96), last)
	train4("v4-overlap-tail", u4, p(0, 32), p(24, 64), p(32, 64), p(64, 96), last)
	train4("v4-overlap-then-whole", u4, p(0, 32), p(16, 48), p(0, 32), p(32, 64), p(64, 96), last)
	train4("v4-overlap-head", u4, p(64, 96), last, p(0, 72), p(0, 64))
	train4("v4-overlap-middle", u4, p(0, 32), last, p(40, 56), p(32, 64), p(64, 96))
	// A duplicate inside one run of the queue is ignored; one spanning two
	// runs (fragments that arrived out of order are runs of their own) is
	// an overlap.
	train4("v4-dup-in-run", u4, p(0, 32), p(32, 64), p(0, 64), p(16, 40), p(64, 96), last)
	train4("v4-dup-inside-fragment", u4, last, p(32, 64), p(40, 56), p(64, 96), p(0, 32))
	train4("v4-span-two-runs", u4, last, p(64, 96), p(32, 64), p(32, 96), p(0, 32))
	train4("v4-span-two-runs-retry", u4, last, p(64, 96), p(32, 64), p(32, 96), p(0, 32), p(32, 64), p(64, 96), last)
	train4("v4-span-appended-run", u4, p(0, 32), p(32, 64), p(64, 96), p(16, 80), last)
	train4("v4-last-overlaps", u4, p(0, 32), p(32, 64), p(64, 96), piece{88, 108, false})
	train4("v4-tiny", u4, p(0, 8), p(8, 16), p(16, 24), p(24, 104), piece{104, 108, false})
	train4("v4-tiny-reverse", u4, piece{104, 108, false}, p(24, 104), p(16, 24), p(8, 16), p(0, 8))
	// A last fragment ending past 65535: queued; the train can never be
	// reassembled, and a following complete train of the same id is
	// refused because its end differs.
	id++
	hdr4 := u4[:20]
	big := fr4Raw(hdr4, id, 65528, make([]byte, 16), false)
	add("v4-beyond-65535", fr4(u4, id, 0, 32, true), big, fr4(u4, id, 32, 64, true), fr4(u4, id, 64, 96, true), fr4(u4, id, 96, 108, false))
	id++
	add("v4-beyond-65535-first", fr4Raw(hdr4, id, 65528, make([]byte, 16), false), fr4(u4, id, 0, 32, true),
		fr4(u4, id, 32, 64, true), fr4(u4, id, 64, 96, true), fr4(u4, id, 96, 108, false))
	id++
	add("v4-beyond-65535-alone", fr4Raw(hdr4, id, 65528, make([]byte, 16), false))
	id++
	add("v4-65535-exact", fr4Raw(hdr4, id, 65504, make([]byte, 11), false), fr4(u4, id, 0, 32, true))
	p4 := ip4("10.1.0.1", "10.2.0.2", flow.ProtoICMP, icmpHdr(8, 0, 11, 1, payload))
	train4("v4-icmp", p4, p(0, 48), p(48, 96), last)
	t4 := ip4("10.1.0.1", "10.2.0.2", flow.ProtoTCP, tcpHdr(40000, 80, 1, 0, thSYN, 1000, nil, payload))
	var tps []piece
	for off := 0; off < 120; off += 8 {
		tps = append(tps, piece{off, min(off+8, 120), off+8 < 120})
	}
	train4("v4-tcp-syn", t4, tps...)

	u6 := ip6("fd00:1::1", "fd00:2::2", flow.ProtoUDP, 64, udpHdr(7000, 7001, payload))
	id6 := uint32(0xabc000)
	train6 := func(name string, ext [][]byte, ps ...piece) {
		id6++
		var dgs [][]byte
		for _, p := range ps {
			dgs = append(dgs, fr6(u6, id6, p.off, p.end, p.mf, ext...))
		}
		add(name, dgs...)
	}
	train6("v6-in-order", nil, p(0, 32), p(32, 64), p(64, 96), last)
	train6("v6-reverse", nil, last, p(64, 96), p(32, 64), p(0, 32))
	train6("v6-incomplete", nil, p(0, 32), p(64, 96))
	train6("v6-duplicate", nil, p(0, 32), p(0, 32), p(32, 64), p(64, 96), last)
	train6("v6-atomic", nil, piece{0, 108, false})
	train6("v6-atomic-twice", nil, piece{0, 108, false}, piece{0, 108, false})
	train6("v6-atomic-hbh", [][]byte{optHdr(0)}, piece{0, 108, false})
	train6("v6-overlap", nil, p(0, 32), p(0, 64), p(64, 96), last)
	train6("v6-overlap-tail", nil, p(0, 32), p(24, 64), p(32, 64), p(64, 96), last)
	train6("v6-span-two-runs", nil, last, p(64, 96), p(32, 64), p(32, 96), p(0, 32))
	train6("v6-dup-in-run", nil, p(0, 32), p(32, 64), p(0, 64), p(64, 96), last)
	train6("v6-hbh", [][]byte{optHdr(0)}, p(0, 32), p(32, 64), p(64, 96), last)
	train6("v6-dstopt", [][]byte{optHdr(60)}, p(0, 32), p(32, 64), p(64, 96), last)
	train6("v6-hbh-dstopt", [][]byte{optHdr(0), optHdr(60)}, last, p(64, 96), p(32, 64), p(0, 32))
	train6("v6-misaligned", nil, p(0, 30), p(32, 64), p(64, 96), last)
	// A misaligned non-last fragment discards the train and goes on to
	// conntrack unreassembled (nf_ct_frag6_gather's -EPROTO).
	train6("v6-misaligned-middle", nil, p(0, 32), p(32, 62), p(64, 96), last)
	train6("v6-misaligned-after", nil, p(0, 32), p(64, 96), last, p(32, 62))
	train6("v6-misaligned-then-whole", nil, p(32, 62), p(0, 32), p(32, 64), p(64, 96), last)
	train6("v6-misaligned-hbh", [][]byte{optHdr(0)}, p(0, 32), p(32, 62), p(64, 96), last)
	train6("v6-misaligned-twice", nil, p(0, 30), p(0, 30))
	// A misaligned first fragment is parsed past its fragment header: a
	// protocol without checks is tracked from it.
	g6 := ip6("fd00:1::1", "fd00:2::2", 253, 64, payload)
	id6++
	add("v6-misaligned-first-generic", fr6(g6, id6, 0, 30, true), fr6(g6, id6, 32, 64, true))
	id6++
	add("v6-beyond-65535", fr6(u6, id6, 0, 32, true), fr6Raw(u6[:40], id6, 65528, make([]byte, 16), false))
	id6++
	add("v6-beyond-65535-first", fr6Raw(u6[:40], id6, 65528, make([]byte, 16), false), fr6(u6, id6, 0, 32, true),
		fr6(u6, id6, 32, 64, true), fr6(u6, id6, 64, 96, true), fr6(u6, id6, 96, 108, false))
	return out
}
