package store

import (
	"math"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/conntop/conntop/internal/flow"
)

// TestRecordSize holds the record to its size: every byte of it is 4 MiB
// at 4,194,304 flows.
func TestRecordSize(t *testing.T) {
	if recSize > 48 {
		t.Fatalf("rec is %d bytes, budget 48", recSize)
	}
	if n := unsafe.Sizeof(acct{}); n > 28 {
		t.Fatalf("acct is %d bytes, budget 28", n)
	}
}

// TestAcctColumnOnlyWithCounters checks that flows without counters (the
// kernel's default, nf_conntrack_acct=0) never map the counters column,
// that the first flow with counters maps one part, and that a record
// reused after a flow with counters starts from zero.
func TestAcctColumnOnlyWithCounters(t *testing.T) {
	s := newSynced(Options{Linger: -1})
	const bits = 12
	smallParts(s, bits)
	const n = 1<<bits + 100 // two parts of the counters column
	evs := make([]flow.Event, 0, n)
	for i := range n {
		evs = append(evs, ev(flow.EventNew, at(0), tcpFlow(i, 80, flow.TCPEstablished)))
	}
	s.Apply(evs)
	if b := s.tab.acct.bytes(); b != 0 {
		t.Fatalf("%d bytes of counters mapped for %d flows without counters", b, n)
	}
	// Updates, destroys and reads of flows without counters map nothing.
	f0, f1 := tcpFlow(0, 80, flow.TCPEstablished), tcpFlow(1, 80, flow.TCPEstablished)
	s.Apply([]flow.Event{ev(flow.EventUpdate, at(time.Second), f0), ev(flow.EventDestroy, at(time.Second), f1)})
	if r, ok := s.Row(f0.Key()); !ok || r.Flow.HasCounters || r.OrigBPS != 0 {
		t.Fatalf("row without counters: %+v", r)
	}
	for _, key := range []SortKey{SortPackets, SortBytes, SortRate} {
		if res := NewView().Query(s, nil, Query{Sort: key, Desc: true, Limit: 10}); len(res.Rows) != 10 {
			t.Fatalf("sort %v: %d rows", key, len(res.Rows))
		}
	}
	if b := s.tab.acct.bytes(); b != 0 {
		t.Fatalf("%d bytes of counters mapped after updates and queries without counters", b)
	}

	// A flow with counters maps the part of its record, and only that.
	last := tcpFlow(n-1, 80, flow.TCPEstablished)
	s.Apply([]flow.Event{ev(flow.EventCounters, at(2*time.Second), withCounters(last, 10, 1000, 5, 500))})
	s.Apply([]flow.Event{ev(flow.EventCounters, at(4*time.Second), withCounters(last, 30, 3000, 5, 500))})
	if got, want := s.tab.acct.bytes(), int64(1<<bits)*int64(unsafe.Sizeof(acct{})); got != want {
		t.Fatalf("counters column maps %d bytes, want one part (%d)", got, want)
	}
	if r, ok := s.Row(last.Key()); !ok || r.Flow.Counters.OrigBytes != 3000 || r.OrigBPS != 1000 {
		t.Fatalf("row with counters: %+v", r)
	}

	// Its record, reused by a flow without counters, reads zero.
	s.Apply([]flow.Event{ev(flow.EventDestroy, at(5*time.Second), last)})
	next := tcpFlow(n, 80, flow.TCPEstablished)
	s.Apply([]flow.Event{ev(flow.EventNew, at(5*time.Second), next)})
	i, ok := s.tab.lookup(new(next.Key()))
	if !ok {
		t.Fatal("new flow not found")
	}
	if a := s.tab.acct.ptr(i); a == nil || *a != (acct{}) {
		t.Fatalf("reused record %d carries counters %+v", i, a)
	}
	if r, _ := s.Row(next.Key()); r.Flow.Counters != (flow.Counters{}) || r.OrigBPS != 0 || r.ReplyPPS != 0 {
		t.Fatalf("new flow on a reused record: %+v", r)
	}
}

