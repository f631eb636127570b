//go:build linux

package conntrack

import (
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
)

// benchTableSize is the table the targets name: nf_conntrack_max
// here. The count is per namespace, so a fresh namespace holds exactly this.
const benchTableSize = 262_144

// bigTable makes a namespace whose table holds n UDP entries (deleted with
// the namespace at cleanup).
func bigTable(b *testing.B, n int) *labtest.NS {
	b.Helper()
	ns := labtest.NewNS(b, "ctbench")
	ns.EnableConntrack(b, labtest.Conntrack{})
	refused, err := fillTable(ns.Path, n)
	if err != nil || refused != 0 {
		b.Fatalf("fill: %d refused, %v", refused, err)
	}
	return ns
}

// BenchmarkDump262144 dumps and decodes a 262,144-entry table.
func BenchmarkDump262144(b *testing.B) {
	ns := bigTable(b, benchTableSize)
	var s *sock
	if err := ns.Do(func() error { var err error; s, err = openSock(0, 0, queryTimeout, 64<<10); return err }); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if err := dumpFlows(s, nil, func(*flow.Flow) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != benchTableSize {
			b.Fatalf("dumped %d entries, want %d", n, benchTableSize)
		}
	}
	b.ReportMetric(float64(benchTableSize), "flows/op")
}

// BenchmarkLoad262144 loads a 262,144-entry table through Source.Run (events
// subscribed, dump, one EventNew per entry on a channel) into a slice.
func BenchmarkLoad262144(b *testing.B) {
	ns := bigTable(b, benchTableSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		flows, err := load(Options{NetNS: ns.Name, CountersInterval: -1, OneShot: true}, benchTableSize)
		if err != nil {
			b.Fatal(err)
		}
		if len(flows) != benchTableSize {
			b.Fatalf("loaded %d entries, want %d", len(flows), benchTableSize)
		}
	}
}

// BenchmarkEventBurst creates 100,000 entries as fast as batched ctnetlink
// allows while the Source listens with its default 128 MiB buffer, and
// reports the event rate and the events lost (0 is the target). The burst
// fits in the buffer (~1.3 KB of it per event), so it shows buffering more
// than pace: BenchmarkEventChurn sustains a churn several buffers long.
func BenchmarkEventBurst(b *testing.B) {
	const burst = 100_000
	for b.Loop() {
		b.StopTimer()
		ns := labtest.NewNS(b, "ctbench")
		ns.EnableConntrack(b, labtest.Conntrack{})
		r := startSource(b, Options{NetNS: ns.Name, CountersInterval: -1})
		r.until(10*time.Second, "initial sync", func(tb *table) bool { return tb.synced == 1 })
		b.StartTimer()
		start := time.Now()
		if refused, err := fillTable(ns.Path, burst); err != nil || refused != 0 {
			b.Fatalf("fill: %d refused, %v", refused, err)
		}
		created := time.Since(start)
		r.until(60*time.Second, "all events", func(tb *table) bool {
			return len(tb.flows) == burst && !tb.listing
		})
		b.ReportMetric(float64(burst)/created.Seconds(), "events/s")
		b.ReportMetric(float64(r.tb.lost), "lost")
	}
}
