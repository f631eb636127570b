package tui

import (
	"context"
	"flag"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
)

const benchFlows = 262144

// bigEngine returns an engine holding n established TCP flows with
// counters, the store clock at t0.
func bigEngine(b *testing.B, n int) *engine.Engine {
	b.Helper()
	eng := engine.New(nil, engine.Options{Now: func() time.Time { return t0 }})
	evs := make([]flow.Event, 0, 8192)
	for i := 0; i < n; i++ {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		f := flow.Flow{ID: uint32(i + 1), Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: flow.TCPEstablished,
			Status: flow.StatusConfirmed | flow.StatusSeenReply | flow.StatusAssured, Timeout: 432000,
			Orig:        flow.Tuple{Src: src, Dst: netip.AddrFrom4([4]byte{10, 255, 0, byte(i % 7)}), SrcPort: uint16(1024 + i%60000), DstPort: uint16(80 + i%5)},
			HasCounters: true, Counters: flow.Counters{OrigPackets: uint64(i % 1000), OrigBytes: uint64(i % 100000), ReplyPackets: 3, ReplyBytes: 900}}
		f.Reply = f.Orig.Reverse(f.Proto)
		evs = append(evs, flow.Event{Type: flow.EventNew, Time: t0.Add(-time.Duration(n-i) * time.Millisecond), Flow: f})
		if len(evs) == cap(evs) {
			eng.Apply(evs)
			evs = evs[:0]
		}
	}
	evs = append(evs, flow.Event{Type: flow.EventSynced, Time: t0},
		flow.Event{Type: flow.EventStats, Time: t0, Stats: &flow.TableStats{Time: t0, Count: uint64(n), Max: uint64(max(n, 262144)), Accounting: true}})
	eng.Apply(evs)
	eng.Tick(t0)
	return eng
}

// big4M is the 4,194,304-flow engine, built once per test binary run.
var big4M struct {
	once sync.Once
	eng  *engine.Engine
}

// bigEngine4M returns the shared 4,194,304-flow engine, or skips unless
// CONNTOP_BIG=1 is set or -test.bench names 4M.
func bigEngine4M(b *testing.B) *engine.Engine {
	f := flag.Lookup("test.bench")
	if os.Getenv("CONNTOP_BIG") != "1" && (f == nil || !strings.Contains(f.Value.String(), "4M")) {
		b.Skip("4,194,304 flows: set CONNTOP_BIG=1 or name 4M in -bench")
	}
	big4M.once.Do(func() { big4M.eng = bigEngine(b, 4194304) })
	return big4M.eng
}

func benchModel(b *testing.B, eng *engine.Engine) *Model {
	o := testOptions()
	o.NoColor = false
	m := New(eng, o)
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 50})
	_ = m.View()
	return m
}

// BenchmarkFrame262k is one frame of the table at 262,144 flows: the
// store query for the visible window plus formatting the screen.
func BenchmarkFrame262k(b *testing.B) { benchFrame(b, bigEngine(b, benchFlows)) }

// BenchmarkFrame4M is BenchmarkFrame262k at 4,194,304 flows (run with
// CONNTOP_BIG=1 or -bench naming 4M).
func BenchmarkFrame4M(b *testing.B) { benchFrame(b, bigEngine4M(b)) }

func benchFrame(b *testing.B, eng *engine.Engine) {
	m := benchModel(b, eng)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		m.refresh()
		_ = m.View()
	}
}

// BenchmarkFrameAfterTick262k is a frame after the engine's clock ticked
// (what happens 4 times a second on an idle table).
func BenchmarkFrameAfterTick262k(b *testing.B) {
	eng := bigEngine(b, benchFlows)
	m := benchModel(b, eng)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(250 * time.Millisecond)
		eng.Tick(now)
		m.Update(tickMsg(now))
		_ = m.View()
	}
}

// BenchmarkRender262k is formatting only (the query result at hand).
func BenchmarkRender262k(b *testing.B) {
	eng := bigEngine(b, benchFlows)
	m := benchModel(b, eng)
	b.ReportAllocs()
	for b.Loop() {
		m.dirty = true
		_ = m.View()
	}
}

// BenchmarkKeyToFrame262k is a key press (selection down) to the next
// frame at 262,144 flows.
func BenchmarkKeyToFrame262k(b *testing.B) { benchKeyToFrame(b, bigEngine(b, benchFlows)) }

