package tui

import (
	"math"
	"net/netip"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/internal/termsafe"
	"github.com/conntop/conntop/tui/widget"
)

// flowTable is the flow table page: the visible window of the filtered,
// sorted table (queried through an engine.Viewer, or from the still
// picture of a pause), a selection that stays on its flow while rows move
// (on its row when the flow goes far or away), and the column layout for
// the width. Only the visible rows are formatted.
type flowTable struct {
	*common
	// viewer holds this table's own query state (filter, sort, window).
	viewer        *engine.Viewer
	width, height int // height counts the column titles

	sortKey store.SortKey
	desc    bool
	sel     *flow.Key
	selIdx  int
	offset  int
	byIndex bool
	follow  bool
	// near is set while the table refreshes on a tick (nothing the user
	// did): a selected flow that moved far away in the order is then not
	// chased across the table (store.Query.Near); the selection stays on
	// its row, as when the flow is gone. A scan the refresh needs runs on
	// one core (store.Query.Background).
	near bool
	res  store.Result

	nav, sorting []key.Binding
}

var _ page = (*flowTable)(nil)

func newFlowTable(c *common) *flowTable {
	k := &c.keys
	return &flowTable{common: c, viewer: c.eng.NewViewer(), byIndex: true,
		nav:     []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End, k.Follow, k.Detail},
		sorting: []key.Binding{k.SortNext, k.SortPrev, k.Reverse}}
}

// ShortHelp implements help.KeyMap.
func (m *flowTable) ShortHelp() []key.Binding {
	return []key.Binding{m.keys.Detail, m.keys.SortNext, m.keys.Reverse}
}

// FullHelp implements help.KeyMap: moving, then sorting.
func (m *flowTable) FullHelp() [][]key.Binding { return [][]key.Binding{m.nav, m.sorting} }

// SetSize implements component.
func (m *flowTable) SetSize(w, h int) { m.width, m.height = w, h }

// rows is the number of flow rows shown.
func (m *flowTable) rows() int { return max(0, m.height-1) }

// View implements component.
func (m *flowTable) View() string { return fitLines(m.viewLines(), m.width, m.height) }

// viewLines implements page.
func (m *flowTable) viewLines() []string { return m.tableLines(m.height) }

// refresh implements page: it queries the visible window.
func (m *flowTable) refresh() { m.query(max(1, m.rows())) }

// changed reports whether the window shown may have changed since the
// last query (always while paused or following the end, or before the
// first query).
func (m *flowTable) changed() bool {
	if m.paused || m.follow || m.res.Total == 0 && m.res.Matched == 0 && len(m.res.Rows) == 0 {
		return true
	}
	return m.viewer.Changed()
}

// top shows the table from its first row (a new filter).
func (m *flowTable) top() { m.byIndex, m.selIdx, m.offset = true, 0, 0 }

// selectFlow selects flow k, shown even if the filter hides it.
func (m *flowTable) selectFlow(k flow.Key) { m.sel, m.byIndex, m.follow = &k, false, false }

// matchedTotal implements tableStatus and selection.
func (m *flowTable) matchedTotal() (matched, total int) { return m.res.Matched, m.res.Total }

// sortStatus implements tableStatus: the sort shows on the table's pages.
func (m *flowTable) sortStatus() string {
	var s string
	if m.page == pageTable || m.page == pageDetail {
		dir := m.st.up
		if m.desc {
			dir = m.st.down
		}
		s += "  sort " + sortNames[m.sortKey] + " " + dir
	}
	if m.follow {
		s += "  " + m.st.ok.Render("FOLLOW")
	}
	return s
}

// procFlows implements procUser: the shown TCP and UDP flows, while the
// process column is shown.
func (m *flowTable) procFlows() []flow.Flow {
	if !m.procColumnShown() {
		return nil
	}
	return m.rowFlows()
}

// rowFlows are the TCP and UDP flows of the window.
func (m *flowTable) rowFlows() []flow.Flow {
	var flows []flow.Flow
	for i := range m.res.Rows {
		f := &m.res.Rows[i].Flow
		if f.Proto == flow.ProtoTCP || f.Proto == flow.ProtoUDP {
			flows = append(flows, *f)
		}
	}
	return flows
}

