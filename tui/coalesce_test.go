package tui

import (
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
)

// TestKeyBurstCoalesced: keys typed ahead (a burst, as a slow SSH link
// delivers them) are answered by one read of the engine after the burst,
// not one per key, and the screen keeps its last frame meanwhile; without
// CoalesceKeys each key is answered at once.
func TestKeyBurstCoalesced(t *testing.T) {
	// send delivers keys as the program does, a frame after each, and
	// returns the commands and the last frame.
	send := func(m *Model, keys ...string) (cmds []tea.Cmd, frame string) {
		for _, k := range keys {
			if _, c := m.Update(press(k)); c != nil {
				cmds = append(cmds, c)
			}
			frame = m.View().Content
		}
		return cmds, frame
	}
	matched := func(m *Model) int { n, _ := m.table.matchedTotal(); return n }

	eng := newEngine(t, scenario())
	plain := New(eng, testOptions())
	plain.Update(tea.WindowSizeMsg{Width: 160, Height: 30})
	all := matched(plain)
	send(plain, "/", "u", "d", "p")
	want := matched(plain)
	if want == 0 || want >= all {
		t.Fatalf("filter udp matches %d of %d flows: the scenario cannot show the wait", want, all)
	}

	opts := testOptions()
	opts.CoalesceKeys = true
	m := New(eng, opts)
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 30})
	_, opened := send(m, "/") // the first key of the burst is answered at once
	cmds, frame := send(m, "u", "d", "p")
	if got := matched(m); got == want {
		t.Fatalf("the burst was answered before it ended: %d flows matched already", got)
	}
	if frame != opened {
		t.Errorf("during the burst the frame changed (a filter shown above rows read before it):\n%s", frame)
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
	if frame := m.View().Content; !strings.Contains(frame, "udp") {
		t.Errorf("after the burst the frame does not show the filter typed:\n%s", frame)
	}

	// A key long after the burst is answered at once.
	time.Sleep(2 * keyBurst)
	send(m, "ctrl+u")
	if got := matched(m); got != all {
		t.Errorf("a key after the burst (the filter cleared) was not answered at once: %d matched, want %d", got, all)
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
