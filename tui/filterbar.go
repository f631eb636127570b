package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/termsafe"
	"github.com/conntop/conntop/tui/widget"
)

// barMode says what the filter bar is doing.
type barMode uint8

const (
	barIdle   barMode = iota // showing the filter in use
	barFilter                // editing the filter expression
	barPort                  // editing the port of the quick filter
)

// quickFilter holds the quick toggles, combined with the typed filter.
type quickFilter struct {
	states [3]bool // NEW, ESTABLISHED, RELATED
	protos [3]bool // tcp, udp, icmp (with icmpv6)
	port   string
}

// tableStatus is what the filter bar shows of the table on its right.
type tableStatus interface {
	// matchedTotal is how many flows match the filter, of how many.
	matchedTotal() (matched, total int)
	// sortStatus is the sort and follow marks ("  sort age ▲  FOLLOW").
	sortStatus() string
}

// filterBar is the line under the header: the filter in use with how many
// flows it shows, or, while editing, the filter expression (live preview,
// errors with a caret) or the port of the quick filter, in a bubbles
// textinput. It owns common.filter: the typed expression combined with
// the quick toggles.
type filterBar struct {
	*common
	table tableStatus
	width int

	mode       barMode
	edit       lineEdit
	typed      string
	quick      quickFilter
	filterErr  *filter.SyntaxError
	otherErr   string
	savedTyped string // the typed filter before the line was opened

	bindings []key.Binding // the keys that open or toggle the filter
}

func newFilterBar(c *common, table tableStatus) *filterBar {
	k := &c.keys
	b := &filterBar{common: c, table: table, edit: newLineEdit(),
		bindings: []key.Binding{k.Filter, k.ClearFilter, k.PortFilter, k.ToggleNew, k.ToggleEst, k.ToggleRel,
			k.ToggleTCP, k.ToggleUDP, k.ToggleICMP}}
	if f, err := filter.Parse(c.opts.Filter); err != nil {
		b.setFilterErr(err)
	} else {
		b.typed = c.opts.Filter
		b.setFilter(f)
	}
	return b
}

// ShortHelp implements help.KeyMap.
func (b *filterBar) ShortHelp() []key.Binding { return b.bindings[:1] }

// FullHelp implements help.KeyMap.
func (b *filterBar) FullHelp() [][]key.Binding { return [][]key.Binding{b.bindings} }

// editing reports whether the bar has the keys (a line is open).
func (b *filterBar) editing() bool { return b.mode != barIdle }

// SetSize implements component.
func (b *filterBar) SetSize(w, _ int) { b.width = w }

// height is the number of lines of the bar: two while an error of the
// filter being typed is shown under it.
func (b *filterBar) height() int {
	if b.mode == barFilter && (b.filterErr != nil || b.otherErr != "") {
		return 2
	}
	return 1
}

// Update implements component: the keys of its KeyMap, and while a line is
// open every key and paste.
func (b *filterBar) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.PasteMsg:
		if b.edit.handle(msg) && b.mode == barFilter {
			b.applyTyped(b.edit.value())
		}
	case tea.KeyPressMsg:
		switch b.mode {
		case barFilter:
			return b.keyFilter(msg)
		case barPort:
			return b.keyPort(msg)
		}
		b.keyIdle(msg)
	}
	return nil
}

func (b *filterBar) keyIdle(msg tea.KeyPressMsg) {
	k := &b.keys
	switch {
	case key.Matches(msg, k.Filter):
		b.mode = barFilter
		b.savedTyped = b.typed
		b.edit.set(b.typed)
	case key.Matches(msg, k.PortFilter):
		b.mode = barPort
		b.edit.set(b.quick.port)
	case key.Matches(msg, k.ClearFilter):
		b.quick = quickFilter{}
		b.applyTyped("")
	case key.Matches(msg, k.ToggleNew, k.ToggleEst, k.ToggleRel):
		for i, t := range []key.Binding{k.ToggleNew, k.ToggleEst, k.ToggleRel} {
			if key.Matches(msg, t) {
				b.quick.states[i] = !b.quick.states[i]
			}
		}
		b.applyTyped(b.typed)
	case key.Matches(msg, k.ToggleTCP, k.ToggleUDP, k.ToggleICMP):
		for i, t := range []key.Binding{k.ToggleTCP, k.ToggleUDP, k.ToggleICMP} {
			if key.Matches(msg, t) {
				b.quick.protos[i] = !b.quick.protos[i]
			}
		}
		b.applyTyped(b.typed)
	}
}

func (b *filterBar) keyFilter(msg tea.KeyPressMsg) tea.Cmd {
	switch k := &b.keys; {
	case key.Matches(msg, k.Cancel):
		b.mode = barIdle
		b.applyTyped(b.savedTyped)
		b.filterErr, b.otherErr = nil, ""
		return nil
	case key.Matches(msg, k.Accept):
		if b.applyTyped(b.edit.value()) {
			b.mode = barIdle
			b.post(tableTopMsg{})
		}
		return nil
	case key.Matches(msg, k.ForceQuit):
		return tea.Quit
	}
	if b.edit.handle(msg) {
		// Live preview: apply when it parses, else keep the previous
		// filter and show where the error is.
		b.applyTyped(b.edit.value())
	}
	return nil
}

