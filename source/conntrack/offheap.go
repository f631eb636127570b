//go:build linux

package conntrack

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// offArray is a growable array of a pointer-free type T in an anonymous
// private mapping outside the Go heap: the garbage collector neither scans
// it nor counts it towards its heap goal (a big array in the heap lets the
// heap grow by as much again between collections), pages not yet written
// cost no memory, and free gives the memory back at once. T must contain
// no Go pointers. The zero value is an empty array; free it when done.
type offArray[T any] struct {
	a      []T     // len: the values; cap: what the mapping holds
	mapped uintptr // bytes mapped at &a[:1][0]
}

func (o *offArray[T]) elemSize() uintptr {
	var z T
	return unsafe.Sizeof(z)
}

// mapOff maps room for at least n values (n > 0). It panics when the
// system has no memory left, as a Go allocation would.
func mapOff[T any](n int) offArray[T] {
	var o offArray[T]
	sz := o.elemSize()
	page := uintptr(unix.Getpagesize())
	size := (uintptr(n)*sz + page - 1) &^ (page - 1)
	p, err := unix.MmapPtr(-1, 0, nil, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		panic(fmt.Sprintf("conntrack: map %d bytes: %v", size, err))
	}
	if size >= hugeMin {
		// Fewer page faults while filling, fewer TLB misses while
		// sorting and looking up; only where THP is "madvise" (an
		// error, e.g. no THP, changes nothing).
		_ = unix.Madvise(unsafe.Slice((*byte)(p), size), unix.MADV_HUGEPAGE)
	}
	o.a = unsafe.Slice((*T)(p), size/sz)[:0]
	o.mapped = size
	return o
}

// hugeMin is the least mapping that asks for transparent huge pages.
const hugeMin = 8 << 20

// reserve makes room for n values in all (only when empty).
func (o *offArray[T]) reserve(n int) {
	if n > cap(o.a) && len(o.a) == 0 {
		o.free()
		*o = mapOff[T](n)
	}
}

// push appends v, moving the values to a mapping twice as big when full.
func (o *offArray[T]) push(v T) {
	if len(o.a) == cap(o.a) {
		b := mapOff[T](max(2*cap(o.a), 1024))
		b.a = b.a[:len(o.a)]
		copy(b.a, o.a)
		o.free()
		*o = b
	}
	o.a = append(o.a, v) // within the capacity: never reallocates
}

// trim unmaps the whole pages past the values.
func (o *offArray[T]) trim() {
	if len(o.a) == 0 {
		o.free()
		return
	}
	sz := o.elemSize()
	page := uintptr(unix.Getpagesize())
	keep := (uintptr(len(o.a))*sz + page - 1) &^ (page - 1)
	if keep >= o.mapped {
		return
	}
	base := unsafe.Pointer(unsafe.SliceData(o.a))
	if err := unix.MunmapPtr(unsafe.Add(base, keep), o.mapped-keep); err != nil {
		panic(fmt.Sprintf("conntrack: unmap %d bytes: %v", o.mapped-keep, err))
	}
	o.a = o.a[: len(o.a) : keep/sz]
	o.mapped = keep
}

// free unmaps the array; it is empty afterwards.
func (o *offArray[T]) free() {
	if o.mapped != 0 {
		if err := unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(o.a)), o.mapped); err != nil {
			panic(fmt.Sprintf("conntrack: unmap %d bytes: %v", o.mapped, err))
		}
	}
	*o = offArray[T]{}
}
