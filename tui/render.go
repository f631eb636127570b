package tui

import (
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/tui/widget"
)

// View implements tea.Model. It reuses the previous frame when nothing
// changed since it was drawn, and while a burst of key presses waits for
// its answer (Options.CoalesceKeys): a frame never shows a new sort or
// filter above rows read before it.
func (m *Model) View() tea.View {
	if m.dirty && (m.frame == "" || !m.needRefresh || !m.burstWait) {
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

// render draws the whole screen from the components' lines: header,
// filter bar (or the actions' question), the page shown (or the help),
// footer, joined once (each component's View would join its own). Every
// line is cut to the width and the screen to the height, so no size makes
// it overflow.
func (m *Model) render() string {
	if m.w <= 0 || m.h <= 0 {
		return ""
	}
	m.layout()
	lines := make([]string, 0, m.h)
	lines = append(lines, m.header.lines...)
	if m.actions.asking() {
		lines = append(lines, m.actions.View())
	} else {
		lines = append(lines, m.bar.lines()...)
	}
	if body := m.bodyRows(); body > 0 {
		var page []string
		if m.helpPage.open {
			page = m.helpPage.viewLines()
		} else {
			page = m.pages[m.page].viewLines()
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

// padBetween puts right at the right edge of a width-w line that starts
// with left, when both fit.
func padBetween(left, right string, w int) string {
	lw, rw := widget.Width(left), widget.Width(right)
	if lw+rw+1 > w {
		return left
	}
	return left + strings.Repeat(" ", w-lw-rw) + right
}
