package tui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/conntop/conntop/internal/termsafe"
	"github.com/conntop/conntop/tui/widget"
)

// View implements tea.Model. It reuses the previous frame when nothing
// changed since it was drawn.
func (m *Model) View() tea.View {
	if m.dirty {
		m.frame = m.render()
		m.dirty = false
	}
	v := tea.NewView(m.frame)
	v.AltScreen = true
	if !m.opts.NoMouse {
		// Clicks and the wheel only (no motion): with Options.NoMouse the
		// terminal keeps its own text selection.
		v.MouseMode = tea.MouseModeCellMotion
	}
	v.WindowTitle = "conntop"
	return v
}

// render draws the whole screen: header, filter line, the page, footer.
// Every line is cut to the width and the screen to the height, so no size
// makes it overflow.
func (m *Model) render() string {
	if m.w <= 0 || m.h <= 0 {
		return ""
	}
	lines := make([]string, 0, m.h)
	lines = append(lines, m.hdr...)
	lines = append(lines, m.filterLines()...)
	body := m.bodyRows()
	if body > 0 {
		var page []string
		switch {
		case m.helpPage.open:
			m.helpPage.SetSize(m.w, body)
			page = strings.Split(m.helpPage.View(), "\n")
		case m.page == pageDetail:
			page = m.detailLines(body)
		case m.page == pageTransitions:
			page = m.transitionLines(body)
		case m.page == pageGroups:
			page = m.groupLines(body)
		case m.page == pagePressure:
			page = m.pressurePage(body)
		default:
			page = m.tableLines(body)
		}
		for len(page) < body {
			page = append(page, "")
		}
		lines = append(lines, page[:body]...)
	}
	lines = append(lines, m.footer.lines()...)
	if len(lines) > m.h {
		lines = lines[:m.h]
	}
	for i, l := range lines {
		lines[i] = widget.Truncate(l, m.w)
	}
	return strings.Join(lines, "\n")
}

// bodyRows is the height of the page between the filter line and the
// footer.
func (m *Model) bodyRows() int {
	return max(0, m.h-len(m.hdr)-m.filterHeight()-len(m.footer.lines()))
}

// minTableRows is how many flow rows the header leaves at least (at 80x24
// too): header figures that would wrap beyond it are left out, at their
// boundaries.
const minTableRows = 15

func (m *Model) filterHeight() int {
	if m.mode == modeFilter && (m.filterErr != nil || m.otherErr != "") {
		return 2
	}
	return 1
}

// notice is a condition the header reports in one line; its details are
// on the help page.
type notice struct {
	style         lipgloss.Style
	short, detail string
}

// notices are the conditional header lines, loudest first.
func (m *Model) notices() []notice {
	var b []notice
	t := m.sum.Table
	if !m.dropAt.IsZero() && m.now.Sub(m.dropAt) < loudFor {
		msg := fmt.Sprintf(" !! TABLE FULL: PACKETS DROPPED  drop %s (+%s/s)  early_drop %s (+%s/s)  new connections are being refused !! ",
			widget.Count(t.Drop), widget.SI(m.statRate[0]), widget.Count(t.EarlyDrop), widget.SI(m.statRate[1]))
		b = append(b, notice{m.st.loud, msg, ""})
	}
	if m.status.Err != nil {
		b = append(b, notice{m.st.errText, "source stopped: " + termsafe.Escape(m.status.Err.Error()), ""})
	}
	if !t.Time.IsZero() && !t.Accounting {
		b = append(b, notice{m.st.warn, "accounting is off: no byte/packet counters",
			"accounting is off: no byte/packet counters. Turn it on: sysctl -w net.netfilter.nf_conntrack_acct=1"})
	}
	if m.status.Notice != "" {
		b = append(b, notice{m.st.notice, termsafe.Escape(m.status.Notice), ""})
	}
	return b
}

// banners renders the notices one line each: a text longer than the
// width is cut at its first clause (or a word) and points to the help
// page, which shows it whole. The loud table-full line is cut as it is.
func (m *Model) banners() []string {
	ns := m.notices()
	out := make([]string, 0, len(ns))
	for i, n := range ns {
		text := n.short
		loud := i == 0 && !m.dropAt.IsZero() && m.now.Sub(m.dropAt) < loudFor
		if !loud && (n.detail != "" || lipgloss.Width(text) > m.w) {
			text = shortNotice(text, m.w-len(helpPointer)) + helpPointer
		}
		out = append(out, n.style.Render(widget.Fit(text, max(m.w, 1), false, m.st.ellipsis)))
	}
	return out
}

// helpPointer ends a shortened notice.
const helpPointer = "  (? more)"

