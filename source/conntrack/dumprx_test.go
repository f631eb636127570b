//go:build linux

package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"

	"github.com/conntop/conntop/internal/flow"
	"golang.org/x/sys/unix"
)

// kernelSkb is the most a dump datagram from the kernel holds (netlink
// caps a dump's skb at SKB_WITH_OVERHEAD(32768); about this much).
const kernelSkb = 32768 - 384

// dumpEntry returns entry n of a synthetic table as a dump lists it:
// IPv4 UDP and ESTABLISHED TCP with counters, one in eight IPv6 (the mix
// labtest.FillConntrack makes).
func dumpEntry(n int) flow.Flow {
	f := flow.Flow{ID: uint32(n), Family: flow.FamilyIPv4, Proto: flow.ProtoUDP, Timeout: uint32(n % 600),
		Status: flow.StatusConfirmed | flow.StatusSeenReply | flow.StatusAssured, Use: 1, HasCounters: true,
		Counters: flow.Counters{OrigPackets: uint64(n % 1000), OrigBytes: uint64(n % 100000), ReplyPackets: 1, ReplyBytes: 99}}
	src := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
	dst := netip.AddrFrom4([4]byte{10, 255, 0, byte(n % 4)})
	if n%8 == 7 {
		f.Family = flow.FamilyIPv6
		src = netip.AddrFrom16([16]byte{0xfd, 0, 12: byte(n >> 24), 13: byte(n >> 16), 14: byte(n >> 8), 15: byte(n)})
		dst = netip.MustParseAddr("fd00::1")
	}
	if n%2 == 1 {
		f.Proto, f.TCPState = flow.ProtoTCP, flow.TCPEstablished
	}
	f.Orig = flow.Tuple{Src: src, Dst: dst, SrcPort: uint16(1024 + n%60000), DstPort: 53}
	f.Reply = f.Orig.Reverse(f.Proto)
	return f
}

