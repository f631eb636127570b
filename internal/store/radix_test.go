package store

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortUnique compares sortUnique with slices.Sort and slices.Compact
// on short and long inputs, small and large indices, many repeats and
// none, reusing its scratch buffer from call to call.
func TestSortUnique(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var tmp []uint32
	for _, tc := range []struct{ n, max int }{
		{0, 1}, {1, 1}, {5, 3}, {63, 100}, {64, 100}, {65, 1 << 8}, {1000, 1 << 8}, {1000, 1 << 16},
		{6000, 1 << 18}, {6000, 1 << 23}, {20000, 1 << 12}, {3000, 1 << 31},
	} {
		a := make([]uint32, tc.n)
		for i := range a {
			a[i] = uint32(r.IntN(tc.max))
		}
		want := slices.Compact(slices.Sorted(slices.Values(a)))
		var got []uint32
		got, tmp = sortUnique(slices.Clone(a), tmp)
		if !slices.Equal(got, want) {
			t.Errorf("n=%d max=%d: got %d values, want %d (first differences: %v / %v)", tc.n, tc.max, len(got), len(want), head(got), head(want))
		}
	}
}

func head(a []uint32) []uint32 { return a[:min(len(a), 8)] }

func FuzzSortUnique(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		a := make([]uint32, 0, len(b)/4)
		for i := 0; i+4 <= len(b); i += 4 {
			a = append(a, uint32(b[i])|uint32(b[i+1])<<8|uint32(b[i+2])<<16|uint32(b[i+3])<<24)
		}
		// Long enough for the radix passes, whatever the fuzzer gives.
		for len(a) > 0 && len(a) < 100 {
			a = append(a, a...)
		}
		want := slices.Compact(slices.Sorted(slices.Values(a)))
		got, _ := sortUnique(slices.Clone(a), nil)
		if !slices.Equal(got, want) {
			t.Fatalf("sortUnique(%v) = %v, want %v", head(a), head(got), head(want))
		}
	})
}

func BenchmarkSortUnique(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	a := make([]uint32, 6000) // a refresh's changes under 24,000 events/s
	for i := range a {
		a[i] = uint32(r.IntN(1 << 22))
	}
	b.Run("radix", func(b *testing.B) {
		b.ReportAllocs()
		var buf, tmp []uint32 // as View.catchUp keeps them
		for b.Loop() {
			buf, tmp = sortUnique(append(buf[:0], a...), tmp)
		}
	})
	w := make([]uint32, len(a))
	b.Run("pdqsort", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			copy(w, a)
			slices.Sort(w)
			_ = slices.Compact(w)
		}
	})
}
