package tui

import (
	"charm.land/bubbles/v2/key"
)

// keyMap holds every binding, in common for all components, as
// soft-serve's keymap: each component's help.KeyMap lists the bindings it
// handles, and the root assembles the footer and the help page from those.
type keyMap struct {
	Quit, Help, Back                      key.Binding
	Up, Down, PageUp, PageDown, Home, End key.Binding
	Follow                                key.Binding
	Detail, Master                        key.Binding
	TableView, TransView, GroupView, Next key.Binding
	SortNext, SortPrev, Reverse           key.Binding
	Filter, ClearFilter, PortFilter       key.Binding
	ToggleNew, ToggleEst, ToggleRel       key.Binding
	ToggleTCP, ToggleUDP, ToggleICMP      key.Binding
	PortNames, Pause                      key.Binding
	Export, Delete, DeleteAll             key.Binding
	GroupNext, GroupPrev                  key.Binding
	// In the filter bar and the delete question.
	Accept, Cancel, ForceQuit, NextFormat, Confirm key.Binding
	PressureView                                   key.Binding
	// In the pressure view.
	WhatIf key.Binding
}

func newKeyMap(ascii bool) keyMap {
	b := func(help, desc string, keys ...string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	up, down, left, right := "↑/k", "↓/j", "←/h", "→/l"
	if ascii {
		up, down, left, right = "up/k", "down/j", "left/h", "right/l"
	}
	return keyMap{
		Quit:         b("q", "quit", "q", "ctrl+c"),
		Help:         b("?", "help", "?"),
		Back:         b("esc", "back", "esc"),
		Up:           b(up, "up", "up", "k"),
		Down:         b(down, "down", "down", "j"),
		PageUp:       b("pgup", "page up", "pgup", "ctrl+b"),
		PageDown:     b("pgdn", "page down", "pgdown", "ctrl+f", "space"),
		Home:         b("home", "first row", "home"),
		End:          b("end", "last row", "end", "G"),
		Follow:       b("f", "follow newest", "f"),
		Detail:       b("enter", "detail / apply", "enter"),
		Master:       b("m", "jump to master", "m"),
		TableView:    b("1", "flow table", "1"),
		TransView:    b("2/t", "transitions", "2", "t"),
		GroupView:    b("3/g", "group by", "3", "g"),
		Next:         b("tab", "next view", "tab"),
		SortNext:     b(">", "sort next column", ">", "."),
		SortPrev:     b("<", "sort previous column", "<", ","),
		Reverse:      b("r", "reverse sort", "r"),
		Filter:       b("/", "filter", "/"),
		ClearFilter:  b("c", "clear filters", "c"),
		PortFilter:   b(":", "port filter", ":"),
		ToggleNew:    b("N", "only NEW", "N"),
		ToggleEst:    b("E", "only ESTABLISHED", "E"),
		ToggleRel:    b("R", "only RELATED", "R"),
		ToggleTCP:    b("T", "only tcp", "T"),
		ToggleUDP:    b("U", "only udp", "U"),
		ToggleICMP:   b("I", "only icmp", "I"),
		PortNames:    b("P", "port names", "P"),
		Pause:        b("p", "pause", "p"),
		Export:       b("x", "export", "x"),
		Delete:       b("d", "delete flow", "d"),
		DeleteAll:    b("D", "delete matching", "D"),
		GroupNext:    b(right, "next grouping", "right", "l"),
		GroupPrev:    b(left, "previous grouping", "left", "h"),
		Accept:       b("enter", "apply", "enter"),
		Cancel:       b("esc", "cancel", "esc"),
		ForceQuit:    b("ctrl+c", "quit", "ctrl+c"),
		NextFormat:   b("tab", "json/csv", "tab"),
		Confirm:      b("y", "yes", "y", "Y"),
		PressureView: b("4/e", "pressure", "4", "e"),
		WhatIf:       b("w", "what-if value", "w"),
	}
}
