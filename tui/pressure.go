package tui

import (
	"fmt"
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
	// Took is how long the report took (it walks the whole table).
	Took time.Duration
}

// pressureEvery is the least time between two reports while the pressure
// view is open; a slow report (a huge table) spaces them further.
const pressureEvery = 2 * time.Second

// pressurePage is the pressure view: what fills the table and what to do
// about it, from an explain.Report computed in the background (it walks
// the whole table) while the page is shown, every pressureEvery or five
// times as long as the last report took.
type pressurePage struct {
	*common
	width, height int

	report *explain.Report
	busy   bool
	asked  time.Time
	took   time.Duration
	scroll int
}

var (
	_ page   = (*pressurePage)(nil)
	_ poller = (*pressurePage)(nil)
)

func newPressurePage(c *common) *pressurePage { return &pressurePage{common: c} }

// ShortHelp implements help.KeyMap.
func (m *pressurePage) ShortHelp() []key.Binding {
	return []key.Binding{m.keys.Up, m.keys.Down, m.keys.PageDown, m.keys.Back}
}

// FullHelp implements help.KeyMap.
func (m *pressurePage) FullHelp() [][]key.Binding { return [][]key.Binding{m.ShortHelp()} }

// SetSize implements component.
func (m *pressurePage) SetSize(w, h int) { m.width, m.height = w, h }

// refresh implements page: the report comes from poll, not from a refresh.
func (m *pressurePage) refresh() {}

// poll implements poller: it starts a background report when the last one
// is old enough.
func (m *pressurePage) poll() tea.Cmd {
	if m.busy || m.paused {
		return nil
	}
	now := time.Now()
	if m.report != nil && now.Sub(m.asked) < max(pressureEvery, 5*m.took) {
		return nil
	}
	m.busy, m.asked = true, now
	eng, hooks := m.eng, m.opts.Explain
	opts := explain.Options{Filter: m.filterText()}
	if mt := m.matcher(); mt != nil {
		opts.Matcher = mt
	}
	return func() tea.Msg {
		start := time.Now()
		r := explain.FromEngine(eng, hooks, opts)
		return PressureMsg{Report: r, Took: time.Since(start)}
	}
}

// Update implements component: a finished report; keys scroll, and back.
func (m *pressurePage) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case PressureMsg:
		m.busy = false
		m.report = msg.Report
		m.took = msg.Took
	case tea.KeyPressMsg:
		k := &m.keys
		page := max(1, m.height-1)
		switch {
		case key.Matches(msg, k.Up):
			m.scroll--
		case key.Matches(msg, k.Down):
			m.scroll++
		case key.Matches(msg, k.PageUp):
			m.scroll -= page
		case key.Matches(msg, k.PageDown):
			m.scroll += page
		case key.Matches(msg, k.Home):
			m.scroll = 0
		case key.Matches(msg, k.Back):
			m.show(pageTable)
		}
		m.scroll = max(0, m.scroll)
	}
	return nil
}

// View implements component.
func (m *pressurePage) View() string { return fitLines(m.viewLines(), m.width, m.height) }

// viewLines implements page.
func (m *pressurePage) viewLines() []string { return m.lines(m.height) }

// lines is the pressure view's body of n rows.
func (m *pressurePage) lines(n int) []string {
	if m.report == nil {
		return []string{m.st.title.Render("Pressure"), m.st.dim.Render("reading the table and its settings…")}
	}
	lines := PressureLines(m.report, m.width, &m.st)
	m.scroll = max(0, min(m.scroll, len(lines)-n))
	lines = lines[m.scroll:]
	if len(lines) > n {
		lines = lines[:n]
	}
	return lines
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
