package explain

import (
	"time"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/store"
)

// Hooks give a viewer of a live engine what explain needs beyond the
// flows. Either may be nil.
type Hooks struct {
	// Settings reads the settings that govern the table (it may enter a
	// namespace and read files: call it outside the engine's lock).
	Settings func() Settings
	// SyncedAt is when the source's initial listing ended (zero: not yet,
	// or unknown), the earliest start of the rate window.
	SyncedAt func() time.Time
}

// Options select what a report from an engine covers.
type Options struct {
	// Matcher selects the flows to explain (nil: all); Filter is its
	// expression, for the report.
	Matcher store.Matcher
	Filter  string
	// WhatIf are the user's timeouts (see Input.WhatIf).
	WhatIf map[string]uint32
	// FreshTimeouts says the flows' remaining timeouts were just listed
	// (see Input.FreshTimeouts).
	FreshTimeouts bool
	// Top is the number of consumers per dimension (default 10).
	Top int
}

// FromEngine explains eng's table now: the settings are read first, then
// the flows are collected under the engine's lock and counted after it is
// released.
func FromEngine(eng *engine.Engine, h Hooks, o Options) *Report {
	a, in := AnalyzeEngine(eng, h, o)
	return a.Report(in)
}

// AnalyzeEngine is FromEngine before the report: the analysis and the
// input its report takes. A viewer keeps both to report again with other
// what-if values (Input.WhatIf) without walking the table.
func AnalyzeEngine(eng *engine.Engine, h Hooks, o Options) (*Analysis, Input) {
	var settings Settings
	if h.Settings != nil {
		settings = h.Settings()
	}
	var since time.Time
	if h.SyncedAt != nil {
		since = h.SyncedAt()
	}
	now := eng.Now()
	c := NewCollector(now, windowStart(now, since), &settings)
	in := collectEngine(eng, o.Matcher, c)
	in.Source = eng.Status().Source
	in.Filter = o.Filter
	in.WhatIf = o.WhatIf
	in.FreshTimeouts = o.FreshTimeouts
	in.Top = o.Top
	return c.Analyze(o.Top), in
}
