//go:build linux

package compare

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	ct "github.com/ti-mo/conntrack"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/source/capture"
	"github.com/conntop/conntop/source/conntrack"
	"github.com/conntop/conntop/source/conntrack/conntracktest"
)

// routerLine is what the router test compares of one entry: tuples, TCP
// state, the life-cycle status bits and the counters.
func routerLine(f *flow.Flow) string {
	st := f.Status & (flow.StatusSeenReply | flow.StatusAssured | flow.StatusConfirmed | flow.StatusExpected)
	ts := ""
	if f.Proto == flow.ProtoTCP {
		ts = f.TCPState.String()
	}
	return fmt.Sprintf("%s %s %+v %+v status=%s counters=%+v", flow.ProtoName(f.Proto), ts, f.Orig, f.Reply, st, f.Counters)
}

// wireTable runs a capture source and keeps the table its events describe.
type wireTable struct {
	mu     sync.Mutex
	table  map[flow.Key]flow.Flow
	nstats int
}

func (w *wireTable) lines() ([]string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, f := range w.table {
		out = append(out, routerLine(&f))
	}
	sort.Strings(out)
	return out, w.nstats
}

// TestLabRouterCapture builds a router namespace between a client and a
// server namespace, forwards TCP, UDP and ICMP (IPv4 and IPv6) through it
// and talks to the router itself, while conntop captures on all of the
// router's interfaces. Every forwarded packet is captured twice (in, then
// out); the capture's table must equal the router's kernel table, counters
// included, and the compare source (`--source conntrack,capture`) there
// must mark no disagreement.
func TestLabRouterCapture(t *testing.T) {
	labtest.RequireRoot(t)
	cli, rtr, srv := labtest.NewNS(t, "rtcli"), labtest.NewNS(t, "rtr"), labtest.NewNS(t, "rtsrv")
	in := labtest.Connect(t, rtr, cli, 51)
	out := labtest.Connect(t, rtr, srv, 52)
	cli.MustExec(t, "ip", "route", "add", "default", "via", in.A4)
	cli.MustExec(t, "ip", "-6", "route", "add", "default", "via", in.A6)
	srv.MustExec(t, "ip", "route", "add", "default", "via", out.A4)
	srv.MustExec(t, "ip", "-6", "route", "add", "default", "via", out.A6)
	rtr.Sysctl(t, "net.ipv4.ip_forward", "1")
	rtr.Sysctl(t, "net.ipv6.conf.all.forwarding", "1")
	rtr.EnableConntrack(t, labtest.Conntrack{})
	rtr.Sysctl(t, "net.netfilter.nf_conntrack_acct", "1")

	// The capture alone, on every interface of the router.
	wt := &wireTable{table: map[flow.Key]flow.Flow{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := make(chan flow.Event, 4096)
	capDone := make(chan error, 1)
	synced := make(chan struct{})
	go func() {
		capDone <- capture.New(capture.Config{NetNS: rtr.Path, StatsEvery: 150 * time.Millisecond}).Run(ctx, evs)
	}()
	go func() {
		for ev := range evs {
			wt.mu.Lock()
			switch ev.Type {
			case flow.EventSynced:
				close(synced)
			case flow.EventNew, flow.EventUpdate, flow.EventCounters:
				wt.table[ev.Flow.Key()] = ev.Flow
			case flow.EventDestroy:
				delete(wt.table, ev.Flow.Key())
			case flow.EventStats:
				wt.nstats++
			}
			wt.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-capDone:
			if err != nil {
				t.Errorf("capture: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("capture did not stop")
		}
	})
	select {
	case <-synced:
	case err := <-capDone:
		t.Fatalf("capture did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("capture did not start in 10 s")
	}

	// The compare source on the same router.
	const grace = 1500 * time.Millisecond
	src := New(
		conntrack.New(conntrack.Options{NetNS: rtr.Path, StatsInterval: 200 * time.Millisecond, CountersInterval: 200 * time.Millisecond}),
		capture.New(capture.Config{NetNS: rtr.Path}),
		Options{Grace: grace, Tick: 50 * time.Millisecond})
	eng := engine.New(src, engine.Options{Tick: 50 * time.Millisecond})
	engErr := make(chan error, 1)
	engCtx, engCancel := context.WithCancel(context.Background())
	go func() { engErr <- eng.Run(engCtx) }()
	t.Cleanup(func() {
		engCancel()
		select {
		case err := <-engErr:
			if err != nil {
				t.Errorf("engine: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("engine did not stop within 10s")
		}
	})
	waitFor(t, eng, 10*time.Second, "both sides listed", func(s *store.Store) bool { return s.Synced() })

	// Traffic: forwarded TCP, UDP and ICMP in both families, and the
	// router as an endpoint (a ping to its own address).
	srv.ServeEcho(t, "tcp4", out.B4+":8080")
	srv.ServeEcho(t, "tcp6", "["+out.B6+"]:8080")
	udpEcho(t, srv, "udp4", out.B4+":5353")
	udpEcho(t, srv, "udp6", "["+out.B6+"]:5353")
	for _, addr := range []string{out.B4 + ":8080", "[" + out.B6 + "]:8080"} {
		c := cli.DialTCP(t, addr)
		for i := range 3 {
			if err := labtest.Echo(c, "hello "+strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
	}
	for _, addr := range []string{out.B4 + ":5353", "[" + out.B6 + "]:5353"} {
		c, err := cli.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := labtest.Echo(c, "datagram "+strconv.Itoa(i)); err != nil {
				t.Fatalf("udp echo %s: %v", addr, err)
			}
		}
		c.Close()
	}
	for i, addr := range []string{out.B4, out.B6, in.A4} {
		if err := cli.Ping(addr, uint16(0x5100+i), 3); err != nil {
			t.Fatal(err)
		}
	}

	var kern, wire []string
	for try := 0; try < 10; try++ {
		time.Sleep(400 * time.Millisecond) // the last FINs; two capture stats ticks
		kern = kernelLines(t, rtr)
		wire, _ = wt.lines()
		if slices.Equal(kern, wire) {
			break
		}
	}
	if !slices.Equal(kern, wire) {
		t.Errorf("capture on all router interfaces differs from the router's kernel table:\nkernel:\n%s\ncapture:\n%s", lines(kern), lines(wire))
	}
	if len(kern) != 7 {
		t.Errorf("kernel table has %d entries, want 7 (2 TCP, 2 UDP, 3 ICMP):\n%s", len(kern), lines(kern))
	}

	// The compare source agrees on every flow, well past the grace period.
	time.Sleep(2 * grace)
	eng.View(func(s *store.Store) {
		n := 0
		for _, f := range s.Snapshot(nil) {
			n++
			if f.Compare.Disagree != flow.DisagreeNone || f.Compare.Seen != flow.SeenKernel|flow.SeenWire {
				t.Errorf("compare source marks %s: seen=%s %s", describe(&f), f.Compare.Seen, f.DisagreeReason())
			}
		}
		if n < 7 {
			t.Errorf("compare source lists %d flows, want at least 7", n)
		}
	})
}

func lines(ls []string) string {
	var s string
	for _, l := range ls {
		s += "  " + l + "\n"
	}
	return s
}

// kernelLines dumps the conntrack table of ns (the independent decoder).
func kernelLines(t *testing.T, ns *labtest.NS) []string {
	t.Helper()
	var out []string
	err := ns.Do(func() error {
		c, err := ct.Dial(nil)
		if err != nil {
			return fmt.Errorf("conntrack netlink: %w", err)
		}
		defer c.Close()
		fs, err := c.Dump(nil)
		if err != nil {
			return fmt.Errorf("dump: %w", err)
		}
		for i := range fs {
			f := conntracktest.FromLib(&fs[i])
			out = append(out, routerLine(&f))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// udpEcho answers datagrams on addr inside ns until cleanup.
func udpEcho(t *testing.T, ns *labtest.NS, network, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
}
