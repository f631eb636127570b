package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/internal/termsafe"
	"github.com/conntop/conntop/tui/widget"
)

// phaseName names a phase of a flow's life in the timeline and matrix.
func phaseName(p store.Phase) string {
	switch p {
	case store.PhaseNone:
		return "none"
	case store.PhaseNew:
		return "NEW"
	case store.PhaseEstablished:
		return "ESTABLISHED"
	case store.PhaseRelated:
		return "RELATED"
	case store.PhaseDestroyed:
		return "destroyed"
	}
	if p >= store.PhaseTCP && p < store.NumPhases {
		return flow.TCPState(p - store.PhaseTCP).String()
	}
	return "phase " + strconv.Itoa(int(p))
}

const stamp = "15:04:05.000"

func (m *Model) detailLines(n int) []string {
	st := &m.st
	if !m.detailOK {
		return []string{st.dim.Render("the flow is no longer in the table (esc: back)")}
	}
	d := &m.detail
	f := &d.Flow
	label := func(s string) string { return st.colHead.Render(widget.Fit(s, 10, false, st.ellipsis)) + " " }
	tuple := func(t flow.Tuple) string {
		s := m.endpoint(f.Proto, t, true) + " " + st.arrow + " " + m.endpoint(f.Proto, t, false)
		if flow.IsICMP(f.Proto) {
			s += fmt.Sprintf("  (type %d code %d id %d)", t.Type, t.Code, t.ID)
		}
		return s
	}
	head := fmt.Sprintf("flow %d  %s %s  ", f.ID, f.Family, flow.ProtoName(f.Proto))
	head += st.state[min(int(f.State()), 2)].Render(f.State().String())
	if f.Proto == flow.ProtoTCP {
		head += "  tcp " + f.TCPState.String()
	}
	if d.Destroyed {
		head += "  " + st.evDestroy.Render("destroyed "+widget.Duration(m.now.Sub(d.DestroyedAt))+" ago")
	}
	out := []string{st.title.Render(head)}
	out = append(out, label("original")+tuple(f.Orig))
	nat := ""
	if f.NAT() {
		nat = "  " + st.warn.Render("NAT")
	}
	out = append(out, label("reply")+tuple(f.Reply)+nat)
	names := f.Status.Names()
	out = append(out, label("status")+strings.Join(names, " ")+st.dim.Render(fmt.Sprintf("  (0x%x)", uint32(f.Status))))
	if f.HasCounters {
		c := f.Counters
		out = append(out, label("counters")+fmt.Sprintf("orig %s pkts %s (%s/s)   reply %s pkts %s (%s/s)",
			widget.Count(c.OrigPackets), widget.Bytes(float64(c.OrigBytes)), widget.Bytes(d.OrigBPS),
			widget.Count(c.ReplyPackets), widget.Bytes(float64(c.ReplyBytes)), widget.Bytes(d.ReplyBPS)))
	} else {
		out = append(out, label("counters")+st.dim.Render("unknown (accounting off, or not reported yet)"))
	}
	switch {
	case d.Destroyed:
		out = append(out, label("timeout")+"-")
	case !d.Expires.IsZero():
		out = append(out, label("timeout")+fmt.Sprintf("%s left (expires %s, %ds when last seen)",
			widget.Duration(d.Expires.Sub(m.now)), d.Expires.Format("15:04:05"), f.Timeout))
	}
	out = append(out, label("seen")+fmt.Sprintf("first %s, last %s, age %s",
		d.FirstSeen.Format(stamp), d.LastSeen.Format(stamp), widget.Duration(m.now.Sub(d.FirstSeen))))
	extra := fmt.Sprintf("mark %d  zone %d", f.Mark, f.Zone)
	if f.Helper != "" {
		extra += "  helper " + termsafe.Escape(f.Helper)
	}
	out = append(out, label("other")+extra)
	if f.Master != nil {
		out = append(out, label("master")+tuple(*f.Master)+"  "+st.key.Render("m")+" jump to it")
	}
	if a, ok := m.procs[f.Key()]; ok && a.found {
		out = append(out, label("process")+fmt.Sprintf("pid %d %s", a.proc.PID, termsafe.Escape(a.proc.Name)))
	} else if m.resolver != nil && (f.Proto == flow.ProtoTCP || f.Proto == flow.ProtoUDP) {
		out = append(out, label("process")+st.dim.Render("not local to this host (or not found)"))
	}
	if f.Compare.Seen != 0 {
		cmp := "seen by " + f.Compare.Seen.String()
		if r := f.DisagreeReason(); r != "" {
			cmp += "  " + st.warn.Render("disagree: "+r)
		} else {
			cmp += ", no disagreement"
		}
		out = append(out, label("compare")+cmp)
	}
	if f.Invalid > 0 {
		out = append(out, label("invalid")+st.warn.Render(fmt.Sprintf("%d packets INVALID, last: %s", f.Invalid, termsafe.Escape(f.InvalidReason))))
	}
	out = append(out, m.fidelityLines(f, label)...)
	out = append(out, "", st.colHead.Render("timeline"))
	room := n - len(out)
	hist := d.History
	if room > 0 && len(hist) > room {
		hist = hist[len(hist)-room:]
	}
	for _, tr := range hist {
		out = append(out, "  "+tr.Time.Format(stamp)+"  "+widget.Fit(phaseName(tr.From), 11, false, st.ellipsis)+" "+st.arrow+" "+phaseName(tr.To))
	}
	if len(d.History) == 0 {
		out = append(out, st.dim.Render("  (no transitions recorded)"))
	}
	return out
}