// rateRelErr is the bound of rounding to the nearest code relative to
// the value, from the smallest normal code up.
const rateRelErr = 1.0 / (1 << (rateMantBits + 1))

func TestRateZeroAndSpecials(t *testing.T) {
	for _, v := range []float64{0, math.Copysign(0, -1), -1, -1e30, math.Inf(-1), math.NaN()} {
		if c := encodeRate(v); c != 0 {
			t.Errorf("encodeRate(%v) = %d, want 0", v, c)
		}
	}
	if v := rate16(0).float(); v != 0 || math.Signbit(v) {
		t.Errorf("code 0 = %v", v)
	}
	if c := encodeRate(1e-12); c != 0 {
		t.Errorf("encodeRate(1e-12) = %d, want 0 (below half the smallest code)", c)
	}
	if c := encodeRate(rate16(1).float() * 0.6); c != 1 {
		t.Errorf("0.6 of the smallest code rounds to %d", c)
	}
}

func TestRateRoundTrip(t *testing.T) {
	check := func(v float64) {
		t.Helper()
		got := encodeRate(v).float()
		rel := math.Abs(got-v) / v
		bound := rateRelErr
		if v < rateMinNormal {
			bound = 0.5 / (v * rateSubScale) // half a code
		}
		if rel > bound*(1+1e-12) {
			t.Fatalf("%g -> %g: relative error %.3g > %.3g", v, got, rel, bound)
		}
		if v >= 5e-8 && rel > 0.005 {
			t.Fatalf("%g -> %g: relative error %.3g > 0.5 %%", v, got, rel)
		}
	}
	// Every 1/1000 of a decade from 1e-9 to 1e12, and a pseudo-random
	// value in each step.
	r := rng(7)
	for e := -9000; e <= 12000; e++ {
		v := math.Pow(10, float64(e)/1000)
		check(v)
		check(v * (1 + float64(r.next()>>11)/(1<<53)*0.0023))
	}
	// Integers of 11 significant bits are exact, as in the other tests'
	// figures.
	for _, v := range []float64{1, 2, 50, 100, 2000, 2048, 10000, 20000, 1 << 40, 1000 * 1 << 30} {
		if got := encodeRate(v).float(); got != v {
			t.Errorf("%v -> %v, want exact", v, got)
		}
	}
	for v := 0; v <= 2048; v++ {
		if got := encodeRate(float64(v)).float(); got != float64(v) {
			t.Fatalf("%v -> %v, want exact", v, got)
		}
	}
}

// TestRateMonotonic checks all 65,536 codes: increasing values, each
// code its own nearest and floor, and the rounding boundary half way
// between neighbours.
func TestRateMonotonic(t *testing.T) {
	prev := -1.0
	for c := range rateMaxCode + 1 {
		code := rate16(c)
		v := code.float()
		if !(v > prev) {
			t.Fatalf("code %d = %g, not above code %d = %g", c, v, c-1, prev)
		}
		if e := encodeRate(v); e != code {
			t.Fatalf("encodeRate(code %d = %g) = %d", c, v, e)
		}
		if f, frac := floorRate(v); f != code || frac != 0 {
			t.Fatalf("floorRate(code %d = %g) = %d", c, v, f)
		}
		if c > 0 {
			mid := prev + (v-prev)/2
			below, above := math.Nextafter(mid, 0), math.Nextafter(mid, math.Inf(1))
			if encodeRate(below) != code-1 || encodeRate(above) != code || floorCode(below) != code-1 {
				t.Fatalf("around %g (between codes %d and %d): %d %d", mid, c-1, c, encodeRate(below), encodeRate(above))
			}
		}
		prev = v
	}
}