// freezeCmd takes the still picture of a pause around the selection.
func (m *flowTable) freezeCmd(limit int) tea.Cmd {
	q := store.Query{Filter: m.matcher(), Sort: m.sortKey, Desc: m.desc, Offset: m.offset, Select: m.sel}
	return freezeCmd(m.eng, q, m.selIdx, limit)
}

// Update implements component: moving, sorting, following, opening the
// detail; a click selects (a second one opens), a click on a column title
// sorts by it; the wheel scrolls.
func (m *flowTable) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.KeyPressMsg:
		m.key(msg)
	case tea.MouseWheelMsg:
		m.wheel(msg)
	case tea.MouseClickMsg:
		if msg.Button == tea.MouseLeft {
			m.click(msg.X, msg.Y)
		}
	}
	return nil
}

func (m *flowTable) key(msg tea.KeyPressMsg) {
	k := &m.keys
	page := max(1, m.rows()-1)
	switch {
	case key.Matches(msg, k.Up):
		m.moveSel(-1)
	case key.Matches(msg, k.Down):
		m.moveSel(1)
	case key.Matches(msg, k.PageUp):
		m.moveSel(-page)
		m.offset = max(0, m.offset-page)
	case key.Matches(msg, k.PageDown):
		m.moveSel(page)
		m.offset += page
	case key.Matches(msg, k.Home):
		m.moveSel(-m.selIdx)
		m.offset = 0
	case key.Matches(msg, k.End):
		m.moveSel(m.res.Matched)
	case key.Matches(msg, k.Follow):
		m.follow = !m.follow
	case key.Matches(msg, k.SortNext):
		m.sortKey = (m.sortKey + 1) % store.NumSortKeys
	case key.Matches(msg, k.SortPrev):
		m.sortKey = (m.sortKey + store.NumSortKeys - 1) % store.NumSortKeys
	case key.Matches(msg, k.Reverse):
		m.desc = !m.desc
	case key.Matches(msg, k.Detail):
		if m.sel != nil {
			m.show(pageDetail)
		}
	case key.Matches(msg, k.Back):
		if m.follow {
			m.follow = false
		}
	}
}

// wheel moves the selection by wheelStep rows a notch.
func (m *flowTable) wheel(msg tea.MouseWheelMsg) {
	switch msg.Button {
	case tea.MouseWheelUp:
		m.moveSel(-wheelStep)
	case tea.MouseWheelDown:
		m.moveSel(wheelStep)
	}
}

// click at column x of page line y: the first line is the column titles,
// then the rows.
func (m *flowTable) click(x, y int) {
	if y == 0 {
		c := m.columnAt(x)
		if c < 0 {
			return
		}
		key := colSort[c]
		if key < 0 {
			return
		}
		if store.SortKey(key) == m.sortKey {
			m.desc = !m.desc
		} else {
			m.sortKey, m.desc = store.SortKey(key), false
		}
		return
	}
	idx := m.res.Offset + y - 1
	if y-1 >= len(m.res.Rows) {
		return
	}
	if idx == m.selIdx && m.sel != nil {
		m.show(pageDetail)
		return
	}
	m.moveSel(idx - m.selIdx)
}

// columnAt returns the table column under screen column x, or -1.
func (m *flowTable) columnAt(x int) int {
	widths := m.layout()
	pos := 0
	for c := range numCols {
		if widths[c] == 0 {
			continue
		}
		if x >= pos && x < pos+widths[c] {
			return c
		}
		pos += widths[c] + 1
	}
	return -1
}

// moveSel moves the selection by delta rows (by position).
func (m *flowTable) moveSel(delta int) {
	m.follow = false
	m.byIndex = true
	m.selIdx = max(0, min(m.selIdx+delta, m.res.Matched-1))
}

// querier answers table queries: the live table (engine.Viewer) or the
// still picture of a pause (frozenTable).
type querier interface {
	Query(q store.Query) store.Result
}