func (b *filterBar) keyPort(msg tea.KeyPressMsg) tea.Cmd {
	switch k := &b.keys; {
	case key.Matches(msg, k.Cancel):
		b.mode = barIdle
		return nil
	case key.Matches(msg, k.Accept):
		p := strings.TrimSpace(b.edit.value())
		if p != "" {
			if _, err := filter.Parse("port " + p); err != nil {
				b.setStatus(true, "bad port %q: %v", p, err)
				return nil
			}
		}
		b.quick.port = p
		b.applyTyped(b.typed)
		b.mode = barIdle
		return nil
	case key.Matches(msg, k.ForceQuit):
		return tea.Quit
	}
	b.edit.handle(msg)
	return nil
}

// setFilter puts f in use.
func (b *filterBar) setFilter(f *filter.Filter) {
	b.filter = f
	b.filterGen++
}

// setFilterErr records a filter error for display.
func (b *filterBar) setFilterErr(err error) {
	if se, ok := err.(*filter.SyntaxError); ok {
		b.filterErr = se
		b.otherErr = ""
		return
	}
	b.filterErr = nil
	b.otherErr = err.Error()
}

// combined returns the filter expression of typed plus the quick toggles.
func (b *filterBar) combined(typed string) string {
	var parts []string
	typed = strings.TrimSpace(typed)
	var st []string
	for i, on := range b.quick.states {
		if on {
			st = append(st, flow.State(i).String())
		}
	}
	if len(st) > 0 {
		parts = append(parts, "state "+strings.Join(st, ","))
	}
	var pr []string
	for i, on := range b.quick.protos {
		if on {
			pr = append(pr, [...]string{"tcp", "udp", "icmp or icmpv6"}[i])
		}
	}
	if len(pr) > 0 {
		p := strings.Join(pr, " or ")
		if len(pr) > 1 || b.quick.protos[2] {
			p = "(" + p + ")"
		}
		parts = append(parts, p)
	}
	if b.quick.port != "" {
		parts = append(parts, "port "+b.quick.port)
	}
	if typed != "" {
		if len(parts) > 0 {
			typed = "(" + typed + ")"
		}
		parts = append([]string{typed}, parts...)
	}
	return strings.Join(parts, " and ")
}

// applyTyped compiles typed plus the quick toggles; on error the filter in
// use stays and the error is shown.
func (b *filterBar) applyTyped(typed string) bool {
	if _, err := filter.Parse(typed); err != nil {
		b.setFilterErr(err)
		return false
	}
	f, err := filter.Parse(b.combined(typed))
	if err != nil {
		b.setFilterErr(err)
		return false
	}
	b.typed, b.filterErr, b.otherErr = typed, nil, ""
	b.setFilter(f)
	return true
}

// narrow adds expr to the typed filter (opening a group); it reports
// whether the result is in use.
func (b *filterBar) narrow(expr string) bool {
	typed := expr
	if t := strings.TrimSpace(b.typed); t != "" {
		typed = "(" + t + ") and " + expr
	}
	return b.applyTyped(typed)
}

// View implements component.
func (b *filterBar) View() string {
	l := b.lines()
	return fitLines(l, b.width, len(l))
}

func (b *filterBar) lines() []string {
	st := &b.st
	matched, total := b.table.matchedTotal()
	shown := fmt.Sprintf("shown %s / %s", widget.Count(uint64(matched)), widget.Count(uint64(total)))
	switch b.mode {
	case barFilter:
		l := st.key.Render("/") + " " + b.edit.render(st)
		l = padBetween(l, shown, b.width)
		if b.filterErr != nil {
			pos := min(len(b.filterErr.Expr), max(0, b.filterErr.Pos))
			col := 2 + lipgloss.Width(termsafe.Escape(b.filterErr.Expr[:pos]))
			caret := strings.Repeat(" ", col) + st.errText.Render("^ "+termsafe.Escape(b.filterErr.Error())+"  (previous filter kept)")
			return []string{l, caret}
		}
		if b.otherErr != "" {
			return []string{l, st.errText.Render("  " + termsafe.Escape(b.otherErr))}
		}
		return []string{l}
	case barPort:
		return []string{st.key.Render("port (N or N-M, empty clears): ") + b.edit.render(st)}
	}
	l := "filter: "
	if ft := b.filterText(); ft != "" {
		l += st.bold.Render(termsafe.Escape(ft))
	} else {
		l += st.dim.Render("none (/ to filter)")
	}
	if b.filterErr != nil {
		l += " " + st.errText.Render(termsafe.Escape(b.filterErr.Error()))
	}
	right := shown + b.table.sortStatus()
	if b.portNames {
		right += "  names"
	}
	return []string{padBetween(l, right, b.width)}
}

// tableTopMsg asks for the table from its first row (a new filter).
type tableTopMsg struct{}
