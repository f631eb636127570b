package explain

import (
	"cmp"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// benchSizes are the tables of the benchmarks: the normal case (262,144
// flows) and the big one (4,194,304, or EXPLAIN_BENCH_FLOWS).
func benchSizes() []int {
	big := 4 << 20
	if n, err := strconv.Atoi(os.Getenv("EXPLAIN_BENCH_FLOWS")); err == nil && n > 0 {
		big = n
	}
	return []int{256 << 10, big}
}

var (
	benchMu     sync.Mutex
	benchStores = map[int]*store.Store{}
)

// bigStore is a store holding n synthetic flows: a mix of unreplied DNS,
// TCP in several states, assured UDP and ICMP from 65,536 source hosts to
// 4,096 destinations, first seen over ten minutes, built once per size.
func bigStore(b *testing.B, n int) *store.Store {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if s := benchStores[n]; s != nil {
		return s
	}
	s := store.New(store.Options{Linger: -1, HistoryLen: 1, EventLog: 1})
	evs := make([]flow.Event, 0, 8192)
	states := []flow.TCPState{flow.TCPEstablished, flow.TCPTimeWait, flow.TCPSynSent, flow.TCPCloseWait}
	for i := range n {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		dst := netip.AddrFrom4([4]byte{192, 168, byte(i >> 4 & 0xf), byte(i & 0xff)})
		f := flow.Flow{ID: uint32(i), Family: flow.FamilyIPv4, Status: flow.StatusConfirmed,
			Orig: flow.Tuple{Src: src, Dst: dst, SrcPort: uint16(1024 + i>>16), DstPort: 53}, Timeout: uint32(i % 30)}
		switch i % 8 {
		case 0, 1, 2: // unreplied DNS
			f.Proto = flow.ProtoUDP
		case 3, 4, 5:
			f.Proto = flow.ProtoTCP
			f.TCPState = states[i%len(states)]
			f.Status |= flow.StatusSeenReply | flow.StatusAssured
			f.Orig.DstPort = uint16(443 + i%16)
			f.Timeout = uint32(i % 432000)
		case 6:
			f.Proto = flow.ProtoUDP
			f.Status |= flow.StatusSeenReply | flow.StatusAssured
			f.Orig.DstPort = uint16(1000 + i%4000)
			f.Timeout = uint32(i % 120)
		default:
			f.Proto = flow.ProtoICMP
			f.Orig = flow.Tuple{Src: src, Dst: dst, Type: 8, ID: uint16(i)}
		}
		f.Reply = f.Orig.Reverse(f.Proto)
		evs = append(evs, flow.Event{Type: flow.EventNew, Time: t0.Add(-time.Duration(i%600) * time.Second), Flow: f})
		if len(evs) == cap(evs) {
			s.Apply(evs)
			evs = evs[:0]
		}
	}
	evs = append(evs, flow.Event{Type: flow.EventSynced, Time: t0})
	s.Apply(evs)
	s.Tick(t0)
	if s.Len() != n {
		b.Fatalf("store holds %d flows, want %d", s.Len(), n)
	}
	benchStores[n] = s
	return s
}

// cpuTime is the CPU time this process has used (every thread: the
// analysis's workers and the garbage collector count).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bySize runs fn as a sub-benchmark per table size, reporting the CPU
// time per operation beside the wall time (the machine may be shared).
func bySize(b *testing.B, fn func(b *testing.B, s *store.Store)) {
	for _, n := range benchSizes() {
		b.Run("flows="+strconv.Itoa(n), func(b *testing.B) {
			s := bigStore(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuTime()
			fn(b, s)
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkExplain is the whole analysis of the table: walk, classes,
// what-if histograms, six consumer dimensions, report.
func BenchmarkExplain(b *testing.B) {
	bySize(b, func(b *testing.B, s *store.Store) {
		set := kernelSettings(nil)
		for b.Loop() {
			c, in := fromStore(s, nil, t0, t0.Add(-time.Minute), set)
			in.FreshTimeouts = true
			r := c.Report(in)
			if r.Table.Flows != s.Len() {
				b.Fatalf("explained %d of %d", r.Table.Flows, s.Len())
			}
		}
	})
}

// BenchmarkWalk is the floor every reader of the table pays: a walk that
// only counts the rows.
func BenchmarkWalk(b *testing.B) {
	bySize(b, func(b *testing.B, s *store.Store) {
		for b.Loop() {
			n := 0
			s.Walk(nil, func(*store.Row) bool { n++; return true })
			if n != s.Len() {
				b.Fatalf("walked %d of %d", n, s.Len())
			}
		}
	})
}

// BenchmarkSortRows is the yardstick: walk the same table and sort its
// rows by one consumer key (protocol and destination port, then
// destination) — what `conntrack -L | sort | uniq -c` does for one
// dimension, with compact keys.
func BenchmarkSortRows(b *testing.B) {
	bySize(b, func(b *testing.B, s *store.Store) {
		type key struct {
			pd  uint32
			dst addrKey
		}
		keys := make([]key, 0, s.Len())
		for b.Loop() {
			keys = keys[:0]
			s.Walk(nil, func(r *store.Row) bool {
				keys = append(keys, key{uint32(r.Flow.Proto)<<16 | uint32(r.Flow.Orig.DstPort), keyOf(r.Flow.Orig.Dst)})
				return true
			})
			slices.SortFunc(keys, func(a, b key) int {
				if c := cmp.Compare(a.pd, b.pd); c != 0 {
					return c
				}
				return cmpAddrKey(a.dst, b.dst)
			})
		}
	})
}

// BenchmarkQuerySorted is the table view's own cost on the same table: a
// filtered, sorted window after the sort column changed (no cached order).
func BenchmarkQuerySorted(b *testing.B) {
	bySize(b, func(b *testing.B, s *store.Store) {
		keys := []store.SortKey{store.SortDport, store.SortDst}
		i := 0
		for b.Loop() {
			res := s.Query(store.Query{Sort: keys[i%2], Limit: 50})
			i++
			if res.Matched != s.Len() {
				b.Fatalf("matched %d", res.Matched)
			}
		}
	})
}

// fromStore walks the live flows of s that m matches (nil: all) and
// returns (for benchmarks) the collector and the report input the store supplies (count
// history, statistics, table size). observedSince is when the source's
// initial listing ended: entries first seen before it were listed, not
// created, so the rate window starts there at the earliest. Call it with the store held; the result holds nothing of the store. The collector's
// Analyze (or Report) must be called: it stops the collector's counting
// goroutine.
func fromStore(s *store.Store, m store.Matcher, now, observedSince time.Time, settings *Settings) (*Collector, Input) {
	c := NewCollector(now, windowStart(now, observedSince), settings)
	c.Expect(s.Len())
	s.Walk(m, c.add)
	return c, storeInput(s)
}
