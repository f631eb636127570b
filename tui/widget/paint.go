package widget

import (
	"strings"

	"charm.land/lipgloss/v2"
)

// Paint renders one line of text in a lipgloss style, byte for byte as
// the style's Render does, for the lines and cells drawn on every frame.
// A style whose rendering is a fixed escape sequence before the text and a
// reset after it (a colour, bold, faint, reverse) is applied by joining
// the three: Render measures, splits and pads the text on every call,
// which cost a viewer's frame more than its rows' formatting. Other
// styles (underline, which lipgloss applies rune by rune) and text Render
// would change (tabs, line breaks, escape sequences) go through Render;
// such a Paint keeps its last line and rendering (the flow table's
// underlined column titles, the same on most frames). Copies of a Paint
// share that line, so a Paint belongs to one goroutine (a TUI model).
type Paint struct {
	style     lipgloss.Style
	pre, post string
	fixed     bool          // pre+text+post is what Render gives
	last      *renderedLine // not fixed: the last text rendered and its rendering
}

// renderedLine is a line of text and its rendering.
type renderedLine struct{ text, out string }

// paintProbes are texts whose rendering tells a fixed style: the first
// gives the sequences around it, the others must be wrapped the same way
// (spaces, which lipgloss styles apart for underline, and wide runes).
var paintProbes = [...]string{"x", "a b  c", " lead", "trail ", "…▲ 中文 x"}

// NewPaint returns the Paint of style s.
func NewPaint(s lipgloss.Style) Paint {
	p := Paint{style: s}
	pre, post, ok := strings.Cut(s.Render(paintProbes[0]), paintProbes[0])
	for _, probe := range paintProbes[1:] {
		if s.Render(probe) != pre+probe+post {
			ok = false
		}
	}
	if !ok {
		p.last = &renderedLine{}
		return p
	}
	p.pre, p.post, p.fixed = pre, post, true
	return p
}

// Render returns s in the style, as lipgloss.Style.Render(s) would.
func (p Paint) Render(s string) string {
	switch {
	case p.last != nil:
		if l := p.last; l.text != s || l.out == "" {
			l.text, l.out = s, p.style.Render(s)
		}
		return p.last.out
	case s == "" || hasControl(s):
		return p.style.Render(s)
	}
	return p.pre + s + p.post // one allocation, none when pre and post are empty
}

// hasControl reports whether s holds a control character (an escape
// sequence, a tab, a line break), which Render may rewrite.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// Style returns the lipgloss style painted, for components that take one.
func (p Paint) Style() lipgloss.Style { return p.style }