// query fetches the visible window, keeping the selection on the same
// flow when it can, else on the same row number.
func (m *flowTable) query(limit int) {
	var src querier = m.viewer
	if m.paused {
		if m.frozen == nil {
			return // the picture is being taken: keep the rows shown
		}
		src = m.frozen
	}
	q := store.Query{Filter: m.matcher(), Sort: m.sortKey, Desc: m.desc, Limit: limit, Background: m.near}
	if m.follow {
		m.byIndex = true
		m.selIdx = math.MaxInt32
	}
	if !m.byIndex && m.sel != nil {
		q.Offset = m.offset
		sel := *m.sel
		q.Select = &sel
		q.Near = m.near
		res := src.Query(q)
		if res.SelectedIndex >= 0 {
			m.res = res
			m.selIdx, m.offset = res.SelectedIndex, res.Offset
			return
		}
		// The selected flow is gone: stay on the same row number.
	}
	m.byIndex = false
	q.Select = nil
	// First learn how many rows match, then place the window around the
	// wanted row.
	q.Offset = m.offset
	res := src.Query(q)
	if res.Matched == 0 {
		m.res, m.sel, m.selIdx, m.offset = res, nil, 0, 0
		return
	}
	idx := max(0, min(m.selIdx, res.Matched-1))
	off := max(0, min(m.offset, res.Matched-limit))
	if idx < off {
		off = idx
	} else if idx >= off+limit {
		off = idx - limit + 1
	}
	if off != res.Offset {
		q.Offset = off
		res = src.Query(q)
	}
	m.res = res
	m.offset = res.Offset
	m.selIdx = idx
	if i := idx - res.Offset; i >= 0 && i < len(res.Rows) {
		k := res.Rows[i].Flow.Key()
		m.sel = &k
	}
}

// selectedRow returns the selected row of the window.
func (m *flowTable) selectedRow() (store.Row, bool) {
	i := m.selIdx - m.res.Offset
	if i < 0 || i >= len(m.res.Rows) {
		return store.Row{}, false
	}
	return m.res.Rows[i], true
}

// Table columns.
const (
	colState = iota
	colSeen  // kernel vs wire (compare source only)
	colTCP
	colProto
	colSrc
	colDst
	colReply
	colPkts
	colBytes
	colRate
	colAge
	colTTL
	colMark
	colProc
	numCols
)

var colTitles = [numCols]string{"STATE", "K/W", "TCP", "PROTO", "SOURCE", "DESTINATION", "REPLY (NAT)", "PACKETS o/r", "BYTES o/r", "RATE", "AGE", "TTL", "MARK/ZONE", "PROCESS"}

// colPrio is the order in which columns get room, most important first.
// Addresses come before every figure: a narrow terminal drops TTL and age
// before it would cut an address.
var colPrio = []int{colState, colSeen, colProto, colSrc, colDst, colTCP, colBytes, colTTL, colAge, colPkts, colRate, colProc, colReply, colMark}

// foldWidth is the terminal width below which the TCP state folds into the
// state column ("EST TIME_WAIT") instead of a column of its own.
const foldWidth = 120

// Endpoint column widths: the narrowest an endpoint column gets (so short
// addresses do not make the layout jump), and the widest an endpoint that
// is not IPv6 may need (ICMP "255.255.255.255 id 65535"; a port name may
// be longer and is then cut).
const (
	endpointMin  = 15
	endpointMax4 = 24
)

// colRight says which columns are right-aligned (numbers).
var colRight = [numCols]bool{colPkts: true, colBytes: true, colRate: true, colAge: true, colTTL: true}

// sortNames name the sort keys in the filter line.
var sortNames = [store.NumSortKeys]string{"age", "state", "tcp state", "proto", "source", "destination", "sport", "dport", "packets", "bytes", "rate", "timeout", "mark"}

// colSort is the sort key a click on a column's title selects (-1: none).
var colSort = [numCols]int{
	colState: int(store.SortState), colSeen: -1, colTCP: int(store.SortTCPState), colProto: int(store.SortProto),
	colSrc: int(store.SortSrc), colDst: int(store.SortDst), colReply: -1, colPkts: int(store.SortPackets),
	colBytes: int(store.SortBytes), colRate: int(store.SortRate), colAge: int(store.SortAge),
	colTTL: int(store.SortTimeout), colMark: int(store.SortMark), colProc: -1,
}

