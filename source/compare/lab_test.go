//go:build linux

package compare

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/source/capture"
	"github.com/conntop/conntop/source/conntrack"
)

// labRules makes the kernel and the wire disagree on purpose, in the server
// namespace: port 9001 is not tracked (notrack in the raw-priority
// prerouting and output chains), so only the wire sees it; on port 9002 the
// server's SYN-ACK is dropped after conntrack saw it in output (priority 0,
// after conntrack's -200), so the kernel says SYN_RECV while the wire only
// ever sees SYNs (SYN_SENT).
const labRules = `table inet comparetest {
	chain rawpre {
		type filter hook prerouting priority -300; policy accept;
		tcp dport 9001 notrack
	}
	chain rawout {
		type filter hook output priority -300; policy accept;
		tcp sport 9001 notrack
	}
	chain out {
		type filter hook output priority 0; policy accept;
		tcp sport 9002 tcp flags & (syn | ack) == (syn | ack) drop
	}
}
`

// TestLabKernelVsWire runs the compare source on a real namespace: the
// kernel's table over netlink and a capture on the namespace's veth. Real
// connections make both agree (port 8080); nft rules and a capture filter
// make them disagree on purpose: wire only (notrack, 9001), state differs
// (SYN-ACK dropped after conntrack, 9002), kernel only (the capture filter
// leaves out port 9003). Exactly those three flows must be marked.
func TestLabKernelVsWire(t *testing.T) {
	labtest.RequireRoot(t)
	srv, cli := labtest.NewNS(t, "cmpsrv"), labtest.NewNS(t, "cmpcli")
	link := labtest.Connect(t, srv, cli, 1)
	srv.EnableConntrack(t, labtest.Conntrack{})
	srv.Nft(t, labRules)
	for _, p := range []string{"8080", "9001", "9003"} {
		srv.ServeEcho(t, "tcp4", link.A4+":"+p)
	}
	srv.Listen(t, "tcp4", link.A4+":9002") // never completes a handshake

	const grace = 1500 * time.Millisecond // a loaded CI machine may take a while to see both sides
	src := New(
		conntrack.New(conntrack.Options{NetNS: srv.Path, StatsInterval: 200 * time.Millisecond}),
		capture.New(capture.Config{NetNS: srv.Path, Interfaces: []string{link.IfA}, Filter: "not tcp port 9003"}),
		Options{Grace: grace, Tick: 50 * time.Millisecond})
	eng := engine.New(src, engine.Options{Tick: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("engine: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("engine did not stop within 10s")
		}
	})
	waitFor(t, eng, 10*time.Second, "both sides listed", func(s *store.Store) bool { return s.Synced() })

	// Traffic, all from the client namespace to the server's address.
	for _, p := range []string{"8080", "9001", "9003"} {
		c := cli.DialTCP(t, link.A4+":"+p)
		if err := labtest.Echo(c, "hello "+p); err != nil {
			t.Fatalf("port %s: %v", p, err)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // SYNs retransmitted for up to 5 s; expected to time out
		defer wg.Done()
		if c, err := cli.Dial("tcp", link.A4+":9002"); err == nil {
			c.Close()
		}
	}()
	t.Cleanup(wg.Wait)

	byPort := func(s *store.Store) map[uint16]flow.Flow {
		m := map[uint16]flow.Flow{}
		for _, f := range s.Snapshot(nil) {
			if f.Proto == flow.ProtoTCP && f.Orig.Dst.String() == link.A4 {
				m[f.Orig.DstPort] = f
			}
		}
		return m
	}
	want := map[uint16]flow.Compare{
		8080: {Seen: flow.SeenKernel | flow.SeenWire},
		9001: {Seen: flow.SeenWire, Disagree: flow.DisagreeWireOnly},
		9002: {Seen: flow.SeenKernel | flow.SeenWire, Disagree: flow.DisagreeState,
			WireState: flow.StateNew, WireTCPState: flow.TCPSynSent},
		9003: {Seen: flow.SeenKernel, Disagree: flow.DisagreeKernelOnly},
	}
	start := time.Now()
	waitFor(t, eng, 10*time.Second, "the marks", func(s *store.Store) bool {
		got := byPort(s)
		for p, w := range want {
			if got[p].Compare != w {
				return false
			}
		}
		return true
	})
	// Let the agreeing flow outlast the grace period several times: it must
	// stay unmarked, and nothing else may be marked.
	time.Sleep(max(0, 4*grace-time.Since(start)))
	eng.View(func(s *store.Store) {
		for _, f := range s.Snapshot(nil) {
			p := f.Orig.DstPort
			if _, ok := want[p]; ok && f.Proto == flow.ProtoTCP && f.Orig.Dst.String() == link.A4 {
				if f.Compare != want[p] {
					t.Errorf("port %d: mark %+v, want %+v", p, f.Compare, want[p])
				}
				continue
			}
			if f.Compare.Disagree != flow.DisagreeNone {
				t.Errorf("unexpected disagreement on %s: %s", describe(&f), f.DisagreeReason())
			}
		}
		got := byPort(s)
		if r := got[9002]; r.TCPState != flow.TCPSynRecv || r.DisagreeReason() != "state differs: kernel ESTABLISHED/SYN_RECV, wire NEW/SYN_SENT" {
			t.Errorf("9002: kernel state %v, reason %q", r.TCPState, r.DisagreeReason())
		}
		// The kernel is the authority: where it has the flow, its entry is
		// shown (the kernel's id is not the tracker's small counter).
		if got[8080].ID == got[9001].ID {
			t.Errorf("ids: 8080 %d, 9001 %d", got[8080].ID, got[9001].ID)
		}
	})
	if st := eng.Status(); st.Err != nil || !st.Live {
		t.Errorf("engine status %+v", st)
	}
}

// waitFor polls the engine's store until cond holds, failing after d with
// the table.
func waitFor(t *testing.T, eng *engine.Engine, d time.Duration, what string, cond func(*store.Store) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok := false
		eng.View(func(s *store.Store) { ok = cond(s) })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			eng.View(func(s *store.Store) {
				for i, f := range s.Snapshot(nil) {
					if i == 40 {
						b.WriteString("…\n")
						break
					}
					fmt.Fprintf(&b, "  %s  seen=%s %s\n", describe(&f), f.Compare.Seen, f.DisagreeReason())
				}
			})
			t.Fatalf("timed out after %v waiting for %s; status %+v; table:\n%s", d, what, eng.Status(), b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// describe is a one-line flow description for failure messages.
func describe(f *flow.Flow) string {
	s := fmt.Sprintf("%s %s:%d > %s:%d %s", flow.ProtoName(f.Proto), f.Orig.Src, f.Orig.SrcPort, f.Orig.Dst, f.Orig.DstPort, f.State())
	if f.Proto == flow.ProtoTCP {
		s += "/" + f.TCPState.String()
	}
	return s
}