func TestRateSaturation(t *testing.T) {
	if rateScaleF != math.Ldexp(1, rateScale) {
		t.Fatalf("rateScaleF is not 2^rateScale")
	}
	if v := rate16(rateMaxCode).float(); v != rateMax {
		t.Fatalf("largest code %g, rateMax %g", v, rateMax)
	}
	if v := rate16(1 << rateMantBits).float(); v != rateMinNormal || rate16(1).float() != rateMinNormal/(1<<rateMantBits) {
		t.Fatalf("code 1024 %g, rateMinNormal %g; code 1 %g", v, rateMinNormal, rate16(1).float())
	}
	if rateMax < 1e12 {
		t.Fatalf("largest rate %g < 1e12", rateMax)
	}
	// A 1 Tbit/s flow, in bytes and in bits per second, is not saturated.
	for _, v := range []float64{125e9, 1e12} {
		if c := encodeRate(v); c == rateMaxCode || math.Abs(c.float()-v)/v > rateRelErr {
			t.Errorf("%g -> code %d = %g", v, c, c.float())
		}
	}
	prev := rate16(0)
	for _, v := range []float64{1e12, rateMax * (1 - rateRelErr/2), rateMax, rateMax * 1.0001, 1e13, 1e15, 1e20, math.MaxFloat64, math.Inf(1)} {
		c := encodeRate(v)
		if c < prev {
			t.Fatalf("encodeRate(%g) = %d below %d: wrapped", v, c, prev)
		}
		if v >= rateMax && c != rateMaxCode {
			t.Errorf("encodeRate(%g) = %d, want the largest code", v, c)
		}
		prev = c
	}
	if c := smoothRate(0, 1e15, 1, 0); c != rateMaxCode {
		t.Errorf("smoothRate to 1e15 = %d", c)
	}
	if c := smoothRate(rateMaxCode, 1e15, 0.01, 1); c != rateMaxCode {
		t.Errorf("smoothRate at the top = %d", c)
	}
}

// nearest is what rounding the average to the nearest code after every
// sample would do: the rounding smoothRate must not use.
func nearest(c rate16, inst, alpha float64) rate16 {
	old := c.float()
	return encodeRate(old + (inst-old)*alpha)
}

// TestSmoothRateConverges feeds the same instantaneous rate again and
// again: the average reaches the code nearest to it (however small alpha
// is), within the samples a float64 average needs plus a bounded tail,
// and stays there.
func TestSmoothRateConverges(t *testing.T) {
	starts := []float64{0, 1, 1000, 1e6, 1e12}
	insts := []float64{0, 0.3, 1000.4, 1010, 12345.6, 99.99e9, 1e15}
	alphas := []float64{0.001, 0.01, 0.1, 0.5, 0.999, 1}
	stuck := 0
	for _, a := range alphas {
		for _, s0 := range starts {
			for _, inst := range insts {
				want := encodeRate(inst)
				c := encodeRate(s0)
				limit := int(64/a) + 1000
				seed := uint64(0)
				n := 0
				for ; c != want && n < limit; n++ {
					next := smoothRate(c, inst, a, seed)
					seed++
					// Never past the target's code by more than one, never away.
					if lo, hi := int(min(c, want)), int(max(c, want)); int(next) < lo-1 || int(next) > hi+1 {
						t.Fatalf("alpha %g, %g -> %g: code %d went to %d (target %d)", a, s0, inst, c, next, want)
					}
					c = next
				}
				if c != want {
					t.Fatalf("alpha %g, %g -> %g: code %d (%g) after %d samples, want %d (%g)", a, s0, inst, c, c.float(), n, want, want.float())
				}
				for range 1000 {
					if c = smoothRate(c, inst, a, seed); c != want {
						t.Fatalf("alpha %g, %g -> %g: left the target for %d", a, s0, inst, c)
					}
					seed++
				}
				// Rounding to the nearest code instead gets stuck in some of
				// these cases (the reason for smoothRate's rounding).
				c = encodeRate(s0)
				for range limit {
					c = nearest(c, inst, a)
				}
				if c != want {
					stuck++
				}
			}
		}
	}
	if stuck == 0 {
		t.Errorf("round-to-nearest never got stuck: the test does not test the rounding")
	}
}

