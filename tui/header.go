package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/termsafe"
	"github.com/conntop/conntop/tui/widget"
)

// loudFor is how long a drop keeps the header loud.
const loudFor = 10 * time.Second

// header is the top of the screen: what is watched and the view tabs, the
// pressure gauge, churn and the kernel's counters with their rates, and
// one line per notice. It is laid out at each refresh; View reuses that.
type header struct {
	*common
	// width is the terminal's; room is how many lines the header may take
	// while the table keeps minTableRows (figures that do not fit are left
	// out; the notices always show).
	width, room int

	prevStats flow.TableStats
	statRate  [6]float64 // drop, early_drop, insert_failed, invalid, search_restart, error per second
	dropAt    time.Time

	// lines is the header as laid out at the last refresh; tabX the
	// columns of its view tabs (for the mouse).
	lines []string
	tabX  [][2]int
}

func newHeader(c *common) *header { return &header{common: c} }

// Update implements component: the header has no keys; the root calls
// refresh after reading the engine.
func (m *header) Update(tea.Msg) tea.Cmd { return nil }

// SetSize implements component: w is the terminal's width, h the lines
// the header may take before the table would get fewer than minTableRows.
func (m *header) SetSize(w, h int) { m.width, m.room = w, h }

// View implements component: the lines laid out at the last refresh.
func (m *header) View() string { return fitLines(slices.Clone(m.lines), m.width, len(m.lines)) }

// height is the number of lines of the header.
func (m *header) height() int { return len(m.lines) }

// tabAt returns the page of the view tab at column x of the first line.
func (m *header) tabAt(x int) (pageID, bool) {
	for i, span := range m.tabX {
		if x >= span[0] && x < span[1] {
			return viewTabs[i].view, true
		}
	}
	return 0, false
}

// ShortHelp implements help.KeyMap: the header has no keys.
func (m *header) ShortHelp() []key.Binding { return nil }

// FullHelp implements help.KeyMap.
func (m *header) FullHelp() [][]key.Binding { return nil }

// minTableRows is how many flow rows the header leaves at least (at 80x24
// too): header figures that would wrap beyond it are left out, at their
// boundaries.
const minTableRows = 15

// notice is a condition the header reports in one line; its details are
// on the help page.
type notice struct {
	style         widget.Paint
	short, detail string
}

