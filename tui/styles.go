package tui

import (
	"charm.land/lipgloss/v2"
)

// styles are the Model's look, fixed at New from Options.ASCII and
// Options.NoColor, and chosen again for the background colour the terminal
// reports (dark until it answers). Colours are 256-colour numbers, one set
// for dark and one for light backgrounds; Bubble Tea downsamples them to
// 16 colours or none for the terminal at hand. No state is told apart by
// colour alone: every coloured state also has its name (NEW, EST, REL,
// [NEW], gone), a mark or reverse video.
type styles struct {
	ascii    bool
	arrow    string // orig → reply direction
	ellipsis string // one cell
	hline    string
	up, down string // sort direction marks

	title, dim, bold, sel, colHead, errText, warn, loud, ok, key, notice lipgloss.Style
	state                                                                [3]lipgloss.Style // by flow.State
	evNew, evUpdate, evDestroy, evResync                                 lipgloss.Style
	gaugeOK, gaugeWarn, gaugeCrit, gaugeEmpty                            lipgloss.Style
	destroyed                                                            lipgloss.Style
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
	fg := func(c string) lipgloss.Style {
		st := lipgloss.NewStyle()
		if !noColor {
			st = st.Foreground(lipgloss.Color(c))
		}
		return st
	}
	s.title = fg(p.accent).Bold(true)
	s.dim = lipgloss.NewStyle().Faint(true)
	s.bold = lipgloss.NewStyle().Bold(true)
	s.sel = lipgloss.NewStyle().Reverse(true)
	s.colHead = fg(p.muted).Bold(true).Underline(true)
	s.errText = fg(p.err).Bold(true)
	s.warn = fg(p.warn).Bold(true)
	s.loud = lipgloss.NewStyle().Bold(true).Reverse(true)
	if !noColor {
		s.loud = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color(p.loudFG)).Background(lipgloss.Color(p.loudBG))
	}
	s.ok = fg(p.ok)
	s.key = fg(p.accent).Bold(true)
	s.notice = fg(p.warn)
	s.state = [3]lipgloss.Style{fg(p.warn), fg(p.ok), fg(p.related)}
	s.evNew = fg(p.ok)
	s.evUpdate = fg(p.accent)
	s.evDestroy = fg(p.err)
	s.evResync = fg(p.warn).Bold(true)
	s.gaugeOK = fg(p.ok)
	s.gaugeWarn = fg(p.warn)
	s.gaugeCrit = fg(p.err).Bold(true)
	s.gaugeEmpty = fg(p.empty)
	s.destroyed = lipgloss.NewStyle().Faint(true)
	return s
}
