package tui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
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
	lines = append(lines, m.headerLines()...)
	lines = append(lines, m.filterLines()...)
	body := m.bodyRows()
	if body > 0 {
		var page []string
		switch {
		case m.help:
			page = m.helpLines(body)
		case m.view == viewDetail:
			page = m.detailLines(body)
		case m.view == viewTransitions:
			page = m.transitionLines(body)
		case m.view == viewGroups:
			page = m.groupLines(body)
		default:
			page = m.tableLines(body)
		}
		for len(page) < body {
			page = append(page, "")
		}
		lines = append(lines, page[:body]...)
	}
	lines = append(lines, m.footer()...)
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
	return max(0, m.h-headerFixed-len(m.banners())-m.filterHeight()-len(m.footer()))
}

const headerFixed = 4

func (m *Model) filterHeight() int {
	if m.mode == modeFilter && (m.filterErr != nil || m.otherErr != "") {
		return 2
	}
	return 1
}

// banners are the conditional header lines, loudest first.
func (m *Model) banners() []string {
	var b []string
	t := m.sum.Table
	if !m.dropAt.IsZero() && m.now.Sub(m.dropAt) < loudFor {
		msg := fmt.Sprintf(" !! TABLE FULL: PACKETS DROPPED  drop %s (+%s/s)  early_drop %s (+%s/s)  new connections are being refused !! ",
			widget.Count(t.Drop), widget.SI(m.statRate[0]), widget.Count(t.EarlyDrop), widget.SI(m.statRate[1]))
		b = append(b, m.st.loud.Render(widget.Fit(msg, max(m.w, 1), false, m.st.ellipsis)))
	}
	if m.status.Err != nil {
		b = append(b, m.wrapBanner(m.st.errText, "source stopped: "+termsafe.Escape(m.status.Err.Error()))...)
	}
	if !t.Time.IsZero() && !t.Accounting {
		b = append(b, m.wrapBanner(m.st.warn, "accounting is off: no byte/packet counters. Turn it on: sysctl -w net.netfilter.nf_conntrack_acct=1")...)
	}
	if m.status.Notice != "" {
		b = append(b, m.wrapBanner(m.st.notice, termsafe.Escape(m.status.Notice))...)
	}
	return b
}

// wrapBanner word-wraps a banner to the terminal's width, on up to four
// lines (one on a short terminal), so that its advice is not cut off.
func (m *Model) wrapBanner(style lipgloss.Style, text string) []string {
	if m.w <= 0 || lipgloss.Width(text) <= m.w {
		return []string{style.Render(text)}
	}
	maxLines := 4
	if m.h < 20 {
		maxLines = 1
	}
	lines := strings.Split(lipgloss.NewStyle().Width(m.w).Render(text), "\n")
	if len(lines) > maxLines {
		lines = lines[:maxLines]
	}
	for i, l := range lines {
		lines[i] = style.Render(strings.TrimRight(l, " "))
	}
	return lines
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
		l1 += " " + st.warn.Render("PAUSED")
	}
	if d := degradedText(sum.Degraded); d != "" {
		l1 += " " + st.warn.Render(d)
	}
	clock := m.now.Format("15:04:05")
	l1 = padBetween(l1, clock, m.w)

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
	l3 := joinFit(m.w, []item{
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
	l4 := joinFit(m.w, items)

	out := []string{l1, l2.String(), l3, l4}
	return append(out, m.banners()...)
}

// item is one figure of a header line, in a long and a short form.
type item struct {
	long, short string
	style       *lipgloss.Style
}

// joinFit joins items with two spaces when the line fits in w columns, else
// their short forms with one space (the end may still be cut by the frame).
func joinFit(w int, items []item) string {
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
	var b strings.Builder
	for i, it := range items {
		if i > 0 {
			b.WriteString(sep)
		}
		s := it.short
		if long {
			s = it.long
		}
		if it.style != nil {
			s = it.style.Render(s)
		}
		b.WriteString(s)
	}
	return b.String()
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
		return []string{st.key.Render("export "+f+" (tab: json/csv, enter: write, esc: cancel) to: ") + m.edit.render(st)}
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
	if m.view == viewTable || m.view == viewDetail {
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

// filterText is the filter in use, as its expression.
func (m *Model) filterText() string {
	if m.filter == nil {
		return ""
	}
	return m.filter.String()
}

// footer is the status message (up to two lines, so an error's end can be
// read) or the one-line key hints.
func (m *Model) footer() []string {
	if m.statusMsg != "" {
		s := termsafe.Escape(m.statusMsg)
		style := m.st.ok
		if m.statusErr {
			style = m.st.errText
		}
		if m.w > 0 && lipgloss.Width(s) > m.w && m.h >= 12 {
			first := ansi.Truncate(s, m.w, "")
			rest := ansi.TruncateLeft(s, lipgloss.Width(first), "")
			return []string{style.Render(first), style.Render(rest)}
		}
		return []string{style.Render(s)}
	}
	if m.hints == "" || m.hintsWidth != m.w {
		h := m.helpModel()
		m.hints, m.hintsWidth = h.ShortHelpView(m.keys.ShortHelp()), m.w
	}
	return []string{m.hints}
}

func (m *Model) helpModel() help.Model {
	h := help.New()
	h.SetWidth(m.w)
	plain := lipgloss.NewStyle()
	h.Styles = help.Styles{
		Ellipsis: m.st.dim, ShortKey: m.st.key, ShortDesc: plain, ShortSeparator: m.st.dim,
		FullKey: m.st.key, FullDesc: plain, FullSeparator: m.st.dim,
	}
	if m.st.ascii {
		h.ShortSeparator = " | "
		h.Ellipsis = "..."
	}
	return h
}

func (m *Model) helpLines(n int) []string {
	h := m.helpModel()
	h.SetWidth(0) // each group whole; the groups are laid out below
	out := []string{m.st.title.Render("Keys") + m.st.dim.Render("  (? or esc closes)"), ""}
	// Key groups side by side, as many as fit, then the next row: every key
	// is shown at 80 columns too.
	var row []string
	rowW := 0
	flush := func() {
		if len(row) > 0 {
			out = append(out, strings.Split(lipgloss.JoinHorizontal(lipgloss.Top, row...), "\n")...)
			row, rowW = nil, 0
		}
	}
	var rest [][]key.Binding // groups that did not fit beside the others
	for _, g := range m.keys.FullHelp() {
		col := h.FullHelpView([][]key.Binding{g}) + "    "
		w := lipgloss.Width(col)
		if rowW > 0 && rowW+w > m.w {
			rest = append(rest, g)
			continue
		}
		row = append(row, col)
		rowW += w
	}
	flush()
	// The rest as compact lines of a few keys each (a narrow terminal has
	// no height to spare either).
	for _, g := range rest {
		for len(g) > 0 {
			n := min(4, len(g))
			out = append(out, h.ShortHelpView(g[:n]))
			g = g[n:]
		}
	}
	out = append(out, "")
	// Word-wrapped to the terminal, so that nothing of it is cut.
	wrap := m.st.dim
	if m.w > 0 {
		wrap = wrap.Width(m.w)
	}
	out = append(out, strings.Split(wrap.Render("Filter language: tcp udp icmp ipv4 ipv6, [src|dst] host/net/port, "+
		"state NEW,ESTABLISHED,..., mark N, zone N, assured, unreplied; and/or/not, ( )"), "\n")...)
	out = append(out, m.st.dim.Render("Example: tcp and dport 443 and not state TIME_WAIT"))
	if len(out) > n {
		out = out[:n]
	}
	return out
}