// notices are the conditional header lines, loudest first.
func (m *header) notices() []notice {
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
func (m *header) banners() []string {
	ns := m.notices()
	out := make([]string, 0, len(ns))
	for i, n := range ns {
		text := n.short
		loud := i == 0 && !m.dropAt.IsZero() && m.now.Sub(m.dropAt) < loudFor
		if !loud && (n.detail != "" || widget.Width(text) > m.width) {
			text = shortNotice(text, m.width-len(helpPointer)) + helpPointer
		}
		out = append(out, n.style.Render(widget.Fit(text, max(m.width, 1), false, m.st.ellipsis)))
	}
	return out
}

// helpPointer ends a shortened notice.
const helpPointer = "  (? more)"

// shortNotice cuts text to w cells at the end of its first clause (before
// " (", ". ", "; ") when that fits, else at a word.
func shortNotice(text string, w int) string {
	if w <= 0 || widget.Width(text) <= w {
		return text
	}
	for _, sep := range []string{" (", ". ", "; ", ": "} {
		if i := strings.Index(text, sep); i > 0 && widget.Width(text[:i]) <= w {
			return text[:i]
		}
	}
	cut := ansi.Truncate(text, w, "")
	if i := strings.LastIndexByte(cut, ' '); i > w/2 {
		cut = cut[:i]
	}
	return cut
}

// refresh lays out the header for the current size and data (the rates
// are updated first unless the picture is still).
func (m *header) refresh() {
	if !m.paused {
		m.updateRates()
	}
	m.lines = m.headerLines()
}

func (m *header) headerLines() []string {
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
	if d := degradedText(sum.Degraded); d != "" {
		l1 += " " + st.warn.Render(d)
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
		gw := min(30, max(5, m.width/5))
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
	used := widget.Width(l2.String())
	if sw := min(120, m.width-used-2); sw >= 8 && len(sum.CountHistory) > 1 {
		vals := make([]int, 0, len(sum.CountHistory))
		for _, s := range sum.CountHistory {
			vals = append(vals, s.Count)
		}
		l2.WriteString("  " + st.title.Render(widget.Sparkline(vals, sw, st.ascii)))
	}

	// Line 3: churn and what the table holds; line 4: the kernel's counters
	// with their rates. Each item has a short form for narrow terminals.
	l3 := wrapItems(m.width, []item{
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
		var style *widget.Paint
		switch {
		case i < 3 && vals[i] > 0:
			style = &st.errText
		case vals[i] > 0:
			style = &st.warn
		}
		items = append(items, item{names[i] + " " + v, short[i] + " " + v, style})
	}
	var lostStyle *widget.Paint
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
	l4 := wrapItems(m.width, items)

	// Wrapped figures take lines only while the table keeps minTableRows.
	banners := m.banners()
	spare := m.room - (2 + 2 + len(banners))
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
func (m *header) withTabs(left, clock string) string {
	m.tabX = m.tabX[:0]
	cur := m.page
	if cur == pageDetail {
		cur = pageTable
	}
	var tabs strings.Builder
	lw := widget.Width(left) + 2
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
	if lw+rw > m.width {
		right, rw = tabs.String(), x
		if lw+rw > m.width {
			return padBetween(left, clock, m.width)
		}
	}
	start := m.width - rw
	for _, sp := range spans {
		m.tabX = append(m.tabX, [2]int{start + sp[0], start + sp[1]})
	}
	return left + strings.Repeat(" ", start-widget.Width(left)) + right
}

// timeToFull estimates when the table reaches its limit from the growth
// over the last minute of count samples.
func (m *header) timeToFull(count uint64) (time.Duration, bool) {
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

// updateRates derives per-second rates of the kernel counters since the
// last frame that brought new statistics.
func (m *header) updateRates() {
	cur := m.sum.Table
	prev := m.prevStats
	if cur.Time.IsZero() || !cur.Time.After(prev.Time) {
		return
	}
	if !prev.Time.IsZero() {
		dt := cur.Time.Sub(prev.Time).Seconds()
		d := [6]uint64{
			sub(cur.Drop, prev.Drop), sub(cur.EarlyDrop, prev.EarlyDrop), sub(cur.InsertFailed, prev.InsertFailed),
			sub(cur.Invalid, prev.Invalid), sub(cur.SearchRestart, prev.SearchRestart), sub(cur.Error, prev.Error),
		}
		for i := range d {
			m.statRate[i] = float64(d[i]) / dt
		}
		if d[0] > 0 || d[1] > 0 {
			m.dropAt = m.now
		}
	}
	m.prevStats = cur
	m.prevStats.InvalidReasons = nil
}

// pressured says the header should point at the pressure view: the table
// is above 80 % of its limit or has dropped lately.
func (m *header) pressured() bool {
	t := m.sum.Table
	if !m.dropAt.IsZero() && m.now.Sub(m.dropAt) < loudFor {
		return true
	}
	return t.Max > 0 && !t.Time.IsZero() && float64(t.Count) >= 0.8*float64(t.Max)
}

// pressureHint is the header's pointer to the pressure view.
func (m *header) pressureHint() string {
	if !m.pressured() || m.page == pagePressure {
		return ""
	}
	return " " + m.st.warn.Render("[e] why?")
}

// item is one figure of a header line, in a long and a short form.
type item struct {
	long, short string
	style       *widget.Paint
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

func sub(a, b uint64) uint64 {
	if a < b {
		return 0 // counters reset (e.g. a new namespace)
	}
	return a - b
}
