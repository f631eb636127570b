package compare

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/source/sourcetest"
)

// clock is a settable clock for the Source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// TestSourceScripted runs the Source over two scripted sources and a
// store: one flow on which both agree, one only the kernel has, one only
// the wire has, one in different states. Before the grace period nothing is
// marked; after it (on the Source's own ticker) exactly the three
// differences are.
func TestSourceScripted(t *testing.T) {
	kernel := sourcetest.New("conntrack", []flow.Event{
		{Type: flow.EventNew, Flow: tcp(1, flow.TCPEstablished, 101)},
		{Type: flow.EventNew, Flow: tcp(2, flow.TCPEstablished, 102)},
		{Type: flow.EventNew, Flow: tcp(4, flow.TCPSynRecv, 104)},
		{Type: flow.EventSynced},
		{Type: flow.EventStats, Stats: &flow.TableStats{Count: 3, Max: 1024}},
	})
	wire := sourcetest.New("capture", []flow.Event{
		{Type: flow.EventSynced},
		{Type: flow.EventNew, Flow: tcp(1, flow.TCPEstablished, 201)},
		{Type: flow.EventNew, Flow: tcp(3, flow.TCPEstablished, 203)},
		{Type: flow.EventNew, Flow: tcp(4, flow.TCPSynSent, 204)},
		{Type: flow.EventStats, Stats: &flow.TableStats{Count: 3, RingDrops: 2}},
	})
	clk := &clock{t: t0}
	src := New(kernel, wire, Options{Grace: 2 * time.Second, Tick: 2 * time.Millisecond, Now: clk.now})
	if src.Name() != "conntrack,capture" {
		t.Errorf("Name() = %q", src.Name())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan flow.Event, 64)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()

	st := store.New(store.Options{})
	// apply reads merged events until cond holds (bounded wait).
	apply := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for !cond() {
			select {
			case ev := <-out:
				st.Apply([]flow.Event{ev})
			case err := <-done:
				t.Fatalf("Run returned early: %v", err)
			case <-deadline:
				t.Fatalf("timed out waiting for %s; table: %+v", what, marks(st))
			}
		}
	}
	apply("the listing and stats", func() bool {
		return st.Synced() && st.Len() == 4 && st.Summary().Table.RingDrops == 2 &&
			<-kernel.Sent() == struct{}{} && <-wire.Sent() == struct{}{}
	})
	// Within the grace period nothing is marked (the ticker runs, the clock
	// does not move).
	time.Sleep(20 * time.Millisecond)
	apply("pending events", func() bool { return len(out) == 0 })
	for k, c := range marks(st) {
		if c.Disagree != flow.DisagreeNone {
			t.Errorf("flow %d marked %v within the grace period", k, c.Disagree)
		}
	}
	if st.Summary().Table.Max != 1024 {
		t.Errorf("stats: max %d, want the kernel's 1024", st.Summary().Table.Max)
	}

	clk.set(t0.Add(2 * time.Second))
	want := map[uint16]flow.Compare{
		40001: {Seen: flow.SeenKernel | flow.SeenWire},
		40002: {Seen: flow.SeenKernel, Disagree: flow.DisagreeKernelOnly},
		40003: {Seen: flow.SeenWire, Disagree: flow.DisagreeWireOnly},
		40004: {Seen: flow.SeenKernel | flow.SeenWire, Disagree: flow.DisagreeState, WireState: flow.StateNew, WireTCPState: flow.TCPSynSent},
	}
	apply("the marks", func() bool {
		got := marks(st)
		for k, w := range want {
			if got[k] != w {
				return false
			}
		}
		return true
	})
	// The wire-only flow is shown as the wire has it, the others as the
	// kernel has them.
	for _, f := range st.Snapshot(nil) {
		wantID := uint32(100 + f.Orig.SrcPort - 40000)
		if f.Orig.SrcPort == 40003 {
			wantID = 203
		}
		if f.ID != wantID {
			t.Errorf("flow %d: shown id %d, want %d", f.Orig.SrcPort, f.ID, wantID)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// marks returns the store's flows' marks by source port.
func marks(st *store.Store) map[uint16]flow.Compare {
	m := map[uint16]flow.Compare{}
	for _, f := range st.Snapshot(nil) {
		m[f.Orig.SrcPort] = f.Compare
	}
	return m
}

// failing is a source that fails at once.
type failing struct{}

func (failing) Name() string { return "capture" }
func (failing) Run(context.Context, chan<- flow.Event) error {
	return errors.New("socket: operation not permitted")
}

// TestSourceSideFails: a side's failure stops the other and is returned,
// naming the side.
func TestSourceSideFails(t *testing.T) {
	kernel := sourcetest.New("conntrack", []flow.Event{{Type: flow.EventSynced}})
	src := New(kernel, failing{}, Options{})
	done := make(chan error, 1)
	go func() { done <- src.Run(context.Background(), make(chan flow.Event, 8)) }()
	select {
	case err := <-done:
		if err == nil || err.Error() != "compare: wire side (capture): socket: operation not permitted" {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := New(nil, failing{}, Options{}).Run(context.Background(), nil); !errors.Is(err, errNoSides) {
		t.Errorf("Run without a kernel side = %v", err)
	}
}
