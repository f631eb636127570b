package tui

import (
	"strings"

	tea "charm.land/bubbletea/v2"
	"github.com/conntop/conntop/internal/termsafe"
)

// lineEdit is a one-line text editor (filter, port, export path). It is
// deliberately small: no blinking cursor, so frames are deterministic.
type lineEdit struct {
	buf []rune
	pos int
}

func (e *lineEdit) set(s string) {
	e.buf = []rune(s)
	e.pos = len(e.buf)
}

func (e *lineEdit) value() string { return string(e.buf) }

// handle applies an editing key; it reports whether the text changed.
func (e *lineEdit) handle(msg tea.KeyPressMsg) bool {
	switch msg.Keystroke() {
	case "left", "ctrl+b":
		e.pos = max(0, e.pos-1)
	case "right", "ctrl+f":
		e.pos = min(len(e.buf), e.pos+1)
	case "home", "ctrl+a":
		e.pos = 0
	case "end", "ctrl+e":
		e.pos = len(e.buf)
	case "backspace", "ctrl+h":
		if e.pos > 0 {
			e.buf = append(e.buf[:e.pos-1], e.buf[e.pos:]...)
			e.pos--
			return true
		}
	case "delete", "ctrl+d":
		if e.pos < len(e.buf) {
			e.buf = append(e.buf[:e.pos], e.buf[e.pos+1:]...)
			return true
		}
	case "ctrl+u":
		if e.pos > 0 {
			e.buf = append([]rune(nil), e.buf[e.pos:]...)
			e.pos = 0
			return true
		}
	case "ctrl+k":
		if e.pos < len(e.buf) {
			e.buf = e.buf[:e.pos]
			return true
		}
	case "ctrl+w":
		i := e.pos
		for i > 0 && e.buf[i-1] == ' ' {
			i--
		}
		for i > 0 && e.buf[i-1] != ' ' {
			i--
		}
		if i < e.pos {
			e.buf = append(e.buf[:i], e.buf[e.pos:]...)
			e.pos = i
			return true
		}
	default:
		if msg.Text == "" || msg.Mod&(tea.ModCtrl|tea.ModAlt) != 0 {
			return false
		}
		rs := []rune(msg.Text)
		if len(e.buf)+len(rs) > 1024 {
			return false
		}
		e.buf = append(e.buf[:e.pos], append(rs, e.buf[e.pos:]...)...)
		e.pos += len(rs)
		return true
	}
	return false
}

// render draws the text with the cursor cell in reverse video.
func (e *lineEdit) render(st *styles) string {
	var b strings.Builder
	b.WriteString(termsafe.Escape(string(e.buf[:e.pos])))
	cur := " "
	if e.pos < len(e.buf) {
		cur = termsafe.Escape(string(e.buf[e.pos]))
	}
	b.WriteString(st.sel.Render(cur))
	if e.pos+1 < len(e.buf) {
		b.WriteString(termsafe.Escape(string(e.buf[e.pos+1:])))
	}
	return b.String()
}
