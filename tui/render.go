package tui

import (
	"strings"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
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

// render joins the components' views: header, filter bar (or the actions'
// question), the page shown (or the help), footer. Each component cuts its
// lines to the width; the screen is cut to the height, so no size makes it
// overflow.
func (m *Model) render() string {
	if m.w <= 0 || m.h <= 0 {
		return ""
	}
	m.layout()
	bar := m.bar.View()
	if m.actions.asking() {
		bar = m.actions.View()
	}
	parts := make([]string, 0, 4)
	parts = append(parts, m.header.View(), bar)
	if body := m.bodyRows(); body > 0 {
		var p component = m.pages[m.page]
		if m.helpPage.open {
			p = m.helpPage
		}
		parts = append(parts, p.View())
	}
	parts = append(parts, m.footer.View())
	out := strings.Join(parts, "\n")
	if m.header.height()+m.barHeight()+len(m.footer.lines()) > m.h {
		// Too small for all of it: the first h lines.
		lines := strings.SplitN(out, "\n", m.h+1)
		out = strings.Join(lines[:min(m.h, len(lines))], "\n")
	}
	return out
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
