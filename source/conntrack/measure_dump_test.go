//go:build linux

package conntrack

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
	"github.com/conntop/conntop/internal/store"
)

// TestMeasureDumpStages splits the initial listing of a big kernel table
// into its stages and times each on the same table, to show where the
// first frame's time goes: the kernel's share (a dump that only counts
// messages), decoding, the channel to the engine, the Source's own
// bookkeeping (Source.Run), and the engine's store (engine.Run until
// synced, then a first 40-row query). `conntrack -L >/dev/null` on the
// same table is the reference. It runs only with CONNTOP_MEASURE_DUMP=N
// (N entries, filled with labtest.FillConntrack; 4,194,304 cost about
// 1.3 GB of kernel memory and half a minute to fill) and prints
// "MEASURE" lines with wall and process CPU time.
func TestMeasureDumpStages(t *testing.T) {
	v := os.Getenv("CONNTOP_MEASURE_DUMP")
	if v == "" {
		t.Skip("measurement: set CONNTOP_MEASURE_DUMP=N (entries)")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1<<23 {
		t.Fatalf("CONNTOP_MEASURE_DUMP=%q: want 1..8388608", v)
	}
	labtest.RequireRoot(t)
	// Exclusively, and before reading the limit: another test may hold
	// it raised until it ends, then restore it.
	labtest.RaiseConntrackTable(t, n)
	ns := labtest.NewNS(t, "mdump")
	ns.EnableConntrack(t, labtest.Conntrack{})
	st := time.Now()
	ns.FillConntrack(t, n)
	t.Logf("MEASURE fill: %d entries in %v", n, time.Since(st).Round(time.Millisecond))

	stage := func(name string, fn func() int) {
		t.Helper()
		c0, w0 := procCPU(), time.Now()
		got := fn()
		wall, cpu := time.Since(w0), procCPU()-c0
		if got != n {
			t.Fatalf("%s: %d entries, want %d", name, got, n)
		}
		t.Logf("MEASURE %-34s %7v wall %7v cpu  %4.0f ns/flow", name+":", wall.Round(time.Millisecond),
			cpu.Round(time.Millisecond), float64(wall.Nanoseconds())/float64(n))
	}
	if _, err := exec.LookPath("conntrack"); err == nil {
		stage("conntrack -L >/dev/null", func() int {
			if out, err := ns.ExecTimeout(10*time.Minute, nil, "sh", "-c", "conntrack -L >/dev/null 2>&1"); err != nil {
				t.Fatalf("conntrack -L: %v: %s", err, out)
			}
			return n
		})
	}
	var s *sock
	if err := ns.Do(func() error { var err error; s, err = openSock(0, 0, queryTimeout, 64<<10); return err }); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 2 {
		stage("recv only (count messages)", func() int {
			s.begin(subsysCT, msgCTGet, flagRequest|flagDump, 0)
			c := 0
			if err := s.transact(func(message) error { c++; return nil }); err != nil {
				t.Fatal(err)
			}
			return c
		})
	}
	// One receiving goroutine (transact, as before transactDump) against
	// the pipeline, each decoding and sending every entry on a channel
	// that a goroutine drains, as the engine's pump does.
	viaChannel := func(transact func(fn func(m message) error) error) int {
		ch := make(chan flow.Event, 65536)
		done := make(chan int)
		go func() {
			c := 0
			for ev := range ch {
				if ev.Type == flow.EventNew {
					c++
				}
			}
			done <- c
		}()
		s.begin(subsysCT, msgCTGet, flagRequest|flagDump, 0)
		err := transact(flowMessages(nil, func(f *flow.Flow) error { ch <- flow.Event{Type: flow.EventNew, Flow: *f}; return nil }))
		close(ch)
		if err != nil {
			t.Fatal(err)
		}
		return <-done
	}
	for range 2 {
		stage("serial recv+decode+channel", func() int { return viaChannel(s.transact) })
		stage("pipelined recv+decode+channel", func() int { return viaChannel(s.transactDump) })
	}
	for _, oneShot := range []bool{false, false} {
		stage("Source.Run oneshot="+strconv.FormatBool(oneShot), func() int {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch := make(chan flow.Event, 65536)
			done := make(chan error, 1)
			go func() { done <- New(Options{NetNS: ns.Name, CountersInterval: -1, OneShot: oneShot}).Run(ctx, ch) }()
			c := 0
			for {
				select {
				case ev := <-ch:
					switch ev.Type {
					case flow.EventNew:
						c++
					case flow.EventSynced:
						cancel()
						for {
							select {
							case <-ch:
							case err := <-done:
								if err != nil {
									t.Fatal(err)
								}
								return c
							}
						}
					}
				case err := <-done:
					t.Fatalf("source stopped: %v", err)
				}
			}
		})
	}
	for range 2 {
		stage("engine: synced + first query", func() int {
			eng := engine.New(New(Options{NetNS: ns.Name, CountersInterval: -1}), engine.Options{})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- eng.Run(ctx) }()
			for !eng.Status().Synced {
				if eng.Status().Done {
					t.Fatalf("engine stopped: %v", eng.Status().Err)
				}
				time.Sleep(time.Millisecond)
			}
			v := eng.NewViewer()
			r := v.Query(store.Query{Sort: store.SortAge, Limit: 40})
			c := r.Total
			v.Close()
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if len(r.Rows) != 40 {
				t.Fatalf("first query: %d rows", len(r.Rows))
			}
			return c
		})
	}
}

// procCPU returns the process's user+system CPU time.
func procCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