// sortCol is the column each sort key marks in the table header.
var sortCol = [store.NumSortKeys]int{colAge, colState, colTCP, colProto, colSrc, colDst, colSrc, colDst, colPkts, colBytes, colRate, colTTL, colMark}

// layout computes the column widths for the current width and window.
func (m *flowTable) layout() []int {
	cols := []widget.Column{
		colState: {Width: 3},
		colSeen:  {Width: 4, Hidden: true},
		colTCP:   {Width: 11},
		colProto: {Width: 6},
		colSrc:   {Width: 47, Min: 15, Flex: true},
		colDst:   {Width: 47, Min: 15, Flex: true},
		colReply: {Width: 47, Min: 30, Flex: true, Hidden: true},
		colPkts:  {Width: 11},
		colBytes: {Width: 11},
		colRate:  {Width: 8},
		colAge:   {Width: 6},
		colTTL:   {Width: 6},
		colMark:  {Width: 11, Hidden: true},
		colProc:  {Width: 18, Hidden: m.resolver == nil},
	}
	if m.width >= foldWidth {
		cols[colState].Width = 11
	} else {
		cols[colState].Width = foldedStateWidth
		cols[colTCP].Hidden = true
	}
	// An endpoint that is not IPv6 is never cut: the column is at least as
	// wide as the widest one shown (IPv6 is shortened in the middle).
	srcNeed, dstNeed := endpointMin, endpointMin
	for i := range m.res.Rows {
		f := &m.res.Rows[i].Flow
		if f.Family != flow.FamilyIPv6 {
			srcNeed = max(srcNeed, min(endpointMax4, m.endpointWidth(f.Proto, f.Orig, true)))
			dstNeed = max(dstNeed, min(endpointMax4, m.endpointWidth(f.Proto, f.Orig, false)))
		}
		if f.Mark != 0 || f.Zone != 0 {
			cols[colMark].Hidden = false
		}
		if f.Compare.Seen != 0 {
			cols[colSeen].Hidden = false
		}
		if f.NAT() {
			// Only a NATed flow has a reply tuple worth a column.
			cols[colReply].Hidden = false
		}
	}
	cols[colSrc].Min, cols[colDst].Min = srcNeed, dstNeed
	return widget.Layout(cols, colPrio, m.width)
}

// endpointWidth is the display width of an endpoint cell, as endpoint
// formats it, counted without allocating (it runs for every row of every
// frame).
func (m *common) endpointWidth(proto uint8, t flow.Tuple, src bool) int {
	a, p := t.Dst, t.DstPort
	if src {
		a, p = t.Src, t.SrcPort
	}
	var buf [64]byte
	n := len(a.AppendTo(buf[:0]))
	if !a.IsValid() {
		n = 1
	}
	switch {
	case flow.HasPorts(proto):
		if a.Is6() {
			n += 2
		}
		if m.portNames && m.svc != nil && m.svc.Name(proto, p) != "" {
			return n + 1 + len(m.portName(proto, p)) // rare: names on
		}
		return n + 1 + digits(int(p))
	case flow.IsICMP(proto):
		if src {
			return n + 4 + digits(int(t.ID))
		}
		return n + 2 + digits(int(t.Type)) + digits(int(t.Code))
	}
	return n
}

// digits is the number of decimal digits of n >= 0.
func digits(n int) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// procColumnShown reports whether the table has room for the process
// column (so lookups are worth doing).
func (m *flowTable) procColumnShown() bool {
	if m.resolver == nil || m.page != pageTable {
		return false
	}
	return m.layout()[colProc] > 0
}

