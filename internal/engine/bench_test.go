package engine

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// benchFlow returns flow n of a synthetic table: IPv4 TCP from many
// clients to a few servers in several states, with counters.
func benchFlow(n int) flow.Flow {
	states := [...]flow.TCPState{flow.TCPEstablished, flow.TCPEstablished, flow.TCPTimeWait, flow.TCPSynSent, flow.TCPCloseWait}
	f := flow.Flow{ID: uint32(n), Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: states[n%5],
		Status: flow.StatusConfirmed | flow.StatusSeenReply | flow.StatusAssured, Timeout: uint32(n % 432000),
		Orig: flow.Tuple{Src: netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), Dst: netip.AddrFrom4([4]byte{172, 16, byte(n >> 24), byte(n % 8)}),
			SrcPort: uint16(1024 + n%60000), DstPort: [...]uint16{443, 80, 22, 8080}[n%4]},
		HasCounters: true, Counters: flow.Counters{OrigPackets: uint64(n % 1000), OrigBytes: uint64(n % 100000), ReplyPackets: uint64(n % 700), ReplyBytes: uint64(n % 77777)}}
	f.Reply = f.Orig.Reverse(f.Proto)
	return f
}

// loadEngine returns an engine holding n flows (an initial listing).
func loadEngine(n int, t0 time.Time) *Engine { return loadEngineWith(n, t0, benchFlow) }

// loadEngineWith returns an engine holding the n flows gen makes.
func loadEngineWith(n int, t0 time.Time, gen func(int) flow.Flow) *Engine {
	eng := New(nil, Options{Now: func() time.Time { return t0 }})
	batch := make([]flow.Event, 0, 8192)
	for i := range n {
		batch = append(batch, flow.Event{Type: flow.EventNew, Time: t0, Flow: gen(i)})
		if len(batch) == cap(batch) {
			eng.Apply(batch)
			batch = batch[:0]
		}
	}
	eng.Apply(append(batch, flow.Event{Type: flow.EventSynced, Time: t0}))
	eng.Tick(t0)
	return eng
}

// benchSizes are 262,144, and 4,194,304 with CONNTOP_BIG=1 or when
// -test.bench names "4M".
func benchSizes() []int {
	sizes := []int{262144}
	f := flag.Lookup("test.bench")
	if os.Getenv("CONNTOP_BIG") == "1" || (f != nil && strings.Contains(f.Value.String(), "4M")) {
		sizes = append(sizes, 4194304)
	}
	return sizes
}

func sizeName(n int) string {
	if n == 4194304 {
		return "4M"
	}
	return fmt.Sprint(n)
}

// churnRate is the offered event rate of BenchmarkViewersUnderChurn: the
// rate at which the kernel source loses no event (README).
const churnRate = 117000

