package engine

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
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
func loadEngine(n int, t0 time.Time) *Engine {
	eng := New(nil, Options{Now: func() time.Time { return t0 }})
	batch := make([]flow.Event, 0, 8192)
	for i := range n {
		batch = append(batch, flow.Event{Type: flow.EventNew, Time: t0, Flow: benchFlow(i)})
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
// included) at the median, 99th percentile and worst, and the viewers'
// query latency at the 99th percentile.
func BenchmarkViewersUnderChurn(b *testing.B) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range benchSizes() {
		eng := loadEngine(n, t0)
		next := n
		for _, viewers := range []int{0, 16} {
			b.Run(fmt.Sprintf("%s/%dviewers", sizeName(n), viewers), func(b *testing.B) {
				var lat, qlat []time.Duration
				events := 0
				for b.Loop() {
					stop := make(chan struct{})
					var wg sync.WaitGroup
					var qmu sync.Mutex
					for j := range viewers {
						wg.Go(func() {
							v := eng.NewViewer()
							defer v.Close()
							q := store.Query{Sort: store.SortKey(j % int(store.NumSortKeys)), Desc: j%2 == 0, Limit: 50, Offset: (j % 4) * 100}
							if j%3 == 2 {
								q.Filter = filter.MustParse("tcp and not state TIME_WAIT")
							}
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
					begin := time.Now()
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
					close(stop)
					wg.Wait()
				}
				slices.Sort(lat)
				pct := func(d []time.Duration, p float64) float64 {
					if len(d) == 0 {
						return 0
					}
					return float64(d[min(int(float64(len(d))*p), len(d)-1)].Microseconds())
				}
				b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(pct(lat, 0.5), "apply-p50-µs")
				b.ReportMetric(pct(lat, 0.99), "apply-p99-µs")
				b.ReportMetric(pct(lat, 1), "apply-max-µs")
				slices.Sort(qlat)
				b.ReportMetric(pct(qlat, 0.99)/1000, "query-p99-ms")
			})
		}
	}
}

var _ atomic.Int64
