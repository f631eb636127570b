//go:build linux

package capture

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
)

// TestLoopbackCountedOnce: on lo every packet is delivered to the socket
// twice (outgoing and incoming); conntop must count it once, as conntrack
// does. Captures "any" interface, so this also covers the all-interfaces
// socket.
func TestLoopbackCountedOnce(t *testing.T) {
	labtest.RequireRoot(t)
	ns := labtest.NewNS(t, "caplo")
	ns.EnableConntrack(t, labtest.Conntrack{})
	ns.Sysctl(t, "net.netfilter.nf_conntrack_acct", "1")
	lc := startCapture(t, Config{NetNS: ns.Name, StatsEvery: 150 * time.Millisecond})

	ns.ServeEcho(t, "tcp4", "127.0.0.1:9000")
	serveUDP(t, ns, "udp4", "127.0.0.1:9001", true)
	serveUDP(t, ns, "udp6", "[::1]:9001", true)
	tcpSession(t, ns, "tcp4", "127.0.0.1:9000", 2, false)
	udpRoundTrips(t, ns, "udp4", "127.0.0.1:9001", 4, true)
	udpRoundTrips(t, ns, "udp6", "[::1]:9001", 2, true)

	want, got, st := lc.matchKernel(t, ns)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("loopback table differs from the kernel's (-kernel +conntop):\n%s", diff)
	}
	if len(want) != 3 {
		t.Errorf("kernel kept %d flows, want 3", len(want))
	}
	if st.RingDrops != 0 {
		t.Errorf("ring drops %d", st.RingDrops)
	}
}

func TestInterfaceNotFound(t *testing.T) {
	labtest.RequireRoot(t)
	ns := labtest.NewNS(t, "capnf")
	err := New(Config{Interfaces: []string{"nosuch0"}, NetNS: ns.Name}).Run(context.Background(), make(chan flow.Event, 1))
	if err == nil || !contains(err.Error(), "nosuch0", "not found", ns.Name) {
		t.Fatalf("error %v", err)
	}
	err = New(Config{Filter: "port port"}).Run(context.Background(), make(chan flow.Event, 1))
	if err == nil || !contains(err.Error(), "port port") {
		t.Fatalf("bad filter: %v", err)
	}
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// BenchmarkLiveCapture sends b.N UDP datagrams (one flow, 18-byte payload)
// from one namespace to another over a veth pair, as fast as a Go sender
// can, while conntop captures on the receiving veth. It reports the send
// rate, the share of packets the tracker counted and the ring drops.
func BenchmarkLiveCapture(b *testing.B) {
	labtest.RequireRoot(b)
	srv, cli := labtest.NewNS(b, "capbsrv"), labtest.NewNS(b, "capbcli")
	link := labtest.Connect(b, srv, cli, 9)
	// The receiver drops the datagrams at input (after AF_PACKET saw them),
	// so no ICMP errors slow the sender down.
	srv.Nft(b, "table inet capbench {\n\tchain in {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tudp dport 7777 drop\n\t}\n}\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan flow.Event, 1<<16)
	done := make(chan error, 1)
	go func() {
		done <- New(Config{Interfaces: []string{link.IfA}, NetNS: srv.Name, StatsEvery: 100 * time.Millisecond}).Run(ctx, out)
	}()
	var last *flow.TableStats
	var counted uint64
	collected := make(chan struct{})
	synced := make(chan struct{})
	go func() {
		defer close(collected)
		for ev := range out {
			switch ev.Type {
			case flow.EventSynced:
				close(synced)
			case flow.EventStats:
				last = ev.Stats
			case flow.EventCounters, flow.EventNew, flow.EventUpdate, flow.EventDestroy:
				if ev.Flow.Orig.DstPort == 7777 {
					counted = ev.Flow.Counters.OrigPackets
				}
			}
		}
	}()
	select {
	case <-synced:
	case err := <-done:
		b.Fatal(err)
	}
	payload := make([]byte, 18)
	sent := 0
	b.ResetTimer()
	err := cli.Do(func() error {
		c, err := net.Dial("udp4", link.A4+":7777")
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < b.N; i++ {
			if _, err := c.Write(payload); err == nil {
				sent++
			}
		}
		return nil
	})
	elapsed := b.Elapsed()
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	close(out)
	<-collected
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "sent-pps")
	b.ReportMetric(float64(counted)/float64(sent), "tracked/sent")
	if last != nil {
		b.ReportMetric(float64(last.RingDrops), "ring-drops")
	}
	b.Logf("sent %d, tracked %d, ring drops %d", sent, counted, ringDrops(last))
}

func ringDrops(s *flow.TableStats) uint64 {
	if s == nil {
		return 0
	}
	return s.RingDrops
}