// TestSmoothRateUnbiased feeds a noisy rate (1,000 nine times in ten,
// 2,000 once) in small steps: the 16-bit average follows a float64 one
// within 0.5 % on average (rounding to the nearest code, or stepping one
// code towards each sample, would drift to 1,000).
func TestSmoothRateUnbiased(t *testing.T) {
	for _, a := range []float64{0.001, 0.01, 0.1} {
		r := rng(3)
		ref := 1100.0
		c := encodeRate(ref)
		var sumRef, sumC float64
		const n = 200000
		for k := range n {
			inst := 1000.0
			if r.intn(10) == 0 {
				inst = 2000
			}
			ref += (inst - ref) * a
			c = smoothRate(c, inst, a, uint64(k))
			if k >= n/2 {
				sumRef += ref
				sumC += c.float()
			}
		}
		if d := math.Abs(sumC-sumRef) / sumRef; d > 0.005 {
			t.Errorf("alpha %g: mean %.1f, float64 average's %.1f (%.2f %% off)", a, sumC/(n/2), sumRef/(n/2), d*100)
		}
	}
}

func TestRateDither(t *testing.T) {
	var sum float64
	const n = 100000
	for k := range n {
		u := rateDither(uint64(k))
		if u >= 1<<rateShift {
			t.Fatalf("rateDither(%d) = %v", k, u)
		}
		sum += float64(u) / (1 << rateShift)
	}
	if m := sum / n; math.Abs(m-0.5) > 0.01 {
		t.Fatalf("mean %v", m)
	}
}

// floorCode is floorRate's code.
func floorCode(v float64) rate16 { c, _ := floorRate(v); return c }

// TestSortByRateOrder loads flows with rates from 0 to 10^12 bytes per
// second (in both directions, some equal, some a code apart) and checks
// that sorting by rate orders them by their true rate up to the
// encoding's precision, and that rows show the rates within it.
func TestSortByRateOrder(t *testing.T) {
	s := newSynced(Options{})
	r := rng(11)
	type want struct{ orig, reply float64 }
	wants := map[flow.Key]want{}
	var first, second []flow.Event
	const n = 400
	for k := range n {
		f := tcpFlow(k, 80, flow.TCPEstablished)
		var ob, rb uint64
		switch k % 4 {
		case 0:
			ob = uint64(math.Pow(10, float64(r.intn(12001))/1000)) // 1 .. 1e12
		case 1:
			ob, rb = uint64(math.Pow(10, float64(r.intn(9001))/1000)), uint64(math.Pow(10, float64(r.intn(11001))/1000))
		case 2:
			ob = 1000000 + uint64(k) // neighbours, a code or less apart
		case 3:
			// zero
		}
		wants[f.Key()] = want{float64(ob), float64(rb)}
		first = append(first, ev(flow.EventNew, at(0), withCounters(f, 0, 0, 0, 0)))
		second = append(second, ev(flow.EventCounters, at(time.Second), withCounters(f, 1, ob, 1, rb)))
	}
	s.Apply(first)
	s.Apply(second)
	for _, desc := range []bool{false, true} {
		res := NewView().Query(s, nil, Query{Sort: SortRate, Desc: desc, Limit: n})
		if len(res.Rows) != n {
			t.Fatalf("%d rows", len(res.Rows))
		}
		sums := make([]float64, n)
		for j, row := range res.Rows {
			w := wants[row.Flow.Key()]
			for _, p := range [][2]float64{{row.OrigBPS, w.orig}, {row.ReplyBPS, w.reply}} {
				if math.Abs(p[0]-p[1]) > p[1]*rateRelErr {
					t.Fatalf("row %d: rate %v, want %v", j, p[0], p[1])
				}
			}
			sums[j] = w.orig + w.reply
		}
		if desc {
			slices.Reverse(sums)
		}
		for j := 1; j < n; j++ {
			// Ascending up to the precision of two rounded addends.
			if sums[j] < sums[j-1]*(1-2*rateRelErr) {
				t.Fatalf("desc=%v: true rate %v after %v", desc, sums[j], sums[j-1])
			}
		}
	}
}

