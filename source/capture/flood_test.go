//go:build linux

package capture

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/conntop/conntop/internal/csum"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
	"github.com/conntop/conntop/internal/wiretrack"
)

// flooder sends prebuilt Ethernet frames out of one interface through an
// AF_PACKET socket with sendmmsg(2), bypassing the qdisc: hundreds of
// frames per system call, so a single thread offers about a million packets
// per second to a veth pair (a Go UDP socket manages a tenth of that). It
// exists for the live-capture benchmark and is only ever pointed at a veth
// whose both ends are in namespaces the benchmark created.
type flooder struct {
	fd     int
	frames [][]byte
	iov    []unix.Iovec
	msgs   []mmsghdr
}

// mmsghdr is struct mmsghdr of <sys/socket.h> (x/sys/unix does not define
// it).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// floodBatch is the number of frames per sendmmsg call.
const floodBatch = 512

// udpFrames builds flows Ethernet/IPv4/UDP frames from src to dst:dport
// with source ports sport, sport+1, ... and a payload of plen bytes, both
// checksums correct.
func udpFrames(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16, flows, plen int) [][]byte {
	frames := make([][]byte, flows)
	for i := range frames {
		f := make([]byte, 14+20+8+plen)
		copy(f[0:6], dstMAC)
		copy(f[6:12], srcMAC)
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip := f[14:]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+8+plen))
		ip[8] = 64
		ip[9] = 17
		s4, d4 := src.As4(), dst.As4()
		copy(ip[12:16], s4[:])
		copy(ip[16:20], d4[:])
		binary.BigEndian.PutUint16(ip[10:], csum.Checksum(ip[:20]))
		udp := ip[20:]
		binary.BigEndian.PutUint16(udp[0:], sport+uint16(i))
		binary.BigEndian.PutUint16(udp[2:], dport)
		binary.BigEndian.PutUint16(udp[4:], uint16(8+plen))
		for j := range plen {
			udp[8+j] = byte(j)
		}
		acc := csum.Add16(csum.Add16(csum.Partial(ip[12:20], 0), 17), uint16(8+plen))
		c := ^csum.Fold(csum.Partial(udp, acc))
		if c == 0 {
			c = 0xFFFF
		}
		binary.BigEndian.PutUint16(udp[6:], c)
		frames[i] = f
	}
	return frames
}

// newFlooder opens the sending socket on interface ifname of namespace ns
// (the socket stays usable from any namespace once open).
func newFlooder(ns *labtest.NS, ifname string, frames [][]byte) (*flooder, error) {
	fl := &flooder{fd: -1, frames: frames}
	err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("flood: %w", err)
		}
		// Protocol 0: the socket sends only and never receives.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("flood: open packet socket: %w", err)
		}
		fl.fd = fd
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("flood: qdisc bypass: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20); err != nil {
			return fmt.Errorf("flood: send buffer: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index}); err != nil {
			return fmt.Errorf("flood: bind to %s: %w", ifname, err)
		}
		return nil
	})
	if err != nil {
		fl.close()
		return nil, err
	}
	fl.iov = make([]unix.Iovec, floodBatch)
	fl.msgs = make([]mmsghdr, floodBatch)
	for i := range fl.msgs {
		f := frames[i%len(frames)]
		fl.iov[i].Base = &f[0]
		fl.iov[i].SetLen(len(f))
		fl.msgs[i].hdr.Iov = &fl.iov[i]
		fl.msgs[i].hdr.SetIovlen(1)
	}
	return fl, nil
}

func (fl *flooder) close() {
	if fl.fd >= 0 {
		_ = unix.Close(fl.fd)
		fl.fd = -1
	}
}

