package tui

import (
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/conntop/conntop/internal/termsafe"
)

// statusFor is how long a status message stays.
const statusFor = 8 * time.Second

// footer is the last line: the status message of the last action (up to
// two lines, so that an error's end can be read), else the key hints of
// the KeyMap it is given.
type footer struct {
	*common
	hintKeys help.KeyMap

	text string
	err  bool
	at   time.Time

	// hints is the rendered key-hint line for hintsWidth columns: it only
	// changes with the width (or the palette).
	hints      string
	hintsWidth int
}

func newFooter(c *common, hintKeys help.KeyMap) *footer {
	return &footer{common: c, hintKeys: hintKeys}
}

// Update implements component: it takes status messages and, on each
// tick, drops a status older than statusFor.
func (f *footer) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case statusMsg:
		f.text, f.err, f.at = msg.text, msg.err, f.opts.Now()
	case tickMsg:
		if f.text != "" && f.opts.Now().Sub(f.at) > statusFor {
			f.text = ""
		}
	case tea.BackgroundColorMsg:
		f.hints = ""
	}
	return nil
}

// SetSize implements component; the footer takes the terminal's width.
func (f *footer) SetSize(int, int) {}

// height is the number of lines of the footer (as lines, without
// drawing them).
func (f *footer) height() int {
	if f.text != "" && f.w > 0 && f.h >= 12 && lipgloss.Width(termsafe.Escape(f.text)) > f.w {
		return 2
	}
	return 1
}

// lines is the footer's lines for the terminal's size.
func (f *footer) lines() []string {
	if f.text != "" {
		s := termsafe.Escape(f.text)
		style := f.st.ok
		if f.err {
			style = f.st.errText
		}
		if f.w > 0 && lipgloss.Width(s) > f.w && f.h >= 12 {
			first := ansi.Truncate(s, f.w, "")
			rest := ansi.TruncateLeft(s, lipgloss.Width(first), "")
			return []string{style.Render(first), style.Render(rest)}
		}
		return []string{style.Render(s)}
	}
	if f.hints == "" || f.hintsWidth != f.w {
		h := newHelpModel(&f.st, f.w)
		f.hints, f.hintsWidth = h.ShortHelpView(f.hintKeys.ShortHelp()), f.w
	}
	return []string{f.hints}
}

// View implements component.
func (f *footer) View() string {
	l := f.lines()
	return fitLines(l, f.w, len(l))
}

// ShortHelp implements help.KeyMap: the footer has no keys of its own.
func (f *footer) ShortHelp() []key.Binding { return nil }

// FullHelp implements help.KeyMap.
func (f *footer) FullHelp() [][]key.Binding { return nil }

// newHelpModel is a bubbles help model in the Model's styles.
func newHelpModel(st *styles, w int) help.Model {
	h := help.New()
	h.SetWidth(w)
	plain := lipgloss.NewStyle()
	h.Styles = help.Styles{
		Ellipsis: st.dim.Style(), ShortKey: st.key.Style(), ShortDesc: plain, ShortSeparator: st.dim.Style(),
		FullKey: st.key.Style(), FullDesc: plain, FullSeparator: st.dim.Style(),
	}
	if st.ascii {
		h.ShortSeparator = " | "
		h.Ellipsis = "..."
	}
	return h
}