// BenchmarkKeyToFrame4M is BenchmarkKeyToFrame262k at 4,194,304 flows.
func BenchmarkKeyToFrame4M(b *testing.B) { benchKeyToFrame(b, bigEngine4M(b)) }

func benchKeyToFrame(b *testing.B, eng *engine.Engine) {
	m := benchModel(b, eng)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		m.Update(press("down"))
		_ = m.View()
	}
}

// BenchmarkKeySortToFrame262k is the worst key: change the sort column
// (the store re-sorts) to the next frame.
func BenchmarkKeySortToFrame262k(b *testing.B) { benchKeySortToFrame(b, bigEngine(b, benchFlows)) }

// BenchmarkKeySortToFrame4M is BenchmarkKeySortToFrame262k at 4,194,304
// flows.
func BenchmarkKeySortToFrame4M(b *testing.B) { benchKeySortToFrame(b, bigEngine4M(b)) }

func benchKeySortToFrame(b *testing.B, eng *engine.Engine) {
	m := benchModel(b, eng)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		m.Update(press(">"))
		_ = m.View()
	}
}

// BenchmarkKeyFilterToFrame262k types one character of a filter (live
// preview re-filters the whole table) to the next frame.
func BenchmarkKeyFilterToFrame262k(b *testing.B) {
	benchKeyFilterToFrame(b, bigEngine(b, benchFlows))
}

// BenchmarkKeyFilterToFrame4M is BenchmarkKeyFilterToFrame262k at
// 4,194,304 flows.
func BenchmarkKeyFilterToFrame4M(b *testing.B) { benchKeyFilterToFrame(b, bigEngine4M(b)) }

func benchKeyFilterToFrame(b *testing.B, eng *engine.Engine) {
	m := benchModel(b, eng)
	m.Update(press("/"))
	for _, k := range []string{"d", "p", "o", "r", "t", " ", "8"} {
		m.Update(press(k))
	}
	b.ReportAllocs()
	defer reportCPU(b)()
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			m.Update(press("1")) // dport 81
		} else {
			m.Update(press("backspace")) // dport 8
		}
		_ = m.View()
	}
}

type countWriter struct{ n atomic.Int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// BenchmarkTerminalBytes runs the Model in a real Bubble Tea program with
// a 200x50 terminal on a steady 262,144-flow table whose engine ticks 4
// times a second, for 3 seconds per iteration, and reports the bytes
// written to the terminal per second after the first full screen, and the
// process's CPU use (Model, renderer and the engine's store ticks) in percent
// of one core.
func BenchmarkTerminalBytes(b *testing.B) {
	eng := bigEngine(b, benchFlows)
	for b.Loop() {
		var clock atomic.Int64
		clock.Store(t0.UnixNano())
		now := func() time.Time { return time.Unix(0, clock.Load()) }
		o := testOptions()
		o.NoColor = false
		o.Now = now
		o.Refresh = 250 * time.Millisecond
		m := New(eng, o)
		w := &countWriter{}
		ctx, cancel := context.WithCancel(context.Background())
		p := tea.NewProgram(m, tea.WithOutput(w), tea.WithInput(nil), tea.WithWindowSize(200, 50),
			tea.WithContext(ctx), tea.WithoutSignals())
		done := make(chan struct{})
		go func() { _, _ = p.Run(); close(done) }()
		time.Sleep(time.Second) // first full screen
		start := w.n.Load()
		cpu0 := cpuTime()
		tk := time.NewTicker(250 * time.Millisecond)
		t1 := time.Now()
		for time.Since(t1) < 3*time.Second {
			<-tk.C
			clock.Add(int64(250 * time.Millisecond))
			eng.Tick(now())
		}
		tk.Stop()
		got := w.n.Load() - start
		el := time.Since(t1).Seconds()
		cpu := (cpuTime() - cpu0).Seconds()
		cancel()
		<-done
		b.ReportMetric(float64(got)/el, "bytes/s")
		b.ReportMetric(float64(start), "first-screen-bytes")
		b.ReportMetric(100*cpu/el, "cpu-%")
	}
}

// reportCPU reports the process's CPU time per operation ("cpu-ns/op"),
// which unlike ns/op does not grow when other processes share the
// machine. Use: defer reportCPU(b)().
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op") }
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
