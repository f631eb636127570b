package tui

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/conntop/conntop/internal/explain"
	"github.com/conntop/conntop/internal/termsafe"
	"github.com/conntop/conntop/tui/widget"
)

// PressureMsg carries a pressure report computed in the background.
type PressureMsg struct {
	Report *explain.Report
	// Analysis and Input made Report (nil Analysis: a report alone); the
	// view keeps them to report again with another what-if value without
	// walking the table.
	Analysis *explain.Analysis
	Input    explain.Input
	// Took is how long the report took (it walks the whole table).
	Took time.Duration
}

// pressureEvery is the least time between two reports while the pressure
// view is open; a slow report (a huge table) spaces them further.
const pressureEvery = 2 * time.Second

// pressureView is the pressure view's state.
type pressureView struct {
	report *explain.Report
	busy   bool
	asked  time.Time
	took   time.Duration
	scroll int
	// analysis and in made report (analysis nil: unknown).
	analysis *explain.Analysis
	in       explain.Input
	// whatIf is the user's what-if value (w), as typed and parsed (nil:
	// none): every report asks for it.
	whatIfText string
	whatIf     map[string]uint32
}

// pressured says the header should point at the pressure view: the table
// is above 80 % of its limit or has dropped lately.
func (m *Model) pressured() bool {
	t := m.sum.Table
	if !m.dropAt.IsZero() && m.now.Sub(m.dropAt) < loudFor {
		return true
	}
	return t.Max > 0 && !t.Time.IsZero() && float64(t.Count) >= 0.8*float64(t.Max)
}

// pressureHint is the header's pointer to the pressure view.
func (m *Model) pressureHint() string {
	if !m.pressured() || m.view == viewPressure {
		return ""
	}
	return " " + m.st.warn.Render("[e] why?")
}

// askPressure starts a background report when the pressure view is open
// and the last one is old enough.
func (m *Model) askPressure() tea.Cmd {
	pv := &m.pressure
	if m.view != viewPressure || pv.busy || m.paused {
		return nil
	}
	now := time.Now()
	if pv.report != nil && now.Sub(pv.asked) < max(pressureEvery, 5*pv.took) {
		return nil
	}
	pv.busy, pv.asked = true, now
	eng, hooks := m.eng, m.opts.Explain
	opts := explain.Options{Filter: m.filterText(), WhatIf: pv.whatIf}
	if mt := m.matcher(); mt != nil {
		opts.Matcher = mt
	}
	return func() tea.Msg {
		start := time.Now()
		a, in := explain.AnalyzeEngine(eng, hooks, opts)
		r := a.Report(in)
		return PressureMsg{Report: r, Analysis: a, Input: in, Took: time.Since(start)}
	}
}

// pressureDone takes a finished report; one asked for before the user
// typed another what-if value is reported again with it.
func (m *Model) pressureDone(msg PressureMsg) {
	pv := &m.pressure
	pv.busy = false
	pv.report, pv.analysis, pv.in = msg.Report, msg.Analysis, msg.Input
	if pv.analysis != nil && !maps.Equal(pv.in.WhatIf, pv.whatIf) {
		pv.reportAgain()
	}
	pv.took = msg.Took
	m.dirty = true
}

// reportAgain reports the last analysis with the user's what-if value.
func (pv *pressureView) reportAgain() {
	pv.in.WhatIf = pv.whatIf
	pv.report = pv.analysis.Report(pv.in)
}

// whatIfPrompt is the what-if input line's prompt.
const whatIfPrompt = "what-if timeout (seconds, or sysctl=seconds,...; empty clears; enter, esc): "

// keyWhatIf edits the what-if value (w in the pressure view): enter
// applies it to the report shown at once and to every later one.
func (m *Model) keyWhatIf(msg tea.KeyPressMsg) tea.Cmd {
	pv := &m.pressure
	switch k := m.keys; {
	case key.Matches(msg, k.Cancel):
		m.mode = modeNormal
		return nil
	case key.Matches(msg, k.ForceQuit):
		return tea.Quit
	case key.Matches(msg, k.Accept):
		text := strings.TrimSpace(m.edit.value())
		w, err := explain.ParseWhatIf(text)
		if err != nil {
			m.setStatus(true, "%v", err)
			return nil
		}
		m.mode = modeNormal
		pv.whatIfText, pv.whatIf = text, w
		if len(w) == 0 {
			pv.whatIf = nil
		}
		if pv.analysis != nil {
			pv.reportAgain()
		}
		m.dirty = true
		return nil
	}
	m.edit.handle(msg)
	return nil
}

