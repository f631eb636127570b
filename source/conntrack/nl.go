//go:build linux

package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Netlink and nfnetlink constants (linux/netlink.h, linux/netfilter/nfnetlink*.h).
const (
	nlmsgHdrLen  = 16
	nfgenHdrLen  = 4
	nlmsgNoop    = 1
	nlmsgError   = 2
	nlmsgDone    = 3
	nlmsgOverrun = 4

	flagRequest = 0x1
	flagMulti   = 0x2
	flagAck     = 0x4
	flagDump    = 0x300
	flagReplace = 0x100 // NLM_F_REPLACE (for NEW requests)
	flagExcl    = 0x200 // NLM_F_EXCL
	flagCreate  = 0x400 // NLM_F_CREATE

	subsysCT      = 1 // NFNL_SUBSYS_CTNETLINK
	subsysNFTable = 10

	msgCTNew      = 0 // IPCTNL_MSG_CT_NEW
	msgCTGet      = 1
	msgCTDelete   = 2
	msgCTStatsCPU = 4
	msgCTStats    = 5

	groupCTNew     = 1 // NFNLGRP_CONNTRACK_NEW
	groupCTUpdate  = 2
	groupCTDestroy = 3

	nfnlV0 = 0

	// skMeminfoDrops is the index of SK_MEMINFO_DROPS in SO_MEMINFO.
	skMeminfoDrops = 8
	skMeminfoVars  = 9
)

// errTimeout is returned by recv when no message arrived within the socket's
// receive timeout.
var errTimeout = errors.New("netlink receive timeout")

// sock is one raw NETLINK_NETFILTER socket with a reusable receive buffer.
// It is used by one goroutine at a time.
type sock struct {
	fd  int
	seq uint32
	buf []byte
	out []byte // request build buffer
	// foreign, when set, counts the datagrams dropped because they came
	// from a sender other than the kernel (see fromKernel).
	foreign *atomic.Uint64
	// dumpFree is the pool of transactDump's receive buffers (made by
	// the first dump).
	dumpFree chan []byte
}

// openSock opens and binds a netfilter netlink socket in the calling thread's
// network namespace. groups is the multicast bitmask to join (0 for a query
// socket); rcvbuf, if > 0, sets the receive buffer (SO_RCVBUFFORCE, falling
// back to SO_RCVBUF when not permitted); timeout bounds each receive.
func openSock(groups uint32, rcvbuf int, timeout time.Duration, bufSize int) (*sock, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, classify("open netlink socket", err)
	}
	s := &sock{fd: fd, buf: make([]byte, bufSize), seq: uint32(time.Now().UnixNano())}
	fail := func(op string, err error) (*sock, error) {
		_ = unix.Close(fd)
		return nil, classify(op, err)
	}
	if rcvbuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
				return fail("set netlink receive buffer", err)
			}
		}
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("set netlink receive timeout", err)
	}
	// Extended acks make the kernel explain errors; harmless if unsupported.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		return fail("bind netlink socket to conntrack events", err)
	}
	return s, nil
}

// Close closes the socket. Closing a netlink socket cannot lose data, so
// there is no error to report.
func (s *sock) Close() { _ = unix.Close(s.fd) }

// drops returns the socket's count of messages dropped for lack of buffer
// space (SK_MEMINFO_DROPS).
func (s *sock) drops() (uint32, error) {
	var mi [skMeminfoVars]uint32
	b := unsafeBytes(mi[:])
	n, err := getsockoptBytes(s.fd, unix.SOL_SOCKET, unix.SO_MEMINFO, b)
	if err != nil {
		return 0, fmt.Errorf("read netlink socket drops: %w", err)
	}
	if n < (skMeminfoDrops+1)*4 {
		return 0, errors.New("read netlink socket drops: short SO_MEMINFO")
	}
	return binary.NativeEndian.Uint32(b[skMeminfoDrops*4:]), nil
}

