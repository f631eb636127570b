package tui

import (
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/internal/termsafe"
	"github.com/conntop/conntop/tui/widget"
)

// maxGroups bounds the groups a page shows.
const maxGroups = 500

// groupsPage counts the filtered flows by a grouping (destination port,
// source host, ...); enter (or a second click) filters the table to the
// selected group.
type groupsPage struct {
	*common
	width, height int

	groupBy  store.GroupBy
	groups   []store.Group
	groupSel int

	bindings []key.Binding
}

var _ page = (*groupsPage)(nil)

func newGroupsPage(c *common) *groupsPage {
	return &groupsPage{common: c, bindings: []key.Binding{c.keys.GroupNext, c.keys.GroupPrev}}
}

// ShortHelp implements help.KeyMap.
func (m *groupsPage) ShortHelp() []key.Binding { return m.bindings }

// FullHelp implements help.KeyMap.
func (m *groupsPage) FullHelp() [][]key.Binding { return [][]key.Binding{m.bindings} }

// SetSize implements component.
func (m *groupsPage) SetSize(w, h int) { m.width, m.height = w, h }

// View implements component.
func (m *groupsPage) View() string { return fitLines(m.viewLines(), m.width, m.height) }

// viewLines implements page.
func (m *groupsPage) viewLines() []string { return m.groupLines(m.height) }

// refresh implements page: the groups are counted on the live table, also
// while paused.
func (m *groupsPage) refresh() {
	m.eng.View(func(s *store.Store) { m.groups = s.Groups(m.groupBy, m.matcher(), maxGroups) })
	m.groupSel = max(0, min(m.groupSel, len(m.groups)-1))
}

// openGroupMsg asks for the table filtered to a group as well.
type openGroupMsg struct{ filter string }

// Update implements component.
func (m *groupsPage) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.KeyPressMsg:
		m.key(msg)
	case tea.MouseWheelMsg:
		switch msg.Button {
		case tea.MouseWheelUp:
			m.groupSel = max(0, min(m.groupSel-wheelStep, len(m.groups)-1))
		case tea.MouseWheelDown:
			m.groupSel = max(0, min(m.groupSel+wheelStep, len(m.groups)-1))
		}
	case tea.MouseClickMsg:
		if msg.Button == tea.MouseLeft {
			m.click(msg.X, msg.Y)
		}
	}
	return nil
}

func (m *groupsPage) key(msg tea.KeyPressMsg) {
	k := &m.keys
	switch {
	case key.Matches(msg, k.Up):
		m.groupSel = max(0, m.groupSel-1)
	case key.Matches(msg, k.Down):
		m.groupSel = min(len(m.groups)-1, m.groupSel+1)
	case key.Matches(msg, k.Home):
		m.groupSel = 0
	case key.Matches(msg, k.End):
		m.groupSel = len(m.groups) - 1
	case key.Matches(msg, k.GroupNext):
		m.groupBy = (m.groupBy + 1) % store.NumGroupBys
		m.groupSel = 0
	case key.Matches(msg, k.GroupPrev):
		m.groupBy = (m.groupBy + store.NumGroupBys - 1) % store.NumGroupBys
		m.groupSel = 0
	case key.Matches(msg, k.Back):
		m.show(pageTable)
	case key.Matches(msg, k.Detail):
		m.openGroup()
	}
	m.groupSel = max(0, m.groupSel)
}

// openGroup asks for the table filtered to the selected group.
func (m *groupsPage) openGroup() {
	if m.groupSel < 0 || m.groupSel >= len(m.groups) {
		return
	}
	m.post(openGroupMsg{m.groups[m.groupSel].Filter})
}

// click at column x of page line y: the first line is the grouping tabs,
// the second the column titles, then the groups.
func (m *groupsPage) click(x, y int) {
	switch {
	case y == 0:
		pos := 0
		for g := range store.NumGroupBys {
			w := len(groupNames[g]) + 2
			if x >= pos && x < pos+w {
				if m.groupBy != g {
					m.groupBy, m.groupSel = g, 0
				}
				return
			}
			pos += w + 1
		}
	case y >= 2:
		i := m.groupOffset() + y - 2
		if i >= len(m.groups) {
			return
		}
		if i == m.groupSel {
			m.openGroup()
			return
		}
		m.groupSel = i
	}
}

// groupOffset is the first group shown on the page.
func (m *groupsPage) groupOffset() int {
	room := max(1, m.height-2)
	if m.groupSel >= room {
		return m.groupSel - room + 1
	}
	return 0
}

var groupNames = [store.NumGroupBys]string{"destination port", "source host", "destination host", "state", "protocol"}

func (m *groupsPage) groupLines(n int) []string {
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
	lw := max(12, min(48, m.width-40))
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
			line = st.sel.Render(widget.Fit(line, m.width, false, st.ellipsis))
		}
		out = append(out, line)
	}
	return out
}
