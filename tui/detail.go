package tui

import (
	"fmt"
	"slices"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/internal/termsafe"
	"github.com/conntop/conntop/tui/widget"
)

// detailPage shows the selected flow of the table whole: tuples, status,
// counters, timeout, process, the comparison of kernel and wire, what the
// kernel says beyond the tuples (fidelity.go) and its timeline. Up and
// down move the table's selection; m jumps to the master flow.
type detailPage struct {
	*common
	table         *flowTable
	width, height int

	detail   store.Detail
	detailOK bool

	bindings []key.Binding
}

var _ page = (*detailPage)(nil)

func newDetailPage(c *common, table *flowTable) *detailPage {
	return &detailPage{common: c, table: table, bindings: []key.Binding{c.keys.Master, c.keys.Back}}
}

// ShortHelp implements help.KeyMap.
func (m *detailPage) ShortHelp() []key.Binding { return m.bindings }

// FullHelp implements help.KeyMap.
func (m *detailPage) FullHelp() [][]key.Binding { return [][]key.Binding{m.bindings} }

// SetSize implements component.
func (m *detailPage) SetSize(w, h int) { m.width, m.height = w, h }

// View implements component.
func (m *detailPage) View() string { return fitLines(m.viewLines(), m.width, m.height) }

// viewLines implements page.
func (m *detailPage) viewLines() []string { return m.detailLines(m.height) }

// refresh implements page: the selected flow, from the live table or, while
// paused, from the still picture (whose rows have no history).
func (m *detailPage) refresh() {
	sel := m.table.sel
	if m.paused {
		if sel != nil && m.frozen != nil {
			if r, ok := m.frozen.find(*sel); ok {
				if m.detail.Flow.Key() != *sel {
					m.detail.History = nil // recorded live only
				}
				m.detail.Row, m.detailOK = r, true
			}
		}
		return
	}
	m.detail, m.detailOK = store.Detail{}, false
	if sel != nil {
		m.eng.View(func(s *store.Store) {
			m.detail, m.detailOK = s.Detail(*sel)
			m.detail.History = slices.Clone(m.detail.History)
		})
	}
}

// procFlows implements procUser: the table's flows and this one.
func (m *detailPage) procFlows() []flow.Flow {
	flows := m.table.rowFlows()
	if m.detailOK {
		flows = append(flows, m.detail.Flow)
	}
	return flows
}

// Update implements component.
func (m *detailPage) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.KeyPressMsg:
		m.key(msg)
	case tea.MouseWheelMsg:
		m.table.wheel(msg)
	}
	return nil
}

func (m *detailPage) key(msg tea.KeyPressMsg) {
	k := &m.keys
	switch {
	case key.Matches(msg, k.Back, k.Detail):
		m.show(pageTable)
	case key.Matches(msg, k.Up):
		m.table.moveSel(-1)
	case key.Matches(msg, k.Down):
		m.table.moveSel(1)
	case key.Matches(msg, k.Master):
		if !m.detailOK || m.detail.Flow.Master == nil {
			m.setStatus(true, "this flow has no master flow")
			return
		}
		mt := *m.detail.Flow.Master
		var found *flow.Key
		m.eng.View(func(s *store.Store) {
			for _, p := range []uint8{m.detail.Flow.Proto, flow.ProtoTCP, flow.ProtoUDP, flow.ProtoSCTP} {
				k := flow.Key{Proto: p, Zone: m.detail.Flow.Zone, Orig: mt}
				if _, ok := s.Row(k); ok {
					found = &k
					return
				}
			}
		})
		if found == nil {
			m.setStatus(true, "the master flow is no longer in the table")
			return
		}
		// Show it even if the filter hides it from the table.
		m.table.selectFlow(*found)
	}
}

func (m *detailPage) detailLines(n int) []string {
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
