//go:build linux

package conntrack

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Sizes of a dump's receive pipeline (see sock.transactDump).
const (
	// dumpBufs is how many receive buffers a dump cycles through: one
	// being filled by the reader, the others queued for or being read by
	// the caller. Two would do for a steady pace; a few more absorb
	// the caller's pauses (a full channel downstream).
	dumpBufs = 8
	// dumpBufSize is the size of each. The kernel fills a dump's skbs up
	// to the largest receive seen, capped a little under 32 KiB
	// (netlink_recvmsg: SKB_WITH_OVERHEAD(32768)), so more room gains no
	// speed (a smaller buffer makes the kernel fill smaller skbs); the
	// margin is for a kernel that caps higher: a datagram that does not
	// fit is an error, never silently cut.
	dumpBufSize = 64 << 10
)

// dumpChunk is one datagram of a dump, in a buffer of the sock's pool, or
// the error that ended the receiving.
type dumpChunk struct {
	buf []byte // the whole pooled buffer, to give back
	n   int
	err error
}

// transactDump is transact for a dump request (NLM_F_DUMP), with the
// receiving on a goroutine of its own.
//
// The kernel produces a dump inside the reader's recvmsg(2) calls: each
// call copies out the skb filled during the previous one and fills the
// next (netlink_recvmsg → netlink_dump), so the kernel's share of a big
// table's listing (most of it: ctnetlink_fill_info per entry) runs on
// the receiving thread. A reader that only receives, and hands whole
// buffers to the caller's goroutine for decoding, lets the kernel's work
// and the caller's (decoding, sending on) run on two cores at once
// instead of one after the other. Buffers come from a fixed pool: nothing
// is allocated per datagram or per entry.
//
// Like transact, it reads the dump to its end (NLMSG_DONE or an error)
// even after fn failed, so that no reply of it is left queued, and
// returns fn's first error.
func (s *sock) transactDump(fn func(m message) error) error {
	seq := s.seq
	if err := s.send(); err != nil {
		return err
	}
	if s.dumpFree == nil {
		s.dumpFree = make(chan []byte, dumpBufs)
		for range dumpBufs {
			s.dumpFree <- make([]byte, dumpBufSize)
		}
	}
	return receiveDump(seq, s.dumpFree, s.recvInto, fn)
}

// receiveDump runs the two halves of transactDump for the dump with
// sequence number seq: a goroutine receives datagrams with recv into
// the buffers of free and hands them over; the calling goroutine feeds
// their messages to fn and gives the buffers back. free must hold at
// least one buffer, and holds all of them again on return.
func receiveDump(seq uint32, free chan []byte, recv func([]byte) (int, error), fn func(m message) error) error {
	full := make(chan dumpChunk, cap(free))
	go readDump(seq, free, full, recv)
	var ferr, perr error // fn's first error; the error the dump ended with
	for c := range full {
		if c.err != nil {
			if perr == nil {
				perr = c.err
			}
			continue
		}
		if perr == nil {
			_, perr = replyDatagram(seq, c.buf[:c.n], false, fn, &ferr)
		}
		free <- c.buf
	}
	if perr != nil {
		return perr
	}
	return ferr
}

// readDump receives the datagrams of the dump with sequence number seq
// with recv into buffers of free and sends them on full, until the
// dump's end, a receive error or a malformed datagram; then it closes
// full. It is the only reader of the socket meanwhile.
func readDump(seq uint32, free chan []byte, full chan<- dumpChunk, recv func([]byte) (int, error)) {
	defer close(full)
	for {
		b := <-free
		n, err := recv(b)
		if err != nil {
			free <- b
			full <- dumpChunk{err: err}
			return
		}
		full <- dumpChunk{buf: b, n: n}
		if endsDump(seq, b[:n]) {
			return
		}
	}
}

// endsDump reports whether datagram b holds the end of the dump with
// sequence number seq (NLMSG_DONE, an error or an overrun) or is
// malformed (the caller reports that): no more is to be read.
func endsDump(seq uint32, b []byte) bool {
	for len(b) > 0 {
		m, rest, err := nextMessage(b)
		if err != nil {
			return true
		}
		b = rest
		if m.seq != seq {
			continue
		}
		switch m.typ {
		case nlmsgDone, nlmsgOverrun:
			return true
		case nlmsgError:
			if errnoOf(m.data) != nil {
				return true
			}
		}
	}
	return false
}

// replyDatagram feeds the messages of one reply datagram of the request
// with sequence number seq to fn (until fn first fails, its error kept in
// ferr). It reports whether the request's replies ended in it (NLMSG_DONE,
// an overrun, an error, or with ack the acknowledgement of a request that
// is not a dump) and the error they ended with: a kernel error or a
// malformed datagram.
func replyDatagram(seq uint32, b []byte, ack bool, fn func(m message) error, ferr *error) (done bool, err error) {
	for len(b) > 0 {
		m, rest, err := nextMessage(b)
		if err != nil {
			return true, err
		}
		b = rest
		if m.seq != seq {
			continue // a stale reply to an earlier, abandoned request
		}
		switch m.typ {
		case nlmsgNoop:
			continue
		case nlmsgError:
			if err := errnoOf(m.data); err != nil {
				return true, err
			}
			if ack {
				return true, nil
			}
			continue
		case nlmsgDone:
			if len(m.data) >= 4 {
				if err := errnoOf(m.data); err != nil {
					return true, err
				}
			}
			return true, nil
		case nlmsgOverrun:
			return true, unix.ENOBUFS
		}
		if *ferr == nil {
			*ferr = fn(m)
		}
	}
	return false, nil
}

// recvInto reads one datagram from the kernel into b and returns its
// length; datagrams from other senders are dropped and counted, as recv
// does.
func (s *sock) recvInto(b []byte) (int, error) {
	for {
		// MSG_TRUNC: the datagram's real length, to notice a cut one.
		n, from, err := unix.Recvfrom(s.fd, b, unix.MSG_TRUNC)
		switch {
		case err == nil:
			if !fromKernel(from) {
				if s.foreign != nil {
					s.foreign.Add(1)
				}
				continue
			}
			if n > len(b) {
				return 0, fmt.Errorf("netlink message of %d bytes truncated", n)
			}
			return n, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, errTimeout
		}
		return 0, err
	}
}
