//go:build linux

package conntrack

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestOverrun: a burst of 120,000 NEW events against a tiny receive buffer
// must end in a resync whose table equals the kernel's, with the loss
// reported.
func TestOverrun(t *testing.T) {
	const burst = 120_000
	l := newLab(t)
	l.traffic(t)
	r := startSource(t, Options{NetNS: l.srv.Name, ReadBuffer: 4096, CountersInterval: -1})
	r.until(10*time.Second, "initial sync", func(tb *table) bool { return tb.synced == 1 })
	before := len(r.tb.flows)

	done := make(chan error, 1)
	go func() {
		refused, err := fillTable(l.srv.Path, burst)
		if err == nil && refused > 0 {
			t.Errorf("kernel refused %d creates", refused)
		}
		done <- err
	}()
	var fillErr error
	filled := false
	r.until(120*time.Second, "resync after the burst", func(tb *table) bool {
		if !filled {
			select {
			case fillErr = <-done:
				filled = true
			default:
			}
		}
		return filled && tb.resyncs > 0 && !tb.listing && len(tb.flows) == before+burst
	})
	if fillErr != nil {
		t.Fatal(fillErr)
	}
	r.drain(300 * time.Millisecond)
	if r.tb.lost == 0 || r.tb.lost > burst+uint64(before) {
		t.Errorf("lost = %d, want 1..%d", r.tb.lost, burst)
	}
	t.Logf("burst %d: %d resyncs, %d events lost (per SO_MEMINFO drops)", burst, r.tb.resyncs, r.tb.lost)
	want := sortedStrings(kernelTable(t, l.srv))
	got := sortedStrings(r.tb.entries(false))
	if len(want) != len(got) {
		t.Fatalf("kernel has %d entries, source %d", len(want), len(got))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("table differs from the kernel's after resync (-kernel +source):\n%.3000s", diff)
	}
	r.until(5*time.Second, "stats with the loss", func(tb *table) bool {
		return tb.stats != nil && tb.stats.EventsLost == tb.lost && tb.stats.Resyncs == uint64(tb.resyncs)
	})
}

// TestOverrunChurn: a sustained churn of creates and deletes against a
// small receive buffer overruns it repeatedly while the producers keep
// going; the source must discard its backlog, resync, and end with the
// kernel's table (the deletes it never saw included), the loss reported.
func TestOverrunChurn(t *testing.T) {
	l := newLab(t)
	l.traffic(t)
	r := startSource(t, Options{NetNS: l.srv.Name, ReadBuffer: 64 << 10, CountersInterval: -1})
	r.until(10*time.Second, "initial sync", func(tb *table) bool { return tb.synced == 1 })
	before := len(r.tb.flows)
	spec := churnSpec{Producers: 2, Creates: 100_000, Window: 500, Keep: 300}
	done := make(chan error, 1)
	go func() {
		res, err := churn(l.srv.Path, spec)
		if err == nil && res.Refused > 0 {
			err = fmt.Errorf("kernel refused %d requests", res.Refused)
		}
		done <- err
	}()
	var churnErr error
	finished := false
	want := before + spec.Producers*spec.Keep
	r.until(120*time.Second, "the churn and a final resync", func(tb *table) bool {
		if !finished {
			select {
			case churnErr = <-done:
				finished = true
			default:
			}
		}
		return finished && tb.resyncs > 0 && !tb.listing && len(tb.flows) == want
	})
	if churnErr != nil {
		t.Fatal(churnErr)
	}
	r.drain(300 * time.Millisecond)
	if r.tb.lost == 0 || r.tb.lost > 2*uint64(spec.Creates) {
		t.Errorf("lost = %d, want 1..%d", r.tb.lost, 2*spec.Creates)
	}
	t.Logf("churn of %d events: %d resyncs, %d events lost", 2*spec.Creates, r.tb.resyncs, r.tb.lost)
	wantT := sortedStrings(kernelTable(t, l.srv))
	got := sortedStrings(r.tb.entries(false))
	if diff := cmp.Diff(wantT, got); diff != "" {
		t.Fatalf("table differs from the kernel's after the churn (-kernel +source):\n%.3000s", diff)
	}
}
