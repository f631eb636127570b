package serve

import (
	"context"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/tui"
)

// BenchmarkIdleViewerBytes measures the bytes per second the server sends
// to an idle SSH viewer (the real TUI, 160×50, the default refresh of
// 250ms) of a 262,144-flow table held by a running engine (its clock ticks
// every 250ms, as in production): steady, and with 1,000 updates a second
// (timeouts and counters of random flows). Each iteration is one refresh
// interval; the result is reported as B/s.
func BenchmarkIdleViewerBytes(b *testing.B) {
	const flows = 262144
	for _, bc := range []struct {
		name    string
		updates int // per second
	}{{"steady", 0}, {"1000-updates-per-s", 1000}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			eng := engine.New(tableSource{n: flows}, engine.Options{})
			go func() { _ = eng.Run(ctx) }()
			if !waitUntil(60*time.Second, func() bool { return eng.Status().Synced }) {
				b.Fatal("engine never synced")
			}
			ts := startServer(b, eng, func(c *Config) {
				c.Refresh = DefaultRefresh
				c.NewModel = tuiBenchFactory
			})
			v := openViewer(b, ts.mustDial(b, "idle"), 160, 50, true)
			if !v.waitFor("10.9.0.0", 30*time.Second) {
				b.Fatalf("no first frame:\n%s", v.scr.String())
			}
			if bc.updates > 0 {
				go churn(ctx, eng, flows, bc.updates)
			}
			time.Sleep(2 * time.Second)
			start, t0 := v.out.Len(), time.Now()
			for b.Loop() {
				time.Sleep(DefaultRefresh)
			}
			sent, el := v.out.Len()-start, time.Since(t0)
			b.ReportMetric(float64(sent)/el.Seconds(), "B/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// churn applies perSec counter updates a second to the engine's flows, in
// batches every 10ms, until ctx is done.
func churn(ctx context.Context, eng *engine.Engine, flows, perSec int) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	batch := make([]flow.Event, perSec/100)
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			for i := range batch {
				f := testFlow((n * 7919) % flows)
				n++
				f.HasCounters = true
				f.Counters.OrigPackets, f.Counters.OrigBytes = uint64(n), uint64(n)*100
				f.Timeout = uint32(431999 - n%1000)
				batch[i] = flow.Event{Type: flow.EventCounters, Time: now, Flow: f}
			}
			eng.Apply(batch)
		}
	}
}

// tableSource lists flows 0..n-1 once, then stays quiet until cancelled.
type tableSource struct{ n int }

func (s tableSource) Name() string { return "conntrack" }

func (s tableSource) Run(ctx context.Context, out chan<- flow.Event) error {
	now := time.Now()
	for i := range s.n {
		select {
		case out <- flow.Event{Type: flow.EventNew, Time: now, Flow: testFlow(i)}:
		case <-ctx.Done():
			return nil
		}
	}
	out <- flow.Event{Type: flow.EventSynced, Time: now}
	<-ctx.Done()
	return nil
}

func tuiBenchFactory(eng *engine.Engine, _ SessionInfo) tea.Model {
	return tui.New(eng, tui.Options{ReadOnly: true, NoProcs: true})
}