// appendNlmsg appends a netlink message of type typ carrying payload.
func appendNlmsg(b []byte, typ uint16, seq uint32, payload []byte) []byte {
	b = binary.NativeEndian.AppendUint32(b, uint32(nlmsgHdrLen+len(payload)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flagMulti)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// dumpDatagrams builds the datagrams of a dump (sequence number seq) of
// entries 0..n-1, packed as the kernel packs them, NLMSG_DONE last.
func dumpDatagrams(seq uint32, n int) [][]byte {
	var out [][]byte
	var d []byte
	for i := range n {
		f := dumpEntry(i)
		m := appendNlmsg(nil, uint16(subsysCT)<<8|msgCTNew, seq, buildMessage(&f))
		if len(d)+len(m) > kernelSkb {
			out = append(out, d)
			d = nil
		}
		d = append(d, m...)
	}
	done := appendNlmsg(nil, nlmsgDone, seq, []byte{0, 0, 0, 0})
	if len(d)+len(done) > kernelSkb {
		out = append(out, d)
		d = nil
	}
	return append(out, append(d, done...))
}

// replay returns a recv function for receiveDump that hands out the
// datagrams one by one (then fails: a dump read past its end).
func replay(dgs [][]byte) func([]byte) (int, error) {
	i := 0
	return func(b []byte) (int, error) {
		if i == len(dgs) {
			return 0, errors.New("read past the end of the dump")
		}
		n := copy(b, dgs[i])
		i++
		return n, nil
	}
}

func newDumpPool() chan []byte {
	free := make(chan []byte, dumpBufs)
	for range dumpBufs {
		free <- make([]byte, dumpBufSize)
	}
	return free
}

// TestReceiveDump: every entry of a dump arrives once and in order, stale
// replies to another request are skipped, and the buffers all return to
// the pool, whatever ends the dump.
func TestReceiveDump(t *testing.T) {
	const seq, n = 77, 5000
	dgs := dumpDatagrams(seq, n)
	if len(dgs) < 10 {
		t.Fatalf("only %d datagrams: the test wants a dump longer than the pool", len(dgs))
	}
	// A stale reply to an earlier request leads the second datagram.
	stale := dumpEntry(999999)
	dgs[1] = append(appendNlmsg(nil, uint16(subsysCT)<<8|msgCTNew, seq-1, buildMessage(&stale)), dgs[1]...)
	free := newDumpPool()
	check := func(t *testing.T, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("%d entries, want %d", got, want)
		}
		if len(free) != dumpBufs {
			t.Errorf("%d buffers back in the pool, want %d", len(free), dumpBufs)
		}
	}

	t.Run("whole", func(t *testing.T) {
		next := 0
		err := receiveDump(seq, free, replay(dgs), flowMessages(nil, func(f *flow.Flow) error {
			if want := dumpEntry(next); f.ID != want.ID || f.Orig != want.Orig || f.Counters != want.Counters {
				return fmt.Errorf("entry %d: got id %d %v", next, f.ID, f.Orig)
			}
			next++
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		check(t, next, n)
	})
	t.Run("fn fails: read to the end, fn's error", func(t *testing.T) {
		calls := 0
		stop := errors.New("stop")
		err := receiveDump(seq, free, replay(dgs), flowMessages(nil, func(*flow.Flow) error {
			calls++
			if calls == 100 {
				return stop
			}
			return nil
		}))
		if !errors.Is(err, stop) {
			t.Fatalf("err = %v, want the callback's", err)
		}
		check(t, calls, 100)
	})
	t.Run("kernel error", func(t *testing.T) {
		bad := append([][]byte{}, dgs[:3]...)
		bad = append(bad, appendNlmsg(nil, nlmsgError, seq, binary.NativeEndian.AppendUint32(nil, uint32(^uint32(unix.EBUSY)+1))))
		calls := 0
		err := receiveDump(seq, free, replay(bad), flowMessages(nil, func(*flow.Flow) error { calls++; return nil }))
		if !errors.Is(err, unix.EBUSY) {
			t.Fatalf("err = %v, want EBUSY", err)
		}
		if calls == 0 {
			t.Error("no entry before the error")
		}
		check(t, calls, calls)
	})
	t.Run("receive error", func(t *testing.T) {
		calls := 0
		err := receiveDump(seq, free, replay(dgs[:4]), flowMessages(nil, func(*flow.Flow) error { calls++; return nil }))
		if err == nil || err.Error() != "read past the end of the dump" {
			t.Fatalf("err = %v, want the receive error", err)
		}
		check(t, calls, calls)
	})
	t.Run("malformed datagram", func(t *testing.T) {
		bad := append([][]byte{}, dgs[:2]...)
		bad = append(bad, dgs[2][:len(dgs[2])-7]) // cut inside its last message
		bad = append(bad, dgs[3:]...)             // never read
		calls := 0
		err := receiveDump(seq, free, replay(bad), flowMessages(nil, func(*flow.Flow) error { calls++; return nil }))
		if err == nil {
			t.Fatal("no error for a cut datagram")
		}
		check(t, calls, calls)
	})
	t.Run("undecodable entry counted and skipped", func(t *testing.T) {
		junk := appendNlmsg(nil, uint16(subsysCT)<<8|msgCTNew, seq, []byte{2, 0, 0, 0, 8, 0, 1, 0x80})
		f := dumpEntry(1)
		one := appendNlmsg(junk, uint16(subsysCT)<<8|msgCTNew, seq, buildMessage(&f))
		one = appendNlmsg(one, nlmsgDone, seq, []byte{0, 0, 0, 0})
		var nbad atomic.Uint64
		calls := 0
		if err := receiveDump(seq, free, replay([][]byte{one}), flowMessages(&nbad, func(*flow.Flow) error { calls++; return nil })); err != nil {
			t.Fatal(err)
		}
		if nbad.Load() != 1 {
			t.Errorf("%d undecodable counted, want 1", nbad.Load())
		}
		check(t, calls, 1)
	})
}

// BenchmarkDumpReceive measures the user-space share of listing a table
// of 262,144 entries, without root: recorded dump datagrams (packed as
// the kernel packs them) are decoded and each entry sent on a channel
// that a goroutine drains as the engine's pump does ("decode-only" stops
// after decoding). "serial" feeds the
// datagrams on the decoding goroutine, as one receiving goroutine would;
// "pipelined" runs receiveDump, whose reader copies each datagram into a
// pooled buffer (the kernel's copy to user space) on its own goroutine.
// Against the kernel, the reader's goroutine also carries the kernel's
// work of filling the datagrams (see TestMeasureDumpStages), which the
// pipeline overlaps with decoding.
func BenchmarkDumpReceive(b *testing.B) {
	const seq, n = 5, 262144
	dgs := dumpDatagrams(seq, n)
	run := func(b *testing.B, list func(fn func(m message) error) error) {
		b.ReportAllocs()
		for b.Loop() {
			ch := make(chan flow.Event, 65536)
			got := make(chan int)
			go func() {
				c := 0
				for ev := range ch {
					if ev.Type == flow.EventNew {
						c++
					}
				}
				got <- c
			}()
			err := list(flowMessages(nil, func(f *flow.Flow) error {
				ch <- flow.Event{Type: flow.EventNew, Flow: *f}
				return nil
			}))
			close(ch)
			if c := <-got; err != nil || c != n {
				b.Fatalf("%d entries, %v", c, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/flow")
	}
	b.Run("decode-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := 0
			fn := flowMessages(nil, func(*flow.Flow) error { c++; return nil })
			var ferr error
			for _, d := range dgs {
				if _, err := replyDatagram(seq, d, false, fn, &ferr); err != nil {
					b.Fatal(err)
				}
			}
			if c != n {
				b.Fatalf("%d entries", c)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/flow")
	})
	b.Run("serial", func(b *testing.B) {
		run(b, func(fn func(m message) error) error {
			var ferr error
			for _, d := range dgs {
				if _, err := replyDatagram(seq, d, false, fn, &ferr); err != nil {
					return err
				}
			}
			return ferr
		})
	})
	b.Run("pipelined", func(b *testing.B) {
		free := newDumpPool()
		run(b, func(fn func(m message) error) error { return receiveDump(seq, free, replay(dgs), fn) })
	})
	// The same with the kernel's share stood in for: each receive also
	// spends kernelWork in a system call (reading /dev/zero), about what
	// the kernel spends filling a datagram of a big table's dump.
	zero, err := os.Open("/dev/zero")
	if err != nil {
		b.Fatal(err)
	}
	defer zero.Close()
	scratch := make([]byte, kernelWork)
	withKernel := func(recv func([]byte) (int, error)) func([]byte) (int, error) {
		return func(p []byte) (int, error) {
			if _, err := unix.Read(int(zero.Fd()), scratch); err != nil {
				return 0, err
			}
			return recv(p)
		}
	}
	b.Run("serial+kernel", func(b *testing.B) {
		run(b, func(fn func(m message) error) error {
			recv := withKernel(replay(dgs))
			buf := make([]byte, dumpBufSize)
			var ferr error
			for {
				n, err := recv(buf)
				if err != nil {
					return err
				}
				if _, err := replyDatagram(seq, buf[:n], false, fn, &ferr); err != nil {
					return err
				}
				if endsDump(seq, buf[:n]) {
					return ferr
				}
			}
		})
	})
	b.Run("pipelined+kernel", func(b *testing.B) {
		free := newDumpPool()
		run(b, func(fn func(m message) error) error { return receiveDump(seq, free, withKernel(replay(dgs)), fn) })
	})
}

// kernelWork is how many bytes of /dev/zero BenchmarkDumpReceive reads to
// stand in for the kernel's work per dump datagram.
const kernelWork = 1 << 20