// send sends n frames (cycling through the flows) at about rate frames per
// second (0: as fast as possible) and returns how many the kernel took and
// the CPU time of the sending thread (which includes the receive processing
// the kernel does in softirq context on the same CPU). It stops early, with
// an error, at the deadline or on a send error other than a full buffer.
func (fl *flooder) send(n, rate int, deadline time.Time) (sent int, cpu time.Duration, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := cpuTime(unix.RUSAGE_THREAD)
	defer func() { cpu = cpuTime(unix.RUSAGE_THREAD) - cpu0 }()
	const slot = 5 * time.Millisecond
	perSlot := n
	if rate > 0 {
		perSlot = max(1, int(int64(rate)*int64(slot)/int64(time.Second)))
	}
	start := time.Now()
	next := 0 // index of the next flow
	for slots := 0; sent < n; slots++ {
		if time.Now().After(deadline) {
			return sent, 0, fmt.Errorf("flood: deadline after %d of %d frames", sent, n)
		}
		for inSlot := 0; inSlot < perSlot && sent < n; {
			k := min(floodBatch-next%floodBatch, n-sent, perSlot-inSlot)
			// Start the batch at the message of the next flow so every flow
			// gets its share whatever the batch sizes.
			first := next % floodBatch
			r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fl.fd),
				uintptr(unsafe.Pointer(&fl.msgs[first])), uintptr(k), 0, 0, 0)
			switch {
			case errno == unix.ENOBUFS || errno == unix.EAGAIN:
				time.Sleep(50 * time.Microsecond)
				continue
			case errno != 0:
				return sent, 0, fmt.Errorf("flood: sendmmsg: %w", errno)
			}
			sent += int(r)
			inSlot += int(r)
			next += int(r)
		}
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(slots+1) * slot)); d > 0 {
				time.Sleep(d)
			}
		}
	}
	return sent, 0, nil
}

