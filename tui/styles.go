package tui

import (
	"charm.land/lipgloss/v2"

	"github.com/conntop/conntop/tui/widget"
)

// styles are the Model's look, fixed at New from Options.ASCII and
// Options.NoColor, and chosen again for the background colour the terminal
// reports (dark until it answers). Colours are 256-colour numbers, one set
// for dark and one for light backgrounds; Bubble Tea downsamples them to
// 16 colours or none for the terminal at hand. No state is told apart by
// colour alone: every coloured state also has its name (NEW, EST, REL,
// [NEW], gone), a mark or reverse video. Each is a widget.Paint: the same
// bytes as lipgloss renders, without its per-call work on every frame.
type styles struct {
	ascii    bool
	arrow    string // orig → reply direction
	ellipsis string // one cell
	hline    string
	up, down string // sort direction marks

	title, dim, bold, sel, colHead, errText, warn, loud, ok, key, notice widget.Paint
	state                                                                [3]widget.Paint // by flow.State
	evNew, evUpdate, evDestroy, evResync                                 widget.Paint
	gaugeOK, gaugeWarn, gaugeCrit, gaugeEmpty                            widget.Paint
	destroyed                                                            widget.Paint
}

// palette is one background's colours.
type palette struct {
	accent, muted, err, warn, ok, related, empty, loudFG, loudBG string
}

var (
	darkPalette  = palette{accent: "39", muted: "244", err: "196", warn: "214", ok: "42", related: "141", empty: "240", loudFG: "231", loudBG: "160"}
	lightPalette = palette{accent: "25", muted: "242", err: "160", warn: "130", ok: "28", related: "91", empty: "250", loudFG: "231", loudBG: "124"}
)

func newStyles(ascii, noColor, dark bool) styles {
	s := styles{ascii: ascii, arrow: "→", ellipsis: "…", hline: "─", up: "▲", down: "▼"}
	if ascii {
		s.arrow, s.ellipsis, s.hline, s.up, s.down = ">", "~", "-", "^", "v"
	}
	p := lightPalette
	if dark {
		p = darkPalette
	}
	paint := widget.NewPaint
	fg := func(c string) lipgloss.Style {
		st := lipgloss.NewStyle()
		if !noColor {
			st = st.Foreground(lipgloss.Color(c))
		}
		return st
	}
	s.title = paint(fg(p.accent).Bold(true))
	s.dim = paint(lipgloss.NewStyle().Faint(true))
	s.bold = paint(lipgloss.NewStyle().Bold(true))
	s.sel = paint(lipgloss.NewStyle().Reverse(true))
	s.colHead = paint(fg(p.muted).Bold(true).Underline(true))
	s.errText = paint(fg(p.err).Bold(true))
	s.warn = paint(fg(p.warn).Bold(true))
	s.loud = paint(lipgloss.NewStyle().Bold(true).Reverse(true))
	if !noColor {
		s.loud = paint(lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color(p.loudFG)).Background(lipgloss.Color(p.loudBG)))
	}
	s.ok = paint(fg(p.ok))
	s.key = paint(fg(p.accent).Bold(true))
	s.notice = paint(fg(p.warn))
	s.state = [3]widget.Paint{paint(fg(p.warn)), paint(fg(p.ok)), paint(fg(p.related))}
	s.evNew = paint(fg(p.ok))
	s.evUpdate = paint(fg(p.accent))
	s.evDestroy = paint(fg(p.err))
	s.evResync = paint(fg(p.warn).Bold(true))
	s.gaugeOK = paint(fg(p.ok))
	s.gaugeWarn = paint(fg(p.warn))
	s.gaugeCrit = paint(fg(p.err).Bold(true))
	s.gaugeEmpty = paint(fg(p.empty))
	s.destroyed = paint(lipgloss.NewStyle().Faint(true))
	return s
}