// BenchmarkViewersUnderChurn runs an engine holding n flows under churn
// (connections opened, established, closed and destroyed: 4 events each,
// in batches of 256 events offered at churnRate events per second, as from
// a busy source) for 2 seconds per iteration, with 0 or 16 viewers each querying
// its own sort and window 10 times a second (every third one with a
// filter, every fourth changing its sort now and then). It reports the
// events applied per second (churnRate when the pump keeps up), the latency of applying one batch (lock wait
// included) at the median, 99th percentile and worst, the viewers'
// query latency at the 99th percentile, the process's CPU per second of
// churn (cpu-%: 100 is one core; pump, viewers and the load generator)
// and the Go heap in use at its peak above what it was before the viewers
// started (heap-peak-MiB, sampled every 5 ms).
func BenchmarkViewersUnderChurn(b *testing.B) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range benchSizes() {
		eng := loadEngine(n, t0)
		next := n
		for _, viewers := range []int{0, 16} {
			b.Run(fmt.Sprintf("%s/%dviewers", sizeName(n), viewers), func(b *testing.B) {
				b.ReportAllocs()
				var lat, qlat []time.Duration
				events := 0
				var churnTime, cpu time.Duration
				var peak uint64
				for b.Loop() {
					runtime.GC()
					stop := make(chan struct{})
					sampling := heapPeak(stop)
					var wg sync.WaitGroup
					var qmu sync.Mutex
					var ready sync.WaitGroup
					ready.Add(viewers)
					for j := range viewers {
						wg.Go(func() {
							v := eng.NewViewer()
							defer v.Close()
							q := store.Query{Sort: store.SortKey(j % int(store.NumSortKeys)), Desc: j%2 == 0, Limit: 50, Offset: (j % 4) * 100}
							if j%3 == 2 {
								q.Filter = filter.MustParse("tcp and not state TIME_WAIT")
							}
							v.Query(q) // the first screen, before the measured churn
							ready.Done()
							tick := time.NewTicker(100 * time.Millisecond)
							defer tick.Stop()
							var mine []time.Duration
							for k := 0; ; k++ {
								select {
								case <-stop:
									qmu.Lock()
									qlat = append(qlat, mine...)
									qmu.Unlock()
									return
								case <-tick.C:
								}
								if j%4 == 3 && k%10 == 9 {
									q.Sort = (q.Sort + 1) % store.NumSortKeys
								}
								start := time.Now()
								if v.Changed() || k%10 == 0 {
									if r := v.Query(q); len(r.Rows) == 0 {
										b.Error("no rows")
									}
								}
								mine = append(mine, time.Since(start))
							}
						})
					}
					ready.Wait()
					c0, begin := time.Duration(cpuTime()), time.Now()
					deadline := begin.Add(2 * time.Second)
					batch := make([]flow.Event, 0, 256)
					now := t0.Add(time.Second)
					sent := 0
					for time.Now().Before(deadline) {
						if due := begin.Add(time.Duration(sent) * time.Second / churnRate); time.Until(due) > 0 {
							time.Sleep(time.Until(due))
						}
						batch = batch[:0]
						for range 64 {
							f := benchFlow(next)
							next++
							f.TCPState, f.Status = flow.TCPSynSent, flow.StatusConfirmed
							g := benchFlow(next - 1)
							h := g
							h.TCPState = flow.TCPTimeWait
							batch = append(batch, flow.Event{Type: flow.EventNew, Time: now, Flow: f}, flow.Event{Type: flow.EventUpdate, Time: now, Flow: g},
								flow.Event{Type: flow.EventUpdate, Time: now, Flow: h}, flow.Event{Type: flow.EventDestroy, Time: now, Flow: h})
						}
						start := time.Now()
						eng.Apply(batch)
						lat = append(lat, time.Since(start))
						events += len(batch)
						sent += len(batch)
						now = now.Add(time.Millisecond)
						if len(lat)%50 == 0 {
							eng.Tick(now)
						}
					}
					churnTime += time.Since(begin)
					cpu += time.Duration(cpuTime()) - c0
					close(stop)
					peak = max(peak, <-sampling)
					wg.Wait()
				}
				slices.Sort(lat)
				pct := func(d []time.Duration, p float64) float64 {
					if len(d) == 0 {
						return 0
					}
					return float64(d[min(int(float64(len(d))*p), len(d)-1)].Microseconds())
				}
				b.ReportMetric(float64(events)/churnTime.Seconds(), "events/s")
				b.ReportMetric(pct(lat, 0.5), "apply-p50-µs")
				b.ReportMetric(pct(lat, 0.99), "apply-p99-µs")
				b.ReportMetric(pct(lat, 1), "apply-max-µs")
				slices.Sort(qlat)
				b.ReportMetric(pct(qlat, 0.99)/1000, "query-p99-ms")
				b.ReportMetric(100*cpu.Seconds()/churnTime.Seconds(), "cpu-%")
				b.ReportMetric(float64(peak)/(1<<20), "heap-peak-MiB")
			})
		}
	}
}

var _ atomic.Int64

// mixedFlow returns flow n of a mixed synthetic table, so that the filters
// of BenchmarkViewersLikeTUI match something: IPv4 TCP (60%, several
// states, destination ports spread over 1000-4999 and well-known ones),
// UDP (25%), IPv6 TCP (1 in 8), with counters.
func mixedFlow(n int) flow.Flow {
	f := benchFlow(n)
	switch {
	case n%8 == 7:
		var a [16]byte
		a[0], a[1] = 0xfd, 0x00
		a[12], a[13], a[14], a[15] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		f.Family = flow.FamilyIPv6
		f.Orig.Src, f.Orig.Dst = netip.AddrFrom16(a), netip.MustParseAddr("fd00::1")
	case n%4 == 1:
		f.Proto, f.TCPState = flow.ProtoUDP, 0
		f.Orig.DstPort = 53
	}
	if n%3 == 0 && f.Proto == flow.ProtoTCP {
		f.Orig.DstPort = uint16(1000 + n%4000)
	}
	f.Reply = f.Orig.Reverse(f.Proto)
	return f
}