// cpuTime returns the user+system CPU time of the calling thread
// (unix.RUSAGE_THREAD) or the process (unix.RUSAGE_SELF).
func cpuTime(who int) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLiveCaptureFlood offers b.N UDP packets (256 flows, 18-byte
// payload, 60-byte frames) from one namespace over a veth pair to another,
// where conntop captures them, and reports the offered rate (sent-pps), the
// share conntop tracked, its ring drops and the packets the receiving
// interface got. The receiver drops the packets at ingress (after
// AF_PACKET's tap), so its IP stack does not compete with the capture for
// the CPU. Sub-benchmarks: as fast as one sending thread can, and paced.
// Run with a fixed count, e.g. -benchtime 3000000x.
func BenchmarkLiveCaptureFlood(b *testing.B) {
	for _, rate := range []int{0, 500_000, 1_000_000} {
		name := "max"
		if rate > 0 {
			name = fmt.Sprintf("paced-%dk", rate/1000)
		}
		b.Run(name, func(b *testing.B) { floodCapture(b, rate) })
	}
}

func floodCapture(b *testing.B, rate int) {
	labtest.RequireRoot(b)
	const flows, dport = 256, 7777
	srv, cli := labtest.NewNS(b, "capfsrv"), labtest.NewNS(b, "capfcli")
	link := labtest.Connect(b, srv, cli, 10)
	srv.Nft(b, fmt.Sprintf("table netdev capflood {\n\tchain in {\n\t\ttype filter hook ingress device %q priority 0; policy accept;\n\t\tudp dport %d drop\n\t}\n}\n", link.IfA, dport))
	srvMAC, err := ifaceMAC(srv, link.IfA)
	if err != nil {
		b.Fatal(err)
	}
	cliMAC, err := ifaceMAC(cli, link.IfB)
	if err != nil {
		b.Fatal(err)
	}
	frames := udpFrames(cliMAC, srvMAC, netip.MustParseAddr(link.B4), netip.MustParseAddr(link.A4), 20000, dport, flows, 18)
	fl, err := newFlooder(cli, link.IfB, frames)
	if err != nil {
		b.Fatal(err)
	}
	defer fl.close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan flow.Event, 1<<16)
	done := make(chan error, 1)
	go func() {
		done <- New(Config{Interfaces: []string{link.IfA}, NetNS: srv.Name, StatsEvery: 100 * time.Millisecond}).Run(ctx, out)
	}()
	var (
		mu      sync.Mutex
		counted = map[uint16]uint64{}
		drops   uint64
		nstats  int
	)
	synced := make(chan struct{})
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for ev := range out {
			mu.Lock()
			switch ev.Type {
			case flow.EventSynced:
				close(synced)
			case flow.EventStats:
				drops = ev.Stats.RingDrops
				nstats++
			case flow.EventCounters, flow.EventNew, flow.EventUpdate, flow.EventDestroy:
				if ev.Flow.Orig.DstPort == dport {
					counted[ev.Flow.Orig.SrcPort] = ev.Flow.Counters.OrigPackets
				}
			}
			mu.Unlock()
		}
	}()
	select {
	case <-synced:
	case err := <-done:
		b.Fatal(err)
	case <-time.After(10 * time.Second):
		b.Fatal("capture did not start in 10 s")
	}
	rx0, err := ifaceRx(srv, link.IfA)
	if err != nil {
		b.Fatal(err)
	}
	// Bounded: at least 100k packets per second of budget, plus 10 s.
	deadline := time.Now().Add(10*time.Second + time.Duration(b.N/100_000)*time.Second)
	proc0 := cpuTime(unix.RUSAGE_SELF)
	b.ResetTimer()
	sent, sendCPU, err := fl.send(b.N, rate, deadline)
	elapsed := b.Elapsed()
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	rx1, err := ifaceRx(srv, link.IfA)
	if err != nil {
		b.Fatal(err)
	}
	// Wait (bounded) until the capture has accounted every packet the
	// interface received, as tracked or dropped.
	var tracked, ringDrops uint64
	for wait := time.Now().Add(10 * time.Second); ; {
		mu.Lock()
		tracked, ringDrops = 0, drops
		for _, n := range counted {
			tracked += n
		}
		mu.Unlock()
		if tracked+ringDrops >= rx1-rx0 || time.Now().After(wait) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	procCPU := cpuTime(unix.RUSAGE_SELF) - proc0
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	close(out)
	<-collected
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "sent-pps")
	// CPU per packet: the sending thread (with the kernel's receive path,
	// which runs on the sender's CPU), and the rest of the process: the
	// capture loop, the tracker, the event reader and the Go runtime.
	b.ReportMetric(float64(sendCPU)/float64(sent), "send-cpu-ns/pkt")
	b.ReportMetric(float64(procCPU-sendCPU)/float64(sent), "capture-cpu-ns/pkt")
	b.ReportMetric(float64(rx1-rx0)/float64(sent), "rx/sent")
	b.ReportMetric(float64(tracked)/float64(sent), "tracked/sent")
	b.ReportMetric(float64(ringDrops), "ring-drops")
	b.Logf("N=%d rate=%d: sent %d in %v, interface rx %d, tracked %d, ring drops %d",
		b.N, rate, sent, elapsed.Round(time.Millisecond), rx1-rx0, tracked, ringDrops)
}

// ifaceMAC returns the hardware address of ifname in ns.
func ifaceMAC(ns *labtest.NS, ifname string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("interface %s: %w", ifname, err)
		}
		mac = ifc.HardwareAddr
		return nil
	})
	return mac, err
}

// ifaceRx returns the received-packets counter of ifname in ns, from the
// thread's own view of /proc/net/dev.
func ifaceRx(ns *labtest.NS, ifname string) (uint64, error) {
	var rx uint64
	err := ns.Do(func() error {
		data, err := os.ReadFile("/proc/thread-self/net/dev")
		if err != nil {
			return fmt.Errorf("read interface counters: %w", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			name, rest, ok := strings.Cut(line, ":")
			if !ok || strings.TrimSpace(name) != ifname {
				continue
			}
			f := strings.Fields(rest)
			if len(f) < 2 {
				break
			}
			rx, err = strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return fmt.Errorf("interface %s rx packets: %w", ifname, err)
			}
			return nil
		}
		return fmt.Errorf("interface %s not in /proc/net/dev", ifname)
	})
	return rx, err
}

