package tui

import (
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
)

// noticeSource gives the header's notices (shown whole on the help page).
type noticeSource interface {
	notices() []notice
}

// helpPage is the help overlay: the header's notices in full, every key
// (from the KeyMap it is given, which the root assembles from the
// components) and the filter language.
type helpPage struct {
	*common
	keyMap  help.KeyMap
	notices noticeSource
	// open says the overlay is shown (instead of the page).
	open          bool
	width, height int
}

func newHelpPage(c *common, km help.KeyMap, ns noticeSource) *helpPage {
	return &helpPage{common: c, keyMap: km, notices: ns}
}

// Update implements component: ? or esc closes the overlay.
func (p *helpPage) Update(msg tea.Msg) tea.Cmd {
	if msg, ok := msg.(tea.KeyPressMsg); ok && key.Matches(msg, p.keys.Help, p.keys.Back) {
		p.open = false
	}
	return nil
}

// SetSize implements component.
func (p *helpPage) SetSize(w, h int) { p.width, p.height = w, h }

// ShortHelp implements help.KeyMap.
func (p *helpPage) ShortHelp() []key.Binding { return []key.Binding{p.keys.Help, p.keys.Back} }

// FullHelp implements help.KeyMap.
func (p *helpPage) FullHelp() [][]key.Binding { return [][]key.Binding{p.ShortHelp()} }

// View implements component.
func (p *helpPage) View() string { return fitLines(p.viewLines(), p.width, p.height) }

// viewLines is the lines of View before they are cut and joined.
func (p *helpPage) viewLines() []string { return p.lines(p.height) }

func (p *helpPage) lines(n int) []string {
	h := newHelpModel(&p.st, 0) // each group whole; the groups are laid out below
	var out []string
	// The notices in full (the header shows one line of each).
	for _, n := range p.notices.notices() {
		text := n.detail
		if text == "" {
			text = n.short
		}
		style := lipgloss.NewStyle()
		if p.width > 0 {
			style = style.Width(p.width)
		}
		out = append(out, strings.Split(style.Render(strings.TrimSpace(text)), "\n")...)
	}
	if len(out) > 0 {
		out = append(out, "")
	}
	out = append(out, p.st.title.Render("Keys")+p.st.dim.Render("  (? or esc closes)"), "")
	// Key groups side by side, as many as fit, then the next row: every key
	// is shown at 80 columns too.
	var row []string
	rowW := 0
	flush := func() {
		if len(row) > 0 {
			out = append(out, strings.Split(lipgloss.JoinHorizontal(lipgloss.Top, row...), "\n")...)
			row, rowW = nil, 0
		}
	}
	var rest [][]key.Binding // groups that did not fit beside the others
	for _, g := range p.keyMap.FullHelp() {
		col := h.FullHelpView([][]key.Binding{g}) + "    "
		w := lipgloss.Width(col)
		if rowW > 0 && rowW+w > p.width {
			rest = append(rest, g)
			continue
		}
		row = append(row, col)
		rowW += w
	}
	flush()
	// The rest as compact lines of a few keys each (a narrow terminal has
	// no height to spare either).
	for _, g := range rest {
		for len(g) > 0 {
			n := min(4, len(g))
			out = append(out, h.ShortHelpView(g[:n]))
			g = g[n:]
		}
	}
	out = append(out, "")
	// Word-wrapped to the terminal, so that nothing of it is cut.
	wrap := p.st.dim.Style()
	if p.width > 0 {
		wrap = wrap.Width(p.width)
	}
	out = append(out, strings.Split(wrap.Render("Filter language: tcp udp icmp ipv4 ipv6, [src|dst] host/net/port, "+
		"state NEW,ESTABLISHED,..., mark N, zone N, assured, unreplied; and/or/not, ( )"), "\n")...)
	out = append(out, p.st.dim.Render("Example: tcp and dport 443 and not state TIME_WAIT"))
	if len(out) > n {
		out = out[:n]
	}
	return out
}
