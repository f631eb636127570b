package csum

import (
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"testing"
)

// reference is RFC 1071's algorithm as written: big-endian 16-bit words
// summed into 32 bits with the carries folded at the end.
func reference(chunks ...[]byte) uint16 {
	var sum uint64
	for _, b := range chunks {
		for len(b) >= 2 {
			sum += uint64(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint64(b[0]) << 8
		}
	}
	for sum>>16 != 0 {
		sum = sum>>16 + sum&0xFFFF
	}
	return uint16(sum)
}

func TestFoldMatchesReference(t *testing.T) {
	ff := make([]byte, 4096)
	for i := range ff {
		ff[i] = 0xFF
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 1500)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0xAB}},
		{"two bytes", []byte{0xAB, 0xCD}},
		{"seven bytes", []byte{1, 2, 3, 4, 5, 6, 7}},
		{"all zero", make([]byte, 64)},
		{"all ones (carries everywhere)", ff},
		{"all ones odd", ff[:4095]},
		// RFC 1071 section 3's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
		{"rfc1071 example", []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}},
		{"random 1500", random},
	}
	for n := 0; n <= 70; n++ {
		tests = append(tests, struct {
			name string
			data []byte
		}{"random prefix", random[:n]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := Fold(Partial(tt.data, 0)), reference(tt.data); got != want {
				t.Fatalf("len %d: Fold(Partial) = %#04x, want %#04x", len(tt.data), got, want)
			}
		})
	}
	if got := Fold(Partial([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0)); got != 0xddf2 {
		t.Fatalf("rfc1071 example = %#04x, want 0xddf2", got)
	}
}

func TestChainedPiecesAndAdd16(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		a := make([]byte, 2*rng.IntN(24)) // even: a pseudo-header
		b := make([]byte, rng.IntN(200))
		for j := range a {
			a[j] = byte(rng.Uint32())
		}
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		v := uint16(rng.Uint32())
		var vb [2]byte
		binary.BigEndian.PutUint16(vb[:], v)
		got := Fold(Partial(b, Add16(Partial(a, 0), v)))
		if want := reference(a, vb[:], b); got != want {
			t.Fatalf("case %d (%d+2+%d bytes): %#04x, want %#04x", i, len(a), len(b), got, want)
		}
	}
}

func TestChecksumRoundTrip(t *testing.T) {
	// A worked IPv4 header example whose checksum is b861.
	h := []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
		0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}
	if got := Checksum(h); got != 0xb861 {
		t.Fatalf("Checksum = %#04x, want 0xb861", got)
	}
	binary.BigEndian.PutUint16(h[10:], 0xb861)
	if !Valid(h, 0) || Checksum(h) != 0 {
		t.Fatal("header with its checksum does not verify")
	}
	h[3]++
	if Valid(h, 0) {
		t.Fatal("corrupted header verifies")
	}
}

func FuzzPartial(f *testing.F) {
	f.Add([]byte{}, uint16(0), uint8(0))
	f.Add([]byte{0xFF, 0xFF, 0xFF}, uint16(0xFFFF), uint8(1))
	f.Add(make([]byte, 77), uint16(6), uint8(40))
	f.Fuzz(func(t *testing.T, b []byte, v uint16, split uint8) {
		k := int(split) &^ 1
		if k > len(b) {
			k = len(b) &^ 1
		}
		var vb [2]byte
		binary.BigEndian.PutUint16(vb[:], v)
		got := Fold(Partial(b[k:], Add16(Partial(b[:k], 0), v)))
		if want := reference(b[:k], vb[:], b[k:]); got != want {
			t.Fatalf("%#04x, want %#04x", got, want)
		}
	})
}

func BenchmarkPartial(b *testing.B) {
	for _, n := range []int{20, 40, 64, 512, 1500} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 7)
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			var acc uint64
			for i := 0; i < b.N; i++ {
				acc = Partial(data, acc)
			}
			sink = Fold(acc)
		})
	}
}

var sink uint16