// keyPressure handles keys in the pressure view: scrolling, and back.
func (m *Model) keyPressure(msg tea.KeyPressMsg) {
	k := m.keys
	pv := &m.pressure
	page := max(1, m.bodyRows()-1)
	switch {
	case key.Matches(msg, k.Up):
		pv.scroll--
	case key.Matches(msg, k.Down):
		pv.scroll++
	case key.Matches(msg, k.PageUp):
		pv.scroll -= page
	case key.Matches(msg, k.PageDown):
		pv.scroll += page
	case key.Matches(msg, k.Home):
		pv.scroll = 0
	case key.Matches(msg, k.Back):
		m.view = viewTable
	case key.Matches(msg, k.WhatIf):
		m.mode = modeWhatIf
		m.edit.set(pv.whatIfText)
	}
	pv.scroll = max(0, pv.scroll)
}

// pressurePage is the pressure view's body of n rows.
func (m *Model) pressurePage(n int) []string {
	pv := &m.pressure
	var top []string
	switch {
	case m.mode == modeWhatIf:
		top = append(top, m.st.key.Render(whatIfPrompt)+m.edit.render(&m.st))
	case pv.whatIf != nil:
		top = append(top, m.st.dim.Render("your what-if: ")+termsafe.Escape(pv.whatIfText)+m.st.dim.Render(" (w: change)"))
	}
	n = max(0, n-len(top))
	if pv.report == nil {
		return append(top, m.st.title.Render("Pressure"), m.st.dim.Render("reading the table and its settings…"))
	}
	lines := PressureLines(pv.report, m.w, &m.st)
	pv.scroll = max(0, min(pv.scroll, len(lines)-n))
	lines = lines[pv.scroll:]
	if len(lines) > n {
		lines = lines[:n]
	}
	return append(top, lines...)
}

