// Package csum computes the Internet checksum (RFC 1071) fast: eight bytes
// at a time with a 64-bit end-around-carry accumulator, in the machine's
// byte order (the ones'-complement sum does not depend on it, RFC 1071
// section 2(B)); only the folded result is put back in network order.
package csum

import (
	"encoding/binary"
	"math/bits"
)

// Partial adds the bytes of b to the running sum acc and returns the new
// sum. Sums of several pieces may be chained (acc = Partial(b2,
// Partial(b1, 0))) when every piece but the last has an even length; an odd
// last byte is padded with zero as RFC 1071 says. The accumulator is opaque:
// read it only through Fold.
func Partial(b []byte, acc uint64) uint64 {
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), c)
		b = b[8:]
	}
	// The tail (0 to 7 bytes) as one little-endian word.
	var t uint64
	var sh uint
	if len(b) >= 4 {
		t = uint64(binary.LittleEndian.Uint32(b))
		b = b[4:]
		sh = 32
	}
	if len(b) >= 2 {
		t |= uint64(binary.LittleEndian.Uint16(b)) << sh
		b = b[2:]
		sh += 16
	}
	if len(b) == 1 {
		t |= uint64(b[0]) << sh
	}
	acc, c = bits.Add64(acc, t, c)
	// End-around carry: adding it back cannot carry again (acc is at most
	// 2^64-2 after a carry out).
	return acc + c
}

// Add16 adds the 16-bit value v, as it would appear in network byte order in
// the summed data (a pseudo-header's protocol or length), to acc.
func Add16(acc uint64, v uint16) uint64 {
	acc, c := bits.Add64(acc, uint64(bits.ReverseBytes16(v)), 0)
	return acc + c
}

// Fold reduces the running sum acc to the 16-bit ones'-complement sum in
// host order: 0xFFFF for data that includes a correct checksum, and the
// complement of the checksum to store otherwise (see Checksum).
func Fold(acc uint64) uint16 {
	acc = acc>>32 + acc&0xFFFFFFFF // < 2^33
	acc = acc>>32 + acc&0xFFFFFFFF // < 2^32 + 1, and then no more carry
	acc = acc>>16 + acc&0xFFFF
	acc = acc>>16 + acc&0xFFFF
	acc = acc>>16 + acc&0xFFFF
	return bits.ReverseBytes16(uint16(acc))
}

// Checksum returns the Internet checksum of b: the value to store in a
// header's checksum field (zeroed while summing), or 0 when b already
// includes a correct checksum.
func Checksum(b []byte) uint16 { return ^Fold(Partial(b, 0)) }

// Valid reports whether data that includes its checksum field sums
// correctly, with acc the sum of any pseudo-header (0 if none).
func Valid(b []byte, acc uint64) bool { return Fold(Partial(b, acc)) == 0xFFFF }
