package engine

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/source"
)

// listingFlow returns entry n of a synthetic kernel table as its initial
// listing shows it: IPv4 UDP and ESTABLISHED TCP with counters, one entry
// in eight IPv6.
func listingFlow(n int) flow.Flow {
	var f flow.Flow
	switch {
	case n%8 == 7:
		var a [16]byte
		a[0], a[1] = 0xfd, 0x00
		a[12], a[13], a[14], a[15] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		f = flow.Flow{Family: flow.FamilyIPv6, Proto: flow.ProtoTCP, TCPState: flow.TCPEstablished,
			Orig: flow.Tuple{Src: netip.AddrFrom16(a), Dst: netip.MustParseAddr("fd00::1"), SrcPort: uint16(1024 + n%60000), DstPort: 443}}
	case n%2 == 0:
		f = flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoUDP,
			Orig: flow.Tuple{Src: netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), Dst: netip.AddrFrom4([4]byte{10, 255, 0, byte(n % 4)}),
				SrcPort: uint16(1024 + n%60000), DstPort: 53}}
	default:
		f = flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: flow.TCPEstablished,
			Orig: flow.Tuple{Src: netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), Dst: netip.AddrFrom4([4]byte{172, 16, 0, byte(n % 8)}),
				SrcPort: uint16(1024 + n%60000), DstPort: [...]uint16{443, 80, 22, 8080}[n%4]}}
	}
	f.ID = uint32(n)
	f.Status = flow.StatusConfirmed | flow.StatusSeenReply
	if f.Proto == flow.ProtoTCP {
		f.Status |= flow.StatusAssured
	}
	f.Timeout = uint32(n % 432000)
	f.Use = 1
	f.Reply = f.Orig.Reverse(f.Proto)
	f.HasCounters = true
	f.Counters = flow.Counters{OrigPackets: uint64(n % 1000), OrigBytes: uint64(n % 100000), ReplyPackets: uint64(n % 700), ReplyBytes: uint64(n % 77777)}
	return f
}

// listingSource is a source that sends a table's statistics and then its
// initial listing of n entries (one event per channel send, as the kernel
// source's Run does), then EventSynced, and waits.
type listingSource struct {
	n  int
	t0 time.Time
}

func (s *listingSource) Name() string { return "listing" }

func (s *listingSource) Run(ctx context.Context, out chan<- flow.Event) error {
	return s.run(ctx, out, nil)
}

// batchedListingSource is a listingSource that implements source.Batcher
// and sends the listing in batches of 1024, as the kernel source's
// RunBatches does.
type batchedListingSource struct{ listingSource }

func (s *batchedListingSource) RunBatches(ctx context.Context, out chan<- flow.Event) error {
	free := make(chan *flow.Batch, 8)
	for range cap(free) {
		free <- flow.NewBatch(1024, free)
	}
	return s.run(ctx, out, free)
}

// run sends the listing, in batches of free when free is not nil.
func (s *listingSource) run(ctx context.Context, out chan<- flow.Event, free chan *flow.Batch) error {
	send := func(ev flow.Event) error {
		select {
		case out <- ev:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := send(flow.Event{Type: flow.EventStats, Time: s.t0, Stats: &flow.TableStats{Time: s.t0, Count: uint64(s.n), Max: uint64(s.n)}}); err != nil {
		return err
	}
	var b *flow.Batch
	for i := range s.n {
		ev := flow.Event{Type: flow.EventNew, Time: s.t0, Flow: listingFlow(i)}
		if free == nil {
			if err := send(ev); err != nil {
				return err
			}
			continue
		}
		if b == nil {
			b = <-free
		}
		if b.Events = append(b.Events, ev); len(b.Events) == cap(b.Events) || i == s.n-1 {
			if err := send(flow.Event{Type: flow.EventBatch, Batch: b}); err != nil {
				return err
			}
			b = nil
		}
	}
	if err := send(flow.Event{Type: flow.EventSynced, Time: s.t0}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// firstFrameQuery is the first screen of the TUI: 40 rows by age.
var firstFrameQuery = store.Query{Sort: store.SortAge, Limit: 40}

// BenchmarkFirstFrame measures the start of conntop on a big table, from
// an empty engine to the first TUI screen, without the kernel: the
// initial listing's n EventNew (after the EventStats that carries the
// table's count, as the kernel source sends first), EventSynced, then the
// first query of a viewer (40 rows by age).
//
// "apply" feeds the engine with Engine.Apply in batches of the pump's size
// (the events are made with the timer stopped); "pump" runs Engine.Run
// with a source that sends the events one by one over the engine's
// channel, as the kernel source does (making the events is then part of
// the figure, a stand-in for decoding them). Both report ns/flow and
// cpu-ns/flow (process CPU time, all goroutines). 4,194,304 flows run with
// CONNTOP_BIG=1 or when -bench names "4M".
func BenchmarkFirstFrame(b *testing.B) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("%s/apply", sizeName(n)), func(b *testing.B) {
			b.ReportAllocs()
			var cpu int64
			batch := make([]flow.Event, 0, 8192)
			for b.Loop() {
				b.StopTimer()
				eng := New(nil, Options{Now: func() time.Time { return t0 }})
				eng.Tick(t0)
				b.StartTimer()
				c0 := cpuTime()
				batch = append(batch[:0], flow.Event{Type: flow.EventStats, Time: t0, Stats: &flow.TableStats{Time: t0, Count: uint64(n), Max: uint64(n)}})
				for i := 0; i < n; {
					b.StopTimer()
					cpu += cpuTime() - c0
					for ; i < n && len(batch) < cap(batch); i++ {
						batch = append(batch, flow.Event{Type: flow.EventNew, Time: t0, Flow: listingFlow(i)})
					}
					c0 = cpuTime()
					b.StartTimer()
					eng.Apply(batch)
					batch = batch[:0]
				}
				eng.Apply(append(batch, flow.Event{Type: flow.EventSynced, Time: t0}))
				batch = batch[:0]
				v := eng.NewViewer()
				if r := v.Query(firstFrameQuery); len(r.Rows) != 40 {
					b.Fatalf("first frame: %d rows", len(r.Rows))
				}
				cpu += cpuTime() - c0
				b.StopTimer()
				v.Close()
				eng.st.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/flow")
			b.ReportMetric(float64(cpu)/float64(b.N)/float64(n), "cpu-ns/flow")
		})
		for _, batched := range []bool{false, true} {
			name := "pump"
			var src source.Source = &listingSource{n: n, t0: t0}
			if batched {
				name, src = "pump-batched", &batchedListingSource{listingSource{n: n, t0: t0}}
			}
			b.Run(fmt.Sprintf("%s/%s", sizeName(n), name), func(b *testing.B) { benchPump(b, n, t0, src) })
		}
	}
}

// benchPump is BenchmarkFirstFrame's pump case for src, a listing of n
// flows.
func benchPump(b *testing.B, n int, t0 time.Time, src source.Source) {
	b.ReportAllocs()
	c0 := cpuTime()
	for b.Loop() {
		eng := New(src, Options{Now: func() time.Time { return t0 }})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- eng.Run(ctx) }()
		for !eng.Status().Synced {
			time.Sleep(100 * time.Microsecond)
		}
		v := eng.NewViewer()
		if r := v.Query(firstFrameQuery); len(r.Rows) != 40 {
			b.Fatalf("first frame: %d rows", len(r.Rows))
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		v.Close()
		eng.st.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/flow")
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N)/float64(n), "cpu-ns/flow")
}

// cpuTime returns the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
