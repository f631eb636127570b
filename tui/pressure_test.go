package tui

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/conntop/conntop/internal/explain"
)

// pressureHooks are fixed kernel settings for the pressure view's tests.
func pressureHooks() explain.Hooks {
	return explain.Hooks{
		Settings: func() explain.Settings {
			s := explain.Settings{Max: 8, Buckets: 16, Timeouts: map[string]uint32{}, EntryBytes: 256,
				EntryBytesFrom: "/proc/slabinfo", CommandPrefix: "ip netns exec lab "}
			for _, to := range explain.TimeoutSysctls {
				s.Timeouts[to.Name] = to.Default
			}
			s.Timeouts[explain.SysUDP] = 300 // raised: lowering it frees the DNS flow
			return s
		},
		SyncedAt: func() time.Time { return t0.Add(-60 * time.Second) },
	}
}

// TestPressureGolden opens the pressure view ("e") of a full, dropping
// table through Bubble Tea at 80x24 and 200x50, with a fixed clock, and
// compares the screen with testdata/TestPressureGolden/*.golden
// (regenerate with -update).
func TestPressureGolden(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {200, 50}} {
		for _, keys := range [][]string{{"e"}, {"4", "pgdown"}, {"e", "w", "4"}, {"e", "w", "4", "5", "enter"}} {
			name := fmt.Sprintf("%s_%dx%d", strings.Join(keys, "_"), size[0], size[1])
			t.Run(name, func(t *testing.T) {
				eng := newEngine(t, append(scenario(), pressure()...))
				opts := testOptions()
				opts.Explain = pressureHooks()
				m := New(eng, opts)
				tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(size[0], size[1]))
				teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("[e] why?")) },
					teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(5*time.Millisecond))
				for _, k := range keys[:1] {
					tm.Send(press(k))
				}
				teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("CLASS")) },
					teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(5*time.Millisecond))
				for _, k := range keys[1:] {
					tm.Send(press(k))
				}
				if err := tm.Quit(); err != nil {
					t.Fatal(err)
				}
				fm := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
				fm.dirty = true
				out := ansi.Strip(fm.View().Content)
				checkFits(t, out, size[0], size[1], keys)
				golden.RequireEqual(t, out+"\n")
			})
		}
	}
}

// TestPressureHint: the header points at the pressure view when the table
// is above 80 % or dropping, not otherwise.
func TestPressureHint(t *testing.T) {
	full := newEngine(t, append(scenario(), pressure()...))
	opts := testOptions()
	if out := drive(t, New(full, opts), 120, 30); !strings.Contains(ansi.Strip(out), "[e] why?") {
		t.Errorf("a full, dropping table has no hint:\n%s", ansi.Strip(out))
	}
	evs := scenario()
	evs[0].Stats.Max, evs[len(evs)-2].Stats.Max = 100, 100 // 7 of 100
	calm := newEngine(t, evs)
	if out := drive(t, New(calm, opts), 120, 30); strings.Contains(ansi.Strip(out), "[e] why?") {
		t.Errorf("a calm table shows the hint:\n%s", ansi.Strip(out))
	}
}

// TestPressureLinesNarrow renders a report at widths down to 1 without
// panicking, every line within the frame once cut.
func TestPressureLinesNarrow(t *testing.T) {
	eng := newEngine(t, append(scenario(), pressure()...))
	r := explain.FromEngine(eng, pressureHooks(), explain.Options{WhatIf: map[string]uint32{"": 5}})
	st := newStyles(false, true, true)
	for _, w := range []int{1, 10, 40, 80, 300} {
		lines := PressureLines(r, w, &st)
		if len(lines) < 10 {
			t.Errorf("width %d: only %d lines", w, len(lines))
		}
	}
	m := New(eng, testOptions())
	for _, size := range [][2]int{{1, 1}, {20, 5}, {80, 24}} {
		m.Update(PressureMsg{Report: r})
		out := drive(t, m, size[0], size[1], "e", "down", "down", "pgdown", "home")
		checkFits(t, out, size[0], size[1], []string{"e"})
	}
}

// TestPressureWhatIf types a what-if value (w) into the pressure view: the
// report shown is made again from the same analysis with the value, a bad
// value is refused with the input kept open, esc keeps the value, and a
// report that was asked for before the value was typed gets it too.
func TestPressureWhatIf(t *testing.T) {
	eng := newEngine(t, append(scenario(), pressure()...))
	opts := testOptions()
	opts.Explain = pressureHooks()
	m := New(eng, opts)
	a, in := explain.AnalyzeEngine(eng, opts.Explain, explain.Options{})
	drive(t, m, 120, 40, "e")
	m.Update(PressureMsg{Report: a.Report(in), Analysis: a, Input: in})
	userValue := func() (uint32, int, bool) {
		for _, c := range m.pressure.report.Classes {
			if c.Sysctl != explain.SysUDP {
				continue
			}
			for _, w := range c.WhatIf {
				if w.Label == "user" {
					return w.Value, w.FreedNow, true
				}
			}
		}
		return 0, 0, false
	}
	if _, _, ok := userValue(); ok {
		t.Fatal("a user what-if before anything was typed")
	}
	out := ansi.Strip(drive(t, m, 120, 40, "w", "4", "5"))
	if !m.pressure.typing || !strings.Contains(out, "what-if timeout") || !strings.Contains(out, "45") {
		t.Fatalf("the what-if input is not open with 45:\n%s", out)
	}
	out = ansi.Strip(drive(t, m, 120, 40, "enter"))
	if v, freed, ok := userValue(); !ok || v != 45 || freed != 1 {
		t.Fatalf("user what-if %d (frees %d, found %v), want 45 freeing the DNS flow:\n%s", v, freed, ok, out)
	}
	if m.pressure.analysis != a || m.pressure.typing || !strings.Contains(out, "45s:1/1") || !strings.Contains(out, "your what-if: 45") {
		t.Errorf("not reported again from the same analysis, or not shown:\n%s", out)
	}

	// A bad value: refused, the input stays open, the value stays.
	out = ansi.Strip(drive(t, m, 120, 40, "w", "ctrl+u", "x", "enter"))
	if !m.pressure.typing || !m.footer.err || !strings.Contains(out, "not a number") {
		t.Errorf("a bad value should be refused with the input open:\n%s", out)
	}
	drive(t, m, 120, 40, "esc")
	if v, _, ok := userValue(); m.pressure.typing || !ok || v != 45 {
		t.Errorf("esc should keep 45: typing %v value %d", m.pressure.typing, v)
	}

	// A report asked for before the value: reported again with it.
	m.Update(PressureMsg{Report: a.Report(in), Analysis: a, Input: in})
	if v, _, ok := userValue(); !ok || v != 45 {
		t.Errorf("a late report lost the user value: %d %v", v, ok)
	}
	if got := m.pressure.in.WhatIf[""]; got != 45 {
		t.Errorf("the next reports would not ask for 45: %v", m.pressure.in.WhatIf)
	}

	// Empty clears it.
	drive(t, m, 120, 40, "w", "ctrl+u", "enter")
	if _, _, ok := userValue(); ok || m.pressure.whatIf != nil {
		t.Error("an empty value should clear the user what-if")
	}
}