// transitionLines shows the transition matrix (non-zero cells, busiest
// first) above the live event stream.
func (m *Model) transitionLines(n int) []string {
	st := &m.st
	type cell struct {
		from, to store.Phase
		c        store.TransitionCount
	}
	var cells []cell
	for i := range store.NumPhases {
		for j := range store.NumPhases {
			if c := m.sum.Transitions[i][j]; c.Total > 0 {
				cells = append(cells, cell{i, j, c})
			}
		}
	}
	slices.SortStableFunc(cells, func(a, b cell) int {
		if a.c.Total != b.c.Total {
			if a.c.Total > b.c.Total {
				return -1
			}
			return 1
		}
		return 0
	})
	out := []string{st.colHead.Render(widget.Fit("transitions (from "+st.arrow+" to: total, per second)", m.w, false, st.ellipsis))}
	// The matrix gets at most a third of the page, in as many columns as fit.
	const cw = 44
	ncol := max(1, m.w/cw)
	mrows := min((len(cells)+ncol-1)/ncol, max(1, n/3))
	for r := range mrows {
		var b strings.Builder
		for c := range ncol {
			i := r + c*mrows
			if i >= len(cells) {
				break
			}
			x := cells[i]
			s := fmt.Sprintf("%s %s %s %s %s/s", widget.Fit(phaseName(x.from), 11, true, st.ellipsis), st.arrow,
				widget.Fit(phaseName(x.to), 11, false, st.ellipsis), widget.Fit(widget.Count(x.c.Total), 8, true, st.ellipsis),
				widget.SI(x.c.PerSecond))
			b.WriteString(widget.Fit(s, cw, false, st.ellipsis))
		}
		out = append(out, b.String())
	}
	if len(cells) == 0 {
		out = append(out, st.dim.Render("no transitions yet"))
	}
	title := "events (like conntrack -E; filtered)"
	if m.paused {
		title += "  PAUSED (p resumes)"
	} else if m.evScroll > 0 {
		title += fmt.Sprintf("  scrolled back %d (end: newest)", m.evScroll)
	}
	out = append(out, st.colHead.Render(widget.Fit(title, m.w, false, st.ellipsis)))
	room := n - len(out)
	if room <= 0 {
		return out
	}
	end := len(m.events) - m.evScroll
	start := max(0, end-room)
	// Endpoints other than IPv6 are never cut: the columns are as wide as
	// the widest shown (IPv6 is shortened in the middle).
	epw := 24
	if m.w < 110 {
		epw = endpointMin
		for i := start; i < end; i++ {
			if f := &m.events[i].Flow; f.Family != flow.FamilyIPv6 {
				epw = max(epw, min(endpointMax4, m.endpointWidth(f.Proto, f.Orig, true)), min(endpointMax4, m.endpointWidth(f.Proto, f.Orig, false)))
			}
		}
	}
	for i := start; i < end; i++ {
		out = append(out, m.eventLine(&m.events[i], epw))
	}
	if len(m.events) == 0 {
		out = append(out, st.dim.Render("waiting for events…"))
	}
	return out
}

