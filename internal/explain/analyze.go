package explain

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// maxHistogram bounds a class's idle-time histogram (seconds); idle times
// beyond it are counted in its last slot (about 12 days).
const maxHistogram = 1 << 20

// classAcc accumulates one class.
type classAcc struct {
	flows, assured int
	// expiring counts entries with at most 60 s left.
	expiring int
	// unknown counts entries without a known expiry.
	unknown int
	// above counts entries with more time left than the current value
	// (the sysctl was lowered after their last packet).
	above int
	// idle[i] counts entries idle i seconds (timer set from the class's
	// value); idleLong those of them with more than 60 s left. Once the
	// table is counted both hold suffix sums: idle[i] is the number of
	// entries idle at least i seconds.
	idle, idleLong []int32
	// capped and cappedLong are the same for TCP entries taken as capped
	// by the retransmission/unacknowledged timeout.
	capped, cappedLong []int32
}

// Dimensions of the top consumers.
const (
	dimDport = iota
	dimDstHost
	dimSrcHost
	dimSrcNet
	dimZone
	dimMark
	numDims
)

// Analysis is a counted table: per class its figures and idle-time
// histograms, per consumer dimension its top consumers. Report turns it
// into a Report as often as wanted (another what-if value costs no walk).
// It holds nothing of the flows.
type Analysis struct {
	now         time.Time
	windowStart time.Time
	settings    *Settings
	classCounts
	// top are the consumers of each dimension, best first.
	top [numDims][]cand
}

// classCounts are the counts by class, and the settings they are filed by.
type classCounts struct {
	value    [numClasses]int64 // the class's timeout, -1 if unknown
	capValue int64             // TCP cap (max of max_retrans and unacknowledged), -1 if unknown

	flows, assured, fresh int
	classes               [numClasses]classAcc
}

// tally is what the counting keeps of the flows: the classes, a counter
// per dimension (IPv4 addresses and numbers) and the IPv6 addresses.
type tally struct {
	classCounts
	cnt        [numDims]*counter
	src6, dst6 []v6row
	hint       int // expected flows (see Collector.Expect)
}

func newTally(s *Settings) *tally {
	t := &tally{}
	t.capValue = -1
	for i, d := range classDefs {
		t.value[i] = -1
		if d.sysctl == "" {
			continue
		}
		if v, ok := s.timeout(d.sysctl); ok {
			t.value[i] = int64(v)
		}
	}
	r, rok := s.timeout(SysTCPRetrans)
	u, uok := s.timeout(SysTCPUnack)
	if rok && uok {
		t.capValue = int64(max(r, u))
	}
	return t
}

// count counts a chunk of flows.
func (t *tally) count(ch *chunk) {
	if t.cnt[0] == nil {
		for d := range t.cnt {
			t.cnt[d] = newCounter(t.hint)
		}
	}
	dport, zone, mark := t.cnt[dimDport], t.cnt[dimZone], t.cnt[dimMark]
	src, net, dst := t.cnt[dimSrcHost], t.cnt[dimSrcNet], t.cnt[dimDstHost]
	for i := range ch.recs {
		x := &ch.recs[i]
		fresh := uint32(x.flags & recFresh)
		t.flows++
		t.fresh += int(fresh)
		ca := &t.classes[x.cls]
		ca.flows++
		if x.flags&recAssured != 0 {
			t.assured++
			ca.assured++
		}
		t.timer(int(x.cls), ca, x)

		dport.add(uint64(x.proto)<<16|uint64(x.dport), fresh)
		zone.add(uint64(x.zone), fresh)
		mark.add(uint64(x.mark), fresh)
		switch {
		case x.flags&(recSrc6|recNoSrc) == 0:
			src.add(uint64(x.src), fresh)
			net.add(uint64(x.src>>8), fresh)
		case x.flags&recSrc6 != 0:
			t.src6 = append(t.src6, v6row{ch.v6[x.src], int(fresh)})
		}
		switch {
		case x.flags&(recDst6|recNoDst) == 0:
			dst.add(uint64(x.dst), fresh)
		case x.flags&recDst6 != 0:
			t.dst6 = append(t.dst6, v6row{ch.v6[x.dst], int(fresh)})
		}
	}
}

// parallelFlows is the least number of flows whose counts are finished
// on several cores.
const parallelFlows = 1 << 15

