//go:build linux

package conntrack

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sizes of the event socket's batch receiver.
const (
	// eventBatch is how many datagrams one recvmmsg(2) returns at most.
	eventBatch = 64
	// eventSlot is the room for one datagram. A conntrack event is one
	// message of a few hundred bytes (the kernel sizes its buffer with
	// ctnetlink_nlmsg_size); a longer datagram is reported as truncated.
	eventSlot = 8 << 10
)

// mrecv reads many datagrams of one socket per system call with
// recvmmsg(2) and MSG_WAITFORONE: it blocks (up to the socket's receive
// timeout) for the first datagram, then takes whatever else is queued, up
// to eventBatch. On a netlink socket every datagram is one kernel skb; the
// batch saves the system call and scheduler round trip per event that
// recvfrom(2) costs.
type mrecv struct {
	fd    int
	buf   []byte
	iov   []unix.Iovec
	hdrs  []unix.Mmsghdr
	names []unix.RawSockaddrNetlink // each datagram's sender
}

// newMrecv returns a batch receiver for fd with n slots of size bytes.
func newMrecv(fd, n, size int) *mrecv {
	m := &mrecv{fd: fd, buf: make([]byte, n*size), iov: make([]unix.Iovec, n), hdrs: make([]unix.Mmsghdr, n),
		names: make([]unix.RawSockaddrNetlink, n)}
	for i := range m.hdrs {
		m.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&m.names[i]))
		m.iov[i].Base = &m.buf[i*size]
		m.iov[i].SetLen(size)
		m.hdrs[i].Hdr.Iov = &m.iov[i]
		m.hdrs[i].Hdr.SetIovlen(1)
	}
	return m
}

// recv waits for datagrams and returns how many arrived (at least 1 when
// err is nil). It returns errTimeout when none arrived within the socket's
// receive timeout. An error that the kernel met after some datagrams (such
// as ENOBUFS) is kept by the kernel and returned by the next call.
func (m *mrecv) recv() (int, error) {
	for i := range m.hdrs {
		m.hdrs[i].Len = 0
		m.hdrs[i].Hdr.Flags = 0
		m.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrNetlink
		m.names[i] = unix.RawSockaddrNetlink{}
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(m.fd),
			uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(len(m.hdrs)), unix.MSG_WAITFORONE, 0, 0)
		runtime.KeepAlive(m)
		switch {
		case errno == 0:
			return int(n), nil
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			return 0, errTimeout
		}
		return 0, errno
	}
}

// fromKernel reports whether the i-th datagram of the last recv came from
// the kernel (netlink port id 0; see the function fromKernel).
func (m *mrecv) fromKernel(i int) bool {
	return m.hdrs[i].Hdr.Namelen >= unix.SizeofSockaddrNetlink && m.names[i].Family == unix.AF_NETLINK && m.names[i].Pid == 0
}

// datagram returns the i-th datagram of the last recv, and whether the
// kernel cut it short because it did not fit its slot.
func (m *mrecv) datagram(i int) (b []byte, truncated bool) {
	h := &m.hdrs[i]
	size := int(m.iov[i].Len)
	n := int(h.Len)
	if n > size {
		n = size
	}
	off := i * size
	return m.buf[off : off+n], h.Hdr.Flags&unix.MSG_TRUNC != 0
}
