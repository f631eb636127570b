package tui

import (
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
)

// TestKeyBurstCoalesced: keys typed ahead (a burst, as a slow SSH link
// delivers them) are answered by one read of the engine after the burst,
// not one per key; without CoalesceKeys each key is answered at once.
func TestKeyBurstCoalesced(t *testing.T) {
	typeFilter := func(m *Model) (cmds []tea.Cmd) {
		m.Update(tea.WindowSizeMsg{Width: 160, Height: 30})
		for _, k := range []string{"/", "u", "d", "p"} {
			if _, c := m.Update(press(k)); c != nil {
				cmds = append(cmds, c)
			}
		}
		return cmds
	}
	matched := func(m *Model) int { n, _ := m.table.matchedTotal(); return n }

	eng := newEngine(t, scenario())
	plain := New(eng, testOptions())
	typeFilter(plain)
	want := matched(plain)
	all := New(eng, testOptions())
	all.Update(tea.WindowSizeMsg{Width: 160, Height: 30})
	if want == 0 || want >= matched(all) {
		t.Fatalf("filter udp matches %d of %d flows: the scenario cannot show the wait", want, matched(all))
	}

	opts := testOptions()
	opts.CoalesceKeys = true
	m := New(eng, opts)
	cmds := typeFilter(m)
	if got := matched(m); got == want {
		t.Fatalf("the burst was answered before it ended: %d flows matched already", got)
	}
	// The burst ends: the model's wait ends with a burstEndMsg.
	time.Sleep(2 * keyBurst)
	ended := false
	for _, c := range cmds {
		for _, msg := range flatten(c) {
			if _, ok := msg.(burstEndMsg); ok {
				ended = true
				m.Update(msg)
			}
		}
	}
	if !ended {
		t.Fatal("no burstEndMsg among the commands of the burst")
	}
	if got := matched(m); got != want {
		t.Errorf("after the burst: %d flows matched, want %d", got, want)
	}

	// A key long after the burst is answered at once.
	time.Sleep(2 * keyBurst)
	m.Update(press("ctrl+u"))
	if got := matched(m); got != matched(all) {
		t.Errorf("a key after the burst (the filter cleared) was not answered at once: %d matched, want %d", got, matched(all))
	}
}

// flatten runs cmd and the commands of any batch it returns, for the
// messages they produce; ticks are waited for.
func flatten(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	switch msg := cmd().(type) {
	case tea.BatchMsg:
		var out []tea.Msg
		for _, c := range msg {
			out = append(out, flatten(c)...)
		}
		return out
	case nil:
		return nil
	default:
		return []tea.Msg{msg}
	}
}