// request appends a netlink + nfgenmsg header for an nfnetlink message to
// s.out (reset) and returns its sequence number; attrs are appended by the
// caller with appendAttr and the length is fixed by send.
func (s *sock) begin(subsys, msg uint8, flags uint16, family uint8) uint32 {
	s.seq++
	s.out = s.out[:0]
	s.out = binary.NativeEndian.AppendUint32(s.out, 0) // length, set by send
	s.out = binary.NativeEndian.AppendUint16(s.out, uint16(subsys)<<8|uint16(msg))
	s.out = binary.NativeEndian.AppendUint16(s.out, flags)
	s.out = binary.NativeEndian.AppendUint32(s.out, s.seq)
	s.out = binary.NativeEndian.AppendUint32(s.out, 0)
	s.out = append(s.out, family, nfnlV0, 0, 0)
	return s.seq
}

// send sends the message built in s.out.
func (s *sock) send() error {
	binary.NativeEndian.PutUint32(s.out, uint32(len(s.out)))
	return s.sendRaw(s.out)
}

// sendRaw sends bytes holding one or more complete netlink messages.
func (s *sock) sendRaw(b []byte) error {
	for {
		err := unix.Sendto(s.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err
	}
}

// fromKernel reports whether a datagram's sender is the kernel (netlink
// port id 0). Any process that may open a netfilter netlink socket in the
// namespace (root of a user-namespaced container, say) can send datagrams
// to ours: they could forge entries or a fake overrun, so only the
// kernel's are read.
func fromKernel(from unix.Sockaddr) bool {
	sa, ok := from.(*unix.SockaddrNetlink)
	return ok && sa.Pid == 0
}

// recv reads one datagram (one or more netlink messages) from the kernel
// into s.buf (see recvInto).
func (s *sock) recv() ([]byte, error) {
	n, err := s.recvInto(s.buf)
	if err != nil {
		return nil, err
	}
	return s.buf[:n], nil
}

// message is one parsed netlink message header and payload (after the
// nlmsghdr).
type message struct {
	typ, flags uint16
	seq        uint32
	data       []byte
}

// nextMessage splits the first netlink message off b.
func nextMessage(b []byte) (m message, rest []byte, err error) {
	if len(b) < nlmsgHdrLen {
		return m, nil, fmt.Errorf("short netlink message header (%d bytes)", len(b))
	}
	l := int(binary.NativeEndian.Uint32(b))
	if l < nlmsgHdrLen || l > len(b) {
		return m, nil, fmt.Errorf("bad netlink message length %d (have %d)", l, len(b))
	}
	m.typ = binary.NativeEndian.Uint16(b[4:])
	m.flags = binary.NativeEndian.Uint16(b[6:])
	m.seq = binary.NativeEndian.Uint32(b[8:])
	m.data = b[nlmsgHdrLen:l]
	al := align4(l)
	if al > len(b) {
		al = len(b)
	}
	return m, b[al:], nil
}

// errnoOf returns the error an NLMSG_ERROR payload carries (nil for an ACK).
func errnoOf(data []byte) error {
	if len(data) < 4 {
		return errors.New("short netlink error message")
	}
	code := int32(binary.NativeEndian.Uint32(data))
	if code == 0 {
		return nil
	}
	return unix.Errno(-code)
}

// transact sends the request in s.out and feeds each reply message to fn
// until the dump ends (NLMSG_DONE) or, for a non-dump request sent with
// NLM_F_ACK, the acknowledgement arrives.
func (s *sock) transact(fn func(m message) error) error {
	seq := s.seq
	dump := binary.NativeEndian.Uint16(s.out[6:])&flagDump == flagDump
	if err := s.send(); err != nil {
		return err
	}
	var ferr error
	for {
		b, err := s.recv()
		if err != nil {
			return err
		}
		done, err := replyDatagram(seq, b, !dump, fn, &ferr)
		if err != nil {
			return err
		}
		if done {
			return ferr
		}
	}
}

// appendAttr appends a netlink attribute (type typ, payload v) to b.
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// beginNested appends a nested attribute header and returns its offset for
// endNested.
func beginNested(b []byte, typ uint16) ([]byte, int) {
	off := len(b)
	b = binary.NativeEndian.AppendUint16(b, 0)
	b = binary.NativeEndian.AppendUint16(b, typ|nlaNested)
	return b, off
}

// endNested fixes the length of the nested attribute started at off.
func endNested(b []byte, off int) []byte {
	binary.NativeEndian.PutUint16(b[off:], uint16(len(b)-off))
	return b
}

func align4(n int) int { return (n + 3) &^ 3 }