// tableLines formats the column header and only the visible rows.
func (m *flowTable) tableLines(n int) []string {
	st := &m.st
	widths := m.layout()
	out := make([]string, 0, n)
	var b strings.Builder
	first := true
	for c := range numCols {
		if widths[c] == 0 {
			continue
		}
		if !first {
			b.WriteByte(' ')
		}
		first = false
		title := colTitles[c]
		sc := sortCol[m.sortKey]
		if sc == colTCP && widths[colTCP] == 0 {
			sc = colState // the TCP state is folded into the state column
		}
		if sc == c {
			dir := st.up
			if m.desc {
				dir = st.down
			}
			title += dir
		}
		b.WriteString(widget.Fit(widget.Truncate(title, widths[c]), widths[c], colRight[c], st.ellipsis))
	}
	out = append(out, st.colHead.Render(b.String()))
	if len(m.res.Rows) == 0 {
		msg := "no flows"
		if m.res.Total > 0 {
			msg = "no flows match the filter"
		}
		return append(out, st.dim.Render(msg))
	}
	var cells [numCols]string
	for i := range m.res.Rows {
		if len(out) >= n {
			break
		}
		r := &m.res.Rows[i]
		m.rowCells(r, widths, &cells)
		selected := m.res.Offset+i == m.selIdx
		b.Reset()
		first := true
		for c := range numCols {
			if widths[c] == 0 {
				continue
			}
			if !first {
				b.WriteByte(' ')
			}
			first = false
			var cell string
			if c == colSrc || c == colDst {
				cell = fitEndpoint(cells[c], widths[c], st.ellipsis)
			} else {
				cell = widget.Fit(cells[c], widths[c], colRight[c], st.ellipsis)
			}
			if c == colState && !selected && !r.Destroyed {
				cell = st.state[min(int(r.Flow.State()), 2)].Render(cell)
			}
			if c == colSeen && !selected && !r.Destroyed && r.Flow.Compare.Disagree != flow.DisagreeNone {
				cell = st.warn.Render(cell)
			}
			b.WriteString(cell)
		}
		line := b.String()
		switch {
		case selected:
			line = st.sel.Render(widget.Fit(line, m.width, false, st.ellipsis))
		case r.Destroyed:
			line = st.destroyed.Render(line)
		}
		out = append(out, line)
	}
	return out
}

var shortState = [3]string{"NEW", "EST", "REL"}

// foldedTCP names TCP states in at most 9 cells for the folded state
// column; the others keep the kernel's names.
var foldedTCP = map[flow.TCPState]string{flow.TCPEstablished: "ESTAB", flow.TCPCloseWait: "CLOSE_WT"}

// foldedStateWidth fits "EST " and a folded TCP state name.
const foldedStateWidth = 13

// foldedState is the state cell when the TCP state folds into it:
// "EST TIME_WAIT", or "NEW" for a flow without TCP state.
func foldedState(f *flow.Flow) string {
	stt := f.State()
	s := "?"
	if int(stt) < len(shortState) {
		s = shortState[stt]
	}
	if f.Proto != flow.ProtoTCP {
		return s
	}
	if n, ok := foldedTCP[f.TCPState]; ok {
		return s + " " + n
	}
	return s + " " + f.TCPState.String()
}

// fitEndpoint fits an endpoint cell into w cells. Text that is too long is
// cut in the middle of the address, so that the port (or ICMP id, type and
// code) at its end stays: "[fd00:…:9abc]:443".
func fitEndpoint(s string, w int, ellipsis string) string {
	if len(s) <= w || w < 8 {
		return widget.Fit(s, w, false, ellipsis)
	}
	// The part kept whole at the end: "]:port" or " id N" / " T/C".
	cut := strings.LastIndex(s, "]:")
	if cut < 0 {
		cut = strings.IndexByte(s, ' ')
	}
	if cut < 0 {
		return widget.Fit(s, w, false, ellipsis)
	}
	head, tail := s[:cut], s[cut:]
	room := w - len(tail) - 1 // one cell for the ellipsis
	if room < 4 {
		return widget.Fit(s, w, false, ellipsis)
	}
	front := (room + 1) / 2
	back := room - front
	return widget.Fit(head[:front]+ellipsis+head[len(head)-back:]+tail, w, false, ellipsis)
}

