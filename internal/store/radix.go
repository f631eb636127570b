package store

import "slices"

// sortUnique sorts a (record indices) and drops repeats, using tmp (grown
// as needed) for the passes; it returns the sorted set, in a or tmp, and
// the other buffer for the next call (a and tmp must not overlap). It is a
// least-significant-digit radix sort: a view's catch-up sorts the few
// thousand records changed since its last query on every refresh, where a
// comparison sort took most of the catch-up's time. Digits above the
// largest index are skipped.
func sortUnique(a, tmp []uint32) (sorted, scratch []uint32) {
	if len(a) < 64 {
		slices.Sort(a)
		return slices.Compact(a), tmp
	}
	var hi uint32
	for _, x := range a {
		hi |= x
	}
	if cap(tmp) < len(a) {
		tmp = make([]uint32, len(a), len(a)+len(a)/4)
	}
	tmp = tmp[:len(a)]
	src, dst := a, tmp
	for shift := uint(0); shift < 32 && hi>>shift != 0; shift += 8 {
		var count [256]int
		for _, x := range src {
			count[x>>shift&0xff]++
		}
		pos := 0
		for d := range count {
			c := count[d]
			count[d] = pos
			pos += c
		}
		for _, x := range src {
			d := x >> shift & 0xff
			dst[count[d]] = x
			count[d]++
		}
		src, dst = dst, src
	}
	// src holds the sorted values; dst is the other buffer.
	return slices.Compact(src), dst
}
