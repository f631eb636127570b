package store

import (
	"testing"
	"unsafe"
)

// TestMapArrayAlignsHugePages: an array of a whole number of huge pages
// (a record part, an acct part, the index) starts on a huge-page
// boundary, so that huge pages can back all of it; it reads as zeros, is
// writable throughout and unmaps cleanly; other sizes are mapped as they
// are. (Linux 6.7 and later align such mappings by themselves; mapArray
// does it on any kernel.)
func TestMapArrayAlignsHugePages(t *testing.T) {
	for range 4 {
		recs := mapArray[rec](1 << recBits)
		if p := uintptr(unsafe.Pointer(unsafe.SliceData(recs))); p%hugePage != 0 {
			t.Fatalf("a record part of %d bytes starts at %#x, not on a huge page", len(recs)*int(recSize), p)
		}
		if recs[0] != (rec{}) || recs[len(recs)-1] != (rec{}) {
			t.Fatal("a new part is not zero")
		}
		recs[0].id, recs[len(recs)-1].id = 1, 2
		unmapArray(recs)
	}
	small := mapArray[uint32](1000)
	small[999] = 7
	unmapArray(small)
	if mapArray[uint32](0) != nil {
		t.Error("an empty array is mapped")
	}
}
