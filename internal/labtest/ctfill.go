//go:build linux

package labtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// FillEntry is one conntrack entry of the deterministic lab table that
// FillConntrack creates: entry i of a table of any size is always the same.
type FillEntry struct {
	IPv6     bool
	Proto    uint8 // 6 (TCP, ESTABLISHED) or 17 (UDP)
	Src, Dst netip.Addr
	Sport    uint16
	Dport    uint16
}

// FillEntryAt returns entry i (0 <= i < 1<<24): a mix of three assured UDP
// entries to one assured ESTABLISHED TCP entry, one in eight IPv6, with
// destination ports spread over 1000–5999 (so that sorting by port and
// filtering by a port range mean something). Sources are unique.
func FillEntryAt(i int) FillEntry {
	e := FillEntry{Proto: 17, Dst: netip.AddrFrom4([4]byte{10, 201, 0, 1})}
	if i%4 == 3 {
		e.Proto = 6
	}
	// A multiplicative hash spreads the ports; the source makes the key
	// unique.
	e.Dport = uint16(1000 + (uint32(i)*2654435761>>12)%5000)
	e.Sport = uint16(1024 + i&63)
	if i%8 == 5 {
		e.IPv6 = true
		e.Src = netip.AddrFrom16([16]byte{0: 0xfd, 1: 0, 2: 0x02, 3: 0x00, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		e.Dst = netip.MustParseAddr("fd00:201::1")
		return e
	}
	e.Src = netip.AddrFrom4([4]byte{10, 200 + byte(i>>22), byte(i >> 14), byte(i >> 6)})
	return e
}

// fillTimeout is the entries' timeout: long enough that a test's table
// stays steady.
const fillTimeout = 3600

// FillConntrack creates entries FillEntryAt(0..n-1) in the namespace's
// conntrack table with batched ctnetlink creates (no acknowledgement per
// entry: the kernel answers only refusals) over two sockets, and fails the
// test when the kernel refused any or when the namespace's table does not
// then hold n entries. nf_conntrack_max must allow n (see SetConntrackMax);
// filling 4,194,304 entries costs about 1.3 GB of kernel memory, freed with
// the namespace.
func (ns *NS) FillConntrack(t testing.TB, n int) {
	t.Helper()
	ns.FillConntrackRange(t, 0, n)
	if got := ns.ConntrackCount(t); got != n {
		t.Fatalf("the table of %s holds %d entries after the fill, want %d", ns.Name, got, n)
	}
}

// FillConntrackRange creates entries FillEntryAt(from..to-1) as
// FillConntrack does, as fast as the kernel takes them, and fails the test
// when the kernel refused any. It does not check the table's count (other
// entries may come and go meanwhile).
func (ns *NS) FillConntrackRange(t testing.TB, from, to int) {
	t.Helper()
	const workers = 2
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = ns.fillPart(from+w, workers, to)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("fill %s with entries %d to %d: %v", ns.Name, from, to-1, err)
	}
}

// ConntrackCount returns the namespace's nf_conntrack_count.
func (ns *NS) ConntrackCount(t testing.TB) int {
	t.Helper()
	out := strings.TrimSpace(ns.MustExec(t, "cat", "/proc/sys/net/netfilter/nf_conntrack_count"))
	n, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("nf_conntrack_count of %s: %q", ns.Name, out)
	}
	return n
}

// ctnetlink numbers (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctMsgNew      = 1 << 8 // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW (0)
	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaStatus     = 3
	ctaProtoinfo  = 4
	ctaTimeout    = 7
	ctaTupleIP    = 1
	ctaTupleProto = 2
	ctaIPv4Src    = 1
	ctaIPv4Dst    = 2
	ctaIPv6Src    = 3
	ctaIPv6Dst    = 4
	ctaProtoNum   = 1
	ctaProtoSport = 2
	ctaProtoDport = 3
	ctaProtoTCP   = 1 // CTA_PROTOINFO_TCP
	ctaTCPState   = 1 // CTA_PROTOINFO_TCP_STATE
	nlaNested     = 0x8000
	tcpEstab      = 3         // TCP_CONNTRACK_ESTABLISHED
	statusFill    = 8 | 2 | 4 // CONFIRMED | SEEN_REPLY | ASSURED
	batchBytes    = 60 << 10  // requests per sendmsg
	fillRecvBuf   = 4 << 20   // room for refusals between drains
	fillRecvWait  = 10 * time.Second
)

