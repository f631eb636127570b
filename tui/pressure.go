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
	// page keeps them to report again with another what-if value without
	// walking the table.
	Analysis *explain.Analysis
	Input    explain.Input
	// Took is how long the report took (it walks the whole table).
	Took time.Duration
}

// pressureEvery is the least time between two reports while the pressure
// view is open; a slow report (a huge table) spaces them further.
const pressureEvery = 2 * time.Second

// pressurePage is the pressure view: what fills the table and what to do
// about it, from an explain.Report computed in the background (it walks
// the whole table) while the page is shown, every pressureEvery or five
// times as long as the last report took. w types a what-if value on a line
// of the page's own: the report shown is made again from the same
// analysis at once, and every later report asks for it.
type pressurePage struct {
	*common
	width, height int

	report *explain.Report
	busy   bool
	asked  time.Time
	took   time.Duration
	scroll int
	// analysis and in made report (analysis nil: unknown).
	analysis *explain.Analysis
	in       explain.Input
	// The user's what-if value as typed and parsed (nil: none), and its
	// input line while open.
	whatIfText string
	whatIf     map[string]uint32
	typing     bool
	edit       lineEdit
}

var (
	_ page   = (*pressurePage)(nil)
	_ poller = (*pressurePage)(nil)
)

func newPressurePage(c *common) *pressurePage { return &pressurePage{common: c, edit: newLineEdit()} }

// ShortHelp implements help.KeyMap.
func (m *pressurePage) ShortHelp() []key.Binding {
	return []key.Binding{m.keys.Up, m.keys.Down, m.keys.PageDown, m.keys.WhatIf, m.keys.Back}
}

// FullHelp implements help.KeyMap: moving, then the page's own action.
func (m *pressurePage) FullHelp() [][]key.Binding {
	return [][]key.Binding{{m.keys.Up, m.keys.Down, m.keys.PageDown, m.keys.Back}, {m.keys.WhatIf}}
}

// editing says the what-if line is open: the page has every key.
func (m *pressurePage) editing() bool { return m.typing }

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
	opts := explain.Options{Filter: m.filterText(), WhatIf: m.whatIf}
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

// Update implements component: a finished report (one asked for before
// the user typed another what-if value is reported again with it); keys
// scroll, open the what-if line, and back; while the line is open, it
// edits it.
func (m *pressurePage) Update(msg tea.Msg) tea.Cmd {
	if m.typing {
		switch msg := msg.(type) {
		case tea.KeyPressMsg:
			return m.keyWhatIf(msg)
		case tea.PasteMsg:
			m.edit.handle(msg)
			return nil
		}
	}
	switch msg := msg.(type) {
	case PressureMsg:
		m.busy = false
		m.report, m.analysis, m.in = msg.Report, msg.Analysis, msg.Input
		if m.analysis != nil && !maps.Equal(m.in.WhatIf, m.whatIf) {
			m.reportAgain()
		}
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
		case key.Matches(msg, k.WhatIf):
			m.typing = true
			m.edit.set(m.whatIfText)
		}
		m.scroll = max(0, m.scroll)
	}
	return nil
}

// reportAgain reports the last analysis with the user's what-if value.
func (m *pressurePage) reportAgain() {
	m.in.WhatIf = m.whatIf
	m.report = m.analysis.Report(m.in)
}

// whatIfPrompt is the what-if line's prompt.
const whatIfPrompt = "what-if timeout (seconds, or sysctl=seconds,...; empty clears; enter, esc): "

// keyWhatIf edits the what-if value: enter applies it to the report shown
// at once and to every later one; a bad value is refused with the line
// kept open.
func (m *pressurePage) keyWhatIf(msg tea.KeyPressMsg) tea.Cmd {
	switch k := &m.keys; {
	case key.Matches(msg, k.Cancel):
		m.typing = false
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
		m.typing = false
		m.whatIfText, m.whatIf = text, w
		if len(w) == 0 {
			m.whatIf = nil
		}
		if m.analysis != nil {
			m.reportAgain()
		}
		return nil
	}
	m.edit.handle(msg)
	return nil
}

// View implements component.
func (m *pressurePage) View() string { return fitLines(m.viewLines(), m.width, m.height) }

// viewLines implements page.
func (m *pressurePage) viewLines() []string { return m.lines(m.height) }

// lines is the pressure view's body of n rows: the what-if line (while
// open, or the value in use), then the report.
func (m *pressurePage) lines(n int) []string {
	var top []string
	switch {
	case m.typing:
		top = append(top, m.st.key.Render(whatIfPrompt)+m.edit.render(&m.st))
	case m.whatIf != nil:
		top = append(top, m.st.dim.Render("your what-if: ")+termsafe.Escape(m.whatIfText)+m.st.dim.Render(" (w: change)"))
	}
	n = max(0, n-len(top))
	if m.report == nil {
		return append(top, m.st.title.Render("Pressure"), m.st.dim.Render("reading the table and its settings…"))
	}
	lines := PressureLines(m.report, m.width, &m.st)
	m.scroll = max(0, min(m.scroll, len(lines)-n))
	lines = lines[m.scroll:]
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