// shortNotice cuts text to w cells at the end of its first clause (before
// " (", ". ", "; ") when that fits, else at a word.
func shortNotice(text string, w int) string {
	if w <= 0 || lipgloss.Width(text) <= w {
		return text
	}
	for _, sep := range []string{" (", ". ", "; ", ": "} {
		if i := strings.Index(text, sep); i > 0 && lipgloss.Width(text[:i]) <= w {
			return text[:i]
		}
	}
	cut := ansi.Truncate(text, w, "")
	if i := strings.LastIndexByte(cut, ' '); i > w/2 {
		cut = cut[:i]
	}
	return cut
}

// buildHeader lays out the header for the current size and data.
func (m *Model) buildHeader() {
	m.hdr = m.headerLines()
}

func (m *Model) headerLines() []string {
	st := &m.st
	sum := &m.sum
	t := sum.Table

	// Line 1: what is being watched.
	state := "live"
	switch {
	case m.status.Done:
		state = "ended"
	case !m.status.Synced && m.status.Live:
		state = "loading table"
	case !m.status.Live:
		state = "idle"
	}
	src := m.status.Source
	if src == "" {
		src = "replay"
	}
	l1 := st.title.Render("conntop") + " " + termsafe.Escape(src) + " " + st.dim.Render(state)
	if m.paused {
		p := "PAUSED"
		switch {
		case m.frozen == nil:
		case m.frozen.partial:
			p += " (" + widget.Count(uint64(len(m.frozen.rows))) + " of " + widget.Count(uint64(m.frozen.total)) + " flows kept)"
		}
		if m.frozen != nil {
			p += " " + widget.Count(m.waiting) + " changes waiting"
		}
		l1 += " " + st.warn.Render(p) + st.dim.Render(" (p resumes)")
	}
	clock := m.now.Format("15:04:05")
	l1 = m.withTabs(l1, clock)

	// Line 2: the pressure gauge and the sparkline.
	count := uint64(sum.Live)
	if t.Max > 0 && !t.Time.IsZero() {
		count = t.Count
	}
	var l2 strings.Builder
	if t.Max > 0 {
		frac := float64(count) / float64(t.Max)
		gs := st.gaugeOK
		switch {
		case frac >= 0.9:
			gs = st.gaugeCrit
		case frac >= 0.7:
			gs = st.gaugeWarn
		}
		gw := min(30, max(5, m.w/5))
		f, e := widget.Gauge(frac, gw, st.ascii)
		l2.WriteString("table [" + gs.Render(f) + st.gaugeEmpty.Render(e) + "] ")
		l2.WriteString(gs.Render(strconv.FormatFloat(100*frac, 'f', 1, 64)+"%") + " ")
		l2.WriteString(widget.Count(count) + "/" + widget.Count(t.Max))
	} else {
		l2.WriteString("flows " + widget.Count(count))
	}
	if sum.Lingering > 0 {
		l2.WriteString(st.dim.Render(" (+" + widget.Count(uint64(sum.Lingering)) + " closed)"))
	}
	if ttf, ok := m.timeToFull(count); ok {
		l2.WriteString(" " + st.warn.Render("full in "+widget.Duration(ttf)))
	}
	l2.WriteString(m.pressureHint())
	used := lipgloss.Width(l2.String())
	if sw := min(120, m.w-used-2); sw >= 8 && len(sum.CountHistory) > 1 {
		vals := make([]int, 0, len(sum.CountHistory))
		for _, s := range sum.CountHistory {
			vals = append(vals, s.Count)
		}
		l2.WriteString("  " + st.title.Render(widget.Sparkline(vals, sw, st.ascii)))
	}

	// Line 3: churn and what the table holds; line 4: the kernel's counters
	// with their rates. Each item has a short form for narrow terminals.
	l3 := wrapItems(m.w, []item{
		{"new " + widget.SI(sum.NewRate) + "/s", "new " + widget.SI(sum.NewRate) + "/s", nil},
		{"destroy " + widget.SI(sum.DestroyRate) + "/s", "del " + widget.SI(sum.DestroyRate) + "/s", nil},
		{"update " + widget.SI(sum.UpdateRate) + "/s", "upd " + widget.SI(sum.UpdateRate) + "/s", nil},
		{"assured " + widget.Count(uint64(sum.Assured)), "asr " + widget.Count(uint64(sum.Assured)), nil},
		{"unassured " + widget.Count(uint64(sum.Unassured)), "unasr " + widget.Count(uint64(sum.Unassured)), nil},
		{"tcp " + widget.Count(uint64(sum.ByProto[6])), "tcp " + widget.Count(uint64(sum.ByProto[6])), nil},
		{"udp " + widget.Count(uint64(sum.ByProto[17])), "udp " + widget.Count(uint64(sum.ByProto[17])), nil},
		{"icmp " + widget.Count(uint64(sum.ByProto[1]+sum.ByProto[58])), "icmp " + widget.Count(uint64(sum.ByProto[1]+sum.ByProto[58])), nil},
		{"v4 " + widget.Count(uint64(sum.IPv4)), "v4 " + widget.Count(uint64(sum.IPv4)), nil},
		{"v6 " + widget.Count(uint64(sum.IPv6)), "v6 " + widget.Count(uint64(sum.IPv6)), nil},
	})

	names := [6]string{"drop", "early_drop", "insert_failed", "invalid", "search_restart", "error"}
	short := [6]string{"drop", "early", "ins_fail", "inval", "restart", "err"}
	vals := [6]uint64{t.Drop, t.EarlyDrop, t.InsertFailed, t.Invalid, t.SearchRestart, t.Error}
	items := make([]item, 0, 9)
	for i := range names {
		v := widget.Count(vals[i])
		if m.statRate[i] > 0 {
			v += " +" + widget.SI(m.statRate[i]) + "/s"
		}
		var style *lipgloss.Style
		switch {
		case i < 3 && vals[i] > 0:
			style = &st.errText
		case vals[i] > 0:
			style = &st.warn
		}
		items = append(items, item{names[i] + " " + v, short[i] + " " + v, style})
	}
	var lostStyle *lipgloss.Style
	if t.EventsLost > 0 {
		lostStyle = &st.warn
	}
	items = append(items,
		item{"lost " + widget.Count(t.EventsLost), "lost " + widget.Count(t.EventsLost), lostStyle},
		item{"resyncs " + widget.Count(t.Resyncs), "resync " + widget.Count(t.Resyncs), lostStyle})
	if t.RingDrops > 0 {
		items = append(items, item{"ring_drops " + widget.Count(t.RingDrops), "ring " + widget.Count(t.RingDrops), &st.warn})
	}
	if t.Undecodable > 0 {
		items = append(items, item{"undecodable " + widget.Count(t.Undecodable), "undec " + widget.Count(t.Undecodable), &st.errText})
	}
	l4 := wrapItems(m.w, items)

	// Wrapped figures take lines only while the table keeps minTableRows.
	banners := m.banners()
	spare := m.h - (2 + 2 + len(banners) + m.filterHeight() + len(m.footer.lines()) + 1 + minTableRows)
	extra3 := min(len(l3)-1, max(0, spare))
	extra4 := min(len(l4)-1, max(0, spare-extra3))
	out := []string{l1, l2.String()}
	out = append(out, l3[:1+extra3]...)
	out = append(out, l4[:1+extra4]...)
	return append(out, banners...)
}

