package store

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// slab is a growable array of pointer-free values of type T kept outside
// the Go heap, in parts of 1<<bits values, each an anonymous private
// mapping: the garbage collector never scans them nor counts them towards
// its heap goal, so a big table does not make the heap (and the process)
// twice its size between collections. Values never move, so an index is
// valid for the value's lifetime; parts at the end can be unmapped when
// no index into them is in use. T must contain no Go pointers.
type slab[T any] struct {
	parts [][]T
	bits  uint
}

// newSlab returns an empty slab of parts of 1<<bits values.
func newSlab[T any](bits uint) slab[T] { return slab[T]{bits: bits} }

// at returns value i, which must be below cap().
func (s *slab[T]) at(i uint32) *T {
	return &s.parts[i>>s.bits][i&(1<<s.bits-1)]
}

// cap returns how many values the mapped parts hold.
func (s *slab[T]) cap() uint32 { return uint32(len(s.parts)) << s.bits }

// bytes returns the bytes mapped.
func (s *slab[T]) bytes() int64 {
	var z T
	return int64(len(s.parts)) << s.bits * int64(unsafe.Sizeof(z))
}

// bytesBelow estimates the memory that the values below index n (the
// only ones ever written) can take: of each mapped part, the stretch up to
// n rounded up to a huge page (a value written faults in at most one). A
// nil part (see column) counts nothing.
func (s *slab[T]) bytesBelow(n uint32) int64 {
	var z T
	size := uint64(unsafe.Sizeof(z))
	var total int64
	for j, p := range s.parts {
		start := uint64(j) << s.bits
		if len(p) == 0 || uint64(n) <= start {
			continue
		}
		b := min(uint64(n)-start, uint64(len(p))) * size
		total += int64(min((b+hugePage-1)&^(hugePage-1), uint64(len(p))*size))
	}
	return total
}

// grow maps one more part. It panics when the system has no memory left
// (as a Go allocation would).
func (s *slab[T]) grow() {
	p := mapArray[T](1 << s.bits)
	adviseHuge(p)
	s.parts = append(s.parts, p)
}

// shrink unmaps the parts from the n-th on.
func (s *slab[T]) shrink(n int) {
	for j := n; j < len(s.parts); j++ {
		unmapArray(s.parts[j])
		s.parts[j] = nil
	}
	if n < len(s.parts) {
		s.parts = s.parts[:n]
	}
}

// free unmaps everything.
func (s *slab[T]) free() { s.shrink(0) }

// trimTo gives back the memory of the values from index n on: the parts
// above n's are unmapped, and the pages of n's own part above it released
// (they read as zeros). A nil part (see column) has nothing to release.
func (s *slab[T]) trimTo(n uint32) {
	keep := int((uint64(n) + 1<<s.bits - 1) >> s.bits)
	s.shrink(keep)
	if off := n & (1<<s.bits - 1); off != 0 && keep <= len(s.parts) && s.parts[keep-1] != nil {
		releasePages(s.parts[keep-1][off:])
	}
}

// mapArray maps a zeroed array of n values of the pointer-free type T.
// An array of a whole number of huge pages starts on a huge-page boundary,
// so that all of it can be backed by huge pages (see adviseHuge): it is
// mapped with a huge page to spare, whose unaligned ends are unmapped.
func mapArray[T any](n int) []T {
	var z T
	size := uintptr(n) * unsafe.Sizeof(z)
	if size == 0 {
		return nil
	}
	extra := uintptr(0)
	if size%hugePage == 0 {
		extra = hugePage
	}
	p, err := unix.MmapPtr(-1, 0, nil, size+extra, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		panic(fmt.Sprintf("store: map %d bytes: %v", size, err))
	}
	if extra != 0 {
		head := (hugePage - uintptr(p)%hugePage) % hugePage
		if head != 0 {
			unmapRange(p, head)
		}
		if tail := extra - head; tail != 0 {
			unmapRange(unsafe.Add(p, head+size), tail)
		}
		p = unsafe.Add(p, head)
	}
	return unsafe.Slice((*T)(p), n)
}

// unmapRange unmaps length bytes at p.
func unmapRange(p unsafe.Pointer, length uintptr) {
	if err := unix.MunmapPtr(p, length); err != nil {
		panic(fmt.Sprintf("store: unmap %d bytes: %v", length, err))
	}
}

// adviseHuge asks the kernel to back a (an array from mapArray) with
// transparent huge pages where it can (the 2 MiB-aligned stretches inside
// it): a big index or slab part then costs one page fault per 2 MiB rather
// than per 4 KiB on first touch, and its random accesses far fewer TLB
// misses. It is only advice: errors (no THP support) are ignored.
func adviseHuge[T any](a []T) {
	var z T
	if size := uintptr(len(a)) * unsafe.Sizeof(z); size >= hugePage {
		b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(a))), size)
		_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	}
}

// hugePage is the size of a transparent huge page on amd64 and arm64
// (with 4 KiB base pages).
const hugePage = 2 << 20

// unmapArray releases an array from mapArray.
func unmapArray[T any](a []T) {
	if len(a) == 0 {
		return
	}
	var z T
	unmapRange(unsafe.Pointer(unsafe.SliceData(a)), uintptr(len(a))*unsafe.Sizeof(z))
}

// releasePages returns the whole pages under a (a part of an array from
// mapArray) to the system; they read as zeros afterwards.
func releasePages[T any](a []T) {
	if len(a) == 0 {
		return
	}
	var z T
	page := uintptr(unix.Getpagesize())
	base := unsafe.Pointer(unsafe.SliceData(a))
	size := uintptr(len(a)) * unsafe.Sizeof(z)
	skip := (page - uintptr(base)&(page-1)) & (page - 1) // to the first whole page
	if size <= skip {
		return
	}
	n := (size - skip) &^ (page - 1)
	if n == 0 {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(base, skip)), n)
	if err := unix.Madvise(b, unix.MADV_DONTNEED); err != nil {
		panic(fmt.Sprintf("store: release %d bytes: %v", len(b), err))
	}
}