// fillPart creates entries first, first+step, … below n over its own
// socket.
func (ns *NS) fillPart(first, step, n int) error {
	var fd int
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("ctnetlink socket: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(fd) }()
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("bind ctnetlink socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, fillRecvBuf)
	tv := unix.NsecToTimeval(fillRecvWait.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("ctnetlink socket timeout: %w", err)
	}
	f := &filler{fd: fd, buf: make([]byte, 1<<16)}
	batch := make([]byte, 0, batchBytes+1024)
	last := -1
	for i := first; i < n; i += step {
		last = i
	}
	for i := first; i < n; i += step {
		flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_CREATE | unix.NLM_F_EXCL)
		if i == last {
			// The last request is acknowledged: once its answer is read,
			// every earlier one was processed.
			flags |= unix.NLM_F_ACK
		}
		batch = appendFillCreate(batch, uint32(i+1), flags, FillEntryAt(i))
		if len(batch) >= batchBytes || i == last {
			if err := unix.Sendto(fd, batch, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
				return fmt.Errorf("send creates: %w", err)
			}
			batch = batch[:0]
			if err := f.read(i == last, uint32(last+1)); err != nil {
				return err
			}
		}
	}
	if f.refused > 0 {
		return fmt.Errorf("the kernel refused %d creates, the first with: %w", f.refused, f.first)
	}
	return nil
}

// filler reads the kernel's answers to creates.
type filler struct {
	fd      int
	buf     []byte
	refused int
	first   error
}

// read takes the answers queued on the socket without waiting; with wait it
// then blocks (bounded) until the acknowledgement of request ackSeq.
func (f *filler) read(wait bool, ackSeq uint32) error {
	for {
		flags := unix.MSG_DONTWAIT
		if wait {
			flags = 0
		}
		n, _, err := unix.Recvfrom(f.fd, f.buf, flags)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EWOULDBLOCK) {
			if wait {
				return fmt.Errorf("no acknowledgement from ctnetlink within %v", fillRecvWait)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read ctnetlink answers: %w", err)
		}
		b := f.buf[:n]
		for len(b) >= unix.NLMSG_HDRLEN {
			l := int(binary.NativeEndian.Uint32(b))
			typ := binary.NativeEndian.Uint16(b[4:])
			seq := binary.NativeEndian.Uint32(b[8:])
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return fmt.Errorf("malformed netlink answer (length %d of %d)", l, len(b))
			}
			if typ == unix.NLMSG_ERROR && l >= unix.NLMSG_HDRLEN+4 {
				errno := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:]))
				if errno != 0 {
					if f.refused == 0 {
						f.first = fmt.Errorf("entry %d: %w", seq-1, unix.Errno(-errno))
					}
					f.refused++
				}
				if seq == ackSeq && wait {
					return nil
				}
			}
			b = b[min(len(b), (l+3)&^3):]
		}
	}
}

