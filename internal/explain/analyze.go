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
	value       [numClasses]int64 // the class's timeout, -1 if unknown
	capValue    int64             // TCP cap (max of max_retrans and unacknowledged), -1 if unknown

	flows, assured, fresh int
	classes               [numClasses]classAcc
	// top are the consumers of each dimension, best first.
	top [numDims][]cand
}

// parallelRecs is the least number of flows counted on several cores.
const parallelRecs = 1 << 15

// Analyze counts the flows added: classes and their idle-time histograms,
// and the top n consumers of every dimension (n <= 0: 10). The dimensions
// are counted side by side on the available cores. The Collector may be
// dropped afterwards.
func (c *Collector) Analyze(n int) *Analysis {
	if n <= 0 {
		n = 10
	}
	s := c.settings
	a := &Analysis{now: c.now, windowStart: c.windowStart, settings: s, capValue: -1}
	for i, d := range classDefs {
		a.value[i] = -1
		if d.sysctl == "" {
			continue
		}
		if v, ok := s.timeout(d.sysctl); ok {
			a.value[i] = int64(v)
		}
	}
	r, rok := s.timeout(SysTCPRetrans)
	u, uok := s.timeout(SysTCPUnack)
	if rok && uok {
		a.capValue = int64(max(r, u))
	}

	recs := c.recs
	var v4, v6 [numDims]*topN
	for d := range numDims {
		v4[d] = newTopN(n)
	}
	tasks := []func(){
		func() { countDim(recs, dimSrcHost, v4[dimSrcHost]) },
		func() { countDim(recs, dimDstHost, v4[dimDstHost]) },
		func() { countDim(recs, dimSrcNet, v4[dimSrcNet]) },
		func() { a.countClasses(recs) },
		func() { countDim(recs, dimDport, v4[dimDport]) },
		func() { countDim(recs, dimMark, v4[dimMark]) },
		func() { countDim(recs, dimZone, v4[dimZone]) },
	}
	if len(c.v6) > 0 {
		v6[dimSrcHost], v6[dimSrcNet], v6[dimDstHost] = newTopN(n), newTopN(n), newTopN(n)
		tasks = append(tasks,
			func() { countV6(recs, c.v6, true, v6[dimSrcHost], v6[dimSrcNet]) },
			func() { countV6(recs, c.v6, false, v6[dimDstHost], nil) })
	}
	runTasks(tasks, len(recs) >= parallelRecs)
	for d := range numDims {
		if v6[d] != nil {
			v4[d].merge(v6[d])
		}
		a.top[d] = v4[d].out
	}
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

// countDim counts the IPv4 (or numeric) keys of one dimension.
func countDim(recs []rec, dim int, t *topN) {
	c := newCounter(len(recs))
	num := func(k uint64) addrKey { return addrKey{lo: k} }
	host := func(k uint64) addrKey { return addrKey{hi: v4Tag, lo: k} }
	switch dim {
	case dimDport:
		for i := range recs {
			x := &recs[i]
			c.add(uint64(x.proto)<<16|uint64(x.dport), uint32(x.flags&recFresh))
		}
	case dimZone:
		for i := range recs {
			c.add(uint64(recs[i].zone), uint32(recs[i].flags&recFresh))
		}
	case dimMark:
		for i := range recs {
			c.add(uint64(recs[i].mark), uint32(recs[i].flags&recFresh))
		}
	case dimSrcHost, dimSrcNet:
		shift := 0
		if dim == dimSrcNet {
			shift = 8
			host = func(k uint64) addrKey { return addrKey{hi: v4Tag, lo: k << 8} }
		}
		for i := range recs {
			x := &recs[i]
			if x.flags&(recSrc6|recNoSrc) == 0 {
				c.add(uint64(x.src>>shift), uint32(x.flags&recFresh))
			}
		}
	case dimDstHost:
		for i := range recs {
			x := &recs[i]
			if x.flags&(recDst6|recNoDst) == 0 {
				c.add(uint64(x.dst), uint32(x.flags&recFresh))
			}
		}
	}
	switch dim {
	case dimDport, dimZone, dimMark:
		c.top(t, num)
	default:
		c.top(t, host)
	}
}

// v6row is an IPv6 address of a flow.
type v6row struct {
	k     addrKey
	fresh int
}

// countV6 counts the IPv6 source (src) or destination addresses: sorted,
// then counted in runs of equal address and, for nets, of equal /64.
func countV6(recs []rec, v6 []addrKey, src bool, hosts, nets *topN) {
	var rows []v6row
	for i := range recs {
		x := &recs[i]
		switch {
		case src && x.flags&recSrc6 != 0:
			rows = append(rows, v6row{v6[x.src], int(x.flags & recFresh)})
		case !src && x.flags&recDst6 != 0:
			rows = append(rows, v6row{v6[x.dst], int(x.flags & recFresh)})
		}
	}
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

// countClasses counts the flows by class and files their idle times; then
// turns the histograms into suffix sums, so that any what-if value costs
// one lookup.
func (an *Analysis) countClasses(recs []rec) {
	for i := range recs {
		x := &recs[i]
		assured := x.flags&recAssured != 0
		an.flows++
		ca := &an.classes[x.cls]
		ca.flows++
		if assured {
			an.assured++
			ca.assured++
		}
		if x.flags&recFresh != 0 {
			an.fresh++
		}
		an.timer(int(x.cls), ca, x)
	}
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
func (an *Analysis) timer(id int, ca *classAcc, x *rec) {
	if x.flags&recNoExpiry != 0 {
		ca.unknown++
		return
	}
	rem := int64(x.rem)
	if rem <= 60 {
		ca.expiring++
	}
	v := an.value[id]
	if v < 0 {
		return
	}
	long := rem > 60
	if classDefs[id].tcp && an.capValue >= 0 && v > an.capValue && rem <= an.capValue {
		if ca.capped == nil {
			ca.capped = make([]int32, an.capValue+1)
			ca.cappedLong = make([]int32, an.capValue+1)
		}
		idle := an.capValue - rem
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
