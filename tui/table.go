package tui

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/internal/termsafe"
	"github.com/conntop/conntop/tui/widget"
)

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

// sortCol is the column each sort key marks in the table header.
var sortCol = [store.NumSortKeys]int{colAge, colState, colTCP, colProto, colSrc, colDst, colSrc, colDst, colPkts, colBytes, colRate, colTTL, colMark}

// layout computes the column widths for the current width and window.
func (m *Model) layout() []int {
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
	if m.w >= foldWidth {
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
	return widget.Layout(cols, colPrio, m.w)
}

// endpointWidth is the display width of an endpoint cell, as endpoint
// formats it, counted without allocating (it runs for every row of every
// frame).
func (m *Model) endpointWidth(proto uint8, t flow.Tuple, src bool) int {
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
func (m *Model) procColumnShown() bool {
	if m.resolver == nil || m.page != pageTable {
		return false
	}
	return m.layout()[colProc] > 0
}

// tableLines formats the column header and only the visible rows.
func (m *Model) tableLines(n int) []string {
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
			line = st.sel.Render(widget.Fit(line, m.w, false, st.ellipsis))
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
func (m *Model) rowCells(r *store.Row, widths []int, cells *[numCols]string) {
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
func (m *Model) endpoint(proto uint8, t flow.Tuple, src bool) string {
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
func (m *Model) portName(proto uint8, p uint16) string {
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
func (m *Model) seenCell(c flow.Compare) string {
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