func (m *Model) eventLine(e *store.EventRecord, epw int) string {
	st := &m.st
	var typ string
	switch e.Type {
	case flow.EventNew:
		typ = st.evNew.Render("[NEW]    ")
	case flow.EventUpdate:
		typ = st.evUpdate.Render("[UPDATE] ")
	case flow.EventDestroy:
		typ = st.evDestroy.Render("[DESTROY]")
	case flow.EventResync:
		return e.Time.Format(stamp) + " " + st.evResync.Render(fmt.Sprintf("[RESYNC]  %d events lost; table re-listed", e.Lost))
	default:
		typ = widget.Fit("["+strings.ToUpper(e.Type.String())+"]", 9, false, st.ellipsis)
	}
	f := &e.Flow
	// On narrow terminals the line drops the milliseconds and tightens the
	// columns so that the state change at its end stays visible.
	ts, pw, phSep := e.Time.Format(stamp), 6, " "+st.arrow+" "
	if m.w < 110 {
		ts, pw, phSep = e.Time.Format("15:04:05"), 4, st.arrow
	}
	src := fitEndpoint(m.endpoint(f.Proto, f.Orig, true), epw, st.ellipsis)
	dst := fitEndpoint(m.endpoint(f.Proto, f.Orig, false), epw, st.ellipsis)
	ph := phaseName(e.From) + phSep + phaseName(e.To)
	if e.From == e.To {
		ph = phaseName(e.To)
	}
	return ts + " " + typ + " " + widget.Fit(flow.ProtoName(f.Proto), pw, false, st.ellipsis) + " " +
		src + " " + st.arrow + " " + dst + " " + ph
}

var groupNames = [store.NumGroupBys]string{"destination port", "source host", "destination host", "state", "protocol"}

func (m *Model) groupLines(n int) []string {
	st := &m.st
	var tabs strings.Builder
	for g := range store.NumGroupBys {
		s := " " + groupNames[g] + " "
		if g == m.groupBy {
			s = st.sel.Render("[" + groupNames[g] + "]") // told apart without colour too
		}
		tabs.WriteString(s + " ")
	}
	out := []string{tabs.String() + st.dim.Render(" ("+m.keys.GroupPrev.Help().Key+" "+m.keys.GroupNext.Help().Key+" switch, enter filters the table)")}
	lw := max(12, min(48, m.w-40))
	hdr := widget.Fit("GROUP", lw, false, st.ellipsis) + " " + widget.Fit("FLOWS", 9, true, st.ellipsis) + " " +
		widget.Fit("PACKETS", 9, true, st.ellipsis) + " " + widget.Fit("BYTES", 9, true, st.ellipsis) + " " + widget.Fit("RATE", 9, true, st.ellipsis)
	out = append(out, st.colHead.Render(hdr))
	if len(m.groups) == 0 {
		return append(out, st.dim.Render("no flows"))
	}
	room := max(1, n-len(out))
	off := 0
	if m.groupSel >= room {
		off = m.groupSel - room + 1
	}
	for i := off; i < len(m.groups) && len(out) < n; i++ {
		g := &m.groups[i]
		label := g.Label
		if m.groupBy == store.GroupDport && m.portNames && m.svc != nil {
			if p, port, ok := strings.Cut(label, "/"); ok {
				if pn, err := strconv.Atoi(port); err == nil {
					if pr, err := flow.ParseProto(p); err == nil {
						if name := m.svc.Name(pr, uint16(pn)); name != "" {
							label += " (" + name + ")"
						}
					}
				}
			}
		}
		line := widget.Fit(termsafe.Escape(label), lw, false, st.ellipsis) + " " +
			widget.Fit(widget.Count(uint64(g.Count)), 9, true, st.ellipsis) + " " +
			widget.Fit(widget.SI(float64(g.Packets)), 9, true, st.ellipsis) + " " +
			widget.Fit(widget.Bytes(float64(g.Bytes)), 9, true, st.ellipsis) + " " +
			widget.Fit(widget.Bytes(g.BPS)+"/s", 9, true, st.ellipsis)
		if i == m.groupSel {
			line = st.sel.Render(widget.Fit(line, m.w, false, st.ellipsis))
		}
		out = append(out, line)
	}
	return out
}