// viewTabs are the pages a click on the header's tabs opens.
var viewTabs = [...]struct {
	name string
	view pageID
}{{"flows", pageTable}, {"transitions", pageTransitions}, {"groups", pageGroups}}

// withTabs ends the first header line with the view tabs (the current one
// in brackets, so that it is told apart without colour) and the clock,
// as far as they fit, and records where each tab is for the mouse.
func (m *Model) withTabs(left, clock string) string {
	m.tabX = m.tabX[:0]
	cur := m.page
	if cur == pageDetail {
		cur = pageTable
	}
	var tabs strings.Builder
	lw := lipgloss.Width(left) + 2
	var spans [][2]int
	x := 0
	for i, t := range viewTabs {
		s := " " + t.name + " "
		if t.view == cur {
			s = "[" + t.name + "]"
		}
		if i > 0 {
			tabs.WriteByte(' ')
			x++
		}
		spans = append(spans, [2]int{x, x + len(s)})
		x += len(s)
		if t.view == cur {
			s = m.st.sel.Render(s)
		}
		tabs.WriteString(s)
	}
	right := tabs.String() + "  " + clock
	rw := x + 2 + len(clock)
	if lw+rw > m.w {
		right, rw = tabs.String(), x
		if lw+rw > m.w {
			return padBetween(left, clock, m.w)
		}
	}
	start := m.w - rw
	for _, sp := range spans {
		m.tabX = append(m.tabX, [2]int{start + sp[0], start + sp[1]})
	}
	return left + strings.Repeat(" ", start-lipgloss.Width(left)) + right
}

// item is one figure of a header line, in a long and a short form.
type item struct {
	long, short string
	style       *lipgloss.Style
}

