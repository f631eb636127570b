package tui

import (
	"reflect"
	"strings"
	"testing"

	"charm.land/bubbles/v2/key"
	"github.com/charmbracelet/x/ansi"
)

// TestKeyMapAssembled: the help page, assembled from the components'
// KeyMaps, lists every binding of the one keymap once, except the keys that
// only answer an open line or question.
func TestKeyMapAssembled(t *testing.T) {
	m := New(newEngine(t, scenario()), testOptions())
	inLine := map[string]bool{"Accept": true, "Cancel": true, "ForceQuit": true, "NextFormat": true, "Confirm": true}
	listed := map[string]int{}
	for _, g := range m.FullHelp() {
		for _, b := range g {
			listed[b.Help().Key+" "+b.Help().Desc]++
		}
	}
	v := reflect.ValueOf(m.keys)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		b := v.Field(i).Interface().(key.Binding)
		n := listed[b.Help().Key+" "+b.Help().Desc]
		switch {
		case inLine[name] && n != 0:
			t.Errorf("%s answers a question but is listed %d times", name, n)
		case !inLine[name] && n != 1:
			t.Errorf("%s (%v) is listed %d times in the help, want once", name, b.Keys(), n)
		}
	}
	for _, b := range m.ShortHelp() {
		if listed[b.Help().Key+" "+b.Help().Desc] == 0 {
			t.Errorf("footer hint %v is not on the help page", b.Keys())
		}
	}
}

// TestPagesAreComponents: every page is reached by its key, draws within
// the size it is given, and goes back to the table on esc.
func TestPagesAreComponents(t *testing.T) {
	eng := newEngine(t, append(scenario(), pressure()...))
	tests := []struct {
		key  string
		want pageID
		text string
	}{
		{"enter", pageDetail, "timeline"},
		{"t", pageTransitions, "events (like conntrack -E"},
		{"g", pageGroups, "GROUP"},
		{"e", pagePressure, "Pressure"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			m := New(eng, testOptions())
			out := ansi.Strip(drive(t, m, 100, 30, tt.key))
			if m.page != tt.want || !strings.Contains(out, tt.text) {
				t.Fatalf("page %d, want %d with %q:\n%s", m.page, tt.want, tt.text, out)
			}
			p := m.pages[m.page]
			p.SetSize(40, 5)
			checkFits(t, p.View(), 40, 5, []string{tt.key})
			if got := strings.Count(p.View(), "\n") + 1; got != 5 {
				t.Fatalf("page view of %d lines, want 5", got)
			}
			drive(t, m, 100, 30, "esc")
			if m.page != pageTable {
				t.Fatalf("esc: page %d", m.page)
			}
		})
	}
}
