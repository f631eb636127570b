package tui

import (
	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/store"
)

// wheelStep is how many rows one wheel notch scrolls.
const wheelStep = 3

// colSort is the sort key a click on a column's title selects (-1: none).
var colSort = [numCols]int{
	colState: int(store.SortState), colSeen: -1, colTCP: int(store.SortTCPState), colProto: int(store.SortProto),
	colSrc: int(store.SortSrc), colDst: int(store.SortDst), colReply: -1, colPkts: int(store.SortPackets),
	colBytes: int(store.SortBytes), colRate: int(store.SortRate), colAge: int(store.SortAge),
	colTTL: int(store.SortTimeout), colMark: int(store.SortMark), colProc: -1,
}

// handleMouse acts on a click or a wheel notch. Clicks select (a second
// click on the selected row opens it), sort by a column title, and open
// a view tab or a grouping; the wheel scrolls.
func (m *Model) handleMouse(msg tea.MouseMsg) {
	if m.bar.editing() || m.actions.asking() {
		return
	}
	ms := msg.Mouse()
	switch msg.(type) {
	case tea.MouseWheelMsg:
		switch ms.Button {
		case tea.MouseWheelUp:
			m.wheel(-wheelStep)
		case tea.MouseWheelDown:
			m.wheel(wheelStep)
		}
	case tea.MouseClickMsg:
		if ms.Button == tea.MouseLeft {
			m.click(ms.X, ms.Y)
		}
	}
}

func (m *Model) wheel(delta int) {
	if m.helpPage.open {
		return
	}
	switch m.page {
	case pageTable, pageDetail:
		m.moveSel(delta)
	case pageTransitions:
		m.evScroll = max(0, min(m.evScroll-delta, len(m.events)-1))
	case pageGroups:
		m.groupSel = max(0, min(m.groupSel+delta, len(m.groups)-1))
	}
}

// bodyTop is the screen line where the page starts.
func (m *Model) bodyTop() int { return m.header.height() + m.filterHeight() }

func (m *Model) click(x, y int) {
	if y == 0 {
		if p, ok := m.header.tabAt(x); ok {
			m.helpPage.open = false
			m.page = p
		}
		return
	}
	if m.helpPage.open {
		return
	}
	row := y - m.bodyTop()
	if row < 0 || row >= m.bodyRows() {
		return
	}
	switch m.page {
	case pageTable:
		m.clickTable(x, row)
	case pageGroups:
		m.clickGroups(x, row)
	}
}

// clickTable: the first line is the column titles, then the rows.
func (m *Model) clickTable(x, row int) {
	if row == 0 {
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
	idx := m.res.Offset + row - 1
	if row-1 >= len(m.res.Rows) {
		return
	}
	if idx == m.selIdx && m.sel != nil {
		m.page = pageDetail
		return
	}
	m.moveSel(idx - m.selIdx)
}

// columnAt returns the table column under screen column x, or -1.
func (m *Model) columnAt(x int) int {
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

// clickGroups: the first line is the grouping tabs, the second the column
// titles, then the groups.
func (m *Model) clickGroups(x, row int) {
	switch {
	case row == 0:
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
	case row >= 2:
		i := m.groupOffset() + row - 2
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
func (m *Model) groupOffset() int {
	room := max(1, m.bodyRows()-2)
	if m.groupSel >= room {
		return m.groupSel - room + 1
	}
	return 0
}
