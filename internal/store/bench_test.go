package store

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/flow"
)

// bigFlow returns flow n of a large realistic table: IPv4 TCP (70%, in
// various states), UDP (20%), IPv6 TCP (10%), from many clients to a few
// servers, with counters.
func bigFlow(n int) flow.Flow {
	var f flow.Flow
	switch n % 10 {
	case 0:
		var a [16]byte
		a[0], a[1] = 0xfd, 0x00
		a[12], a[13], a[14], a[15] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		f = flow.Flow{Family: flow.FamilyIPv6, Proto: flow.ProtoTCP, TCPState: flow.TCPEstablished,
			Orig: flow.Tuple{Src: netip.AddrFrom16(a), Dst: netip.MustParseAddr("fd00::1"), SrcPort: uint16(1024 + n%60000), DstPort: 443}}
	case 1, 2:
		f = flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoUDP,
			Orig: flow.Tuple{Src: netip.AddrFrom4([4]byte{10, 1, byte(n >> 8), byte(n)}), Dst: netip.AddrFrom4([4]byte{10, 0, 0, byte(n % 4)}), SrcPort: uint16(1024 + n%60000), DstPort: 53}}
	default:
		states := [...]flow.TCPState{flow.TCPEstablished, flow.TCPEstablished, flow.TCPTimeWait, flow.TCPSynSent, flow.TCPCloseWait}
		f = flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: states[n%5],
			Orig: flow.Tuple{Src: netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), Dst: netip.AddrFrom4([4]byte{10, 0, 0, byte(n % 8)}),
				SrcPort: uint16(1024 + n%60000), DstPort: [...]uint16{443, 80, 22, 8080}[n%4]}}
	}
	f.ID = uint32(n)
	f.Status = flow.StatusConfirmed
	if f.TCPState != flow.TCPSynSent {
		f.Status |= flow.StatusSeenReply | flow.StatusAssured
	}
	f.Timeout = uint32(n % 432000)
	f.Reply = f.Orig.Reverse(f.Proto)
	f.HasCounters = true
	f.Counters = flow.Counters{OrigPackets: uint64(n % 1000), OrigBytes: uint64(n % 100000), ReplyPackets: uint64(n % 700), ReplyBytes: uint64(n % 77777)}
	return f
}

// loadBig returns a store holding n flows loaded as a source's initial
// listing, then every other TCP flow taken through two more transitions
// and a counter sample (so histories and rates are not empty).
func loadBig(n int) *Store { return loadBigCounters(n, true) }

// loadBigCounters is loadBig, with counters or without (as from a kernel
// with nf_conntrack_acct=0, its default: the counter samples are then
// plain updates).
func loadBigCounters(n int, counters bool) *Store {
	s := New(Options{})
	bigFlow := func(n int) flow.Flow {
		f := bigFlow(n)
		if !counters {
			f.HasCounters, f.Counters = false, flow.Counters{}
		}
		return f
	}
	s.Tick(t0)
	batch := make([]flow.Event, 0, 1024)
	flush := func() { s.Apply(batch); batch = batch[:0] }
	for i := range n {
		f := bigFlow(i)
		if f.Proto == flow.ProtoTCP && i%2 == 0 {
			f.TCPState = flow.TCPSynSent
		}
		batch = append(batch, ev(flow.EventNew, t0, f))
		if len(batch) == cap(batch) {
			flush()
		}
	}
	batch = append(batch, synced(t0))
	flush()
	t1 := at(time.Second)
	for i := range n {
		f := bigFlow(i)
		if f.Proto != flow.ProtoTCP || i%2 != 0 {
			continue
		}
		g := f
		g.TCPState = flow.TCPSynRecv
		batch = append(batch, ev(flow.EventUpdate, t1, g), ev(flow.EventUpdate, t1, f))
		typ := flow.EventUpdate
		if counters {
			f.Counters.OrigBytes += uint64(i % 5000)
			typ = flow.EventCounters
		}
		batch = append(batch, ev(typ, t1, f))
		if len(batch) >= 1020 {
			flush()
		}
	}
	flush()
	s.Tick(at(2 * time.Second))
	return s
}