// BenchmarkSmoothRate compares one smoothed-rate update in 16 bits with
// the float32 arithmetic it replaces, over rates spread across the range
// with alpha 0.1 (a sample 100 ms after the previous one), and likewise
// the rate sort key.
func BenchmarkSmoothRate(b *testing.B) {
	const n = 4096
	r := rng(5)
	insts := make([]float64, n)
	for i := range insts {
		insts[i] = math.Pow(10, float64(r.intn(10000))/1000)
	}
	b.Run("float32", func(b *testing.B) {
		rates := make([]float32, n)
		for b.Loop() {
			for i := range rates {
				rates[i] = float32(float64(rates[i]) + (insts[i]-float64(rates[i]))*0.1)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/update")
	})
	b.Run("rate16", func(b *testing.B) {
		rates := make([]rate16, n)
		seed := uint64(0)
		for b.Loop() {
			for i := range rates {
				rates[i] = smoothRate(rates[i], insts[i], 0.1, seed)
				seed++
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/update")
	})
	// The sort key of SortRate: two rates decoded and added, zero and
	// not mixed as in a table, against the float32 sum it replaces.
	codes := make([]rate16, n)
	f32 := make([]float32, n)
	for i := range codes {
		if r.intn(2) == 0 {
			codes[i] = encodeRate(insts[i])
			f32[i] = float32(codes[i].float())
		}
	}
	var sink uint64
	b.Run("sortkey-float32", func(b *testing.B) {
		for b.Loop() {
			for i := 0; i < n; i += 2 {
				sink += uint64(math.Float32bits(f32[i] + f32[i+1]))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(n/2), "ns/key")
	})
	b.Run("sortkey-rate16", func(b *testing.B) {
		for b.Loop() {
			for i := 0; i < n; i += 2 {
				sink += math.Float64bits(codes[i].float() + codes[i+1].float())
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(n/2), "ns/key")
	})
	_ = sink
}

// BenchmarkRateSamples measures counter samples (EventCounters) on a
// 65,536-flow table, every flow sampled once per interval, so that every
// sample updates the flow's four smoothed rates: "1s" sets them outright
// (a poll each second or slower), "100ms" moves them a tenth of the way.
// It reports ns per event.
func BenchmarkRateSamples(b *testing.B) {
	for _, every := range []time.Duration{time.Second, 100 * time.Millisecond} {
		b.Run(every.String(), func(b *testing.B) { benchRateSamples(b, every) })
	}
}

func benchRateSamples(b *testing.B, every time.Duration) {
	const n = 65536
	s := loadBig(n)
	defer s.Close()
	flows := make([]flow.Flow, n)
	for i := range flows {
		flows[i] = bigFlow(i)
	}
	batch := make([]flow.Event, 0, 1024)
	now := at(3 * time.Second)
	b.ReportAllocs()
	cpu0 := cpuTime()
	k := 0
	for b.Loop() {
		batch = batch[:0]
		for range 1024 {
			f := &flows[k%n]
			f.Counters.OrigPackets += uint64(k%7 + 1)
			f.Counters.OrigBytes += uint64(k%7+1) * 1400
			f.Counters.ReplyPackets += uint64(k % 3)
			f.Counters.ReplyBytes += uint64(k%3) * 66
			batch = append(batch, ev(flow.EventCounters, now, *f))
			k++
			if k%n == 0 {
				now = now.Add(every)
			}
		}
		s.Apply(batch)
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(k), "cpu-ns/event")
}

// TestMarksColumnOnlyWithMarks checks that flows without a conntrack mark
// (most tables) map no marks column, that a marked flow maps one part and
// reads, sorts and compares by its mark, and that its record, reused by an
// unmarked flow, reads 0.
func TestMarksColumnOnlyWithMarks(t *testing.T) {
	s := newSynced(Options{Linger: -1})
	const bits = 12
	smallParts(s, bits)
	const n = 1<<bits + 100 // two parts of the column
	evs := make([]flow.Event, 0, n)
	for i := range n {
		evs = append(evs, ev(flow.EventNew, at(0), tcpFlow(i, 80, flow.TCPEstablished)))
	}
	s.Apply(evs)
	s.Apply([]flow.Event{ev(flow.EventUpdate, at(time.Second), tcpFlow(0, 80, flow.TCPEstablished))})
	if res := NewView().Query(s, nil, Query{Sort: SortMark, Desc: true, Limit: 10}); len(res.Rows) != 10 || res.Rows[0].Flow.Mark != 0 {
		t.Fatalf("sort by mark without marks: %+v", res.Rows)
	}
	if b := s.tab.marks.bytes(); b != 0 {
		t.Fatalf("%d bytes of marks mapped for %d flows without a mark", b, n)
	}

	// A marked flow maps the part of its record, and only that.
	marked := tcpFlow(n-1, 80, flow.TCPEstablished)
	marked.Mark = 0x4000
	s.Apply([]flow.Event{ev(flow.EventUpdate, at(2*time.Second), marked)})
	if got, want := s.tab.marks.bytes(), int64(1<<bits)*4; got != want {
		t.Fatalf("marks column maps %d bytes, want one part (%d)", got, want)
	}
	if r, ok := s.Row(marked.Key()); !ok || r.Flow.Mark != 0x4000 {
		t.Fatalf("marked row: %+v", r)
	}
	res := NewView().Query(s, nil, Query{Sort: SortMark, Desc: true, Limit: 2})
	if len(res.Rows) != 2 || res.Rows[0].Flow.Key() != marked.Key() || res.Rows[1].Flow.Mark != 0 {
		t.Fatalf("sort by mark: %+v", res.Rows)
	}
	// The mark cleared is 0 again.
	s.Apply([]flow.Event{ev(flow.EventUpdate, at(3*time.Second), tcpFlow(n-1, 80, flow.TCPEstablished))})
	if r, _ := s.Row(marked.Key()); r.Flow.Mark != 0 {
		t.Fatalf("mark not cleared: %+v", r.Flow)
	}

	// Marked again and destroyed: its record, reused, reads 0.
	s.Apply([]flow.Event{ev(flow.EventUpdate, at(4*time.Second), marked), ev(flow.EventDestroy, at(4*time.Second), marked)})
	next := tcpFlow(n, 80, flow.TCPEstablished)
	s.Apply([]flow.Event{ev(flow.EventNew, at(5*time.Second), next)})
	i, ok := s.tab.lookup(new(next.Key()))
	if !ok {
		t.Fatal("new flow not found")
	}
	if m := s.tab.marks.ptr(i); m == nil || *m != 0 {
		t.Fatalf("reused record %d: mark %v", i, m)
	}
	if r, _ := s.Row(next.Key()); r.Flow.Mark != 0 {
		t.Fatalf("new flow on a reused record: %+v", r.Flow)
	}
}

// TestRatesSparseThenDense checks where rates live: flows whose counters
// did not move between samples have none and take no memory; the first
// flows with one are kept in a map; once more than one record in
// denseRates has one, all go to the column beside the records, with their
// values; a rate back to zero, a destroy and a reused record read zero.
func TestRatesSparseThenDense(t *testing.T) {
	s := newSynced(Options{Linger: -1})
	const bits = 12
	smallParts(s, bits)
	const n = 1 << 13
	sample := func(from, to int, when time.Duration, pkts uint64) {
		evs := make([]flow.Event, 0, to-from)
		for i := from; i < to; i++ {
			evs = append(evs, ev(flow.EventCounters, at(when), withCounters(tcpFlow(i, 80, flow.TCPEstablished), pkts, pkts*100, pkts, pkts*100)))
		}
		s.Apply(evs)
	}
	evs := make([]flow.Event, 0, n)
	for i := range n {
		evs = append(evs, ev(flow.EventNew, at(0), withCounters(tcpFlow(i, 80, flow.TCPEstablished), 10, 1000, 10, 1000)))
	}
	s.Apply(evs)
	sample(0, n, 2*time.Second, 10) // counters unchanged: no rate
	rateOf := func(i int) float64 {
		t.Helper()
		f := tcpFlow(i, 80, flow.TCPEstablished)
		r, ok := s.Row(f.Key())
		if !ok {
			t.Fatalf("flow %d not found", i)
		}
		return r.OrigBPS
	}
	if len(s.tab.rates.sparse) != 0 || s.tab.rates.isDense || rateOf(7) != 0 {
		t.Fatalf("rates kept for flows whose counters did not move: %d in the map, dense %v", len(s.tab.rates.sparse), s.tab.rates.isDense)
	}

	// 1,024 flows move 1,000 bytes a second: a map of 1,024 rates.
	const few = 1024
	sample(0, few, 4*time.Second, 30)
	if len(s.tab.rates.sparse) != few || s.tab.rates.isDense || s.tab.rates.dense.bytes() != 0 {
		t.Fatalf("%d flows with a rate: %d in the map, dense %v, column %d bytes", few, len(s.tab.rates.sparse), s.tab.rates.isDense, s.tab.rates.dense.bytes())
	}
	if got := rateOf(7); got != 1000 {
		t.Fatalf("rate of a flow in the map: %v, want 1000", got)
	}
	res := NewView().Query(s, nil, Query{Sort: SortRate, Desc: true, Limit: 1})
	if len(res.Rows) != 1 || res.Rows[0].OrigBPS != 1000 {
		t.Fatalf("top by rate: %+v", res.Rows)
	}
	s.Apply([]flow.Event{ev(flow.EventDestroy, at(4*time.Second), tcpFlow(few-1, 80, flow.TCPEstablished))})
	if len(s.tab.rates.sparse) != few-1 {
		t.Fatalf("destroy left %d rates in the map, want %d", len(s.tab.rates.sparse), few-1)
	}

	// One more in six records with a rate: all go to the column.
	sample(few, n/6+few, 4*time.Second, 50)
	if !s.tab.rates.isDense || s.tab.rates.sparse != nil {
		t.Fatalf("%d of %d records with a rate: not dense", n/6+few-1, n)
	}
	if got := rateOf(7); got != 1000 {
		t.Fatalf("rate moved to the column: %v, want 1000", got)
	}
	if got := rateOf(few); got != 2000 {
		t.Fatalf("rate in the column: %v, want 2000", got)
	}
	res = NewView().Query(s, nil, Query{Sort: SortRate, Desc: true, Limit: 1})
	if len(res.Rows) != 1 || res.Rows[0].OrigBPS != 2000 {
		t.Fatalf("top by rate: %+v", res.Rows)
	}
	// A sample without traffic sets the rate to zero.
	sample(7, 8, 6*time.Second, 30)
	if got := rateOf(7); got != 0 {
		t.Fatalf("rate after a sample without traffic: %v", got)
	}
	// A destroyed flow's record, reused, has no rate.
	s.Apply([]flow.Event{ev(flow.EventDestroy, at(6*time.Second), tcpFlow(few, 80, flow.TCPEstablished))})
	next := tcpFlow(n, 80, flow.TCPEstablished)
	s.Apply([]flow.Event{ev(flow.EventNew, at(6*time.Second), next)})
	if r, _ := s.Row(next.Key()); r.OrigBPS != 0 || r.ReplyPPS != 0 {
		t.Fatalf("new flow on a reused record: %+v", r)
	}
	i, _ := s.tab.lookup(new(next.Key()))
	if p := s.tab.rates.dense.ptr(i); p == nil || *p != (rates{}) {
		t.Fatalf("reused record %d: rates %v", i, p)
	}
}