// BenchmarkCaptureDrain measures what the capture loop itself sustains,
// free of the sender: rounds of up to a million packets (256 UDP flows) are
// sent into the receiving veth while nobody reads the ring (the timer is
// stopped), then the loop drains the full ring through decode and tracker
// with the timer running. Mpps is the drain rate; Mpps-cpu the rate the
// draining thread's CPU time allows, which the other processes on a shared
// machine do not lower.
func BenchmarkCaptureDrain(b *testing.B) {
	labtest.RequireRoot(b)
	const flows, dport, round = 256, 7777, 1_000_000
	srv, cli := labtest.NewNS(b, "capdsrv"), labtest.NewNS(b, "capdcli")
	link := labtest.Connect(b, srv, cli, 11)
	srv.Nft(b, fmt.Sprintf("table netdev capdrain {\n\tchain in {\n\t\ttype filter hook ingress device %q priority 0; policy accept;\n\t\tudp dport %d drop\n\t}\n}\n", link.IfA, dport))
	srvMAC, err := ifaceMAC(srv, link.IfA)
	if err != nil {
		b.Fatal(err)
	}
	cliMAC, err := ifaceMAC(cli, link.IfB)
	if err != nil {
		b.Fatal(err)
	}
	fl, err := newFlooder(cli, link.IfB, udpFrames(cliMAC, srvMAC, netip.MustParseAddr(link.B4), netip.MustParseAddr(link.A4), 20000, dport, flows, 18))
	if err != nil {
		b.Fatal(err)
	}
	defer fl.close()
	// A 60-byte frame takes about 128 bytes of ring; small blocks fill
	// before the kernel's 10 ms timer retires them part empty.
	const blockSize = 64 << 10
	nblocks := min(round, b.N)*256/blockSize + 2
	var r *ring
	err = srv.Do(func() error {
		ifc, err := net.InterfaceByName(link.IfA)
		if err != nil {
			return fmt.Errorf("interface %s: %w", link.IfA, err)
		}
		r, err = openRing(ifc.Index, blockSize, nblocks, nil)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	defer r.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan flow.Event, 1<<16)
	go func() {
		for range out { // the events (one per flow and per stats tick) are not the subject
		}
	}()
	defer close(out)
	c := &capturer{rings: []*ring{r}, pl: wiretrack.New(wiretrack.Config{StatsEvery: -1}), out: out}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var cpu time.Duration
	b.ResetTimer()
	b.StopTimer()
	for done := 0; done < b.N; {
		n := min(round, b.N-done)
		rx0, err := ifaceRx(srv, link.IfA)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := fl.send(n, 0, time.Now().Add(30*time.Second)); err != nil {
			b.Fatal(err)
		}
		for wait := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			rx, err := ifaceRx(srv, link.IfA)
			if err != nil {
				b.Fatal(err)
			}
			if rx-rx0 >= uint64(n) {
				break
			}
			if time.Now().After(wait) {
				b.Fatalf("interface received %d of %d packets", rx-rx0, n)
			}
		}
		time.Sleep(30 * time.Millisecond) // the last block retires after 10 ms
		want := c.pl.Tracked() + uint64(n)
		cpu0 := cpuTime(unix.RUSAGE_THREAD)
		b.StartTimer()
		for c.pl.Tracked() < want && r.ready() {
			if err := c.drain(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cpu += cpuTime(unix.RUSAGE_THREAD) - cpu0
		if err := r.readStats(); err != nil {
			b.Fatal(err)
		}
		if r.drops > 0 {
			b.Fatalf("ring too small: %d drops", r.drops)
		}
		done += n
	}
	tracked := c.pl.Tracked()
	if tracked < uint64(b.N) {
		b.Fatalf("tracked %d of %d packets", tracked, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds()/1e6, "Mpps-cpu")
	}
}