const bigN = 262144

// BenchmarkQuery measures a windowed, filtered, sorted query of one View
// over 262,144 flows (and 4,194,304, see bigSizes). "rescan" makes every query scan and filter the whole table (a new
// filter each time: the worst case); "changed" applies one event before
// each query (a busy table: the cached scan is refreshed incrementally);
// "unchanged" is a frame on an idle table.
func BenchmarkQuery(b *testing.B) {
	for _, n := range bigSizes() {
		b.Run(sizeName(n), func(b *testing.B) { benchQuery(b, n) })
	}
}

func benchQuery(b *testing.B, n int) {
	s := loadBig(n)
	defer s.Close()
	flt := filter.MustParse("tcp and not state TIME_WAIT")
	churn := bigFlow(n + 1)
	for _, bc := range []struct {
		name string
		q    Query
	}{
		{"nofilter_age_top", Query{Sort: SortAge, Limit: 50}},
		{"filtered_bytes_desc_top", Query{Filter: flt, Sort: SortBytes, Desc: true, Limit: 50}},
		{"filtered_src_deep", Query{Filter: flt, Sort: SortSrc, Offset: n * 100000 / bigN, Limit: 50}},
		{"filtered_state_mid", Query{Filter: flt, Sort: SortState, Offset: n * 60000 / bigN, Limit: 50}},
		{"filtered_rate_select", Query{Filter: flt, Sort: SortRate, Desc: true, Limit: 50, Select: &flow.Key{}}},
	} {
		q := bc.q
		if q.Select != nil {
			k := keyOf(bigFlow(4000))
			q.Select = &k
		}
		v := NewView()
		b.Run(bc.name+"/rescan", func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			q := q
			alt := [2]Matcher{q.Filter, nil}
			if q.Filter == nil {
				alt[1] = filter.MustParse("")
			}
			for i := 0; b.Loop(); i++ {
				q.Filter = alt[i%2]
				if q.Filter == nil && i%2 == 1 {
					// A filter never used before (views share the bitmap
					// of an equal text): evaluated on every flow.
					q.Filter = filter.MustParse(fmt.Sprintf("%s and not port %d", flt, 65000+i%500))
				}
				if r := v.Query(s, nil, q); len(r.Rows) != 50 {
					b.Fatalf("%d rows", len(r.Rows))
				}
			}
		})
		b.Run(bc.name+"/changed", func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for i := 0; b.Loop(); i++ {
				churn.Timeout = uint32(i)
				s.Apply([]flow.Event{ev(flow.EventUpdate, at(3*time.Second), churn)})
				if r := v.Query(s, nil, q); len(r.Rows) != 50 {
					b.Fatalf("%d rows", len(r.Rows))
				}
			}
		})
		b.Run(bc.name+"/unchanged", func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				if r := v.Query(s, nil, q); len(r.Rows) != 50 {
					b.Fatalf("%d rows", len(r.Rows))
				}
			}
		})
	}
}

// BenchmarkApply measures steady churn on a 65,536-flow table: each
// connection is a new, two updates and a destroy (lingering, expired by
// Tick). It reports events per second.
func BenchmarkApply(b *testing.B) {
	s := loadBig(65536)
	batch := make([]flow.Event, 0, 256)
	now := at(3 * time.Second)
	b.ReportAllocs()
	cpu0 := cpuTime()
	events := 0
	n := 1 << 20
	for b.Loop() {
		batch = batch[:0]
		for range 64 {
			f := tcpFlow(n, 443, flow.TCPSynSent)
			n++
			g := f
			g.TCPState, g.Status = flow.TCPEstablished, g.Status|flow.StatusSeenReply|flow.StatusAssured
			h := withCounters(g, 10, 1000, 8, 4000)
			h.TCPState = flow.TCPTimeWait
			batch = append(batch, ev(flow.EventNew, now, f), ev(flow.EventUpdate, now, g), ev(flow.EventUpdate, now, h), ev(flow.EventDestroy, now, h))
		}
		s.Apply(batch)
		events += len(batch)
		now = now.Add(time.Millisecond)
		s.Tick(now)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(events)/(float64(cpuTime()-cpu0)/1e9), "events/cpu-s")
}