// Analyze finishes the counts of the flows added: the classes' idle-time
// histograms, and the top n consumers of every dimension (n <= 0: 10),
// the dimensions side by side on the available cores. The Collector is
// used up: a second call returns the same Analysis.
func (c *Collector) Analyze(n int) *Analysis {
	if c.analysis != nil {
		return c.analysis
	}
	if n <= 0 {
		n = 10
	}
	t := c.finish()
	a := &Analysis{now: c.now, windowStart: c.windowStart, settings: c.settings, classCounts: t.classCounts}
	var tops [numDims]*topN
	num := func(k uint64) addrKey { return addrKey{lo: k} }
	host := func(k uint64) addrKey { return addrKey{hi: v4Tag, lo: k} }
	net := func(k uint64) addrKey { return addrKey{hi: v4Tag, lo: k << 8} }
	tasks := []func(){a.suffixSums}
	for d := range numDims {
		tops[d] = newTopN(n)
		if t.cnt[d] == nil {
			continue
		}
		mk := num
		switch d {
		case dimSrcHost, dimDstHost:
			mk = host
		case dimSrcNet:
			mk = net
		}
		tasks = append(tasks, func() { t.cnt[d].top(tops[d], mk) })
	}
	var v6 [numDims]*topN
	if len(t.src6) > 0 {
		v6[dimSrcHost], v6[dimSrcNet] = newTopN(n), newTopN(n)
		tasks = append(tasks, func() { countV6(t.src6, v6[dimSrcHost], v6[dimSrcNet]) })
	}
	if len(t.dst6) > 0 {
		v6[dimDstHost] = newTopN(n)
		tasks = append(tasks, func() { countV6(t.dst6, v6[dimDstHost], nil) })
	}
	runTasks(tasks, c.n >= parallelFlows)
	for d := range numDims {
		if v6[d] != nil {
			tops[d].merge(v6[d])
		}
		a.top[d] = tops[d].out
	}
	c.analysis, c.tally = a, nil
	return a
}

// runTasks runs every task, on up to GOMAXPROCS goroutines when parallel.
func runTasks(tasks []func(), parallel bool) {
	workers := min(runtime.GOMAXPROCS(0), len(tasks))
	if !parallel || workers < 2 {
		for _, t := range tasks {
			t()
		}
		return
	}
	var next atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(tasks) {
					return
				}
				tasks[i]()
			}
		})
	}
	wg.Wait()
}

// v6row is an IPv6 address of a flow.
type v6row struct {
	k     addrKey
	fresh int
}

// countV6 counts IPv6 addresses: sorted, then counted in runs of equal
// address (hosts) and, for nets, of equal /64.
func countV6(rows []v6row, hosts, nets *topN) {
	slices.SortFunc(rows, func(a, b v6row) int { return cmpAddrKey(a.k, b.k) })
	runs := func(t *topN, same func(a, b addrKey) bool, key func(addrKey) addrKey) {
		for i := 0; i < len(rows); {
			j, fresh := i, 0
			for ; j < len(rows) && same(rows[i].k, rows[j].k); j++ {
				fresh += rows[j].fresh
			}
			t.offer(cand{key: key(rows[i].k), flows: j - i, fresh: fresh})
			i = j
		}
	}
	runs(hosts, func(a, b addrKey) bool { return a == b }, func(k addrKey) addrKey { return k })
	if nets != nil {
		runs(nets, func(a, b addrKey) bool { return a.hi == b.hi }, func(k addrKey) addrKey { return addrKey{hi: k.hi} })
	}
}

// suffixSums turns the classes' histograms into suffix sums, so that any
// what-if value costs one lookup.
func (an *Analysis) suffixSums() {
	for i := range an.classes {
		ca := &an.classes[i]
		for _, h := range [][]int32{ca.idle, ca.idleLong, ca.capped, ca.cappedLong} {
			for j := len(h) - 2; j >= 0; j-- {
				h[j] += h[j+1]
			}
		}
	}
}

// timer files the entry's idle time in its class's histograms.
func (t *classCounts) timer(id int, ca *classAcc, x *rec) {
	if x.flags&recNoExpiry != 0 {
		ca.unknown++
		return
	}
	rem := int64(x.rem)
	if rem <= 60 {
		ca.expiring++
	}
	v := t.value[id]
	if v < 0 {
		return
	}
	long := rem > 60
	if classDefs[id].tcp && t.capValue >= 0 && v > t.capValue && rem <= t.capValue {
		if ca.capped == nil {
			ca.capped = make([]int32, t.capValue+1)
			ca.cappedLong = make([]int32, t.capValue+1)
		}
		idle := t.capValue - rem
		ca.capped[idle]++
		if long {
			ca.cappedLong[idle]++
		}
		return
	}
	if ca.idle == nil {
		n := min(v, maxHistogram-1) + 1
		ca.idle = make([]int32, n)
		ca.idleLong = make([]int32, n)
	}
	idle := v - rem
	if idle < 0 {
		idle = 0
		ca.above++
	}
	idle = min(idle, int64(len(ca.idle)-1))
	ca.idle[idle]++
	if long {
		ca.idleLong[idle]++
	}
}

// atLeast is the number of entries idle at least from seconds, from a
// suffix-summed histogram.
func atLeast(h []int32, from int64) int {
	from = max(from, 0)
	if from >= int64(len(h)) {
		return 0
	}
	return int(h[from])
}

// whatIf returns how many entries of class id value w frees now and within
// 60 s (see the package doc).
func (an *Analysis) whatIf(id int, w int64) (now, within60 int) {
	ca := &an.classes[id]
	v := an.value[id]
	if v < 0 || w >= v {
		return 0, 0
	}
	now = atLeast(ca.idle, w)
	within60 = atLeast(ca.idleLong, w-60)
	if ca.capped != nil {
		cw := min(w, an.capValue)
		now += atLeast(ca.capped, cw)
		within60 += atLeast(ca.cappedLong, cw-60)
	}
	return now, within60
}