// appendFillCreate appends one IPCTNL_MSG_CT_NEW request for e.
func appendFillCreate(b []byte, seq uint32, flags uint16, e FillEntry) []byte {
	start := len(b)
	b = binary.NativeEndian.AppendUint32(b, 0) // length, set below
	b = binary.NativeEndian.AppendUint16(b, ctMsgNew)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	family := byte(unix.AF_INET)
	if e.IPv6 {
		family = unix.AF_INET6
	}
	b = append(b, family, 0, 0, 0) // nfgenmsg: family, version 0, res_id 0
	b = appendFillTuple(b, ctaTupleOrig, e.Src, e.Dst, e.Sport, e.Dport, e.Proto)
	b = appendFillTuple(b, ctaTupleReply, e.Dst, e.Src, e.Dport, e.Sport, e.Proto)
	b = appendNLAttr(b, ctaStatus, binary.BigEndian.AppendUint32(nil, statusFill))
	b = appendNLAttr(b, ctaTimeout, binary.BigEndian.AppendUint32(nil, fillTimeout))
	if e.Proto == 6 {
		pi := len(b)
		b = appendNLAttr(b, ctaProtoinfo|nlaNested, nil)
		tcp := len(b)
		b = appendNLAttr(b, ctaProtoTCP|nlaNested, nil)
		b = appendNLAttr(b, ctaTCPState, []byte{tcpEstab})
		b = endNLNest(b, tcp)
		b = endNLNest(b, pi)
	}
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

func appendFillTuple(b []byte, typ uint16, src, dst netip.Addr, sport, dport uint16, proto uint8) []byte {
	tup := len(b)
	b = appendNLAttr(b, typ|nlaNested, nil)
	ip := len(b)
	b = appendNLAttr(b, ctaTupleIP|nlaNested, nil)
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		b = appendNLAttr(b, ctaIPv4Src, s[:])
		b = appendNLAttr(b, ctaIPv4Dst, d[:])
	} else {
		s, d := src.As16(), dst.As16()
		b = appendNLAttr(b, ctaIPv6Src, s[:])
		b = appendNLAttr(b, ctaIPv6Dst, d[:])
	}
	b = endNLNest(b, ip)
	pr := len(b)
	b = appendNLAttr(b, ctaTupleProto|nlaNested, nil)
	b = appendNLAttr(b, ctaProtoNum, []byte{proto})
	b = appendNLAttr(b, ctaProtoSport, binary.BigEndian.AppendUint16(nil, sport))
	b = appendNLAttr(b, ctaProtoDport, binary.BigEndian.AppendUint16(nil, dport))
	b = endNLNest(b, pr)
	return endNLNest(b, tup)
}

// appendNLAttr appends a netlink attribute, padded to 4 bytes.
func appendNLAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// endNLNest sets the length of the nest begun at off.
func endNLNest(b []byte, off int) []byte {
	binary.NativeEndian.PutUint16(b[off:], uint16(len(b)-off))
	return b
}

// KernelEntry is one line of /proc/net/nf_conntrack, as far as the lab
// tests compare it.
type KernelEntry struct {
	IPv6     bool
	Proto    uint8
	State    string // the TCP state column; "" for other protocols
	Src, Dst netip.Addr
	Sport    uint16
	Dport    uint16
	Assured  bool
}

// WalkKernelTable reads the namespace's /proc/net/nf_conntrack (the
// kernel's own view of its table) and calls fn for each entry, streaming:
// memory does not grow with the table.
func (ns *NS) WalkKernelTable(fn func(*KernelEntry)) error {
	var f *os.File
	err := ns.Do(func() error {
		// /proc/thread-self: this locked thread is the one inside the
		// namespace; the open file stays bound to it.
		var err error
		f, err = os.Open("/proc/thread-self/net/nf_conntrack")
		return err
	})
	if err != nil {
		return fmt.Errorf("open the kernel table of %s: %w", ns.Name, err)
	}
	defer f.Close()
	return parseKernelTable(f, fn)
}

// ctBucketsPath is the size of the machine-wide conntrack hash table.
const ctBucketsPath = "/proc/sys/net/netfilter/nf_conntrack_buckets"

// RaiseConntrackTable takes the nf_conntrack_max lock exclusively and, for
// the rest of the test, raises nf_conntrack_max to at least n and the hash
// table to at least n/4 buckets (with fewer, a fill of millions of entries
// meets hash chains the kernel refuses to grow, ENOSPC); both are restored
// at cleanup.
func RaiseConntrackTable(t testing.TB, n int) {
	t.Helper()
	HoldConntrackMax(t, true)
	oldMax := ConntrackMax(t)
	b, err := os.ReadFile(ctBucketsPath)
	if err != nil {
		t.Fatalf("read %s: %v", ctBucketsPath, err)
	}
	oldBuckets, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("parse %s: %q", ctBucketsPath, b)
	}
	if n > oldMax {
		if err := writeCtMax(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := writeCtMax(oldMax); err != nil {
				t.Errorf("restore nf_conntrack_max: %v", err)
			}
		})
	}
	if n/4 > oldBuckets {
		if err := os.WriteFile(ctBucketsPath, []byte(strconv.Itoa(n/4)+"\n"), 0o644); err != nil {
			t.Fatalf("set %s to %d: %v", ctBucketsPath, n/4, err)
		}
		t.Cleanup(func() {
			if err := os.WriteFile(ctBucketsPath, []byte(strconv.Itoa(oldBuckets)+"\n"), 0o644); err != nil {
				t.Errorf("restore %s: %v", ctBucketsPath, err)
			}
		})
	}
}
