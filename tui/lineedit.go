package tui

import (
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
)

// maxEditLen bounds what a line (filter, port, export path) may hold.
const maxEditLen = 1024

// lineEdit is the one-line editor of the filter bar (filter, port, export
// path): a bubbles textinput, its keys from its own KeyMap, with a steady
// cursor (no blinking), so frames are deterministic. Control characters
// never enter it (textinput sanitizes what is typed, pasted or set).
type lineEdit struct {
	ti textinput.Model
}

func newLineEdit() lineEdit {
	ti := textinput.New()
	ti.Prompt = ""
	ti.CharLimit = maxEditLen
	plain := lipgloss.NewStyle()
	st := textinput.Styles{
		Focused: textinput.StyleState{Text: plain, Prompt: plain, Placeholder: plain, Suggestion: plain},
		Blurred: textinput.StyleState{Text: plain, Prompt: plain, Placeholder: plain, Suggestion: plain},
		Cursor:  textinput.CursorStyle{Shape: tea.CursorBlock, Blink: false},
	}
	ti.SetStyles(st)
	ti.Focus()
	return lineEdit{ti: ti}
}

func (e *lineEdit) set(s string) {
	e.ti.SetValue(s)
	e.ti.CursorEnd()
}

func (e *lineEdit) value() string { return e.ti.Value() }

// handle applies an editing key or a paste; it reports whether the text
// changed.
func (e *lineEdit) handle(msg tea.Msg) bool {
	before := e.ti.Value()
	e.ti, _ = e.ti.Update(msg) // a steady cursor needs no blink commands
	return e.ti.Value() != before
}

// render draws the text with the cursor cell in reverse video.
func (e *lineEdit) render(*styles) string { return e.ti.View() }