// BenchmarkListing measures a source's initial listing of 262,144 flows
// into an empty store, as the kernel source sends it: its table count
// first (which sizes the store), then the flows in batches of 1,024.
func BenchmarkListing(b *testing.B) {
	const n = 262144
	evs := make([]flow.Event, n)
	for i := range evs {
		evs[i] = ev(flow.EventNew, t0, bigFlow(i))
	}
	stats := flow.Event{Type: flow.EventStats, Time: t0, Stats: &flow.TableStats{Time: t0, Count: n, Max: 2 * n}}
	b.ReportAllocs()
	for b.Loop() {
		s := New(Options{})
		s.Tick(t0)
		s.Apply([]flow.Event{stats})
		for i := 0; i < n; i += 1024 {
			s.Apply(evs[i:min(i+1024, n)])
		}
		s.Apply([]flow.Event{synced(t0)})
		s.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "flows/s")
}

// BenchmarkFilterScan measures filter evaluation over the store's flows
// (materializing each flow, as Query does).
func BenchmarkFilterScan(b *testing.B) {
	s := loadBig(65536)
	flt := filter.MustParse("tcp and dport 443 and not state TIME_WAIT or udp port 53")
	b.ReportAllocs()
	cpu0 := cpuTime()
	var fl flow.Flow
	for b.Loop() {
		n := 0
		for i := uint32(0); i < s.tab.hw; i++ {
			s.tab.flow(i, &fl)
			if flt.Match(&fl) {
				n++
			}
		}
		if n == 0 {
			b.Fatal("nothing matched")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/65536, "ns/flow")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/65536, "cpu-ns/flow")
}

// reportCPU reports the process CPU time per operation ("cpu-ns/op"), which
// unlike ns/op does not grow when other processes share the machine. Use:
// defer reportCPU(b)().
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

// cpuTime returns the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// bigSizes are the table sizes of the benchmarks: 262,144, and
// 4,194,304 when CONNTOP_BIG=1 is set or -test.bench names it ("4M").
func bigSizes() []int {
	sizes := []int{bigN}
	if wantBig() {
		sizes = append(sizes, 4194304)
	}
	return sizes
}

// wantBig reports whether the 4,194,304-flow benchmarks should run.
func wantBig() bool {
	if os.Getenv("CONNTOP_BIG") == "1" {
		return true
	}
	f := flag.Lookup("test.bench")
	return f != nil && (strings.Contains(f.Value.String(), "4M") || strings.Contains(f.Value.String(), "4194304"))
}

// sizeName names a table size in benchmark names.
func sizeName(n int) string {
	if n == 4194304 {
		return "4M"
	}
	return strconv.Itoa(n)
}

// BenchmarkMemoryPerFlow measures the memory of a process holding the
// store as the operating system sees it: it runs this test binary again
// as a child (TestRSSChild) that loads n flows and reports its peak RSS
// (VmHWM of /proc/self/status), for a store with one view ("store"), with
// 16 views of different sorts and filters ("16views"), the same without
// counters, as from a kernel with nf_conntrack_acct=0, its default
// ("16views-noacct"), and counts only ("counts"). It reports the peak in
// MiB and in bytes per flow beyond the peak of a child that loads nothing.
func BenchmarkMemoryPerFlow(b *testing.B) {
	for _, mode := range []string{"store", "16views", "16views-noacct", "counts"} {
		for _, n := range bigSizes() {
			b.Run(mode+"/"+sizeName(n), func(b *testing.B) {
				for b.Loop() {
					base := childHWM(b, mode, 0)
					hwm := childHWM(b, mode, n)
					b.ReportMetric(float64(hwm)/(1<<20), "MiB")
					b.ReportMetric(float64(base)/(1<<20), "empty-MiB")
					b.ReportMetric(float64(hwm-base)/float64(n), "B/flow")
				}
			})
		}
	}
}