// churnBatch fills batch with 64 short connections (opened, established,
// closed, destroyed: 4 events each) numbered from *next on.
func churnBatch(batch []flow.Event, next *int, now time.Time) []flow.Event {
	batch = batch[:0]
	for range 64 {
		f := mixedFlow(*next)
		*next++
		f.Proto, f.Family = flow.ProtoTCP, flow.FamilyIPv4
		f.Orig.Src = netip.AddrFrom4([4]byte{10, byte(*next >> 16), byte(*next >> 8), byte(*next)})
		f.Orig.Dst = netip.AddrFrom4([4]byte{172, 16, 0, 9})
		f.Orig.DstPort = 9000
		f.Reply = f.Orig.Reverse(f.Proto)
		f.TCPState, f.Status = flow.TCPSynSent, flow.StatusConfirmed
		g := f
		g.TCPState, g.Status = flow.TCPEstablished, flow.StatusConfirmed|flow.StatusSeenReply|flow.StatusAssured
		h := g
		h.TCPState = flow.TCPTimeWait
		batch = append(batch, flow.Event{Type: flow.EventNew, Time: now, Flow: f}, flow.Event{Type: flow.EventUpdate, Time: now, Flow: g},
			flow.Event{Type: flow.EventUpdate, Time: now, Flow: h}, flow.Event{Type: flow.EventDestroy, Time: now, Flow: h})
	}
	return batch
}

// tuiViewer queries as the TUI's flow table does (tui/table.go, query):
// the selection stays on its flow across sorts and refreshes (a query with
// Select), by row number when the flow is gone.
type tuiViewer struct {
	v       *Viewer
	q       store.Query
	sel     *flow.Key
	selIdx  int
	offset  int
	byIndex bool
	rows    int
}

func (t *tuiViewer) query() store.Result {
	q := t.q
	q.Limit = t.rows
	if !t.byIndex && t.sel != nil {
		q.Offset = t.offset
		sel := *t.sel
		q.Select = &sel
		if res := t.v.Query(q); res.SelectedIndex >= 0 {
			t.selIdx, t.offset = res.SelectedIndex, res.Offset
			return res
		}
	}
	t.byIndex = false
	q.Select = nil
	q.Offset = t.offset
	res := t.v.Query(q)
	if res.Matched == 0 {
		t.sel, t.selIdx, t.offset = nil, 0, 0
		return res
	}
	idx := max(0, min(t.selIdx, res.Matched-1))
	off := max(0, min(t.offset, res.Matched-t.rows))
	if idx < off {
		off = idx
	} else if idx >= off+t.rows {
		off = idx - t.rows + 1
	}
	if off != res.Offset {
		q.Offset = off
		res = t.v.Query(q)
	}
	t.offset, t.selIdx = res.Offset, idx
	if i := idx - res.Offset; i >= 0 && i < len(res.Rows) {
		k := res.Rows[i].Flow.Key()
		t.sel = &k
	}
	return res
}

// tuiFilters are the filters of the measurement's SSH viewers
// (cmd/conntop/measure_big_test.go).
var tuiFilters = []string{"tcp and dport 1000-1999", "udp", "ipv6", "state established and dport 3000-3999"}

// heapInUse is the Go heap in use (objects, live or not yet collected, and
// free space in spans in use), as go_memstats_heap_inuse_bytes.
func heapInUse(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

// heapPeak samples the Go heap in use every 5 ms until stop is closed and
// then sends on the returned channel its peak above what it was at the
// start.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	ms := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	base := heapInUse(ms)
	out := make(chan uint64, 1)
	go func() {
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		var hi uint64
		for {
			select {
			case <-stop:
				out <- hi
				return
			case <-tk.C:
				if h := heapInUse(ms); h > base && h-base > hi {
					hi = h - base
				}
			}
		}
	}()
	return out
}