// PressureLines renders a pressure report for a terminal w columns wide:
// the table's figures, the classes with their sysctl and what-if, the top
// consumers and the ranked advice. It depends on nothing but the report,
// so a component can own it.
func PressureLines(r *explain.Report, w int, st *styles) []string {
	var out []string
	t := &r.Table
	title := "Pressure"
	if r.Tracker {
		title += " (conntop tracker)"
	}
	if r.Filter != "" {
		title += " of " + termsafe.Escape(r.Filter)
	}
	head := st.title.Render(title) + "  "
	if t.Max > 0 {
		head += fmt.Sprintf("%.1f%% of %s", 100*t.Fill, widget.Count(t.Max))
	} else {
		head += widget.Count(t.Count) + " entries"
	}
	items := []item{
		{fmt.Sprintf("explained %s", widget.Count(uint64(t.Flows))), "n " + widget.Count(uint64(t.Flows)), nil},
		{"assured " + widget.Count(uint64(t.Assured)), "asr " + widget.Count(uint64(t.Assured)), nil},
		{"evictable " + widget.Count(uint64(t.Evictable)), "evict " + widget.Count(uint64(t.Evictable)), nil},
		{fmt.Sprintf("growth %+.1f/s", t.GrowthPerS), fmt.Sprintf("%+.1f/s", t.GrowthPerS), nil},
	}
	if t.TimeToFull != nil && *t.TimeToFull == 0 {
		items = append(items, item{"FULL", "FULL", &st.errText})
	} else if t.TimeToFull != nil {
		items = append(items, item{"full in " + widget.Duration(time.Duration(*t.TimeToFull*float64(time.Second))),
			"full " + widget.Duration(time.Duration(*t.TimeToFull*float64(time.Second))), &st.warn})
	}
	if t.NewPerS != nil {
		items = append(items, item{"new " + widget.SI(*t.NewPerS) + "/s", "new " + widget.SI(*t.NewPerS) + "/s", nil})
	}
	fig := wrapItems(w-lipgloss.Width(head)-2, items)
	out = append(out, head+"  "+fig[0])
	out = append(out, fig[1:]...)
	hash := "hash: size unknown"
	if t.Buckets > 0 {
		hash = fmt.Sprintf("hash: %s buckets, %.2f per bucket", widget.Count(t.Buckets), t.Hash.Load)
		if t.Stats.ChainTooLong > 0 || t.Hash.Load > 1 {
			hash = st.warn.Render(hash)
		}
	}
	out = append(out, wrapItems(w, []item{
		{hash, hash, nil},
		{fmt.Sprintf("memory: %d B/entry (%s), %s in use, %s at the limit", t.Memory.PerEntry, t.Memory.From,
			widget.Bytes(float64(t.Memory.InUse)), widget.Bytes(float64(t.Memory.AtMax))),
			fmt.Sprintf("mem %dB/entry %s", t.Memory.PerEntry, widget.Bytes(float64(t.Memory.InUse))), nil},
		{fmt.Sprintf("drop %d early_drop %d chaintoolong %d search_restart %d", t.Stats.Drop, t.Stats.EarlyDrop,
			t.Stats.ChainTooLong, t.Stats.SearchRestart),
			fmt.Sprintf("drop %d early %d", t.Stats.Drop, t.Stats.EarlyDrop), nil},
	})...)

	// Classes: what governs the entries' lifetime.
	out = append(out, "")
	wide := w >= 120
	hdr := fmt.Sprintf("%-16s %8s %6s %8s  %-24s %7s", "CLASS", "FLOWS", "SHARE", "EVICT", "SYSCTL nf_conntrack_", "VALUE")
	if w >= 110 {
		hdr += "  IF LOWER: freed now/within 60s"
	}
	if wide {
		hdr = fmt.Sprintf("%-16s %8s %6s %8s %8s  %-34s %7s %8s  %s", "CLASS", "FLOWS", "SHARE", "ASSURED", "EVICT",
			"SYSCTL", "VALUE", "GO<60s", "IF LOWER: freed now/within 60s")
	}
	out = append(out, st.colHead.Render(hdr))
	for _, c := range r.Classes {
		sys, val := "-", "-"
		if c.Sysctl != "" {
			sys = c.Sysctl
			if !wide {
				sys = strings.TrimPrefix(sys, "nf_conntrack_")
			}
		}
		if c.Value != nil {
			val = strconv.FormatUint(uint64(*c.Value), 10)
		}
		var wi []string
		for _, x := range c.WhatIf {
			wi = append(wi, fmt.Sprintf("%ds:%s/%s", x.Value, widget.SI(float64(x.FreedNow)), widget.SI(float64(x.FreedWithin60s))))
		}
		what := strings.Join(wi, " ")
		if len(wi) > 0 && !c.Exact {
			what += " ~"
		}
		name := c.Proto + " " + c.State
		if wide {
			out = append(out, fmt.Sprintf("%-16s %8s %5.1f%% %8s %8s  %-34s %7s %8s  %s", name, widget.Count(uint64(c.Flows)),
				100*c.Share, widget.Count(uint64(c.Assured)), widget.Count(uint64(c.Evictable)), sys, val,
				widget.Count(uint64(c.ExpiringWithin60s)), what))
		} else {
			row := fmt.Sprintf("%-16s %8s %5.1f%% %8s  %-24s %7s", name, widget.Count(uint64(c.Flows)),
				100*c.Share, widget.Count(uint64(c.Evictable)), sys, val)
			switch {
			case what == "":
				out = append(out, row)
			case lipgloss.Width(row)+2+lipgloss.Width(what) <= w:
				out = append(out, row+"  "+what)
			default:
				// Too narrow for both: the what-if on its own line.
				out = append(out, row, st.dim.Render("   if lower: ")+what)
			}
		}
	}
	if len(r.Classes) == 0 {
		out = append(out, st.dim.Render("no entries"))
	}

	// Top consumers.
	out = append(out, "")
	per := 3
	if wide {
		per = 6
	}
	dims := []struct {
		name string
		cs   []explain.Consumer
	}{{"dport", r.Top.Dport}, {"dst host", r.Top.DstHost}, {"src host", r.Top.SrcHost},
		{"src net", r.Top.SrcNet}, {"zone", r.Top.Zone}, {"mark", r.Top.Mark}}
	for _, d := range dims {
		if len(d.cs) == 0 {
			continue
		}
		parts := make([]string, 0, per)
		for _, c := range d.cs[:min(per, len(d.cs))] {
			s := fmt.Sprintf("%s %s %.0f%%", termsafe.Escape(c.Key), widget.Count(uint64(c.Flows)), 100*c.Share)
			if c.NewPerS != nil {
				s += " +" + widget.SI(*c.NewPerS) + "/s"
			}
			parts = append(parts, s)
		}
		out = append(out, st.bold.Render(fmt.Sprintf("%-9s", d.name))+" "+strings.Join(parts, "  "))
	}

	// Advice, ranked; never applied.
	out = append(out, "", st.title.Render("Advice")+st.dim.Render("  (conntop changes nothing: run a command yourself)"))
	if len(r.Advice) == 0 {
		out = append(out, st.dim.Render("nothing to advise: no lower timeout frees entries and the table is not under pressure"))
	}
	for _, a := range r.Advice {
		lines := wrapText(fmt.Sprintf("%d. %s", a.Rank, a.Text), w, "   ")
		out = append(out, lines...)
		for _, l := range wrapText("$ "+a.Command, w-2, "    ") {
			out = append(out, "  "+st.key.Render(l))
		}
	}
	if len(r.Notes) > 0 {
		out = append(out, "")
		for _, n := range r.Notes {
			for _, l := range wrapText("note: "+n, w, "      ") {
				out = append(out, st.dim.Render(l))
			}
		}
	}
	return out
}

// wrapText breaks s into lines of at most w columns at spaces (a word
// longer than a line is cut by the frame), continuation lines indented.
func wrapText(s string, w int, indent string) []string {
	s = termsafe.Escape(s)
	if w <= len(indent)+8 {
		return []string{s}
	}
	var out []string
	line := ""
	for _, word := range strings.Fields(s) {
		switch {
		case line == "":
			line = word
		case lipgloss.Width(line)+1+lipgloss.Width(word) <= w:
			line += " " + word
		default:
			out = append(out, line)
			line = indent + word
		}
	}
	if line != "" {
		out = append(out, line)
	}
	return out
}