// childHWM runs TestRSSChild in a child process and returns its VmHWM in
// bytes.
func childHWM(b *testing.B, mode string, n int) int64 {
	cmd := exec.Command(os.Args[0], "-test.run=^TestRSSChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CONNTOP_RSS_CHILD="+mode+":"+strconv.Itoa(n))
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("child: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "HWM "); ok {
			kb, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatalf("child said %q", line)
			}
			return kb << 10
		}
	}
	b.Fatalf("child said nothing: %s", out)
	return 0
}

// TestRSSChild is BenchmarkMemoryPerFlow's child process; it does
// nothing unless CONNTOP_RSS_CHILD is set ("mode:n").
func TestRSSChild(t *testing.T) {
	spec := os.Getenv("CONNTOP_RSS_CHILD")
	if spec == "" {
		t.Skip("run by BenchmarkMemoryPerFlow")
	}
	mode, ns, _ := strings.Cut(spec, ":")
	n, _ := strconv.Atoi(ns)
	var s *Store
	if mode == "counts" {
		s = New(Options{CountsOnly: true})
		s.Tick(t0)
		batch := make([]flow.Event, 0, 1024)
		for i := range n {
			batch = append(batch, ev(flow.EventNew, t0, bigFlow(i)))
			if len(batch) == cap(batch) {
				s.Apply(batch)
				batch = batch[:0]
			}
		}
		s.Apply(append(batch, synced(t0)))
	} else {
		s = loadBigCounters(n, mode != "16views-noacct")
		views := 1
		if mode != "store" {
			views = 16
		}
		for j := range views {
			q := Query{Sort: SortKey(j % int(NumSortKeys)), Desc: j%2 == 1, Limit: 50}
			if j%3 == 2 {
				q.Filter = filter.MustParse("tcp and not state TIME_WAIT")
			}
			v := NewView()
			v.Query(s, nil, q)
			defer runtime.KeepAlive(v)
		}
	}
	if s.Len() != n {
		t.Fatalf("Len %d, want %d", s.Len(), n)
	}
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(st)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Printf("HWM %s\n", strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	runtime.KeepAlive(s)
}

// heapBytes returns the live heap after a full collection.
func heapBytes() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestMemoryPerFlow holds the store to its layout: at 262,144 flows it
// maps at most 160 bytes per flow outside the Go heap (records, IPv6 and
// NAT slabs, index, history ring, change log; the ring, at most 8 MiB, is
// 32 of them here) and keeps under 16 bytes per
// flow on the Go heap, a View's query state included. (The process's peak
// RSS is BenchmarkMemoryPerFlow's.)
func TestMemoryPerFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 262,144-flow table")
	}
	before := heapBytes()
	s := loadBig(bigN)
	defer s.Close()
	v := NewView()
	v.Query(s, nil, Query{Sort: SortBytes, Limit: 50})
	after := heapBytes()
	heap := (float64(after) - float64(before)) / bigN
	mapped := float64(s.memoryUsed()) / bigN
	t.Logf("%.1f bytes per flow mapped, %.1f on the heap at %d flows (record %d bytes)", mapped, heap, bigN, recSize)
	if mapped > 160 || heap > 16 {
		t.Fatalf("%.1f bytes per flow mapped (budget 160), %.1f on the heap (budget 16)", mapped, heap)
	}
	if s.Len() != bigN {
		t.Fatalf("Len = %d", s.Len())
	}
	runtime.KeepAlive(v)
}
