package tracker

import (
	"encoding/binary"
	"net/netip"
)

// sum adds the bytes of b to the ones'-complement accumulator acc as
// big-endian 16-bit words (an odd last byte is padded with zero). The
// accumulator is folded by fold.
func sum(b []byte, acc uint64) uint64 {
	// Four independent 64-bit accumulators of 32-bit words cannot overflow
	// for any IP datagram (at most 2^14 words each).
	var a1, a2, a3 uint64
	for len(b) >= 32 {
		w0 := binary.BigEndian.Uint64(b)
		w1 := binary.BigEndian.Uint64(b[8:])
		w2 := binary.BigEndian.Uint64(b[16:])
		w3 := binary.BigEndian.Uint64(b[24:])
		acc += w0>>32 + w0&0xFFFFFFFF
		a1 += w1>>32 + w1&0xFFFFFFFF
		a2 += w2>>32 + w2&0xFFFFFFFF
		a3 += w3>>32 + w3&0xFFFFFFFF
		b = b[32:]
	}
	acc += a1 + a2 + a3
	for len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

// fold reduces an accumulator to a 16-bit ones'-complement sum.
func fold(acc uint64) uint16 {
	for acc>>16 != 0 {
		acc = acc>>16 + acc&0xFFFF
	}
	return uint16(acc)
}

// pseudoSum is the ones'-complement sum of the TCP/UDP/ICMPv6 pseudo header.
func pseudoSum(src, dst netip.Addr, proto uint8, length int) uint64 {
	var acc uint64
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		acc = sum(s[:], 0)
		acc = sum(d[:], acc)
	} else {
		s, d := src.As16(), dst.As16()
		acc = sum(s[:], 0)
		acc = sum(d[:], acc)
	}
	return acc + uint64(proto) + uint64(length)
}

// l4ChecksumOK verifies the checksum of the L4 segment seg (the whole
// payload of the IP datagram) with the pseudo header when pseudo is set (TCP,
// UDP, ICMPv6) or without (ICMP).
func l4ChecksumOK(p *pkt, pseudo bool) bool {
	seg := p.data[p.l4:]
	var acc uint64
	if pseudo {
		acc = pseudoSum(p.src, p.dst, p.proto, len(seg))
	}
	return fold(sum(seg, acc)) == 0xFFFF
}
