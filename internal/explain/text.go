package explain

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/conntop/conntop/internal/numfmt"
	"github.com/conntop/conntop/internal/termsafe"
)

// WriteJSON writes the report as one indented JSON document.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write explain json: %w", err)
	}
	return nil
}

// WriteText writes the report for people: the table, the classes with
// their what-ifs, the top consumers and the ranked advice.
func WriteText(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	for _, l := range TextLines(r) {
		// A bufio.Writer keeps its first error: Flush reports it.
		_, _ = bw.WriteString(l)
		_ = bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write explain text: %w", err)
	}
	return nil
}

// TextLines renders the report as plain lines (escaped for a terminal).
func TextLines(r *Report) []string {
	var out []string
	p := func(format string, a ...any) { out = append(out, termsafe.Escape(fmt.Sprintf(format, a...))) }
	t := &r.Table
	what := "kernel table"
	if r.Tracker {
		what = "conntop tracker"
	}
	p("%s (%s) at %s", what, r.Source, r.Time.UTC().Format("2006-01-02 15:04:05Z"))
	if r.Filter != "" {
		p("explaining the %d entries matching: %s", t.Flows, r.Filter)
	}
	line := fmt.Sprintf("table %s / %s entries", numfmt.Count(t.Count), numfmt.Count(t.Max))
	if t.Max > 0 {
		line += fmt.Sprintf(" (%.1f%% full)", 100*t.Fill)
	}
	line += fmt.Sprintf("; assured %s, evictable %s", numfmt.Count(uint64(t.Assured)), numfmt.Count(uint64(t.Evictable)))
	p("%s", line)
	line = fmt.Sprintf("growth %+.1f/s", t.GrowthPerS)
	if t.TimeToFull != nil {
		line += "; full in " + seconds(*t.TimeToFull)
	}
	if t.NewPerS != nil {
		line += fmt.Sprintf("; new entries %.1f/s over %s", *t.NewPerS, seconds(r.RateWindow))
	}
	p("%s", line)
	p("drop %d, early_drop %d, insert_failed %d, search_restart %d, chaintoolong %d",
		t.Stats.Drop, t.Stats.EarlyDrop, t.Stats.InsertFailed, t.Stats.SearchRestart, t.Stats.ChainTooLong)
	if t.Buckets > 0 {
		p("hash: %s buckets; %s", numfmt.Count(t.Buckets), t.Hash.Verdict)
	}
	p("memory: %d bytes an entry (%d slab object from %s + %d extension), %s in use, %s at the limit",
		t.Memory.PerEntry, t.Memory.EntryBytes, t.Memory.From, ExtBytes, mib(t.Memory.InUse), mib(t.Memory.AtMax))

	out = append(out, "", "WHERE THE ENTRIES ARE")
	p("%-8s %-12s %9s %6s %9s %9s  %-40s %s", "proto", "state", "flows", "share", "assured", "evictable", "sysctl", "value")
	for _, c := range r.Classes {
		val := "-"
		if c.Value != nil {
			val = strconv.FormatUint(uint64(*c.Value), 10) + " s"
		}
		sys := c.Sysctl
		if sys == "" {
			sys = "(none)"
		}
		p("%-8s %-12s %9s %5.1f%% %9s %9s  %-40s %s", c.Proto, c.State, numfmt.Count(uint64(c.Flows)), 100*c.Share,
			numfmt.Count(uint64(c.Assured)), numfmt.Count(uint64(c.Evictable)), sys, val)
	}

	out = append(out, "", "WHAT IF (from each entry's remaining timeout; no further packets assumed)")
	any := false
	for _, c := range r.Classes {
		if len(c.WhatIf) == 0 {
			continue
		}
		any = true
		p("%s %s, %s = %d s, %d expire within 60 s anyway; %s", c.Proto, c.State, c.Sysctl, *c.Value,
			c.ExpiringWithin60s, c.Basis)
		for _, w := range c.WhatIf {
			p("  at %6d s (%s): %s freed now, %s more gone within 60 s", w.Value, w.Label,
				numfmt.Count(uint64(w.FreedNow)), numfmt.Count(uint64(w.FreedWithin60s)))
		}
	}
	if !any {
		out = append(out, "  no class with a lower value to consider")
	}

	out = append(out, "", "TOP CONSUMERS")
	dims := []struct {
		name string
		cs   []Consumer
	}{{"dport", r.Top.Dport}, {"dst host", r.Top.DstHost}, {"src host", r.Top.SrcHost},
		{"src net", r.Top.SrcNet}, {"zone", r.Top.Zone}, {"mark", r.Top.Mark}}
	for _, d := range dims {
		if len(d.cs) == 0 {
			continue
		}
		parts := make([]string, 0, 5)
		for _, c := range d.cs[:min(5, len(d.cs))] {
			s := fmt.Sprintf("%s %s (%.1f%%", c.Key, numfmt.Count(uint64(c.Flows)), 100*c.Share)
			if c.NewPerS != nil {
				s += fmt.Sprintf(", %.1f new/s", *c.NewPerS)
			}
			parts = append(parts, s+")")
		}
		p("%-9s %s", d.name+":", strings.Join(parts, "  "))
	}

	out = append(out, "", "ADVICE (nothing is changed by conntop; run a command yourself)")
	if len(r.Advice) == 0 {
		out = append(out, "  nothing to advise: no timeout change frees entries and the table is not under pressure")
	}
	for _, a := range r.Advice {
		p("%d. %s", a.Rank, a.Text)
		p("   %s", a.Command)
	}
	if len(r.Notes) > 0 {
		out = append(out, "", "NOTES")
		for _, n := range r.Notes {
			p("- %s", n)
		}
	}
	return out
}

// seconds formats a span of seconds coarsely.
func seconds(s float64) string {
	switch {
	case s < 120:
		return fmt.Sprintf("%.0f s", s)
	case s < 7200:
		return fmt.Sprintf("%.0f min", s/60)
	case s < 172800:
		return fmt.Sprintf("%.1f h", s/3600)
	}
	return fmt.Sprintf("%.1f days", s/86400)
}
