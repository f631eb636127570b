package explain

import (
	"time"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/store"
)

// RateWindow is the longest span over which new entries are counted.
const RateWindow = time.Minute

// windowStart is the start of the rate window (zero: none).
func windowStart(now, observedSince time.Time) time.Time {
	if observedSince.IsZero() {
		return time.Time{}
	}
	return later(now.Add(-RateWindow), observedSince)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// storeInput is what the report takes from the store besides the flows.
func storeInput(s *store.Store) Input {
	sum := s.Summary()
	in := Input{Stats: sum.Table, TableRows: sum.Live}
	h := sum.CountHistory
	if len(h) > 61 {
		h = h[len(h)-61:]
	}
	in.CountHistory = append([]store.CountSample(nil), h...)
	in.Stats.InvalidReasons = nil // the store's map: not kept
	return in
}

// add is Add as a store.Walk callback.
func (c *Collector) add(r *store.Row) bool {
	c.Add(r)
	return true
}

// collectEngine adds the live flows of eng's table that m matches to c
// and returns the report input the store supplies (as of just before the
// walk). engine.Walk reads the table in ranges, each under its own hold of
// the lock, so the event pump waits at most for one range (the flows copied
// into c's compact records, 24 bytes a flow), never for the whole table,
// and never while flows are counted.
func collectEngine(eng *engine.Engine, m store.Matcher, c *Collector) Input {
	var in Input
	eng.View(func(s *store.Store) {
		c.Expect(s.Len())
		in = storeInput(s)
	})
	eng.Walk(m, c.add)
	return in
}