// BenchmarkViewersLikeTUI runs an engine holding n mixed flows under churn
// (6,000 short TCP connections/s, 4 events each, in batches of 256) for 3
// seconds per iteration, with 0 or 16 viewers that behave as the
// measurement's SSH viewers (cmd/conntop/measure_big_test.go): viewer i
// takes i%9 steps to the next sort column with the selection kept on its
// flow, reverses the sort when i is odd, applies one of four filters when
// i%3 == 0, then every 250 ms asks Changed and queries (40 rows, the
// selection kept) when it says so. It reports the process's CPU per
// second of churn (cpu-%: 100 is one core; the churn starts once every
// viewer has its screen), the Go heap in use at its peak above what it was
// before the viewers started (heap-peak-MiB, sampled every 5 ms, over
// their first screens and the churn), the events applied per second and
// the 99th percentile of the viewers' refresh latency (Changed and the
// query when it says so).
func BenchmarkViewersLikeTUI(b *testing.B) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const rate = 24000
	const window = 3 * time.Second
	for _, n := range benchSizes() {
		eng := loadEngineWith(n, t0, mixedFlow)
		next := n
		for _, viewers := range []int{0, 16} {
			b.Run(fmt.Sprintf("%s/%dviewers", sizeName(n), viewers), func(b *testing.B) {
				b.ReportAllocs()
				var qlat []time.Duration
				var cpu, churnTime time.Duration
				events := 0
				var peak uint64
				for b.Loop() {
					runtime.GC()
					stop, start := make(chan struct{}), make(chan struct{})
					var wg, ready sync.WaitGroup
					var qmu sync.Mutex
					sampling := heapPeak(stop)
					ready.Add(viewers)
					for j := range viewers {
						wg.Go(func() {
							t := &tuiViewer{v: eng.NewViewer(), byIndex: true, rows: 36}
							defer t.v.Close()
							t.query()
							for range j % 9 {
								t.q.Sort = (t.q.Sort + 1) % store.NumSortKeys
								t.query()
							}
							if j%2 == 1 {
								t.q.Desc = true
								t.query()
							}
							if j%3 == 0 {
								// Typed key by key: the filter bar applies every
								// prefix that parses (live preview), then Enter
								// shows the table from its top.
								text := tuiFilters[j/3%4]
								for k := range len(text) {
									if f, err := filter.Parse(text[:k+1]); err == nil {
										t.q.Filter = f
										t.query()
									}
								}
								t.byIndex, t.selIdx, t.offset = true, 0, 0
								t.query()
							}
							ready.Done()
							<-start
							tick := time.NewTicker(250 * time.Millisecond)
							defer tick.Stop()
							var mine []time.Duration
							for {
								select {
								case <-stop:
									qmu.Lock()
									qlat = append(qlat, mine...)
									qmu.Unlock()
									return
								case <-tick.C:
								}
								start := time.Now()
								if t.v.Changed() {
									t.query()
								}
								mine = append(mine, time.Since(start))
							}
						})
					}
					ready.Wait()
					close(start)
					c0, begin := time.Duration(cpuTime()), time.Now()
					deadline := begin.Add(window)
					now := t0.Add(time.Second)
					sent := 0
					var batch []flow.Event
					for k := 0; time.Now().Before(deadline); k++ {
						if due := begin.Add(time.Duration(sent) * time.Second / rate); time.Until(due) > 0 {
							time.Sleep(time.Until(due))
						}
						batch = churnBatch(batch, &next, now)
						eng.Apply(batch)
						events += len(batch)
						sent += len(batch)
						now = now.Add(10 * time.Millisecond)
						if k%25 == 0 {
							eng.Tick(now)
						}
					}
					churnTime += time.Since(begin)
					cpu += time.Duration(cpuTime()) - c0
					close(stop)
					peak = max(peak, <-sampling)
					wg.Wait()
				}
				slices.Sort(qlat)
				p99 := 0.0
				if len(qlat) > 0 {
					p99 = float64(qlat[min(len(qlat)*99/100, len(qlat)-1)].Microseconds()) / 1000
				}
				b.ReportMetric(100*cpu.Seconds()/churnTime.Seconds(), "cpu-%")
				b.ReportMetric(float64(peak)/(1<<20), "heap-peak-MiB")
				b.ReportMetric(float64(events)/churnTime.Seconds(), "events/s")
				b.ReportMetric(p99, "refresh-p99-ms")
			})
		}
	}
}