// rowCells formats the visible cells of one row (plain text, escaped).
func (m *flowTable) rowCells(r *store.Row, widths []int, cells *[numCols]string) {
	f := &r.Flow
	for c := range cells {
		cells[c] = ""
	}
	stt := f.State()
	switch {
	case widths[colTCP] == 0 && widths[colState] > 0:
		cells[colState] = foldedState(f)
	case widths[colState] >= 11:
		cells[colState] = stt.String()
	case int(stt) < len(shortState):
		cells[colState] = shortState[stt]
	}
	if f.Proto == flow.ProtoTCP {
		cells[colTCP] = f.TCPState.String()
	}
	cells[colSeen] = m.seenCell(f.Compare)
	cells[colProto] = flow.ProtoName(f.Proto)
	cells[colSrc] = m.endpoint(f.Proto, f.Orig, true)
	cells[colDst] = m.endpoint(f.Proto, f.Orig, false)
	if widths[colReply] > 0 && f.NAT() {
		cells[colReply] = m.endpoint(f.Proto, f.Reply, true) + " " + m.st.arrow + " " + m.endpoint(f.Proto, f.Reply, false)
	}
	if f.HasCounters {
		c := f.Counters
		cells[colPkts] = widget.SI(float64(c.OrigPackets)) + "/" + widget.SI(float64(c.ReplyPackets))
		cells[colBytes] = widget.Bytes(float64(c.OrigBytes)) + "/" + widget.Bytes(float64(c.ReplyBytes))
		if bps := r.OrigBPS + r.ReplyBPS; bps > 0 {
			cells[colRate] = widget.Bytes(bps) + "/s"
		}
	} else {
		cells[colPkts], cells[colBytes] = "-", "-"
	}
	if !r.FirstSeen.IsZero() {
		cells[colAge] = widget.Duration(m.now.Sub(r.FirstSeen))
	}
	switch {
	case r.Destroyed:
		cells[colTTL] = "gone"
	case !r.Expires.IsZero():
		cells[colTTL] = widget.Duration(r.Expires.Sub(m.now))
	}
	if f.Mark != 0 || f.Zone != 0 {
		cells[colMark] = "m" + strconv.FormatUint(uint64(f.Mark), 10) + " z" + strconv.Itoa(int(f.Zone))
	}
	if widths[colProc] > 0 {
		if a, ok := m.procs[f.Key()]; ok && a.found {
			cells[colProc] = strconv.Itoa(a.proc.PID) + " " + termsafe.Escape(a.proc.Name)
		}
	}
}

// endpoint formats one side of a tuple: address and port (or service name),
// or for ICMP the address with id (source) or type/code (destination).
func (m *common) endpoint(proto uint8, t flow.Tuple, src bool) string {
	a := t.Dst
	if src {
		a = t.Src
	}
	as := addrString(a)
	switch {
	case flow.HasPorts(proto):
		p := t.DstPort
		if src {
			p = t.SrcPort
		}
		if a.Is6() {
			as = "[" + as + "]"
		}
		return as + ":" + m.portName(proto, p)
	case flow.IsICMP(proto):
		if src {
			return as + " id " + strconv.Itoa(int(t.ID))
		}
		return as + " " + strconv.Itoa(int(t.Type)) + "/" + strconv.Itoa(int(t.Code))
	}
	return as
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "?"
	}
	return a.String() // IPv6 compressed, as RFC 5952
}

// portName returns the port's service name when names are on and known,
// else its number.
func (m *common) portName(proto uint8, p uint16) string {
	if m.portNames && m.svc != nil {
		if n := m.svc.Name(proto, p); n != "" {
			return termsafe.Escape(n)
		}
	}
	return strconv.Itoa(int(p))
}

// seenCell is the kernel-versus-wire marker: which side(s) hold the flow
// (K, W, K+W) and, once a difference outlasted the grace period, "!" for
// one side only and K≠W for different states. Empty for other sources.
func (m *common) seenCell(c flow.Compare) string {
	switch c.Disagree {
	case flow.DisagreeKernelOnly:
		return "K!"
	case flow.DisagreeWireOnly:
		return "W!"
	case flow.DisagreeState:
		if m.st.ascii {
			return "K!=W"
		}
		return "K≠W"
	}
	switch c.Seen {
	case flow.SeenKernel | flow.SeenWire:
		return "K+W"
	case flow.SeenKernel:
		return "K"
	case flow.SeenWire:
		return "W"
	}
	return ""
}
