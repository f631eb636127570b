package explain

import (
	"time"

	"github.com/conntop/conntop/internal/store"
)

// RateWindow is the longest span over which new entries are counted.
const RateWindow = time.Minute

// FromStore walks the live flows of s that m matches (nil: all) and
// returns the collector and the report input the store supplies (count
// history, statistics, table size). observedSince is when the source's
// initial listing ended: entries first seen before it were listed, not
// created, so the rate window starts there at the earliest. Call it under
// engine.View; the result holds nothing of the store.
func FromStore(s *store.Store, m store.Matcher, now, observedSince time.Time, settings *Settings) (*Collector, Input) {
	start := time.Time{}
	if !observedSince.IsZero() {
		start = now.Add(-RateWindow)
		if observedSince.After(start) {
			start = observedSince
		}
	}
	c := NewCollector(now, start, settings)
	c.Expect(s.Len())
	s.Walk(m, func(r *store.Row) bool {
		c.Add(r)
		return true
	})
	sum := s.Summary()
	in := Input{Stats: sum.Table, TableRows: sum.Live}
	h := sum.CountHistory
	if len(h) > 61 {
		h = h[len(h)-61:]
	}
	in.CountHistory = append([]store.CountSample(nil), h...)
	in.Stats.InvalidReasons = nil // the store's map: not kept
	return c, in
}
