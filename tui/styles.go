package tui

import (
	"charm.land/lipgloss/v2"
)

// styles are the Model's look, fixed at New from Options.ASCII and
// Options.NoColor. Colours are given in 256-colour numbers; Bubble Tea
// downsamples them to 16 colours or none for the terminal at hand.
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

func newStyles(ascii, noColor bool) styles {
	s := styles{ascii: ascii, arrow: "→", ellipsis: "…", hline: "─", up: "▲", down: "▼"}
	if ascii {
		s.arrow, s.ellipsis, s.hline, s.up, s.down = ">", "~", "-", "^", "v"
	}
	fg := func(c string) lipgloss.Style {
		st := lipgloss.NewStyle()
		if !noColor {
			st = st.Foreground(lipgloss.Color(c))
		}
		return st
	}
	s.title = fg("39").Bold(true)
	s.dim = lipgloss.NewStyle().Faint(true)
	s.bold = lipgloss.NewStyle().Bold(true)
	s.sel = lipgloss.NewStyle().Reverse(true)
	s.colHead = fg("244").Bold(true).Underline(true)
	s.errText = fg("196").Bold(true)
	s.warn = fg("214").Bold(true)
	s.loud = lipgloss.NewStyle().Bold(true).Reverse(true)
	if !noColor {
		s.loud = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("231")).Background(lipgloss.Color("160"))
	}
	s.ok = fg("42")
	s.key = fg("39").Bold(true)
	s.notice = fg("214")
	s.state = [3]lipgloss.Style{fg("214"), fg("42"), fg("141")}
	s.evNew = fg("42")
	s.evUpdate = fg("39")
	s.evDestroy = fg("203")
	s.evResync = fg("214").Bold(true)
	s.gaugeOK = fg("42")
	s.gaugeWarn = fg("214")
	s.gaugeCrit = fg("196").Bold(true)
	s.gaugeEmpty = fg("240")
	s.destroyed = lipgloss.NewStyle().Faint(true)
	return s
}