// wrapItems joins items with two spaces when they fit in one line of w
// columns, else their short forms with one space, wrapped at item
// boundaries: a figure is never cut.
func wrapItems(w int, items []item) []string {
	width := 0
	for i, it := range items {
		if i > 0 {
			width += 2
		}
		width += len(it.long)
	}
	sep, long := "  ", true
	if w > 0 && width > w {
		sep, long = " ", false
	}
	var lines []string
	var b strings.Builder
	used := 0
	for _, it := range items {
		s := it.short
		if long {
			s = it.long
		}
		if used > 0 && w > 0 && used+len(sep)+len(s) > w {
			lines = append(lines, b.String())
			b.Reset()
			used = 0
		}
		if used > 0 {
			b.WriteString(sep)
			used += len(sep)
		}
		used += len(s)
		if it.style != nil {
			s = it.style.Render(s)
		}
		b.WriteString(s)
	}
	return append(lines, b.String())
}

// timeToFull estimates when the table reaches its limit from the growth
// over the last minute of count samples.
func (m *Model) timeToFull(count uint64) (time.Duration, bool) {
	h := m.sum.CountHistory
	maxN := m.sum.Table.Max
	if len(h) < 5 || maxN == 0 || count >= maxN {
		return 0, false
	}
	first := max(0, len(h)-60)
	a, b := h[first], h[len(h)-1]
	dt := b.Time.Sub(a.Time).Seconds()
	if dt <= 0 || b.Count <= a.Count {
		return 0, false
	}
	rate := float64(b.Count-a.Count) / dt
	return time.Duration(float64(maxN-count) / rate * float64(time.Second)), true
}

// padBetween puts right at the right edge of a width-w line that starts
// with left, when both fit.
func padBetween(left, right string, w int) string {
	lw, rw := lipgloss.Width(left), lipgloss.Width(right)
	if lw+rw+1 > w {
		return left
	}
	return left + strings.Repeat(" ", w-lw-rw) + right
}

func (m *Model) filterLines() []string {
	st := &m.st
	shown := fmt.Sprintf("shown %s / %s", widget.Count(uint64(m.res.Matched)), widget.Count(uint64(m.res.Total)))
	switch m.mode {
	case modeFilter:
		l := st.key.Render("/") + " " + m.edit.render(st)
		l = padBetween(l, shown, m.w)
		if m.filterErr != nil {
			pos := min(len(m.filterErr.Expr), max(0, m.filterErr.Pos))
			col := 2 + lipgloss.Width(termsafe.Escape(m.filterErr.Expr[:pos]))
			caret := strings.Repeat(" ", col) + st.errText.Render("^ "+termsafe.Escape(m.filterErr.Error())+"  (previous filter kept)")
			return []string{l, caret}
		}
		if m.otherErr != "" {
			return []string{l, st.errText.Render("  " + termsafe.Escape(m.otherErr))}
		}
		return []string{l}
	case modePort:
		return []string{st.key.Render("port (N or N-M, empty clears): ") + m.edit.render(st)}
	case modeExport:
		f := "json"
		if m.exportCSV {
			f = "csv"
		}
		prompt := "export " + f + " (tab: json/csv, enter: write, esc: cancel) to: "
		if len(prompt)+len(m.edit.value())+1 > m.w {
			prompt = "export " + f + " (tab: csv/json) to: "
		}
		return []string{st.key.Render(prompt) + m.edit.render(st)}
	case modeConfirmDelete:
		what := "the selected flow"
		if m.deleteAll {
			what = fmt.Sprintf("%s flows matching %q", widget.Count(uint64(m.deleteCount)), m.filterText())
		}
		return []string{st.loud.Render(termsafe.Escape(" delete " + what + " from the kernel table? [y/N] "))}
	}
	l := "filter: "
	if ft := m.filterText(); ft != "" {
		l += st.bold.Render(termsafe.Escape(ft))
	} else {
		l += st.dim.Render("none (/ to filter)")
	}
	if m.filterErr != nil {
		l += " " + st.errText.Render(termsafe.Escape(m.filterErr.Error()))
	}
	right := shown
	if m.page == pageTable || m.page == pageDetail {
		dir := m.st.up
		if m.desc {
			dir = m.st.down
		}
		right += "  sort " + sortNames[m.sortKey] + " " + dir
	}
	if m.follow {
		right += "  " + st.ok.Render("FOLLOW")
	}
	if m.portNames {
		right += "  names"
	}
	return []string{padBetween(l, right, m.w)}
}

// ShortHelp implements help.KeyMap: the footer's key hints.
func (m *Model) ShortHelp() []key.Binding { return m.keys.ShortHelp() }

// FullHelp implements help.KeyMap: the help page's key groups.
func (m *Model) FullHelp() [][]key.Binding { return m.keys.FullHelp() }
