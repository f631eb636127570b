package explain

import (
	"cmp"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// Version is the version of the JSON document.
const Version = 1

// Report is the explanation of the table's pressure; its JSON form is what
// `conntop explain --format json` prints.
type Report struct {
	Version int       `json:"version"`
	Time    time.Time `json:"time"`
	Source  string    `json:"source"`
	// Tracker is true when the table is conntop's own tracker, whose
	// settings mirror the kernel's sysctls.
	Tracker bool `json:"tracker"`
	// Filter is the filter the flows were selected with ("" for all).
	Filter string `json:"filter,omitempty"`
	Table  Table  `json:"table"`
	// Classes are the entries by what governs their lifetime, largest
	// first.
	Classes []Class `json:"classes"`
	Top     Top     `json:"top"`
	// RateWindow is the span, in seconds, over which new entries were
	// counted (0: no rate measured).
	RateWindow float64 `json:"rate_window_s"`
	// Advice is ranked, most relief first. Nothing is applied.
	Advice []Advice `json:"advice"`
	// Notes say what is estimated, unknown or could not be read.
	Notes []string `json:"notes"`
}

// Table is the table as a whole.
type Table struct {
	// Count is the number of entries (the source's count); Max the limit;
	// Buckets the hash table size (0: unknown or not applicable).
	Count   uint64 `json:"count"`
	Max     uint64 `json:"max"`
	Buckets uint64 `json:"buckets"`
	// Flows is the number of entries explained (those the filter matches);
	// Assured of them cannot be evicted by early drop, Evictable can.
	Flows     int `json:"flows"`
	Assured   int `json:"assured"`
	Evictable int `json:"evictable"`
	// Fill is Count/Max (0 with no limit known).
	Fill float64 `json:"fill"`
	// NewPerS is the rate of new entries still in the table over the rate
	// window; nil when no window was measured.
	NewPerS *float64 `json:"new_per_s"`
	// GrowthPerS is the table count's growth over the last minute;
	// TimeToFull the seconds until Count reaches Max at that growth (nil
	// when not growing or the limit is unknown).
	GrowthPerS float64  `json:"growth_per_s"`
	TimeToFull *float64 `json:"time_to_full_s"`
	Stats      Stats    `json:"stats"`
	Hash       Hash     `json:"hash"`
	Memory     Memory   `json:"memory"`
}

// Stats are the kernel's pressure counters (summed over CPUs).
type Stats struct {
	Drop          uint64 `json:"drop"`
	EarlyDrop     uint64 `json:"early_drop"`
	InsertFailed  uint64 `json:"insert_failed"`
	SearchRestart uint64 `json:"search_restart"`
	ChainTooLong  uint64 `json:"chaintoolong"`
}

// Hash is the hash table against the count.
type Hash struct {
	// Load is Count/Buckets, the mean chain length (0: unknown).
	Load float64 `json:"load"`
	// Verdict says what the load and the counters show.
	Verdict string `json:"verdict"`
}

// Memory is the kernel memory the table costs.
type Memory struct {
	// EntryBytes is the nf_conntrack slab object size, From where it came
	// from; PerEntry adds the extension area (at least ExtBytes).
	EntryBytes int    `json:"entry_bytes"`
	From       string `json:"entry_bytes_from"`
	PerEntry   int    `json:"per_entry_bytes"`
	// InUse is Count entries plus the hash table; AtMax the same with the
	// table full.
	InUse uint64 `json:"in_use_bytes"`
	AtMax uint64 `json:"at_max_bytes"`
}

// Class is the entries one sysctl governs: a protocol and state.
type Class struct {
	Proto string `json:"proto"`
	// State is the TCP state; UNREPLIED, REPLIED or ASSURED for UDP and
	// GRE; ANY for the rest.
	State     string  `json:"state"`
	Flows     int     `json:"flows"`
	Share     float64 `json:"share"`
	Assured   int     `json:"assured"`
	Evictable int     `json:"evictable"`
	// Sysctl sets the entries' timeout ("" when none does); Value is its
	// current value in seconds (nil: unknown) and Default the kernel's.
	Sysctl  string  `json:"sysctl,omitempty"`
	Value   *uint32 `json:"value"`
	Default uint32  `json:"default,omitempty"`
	// ExpiringWithin60s counts the entries that leave within a minute at
	// the current value (without further packets).
	ExpiringWithin60s int `json:"expiring_within_60s"`
	// Exact says whether the what-if figures are exact; Basis says why or
	// why not.
	Exact  bool     `json:"exact"`
	Basis  string   `json:"basis,omitempty"`
	WhatIf []WhatIf `json:"what_if"`
}

// WhatIf is the effect of a lower timeout on a class.
type WhatIf struct {
	Value uint32 `json:"value"`
	// Label says where the value comes from: "default", "half" or "user".
	Label string `json:"label"`
	// FreedNow counts entries that would already be gone; FreedWithin60s
	// those that would be gone within a minute but that the current value
	// keeps past it (no further packets, no new entries).
	FreedNow       int `json:"freed_now"`
	FreedWithin60s int `json:"freed_within_60s"`
}

// Top are the largest consumers by dimension.
type Top struct {
	Dport   []Consumer `json:"dport"`
	DstHost []Consumer `json:"dst_host"`
	SrcHost []Consumer `json:"src_host"`
	SrcNet  []Consumer `json:"src_net"`
	Zone    []Consumer `json:"zone"`
	Mark    []Consumer `json:"mark"`
}

// Consumer is one key of a dimension.
type Consumer struct {
	// Key names it: "udp/53", "10.0.0.1", "10.0.0.0/24", "0".
	Key   string  `json:"key"`
	Flows int     `json:"flows"`
	Share float64 `json:"share"`
	// NewPerS is the rate of its entries first seen inside the rate window
	// and still in the table (nil: no window measured).
	NewPerS *float64 `json:"new_per_s"`
	// Filter selects its flows (the filter language).
	Filter string `json:"filter"`
}

// Advice is one recommended change, never applied by conntop.
type Advice struct {
	Rank int    `json:"rank"`
	Kind string `json:"kind"` // "timeout", "notrack", "max", "buckets"
	Text string `json:"text"`
	// Command is the exact command a person would run.
	Command string `json:"command"`
	// Frees counts entries it would free now; Headroom the entries of
	// room it would add.
	Frees    int    `json:"frees"`
	Headroom uint64 `json:"headroom,omitempty"`
}

// Input is what a Report needs besides the flows.
type Input struct {
	Source string
	Filter string
	// Stats are the source's latest table statistics.
	Stats flow.TableStats
	// TableRows is the number of live flows in the table (the denominator
	// of every share, so that a filtered report still says how much of the
	// table its flows take).
	TableRows int
	// CountHistory are per-second count samples, oldest first.
	CountHistory []store.CountSample
	// FreshTimeouts says the remaining timeouts are fresh (a listing just
	// read), not as of each flow's last event.
	FreshTimeouts bool
	// WhatIf are timeouts the user asks about, in seconds, by sysctl name;
	// the name "" applies to every class.
	WhatIf map[string]uint32
	// Top is how many consumers per dimension (default 10).
	Top int
}

// Thresholds of the analysis.
const (
	// meaningfulShare is the least share of the explained flows a class
	// needs for what-if figures and timeout advice.
	meaningfulShare = 0.01
	// dominatingShare is the share of a destination port that earns a
	// notrack advice.
	dominatingShare = 0.25
	// pressureFill is the fill above which raising the limit is advised.
	pressureFill = 0.8
)

// Report counts the flows added so far and builds the report (see
// Analyze; in.Top is the number of consumers).
func (c *Collector) Report(in Input) *Report { return c.Analyze(in.Top).Report(in) }

// Report builds the report. in.Top is ignored: the analysis has its top
// consumers.
func (an *Analysis) Report(in Input) *Report {
	s := an.settings
	r := &Report{Version: Version, Time: an.now, Source: in.Source, Tracker: s.Tracker, Filter: in.Filter,
		Classes: []Class{}, Advice: []Advice{}, Notes: []string{}}
	denom := max(in.TableRows, an.flows)
	share := func(n int) float64 {
		if denom == 0 {
			return 0
		}
		return round4(float64(n) / float64(denom))
	}
	window := 0.0
	if !an.windowStart.IsZero() && an.now.After(an.windowStart) {
		window = an.now.Sub(an.windowStart).Seconds()
	}
	r.RateWindow = round4(window)
	rate := func(n int) *float64 {
		if window <= 0 {
			return nil
		}
		v := round4(float64(n) / window)
		return &v
	}

	r.Table = an.tableFacts(in, rate)
	if window <= 0 {
		r.Notes = append(r.Notes, "no rate window: new entries per second are not measured (watch longer, e.g. --duration 10s)")
	}

	// Classes.
	for id := range numClasses {
		ca := &an.classes[id]
		if ca.flows == 0 {
			continue
		}
		r.Classes = append(r.Classes, an.class(id, in, share))
	}
	slices.SortStableFunc(r.Classes, func(a, b Class) int { return cmp.Compare(b.Flows, a.Flows) })

	// Top consumers.
	topOf := func(dim int) []Consumer { return an.consumers(dim, share, rate) }
	r.Top = Top{Dport: topOf(dimDport), DstHost: topOf(dimDstHost), SrcHost: topOf(dimSrcHost),
		SrcNet: topOf(dimSrcNet), Zone: topOf(dimZone), Mark: topOf(dimMark)}

	r.Advice = an.advice(r)
	if !in.FreshTimeouts {
		r.Notes = append(r.Notes, "remaining timeouts are as of each flow's last event or counter poll: what-if figures are estimates")
	}
	if s.Tracker {
		r.Notes = append(r.Notes, "conntop's own tracker: its settings mirror the kernel sysctls named here; "+
			"the sysctl commands are for a kernel doing the same job, --max sets the tracker's limit")
	}
	r.Notes = append(r.Notes, s.Problems...)
	return r
}

// tableFacts fills the table-wide figures.
func (an *Analysis) tableFacts(in Input, rate func(int) *float64) Table {
	s := an.settings
	st := in.Stats
	t := Table{Max: s.Max, Buckets: s.Buckets, Flows: an.flows, Assured: an.assured, Evictable: an.flows - an.assured,
		Stats: Stats{Drop: st.Drop, EarlyDrop: st.EarlyDrop, InsertFailed: st.InsertFailed,
			SearchRestart: st.SearchRestart, ChainTooLong: st.ChainTooLong}}
	t.Count = uint64(max(in.TableRows, 0))
	if !st.Time.IsZero() && (st.Count > 0 || st.Max > 0) {
		t.Count = st.Count
	}
	if st.Max > 0 {
		t.Max = st.Max
	}
	if t.Max > 0 {
		t.Fill = round4(float64(t.Count) / float64(t.Max))
	}
	t.NewPerS = rate(an.fresh)
	t.GrowthPerS = round4(growth(in.CountHistory))
	if t.GrowthPerS > 0 && t.Max > t.Count {
		v := round4(float64(t.Max-t.Count) / t.GrowthPerS)
		t.TimeToFull = &v
	} else if t.Max > 0 && t.Count >= t.Max {
		v := 0.0
		t.TimeToFull = &v
	}
	t.Hash = hashFacts(t)
	eb := s.EntryBytes
	if eb <= 0 {
		eb = DefaultEntryBytes
	}
	from := s.EntryBytesFrom
	if from == "" {
		from = "estimate"
	}
	t.Memory = Memory{EntryBytes: eb, From: from, PerEntry: eb + ExtBytes}
	t.Memory.InUse = t.Count*uint64(t.Memory.PerEntry) + t.Buckets*BucketBytes
	t.Memory.AtMax = t.Max*uint64(t.Memory.PerEntry) + t.Buckets*BucketBytes
	return t
}

// hashFacts judges the hash table.
func hashFacts(t Table) Hash {
	if t.Buckets == 0 {
		return Hash{Verdict: "hash table size unknown or not applicable"}
	}
	h := Hash{Load: round4(float64(t.Count) / float64(t.Buckets))}
	switch {
	case t.Stats.ChainTooLong > 0:
		h.Verdict = fmt.Sprintf("chains too long: %d insertions refused (chaintoolong); more buckets spread them", t.Stats.ChainTooLong)
	case h.Load > 1:
		h.Verdict = fmt.Sprintf("%.1f entries per bucket on average: lookups walk long chains; buckets should be at least the count", h.Load)
	default:
		h.Verdict = fmt.Sprintf("%.2f entries per bucket on average: fine", h.Load)
	}
	if t.Stats.SearchRestart > 0 {
		h.Verdict += fmt.Sprintf("; %d lookups restarted (search_restart: entries moved or freed under a lookup, high churn)", t.Stats.SearchRestart)
	}
	return h
}

// growth is the least-squares slope, in entries per second, of the last
// minute of count samples (0 with fewer than 3).
func growth(h []store.CountSample) float64 {
	if len(h) > 61 {
		h = h[len(h)-61:]
	}
	if len(h) < 3 {
		return 0
	}
	t0 := h[0].Time
	var sx, sy, sxx, sxy float64
	for _, p := range h {
		x := p.Time.Sub(t0).Seconds()
		y := float64(p.Count)
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	n := float64(len(h))
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// class builds one class's figures.
func (an *Analysis) class(id int, in Input, share func(int) float64) Class {
	d := classDefs[id]
	ca := &an.classes[id]
	cl := Class{Proto: d.proto, State: d.state, Flows: ca.flows, Share: share(ca.flows), Assured: ca.assured,
		Evictable: ca.flows - ca.assured, Sysctl: d.sysctl, ExpiringWithin60s: ca.expiring, WhatIf: []WhatIf{}}
	if d.sysctl == "" {
		cl.Basis = "no sysctl sets this timeout"
		return cl
	}
	cl.Default, _ = DefaultTimeout(d.sysctl)
	v := an.value[id]
	if v < 0 {
		cl.Basis = "the current value could not be read"
		return cl
	}
	val := uint32(v)
	cl.Value = &val
	cl.Exact = true
	switch {
	case !in.FreshTimeouts:
		cl.Exact = false
		cl.Basis = "estimated: remaining timeouts as of each flow's last event"
	case ca.capped != nil:
		cl.Exact = false
		cl.Basis = fmt.Sprintf("estimated: entries with at most %d s left are taken as capped by %s/%s", an.capValue,
			SysTCPRetrans, SysTCPUnack)
	case ca.above > 0:
		cl.Exact = false
		cl.Basis = fmt.Sprintf("estimated: %d entries have more time left than the current value (it was lowered since their last packet)", ca.above)
	case ca.unknown > 0:
		cl.Exact = false
		cl.Basis = fmt.Sprintf("estimated: %d entries have no known timeout", ca.unknown)
	case v >= maxHistogram:
		cl.Exact = false
		cl.Basis = "estimated: idle times beyond 12 days are lumped together"
	default:
		cl.Basis = "exact: each entry's timer was set from this value at its last packet"
	}
	if float64(ca.flows) < meaningfulShare*float64(an.flows) {
		return cl
	}
	for _, w := range an.candidates(d.sysctl, val, in.WhatIf) {
		now, within := an.whatIf(id, int64(w.Value))
		w.FreedNow, w.FreedWithin60s = now, within
		cl.WhatIf = append(cl.WhatIf, w)
	}
	return cl
}

// candidates are the lower values a class's what-if considers: the
// kernel default, half the current value and the user's, each once and
// only below the current value.
func (an *Analysis) candidates(sysctl string, cur uint32, user map[string]uint32) []WhatIf {
	var out []WhatIf
	add := func(v uint32, label string) {
		if v == 0 || v >= cur {
			return
		}
		for _, w := range out {
			if w.Value == v {
				return
			}
		}
		out = append(out, WhatIf{Value: v, Label: label})
	}
	if def, ok := DefaultTimeout(sysctl); ok {
		add(def, "default")
	}
	add(cur/2, "half")
	if v, ok := user[sysctl]; ok {
		add(v, "user")
	} else if v, ok := user[""]; ok {
		add(v, "user")
	}
	slices.SortFunc(out, func(a, b WhatIf) int { return cmp.Compare(b.Value, a.Value) })
	return out
}

// consumers returns the top consumers of a dimension.
func (an *Analysis) consumers(dim int, share func(int) float64, rate func(int) *float64) []Consumer {
	out := []Consumer{}
	word := [numDims]string{dimDport: "", dimDstHost: "dst host ", dimSrcHost: "src host ", dimSrcNet: "src net ",
		dimZone: "zone ", dimMark: "mark "}[dim]
	for _, c := range an.top[dim] {
		var label, filter string
		switch dim {
		case dimDport:
			label, filter = dportLabel(uint32(c.key.lo))
		case dimDstHost, dimSrcHost:
			label = c.key.addr().String()
		case dimSrcNet:
			bitsN := 64
			if c.key.hi == v4Tag {
				bitsN = 24
			}
			label = netip.PrefixFrom(c.key.addr(), bitsN).String()
		default:
			label = strconv.FormatUint(c.key.lo, 10)
		}
		if dim != dimDport {
			filter = word + label
		}
		out = append(out, Consumer{Key: label, Flows: c.flows, Share: share(c.flows), NewPerS: rate(c.fresh), Filter: filter})
	}
	return out
}

// dportLabel names a protocol+port key and gives its filter.
func dportLabel(k uint32) (label, filter string) {
	p, port := uint8(k>>16), uint16(k)
	name := flow.ProtoName(p)
	expr := name
	switch p {
	case flow.ProtoTCP, flow.ProtoUDP, flow.ProtoICMP, flow.ProtoICMPv6:
	default:
		expr = "proto " + name
	}
	if !flow.HasPorts(p) {
		return name, expr
	}
	ps := strconv.Itoa(int(port))
	return name + "/" + ps, expr + " and dst port " + ps
}

// nextPow2 is the least power of two at least n (n >= 1).
func nextPow2(n uint64) uint64 {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len64(n-1)
}

// round4 rounds to 4 decimals, so that JSON figures stay readable.
func round4(v float64) float64 {
	const s = 1e4
	if v >= 0 {
		return float64(int64(v*s+0.5)) / s
	}
	return -float64(int64(-v*s+0.5)) / s
}
