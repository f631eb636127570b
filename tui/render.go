package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

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
	if !m.opts.NoMouse {
		// Clicks and the wheel only (no motion): with Options.NoMouse the
		// terminal keeps its own text selection.
		v.MouseMode = tea.MouseModeCellMotion
	}
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
	lines = append(lines, m.header.lines...)
	lines = append(lines, m.filterLines()...)
	body := m.bodyRows()
	if body > 0 {
		var page []string
		switch {
		case m.helpPage.open:
			m.helpPage.SetSize(m.w, body)
			page = strings.Split(m.helpPage.View(), "\n")
		case m.page == pageDetail:
			page = m.detailLines(body)
		case m.page == pageTransitions:
			page = m.transitionLines(body)
		case m.page == pageGroups:
			page = m.groupLines(body)
		case m.page == pagePressure:
			page = m.pressurePage(body)
		default:
			page = m.tableLines(body)
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

// bodyRows is the height of the page between the filter line and the
// footer.
func (m *Model) bodyRows() int {
	return max(0, m.h-m.header.height()-m.filterHeight()-len(m.footer.lines()))
}

func (m *Model) filterHeight() int {
	if m.actions.asking() {
		return 1
	}
	return m.bar.height()
}

// item is one figure of a header line, in a long and a short form.
type item struct {
	long, short string
	style       *lipgloss.Style
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
	if m.actions.asking() {
		return []string{m.actions.View()}
	}
	return m.bar.lines()
}

// ShortHelp implements help.KeyMap: the footer's key hints.
func (m *Model) ShortHelp() []key.Binding { return m.keys.ShortHelp() }

// FullHelp implements help.KeyMap: the help page's key groups.
func (m *Model) FullHelp() [][]key.Binding { return m.keys.FullHelp() }
