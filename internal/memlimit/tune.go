package memlimit

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// Tune keeps the Go runtime's soft limit at the plan's Go share of the
// limit less the memory the process holds outside the Go runtime (the
// store keeps its flows in mappings of its own, which the runtime neither
// sees nor counts): without that, the collector would let the heap grow
// into memory the store already uses. GOMEMLIMIT, which conntop takes
// as the whole process's limit, is lowered the same way. It re-reads every
// interval until ctx ends. It does nothing when there is no limit.
func (p Plan) Tune(ctx context.Context, interval time.Duration) {
	if p.GoLimit <= 0 {
		return
	}
	samples := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	floor := p.Reserve / 2
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rss, ok := residentBytes()
		if ok {
			metrics.Read(samples)
			goRes := int64(samples[0].Value.Uint64()) - int64(samples[1].Value.Uint64())
			debug.SetMemoryLimit(GoLimitFor(p.GoLimit, rss, goRes, floor))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// GoLimitFor is the Go soft limit for a process with rss resident bytes of
// which goResident are the Go runtime's: goShare less what lies outside
// the runtime, but never below floor.
func GoLimitFor(goShare, rss, goResident, floor int64) int64 {
	outside := max(0, rss-goResident)
	return max(floor, goShare-outside)
}

// residentBytes returns the process's resident set size from
// /proc/self/statm.
func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}
