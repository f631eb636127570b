package tui

import (
	"context"
	"fmt"
	"image/color"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/source/sourcetest"
)

// TestTinySizes renders every page and mode at sizes down to 0x0: no
// panic, and never more lines or columns than the terminal has.
func TestTinySizes(t *testing.T) {
	eng := newEngine(t, append(scenario(), pressure()...))
	pages := [][]string{nil, {"enter"}, {"t"}, {"g"}, {"?"}, {"/", "x", "("}, {"x"}, {":"}}
	for _, keys := range pages {
		for w := 0; w <= 12; w++ {
			for h := 0; h <= 8; h++ {
				m := New(eng, testOptions())
				out := drive(t, m, w, h, keys...)
				checkFits(t, out, w, h, keys)
			}
		}
		for _, sz := range [][2]int{{1, 1}, {20, 3}, {40, 10}, {79, 23}, {300, 100}} {
			m := New(eng, testOptions())
			checkFits(t, drive(t, m, sz[0], sz[1], keys...), sz[0], sz[1], keys)
			// And shrinking a live model.
			checkFits(t, drive(t, m, 1, 1), 1, 1, keys)
			checkFits(t, drive(t, m, 0, 0), 0, 0, keys)
		}
	}
}

func checkFits(t *testing.T, out string, w, h int, keys []string) {
	t.Helper()
	if w == 0 || h == 0 {
		if out != "" {
			t.Fatalf("%dx%d %v: non-empty frame %q", w, h, keys, out)
		}
		return
	}
	lines := strings.Split(out, "\n")
	if len(lines) > h {
		t.Fatalf("%dx%d %v: %d lines", w, h, keys, len(lines))
	}
	for _, l := range lines {
		if lw := ansi.StringWidth(l); lw > w {
			t.Fatalf("%dx%d %v: line of width %d: %q", w, h, keys, lw, ansi.Strip(l))
		}
	}
}

// TestColorModes checks NoColor (no colour escapes at all), colour (some),
// and ASCII (no non-ASCII runes in the frame).
func TestColorModes(t *testing.T) {
	eng := newEngine(t, append(scenario(), pressure()...))
	tests := []struct {
		name      string
		noColor   bool
		ascii     bool
		wantColor bool
	}{
		{"color", false, false, true},
		{"no color", true, false, false},
		{"ascii no color", true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions()
			o.NoColor, o.ASCII = tt.noColor, tt.ascii
			for _, keys := range [][]string{nil, {"t"}, {"g"}, {"enter"}} {
				out := drive(t, New(eng, o), 200, 50, keys...)
				hasColor := strings.Contains(out, "[38;") || strings.Contains(out, "[48;")
				if hasColor != tt.wantColor {
					t.Fatalf("%v: colour escapes present = %v, want %v", keys, hasColor, tt.wantColor)
				}
				if tt.ascii {
					plain := ansi.Strip(out)
					for i, r := range plain {
						if r >= utf8.RuneSelf {
							t.Fatalf("%v: non-ASCII %q at %d in ASCII mode", keys, r, i)
						}
					}
				}
			}
		})
	}
}

// TestSelectionFollowsFlow: when a flow sorted before the selected one
// appears, the selection stays on the same flow.
func TestSelectionFollowsFlow(t *testing.T) {
	eng := newEngine(t, scenario())
	o := testOptions()
	m := New(eng, o)
	drive(t, m, 120, 30, ">", ">", ">", ">") // sort by source address
	drive(t, m, 120, 30, "down", "down")
	idx := m.table.selIdx
	before, ok := m.table.selectedRow()
	if !ok {
		t.Fatal("no selection")
	}
	early := tcpFlow(99, "10.0.0.0", 1, "10.0.0.2", 80, flow.TCPSynSent, 0)
	eng.Apply([]flow.Event{{Type: flow.EventNew, Time: t0, Flow: early}})
	m.Update(tickMsg(t0))
	after, ok := m.table.selectedRow()
	if !ok || after.Flow.Key() != before.Flow.Key() {
		t.Fatalf("selection moved from %v to %v", before.Flow.Orig, after.Flow.Orig)
	}
	if m.table.selIdx != idx+1 {
		t.Fatalf("selected index %d, want %d (one flow sorted in before it)", m.table.selIdx, idx+1)
	}
}

// TestPauseCatchesUp: while paused the frame does not change though the
// engine does; on resume it shows the new state.
func TestPauseCatchesUp(t *testing.T) {
	eng := newEngine(t, scenario())
	m := New(eng, testOptions())
	drive(t, m, 120, 30, "p")
	frame := m.View().Content
	if !strings.Contains(frame, "PAUSED") || !strings.Contains(ansi.Strip(frame), "shown 7 / 7") {
		t.Fatalf("paused frame:\n%s", ansi.Strip(frame))
	}
	extra := tcpFlow(99, "10.0.0.9", 1, "10.0.0.2", 80, flow.TCPSynSent, 0)
	eng.Apply([]flow.Event{{Type: flow.EventNew, Time: t0, Flow: extra}})
	m.Update(tickMsg(t0))
	if got := m.View().Content; got != frame {
		t.Fatal("the frame changed while paused")
	}
	drive(t, m, 120, 30, "p")
	if got := ansi.Strip(m.View().Content); !strings.Contains(got, "shown 8 / 8") || !strings.Contains(got, "10.0.0.9:1") {
		t.Fatalf("after resume:\n%s", got)
	}
}

// TestFrameReuse: a tick with no change in the engine reuses the frame; so
// does a tick after an engine change that the table does not show, until
// the header's second is up; a change the table shows, or the header's
// next second, marks the frame dirty.
func TestFrameReuse(t *testing.T) {
	eng := newEngine(t, scenario())
	o := testOptions()
	clock := t0
	o.Now = func() time.Time { return clock }
	m := New(eng, o)
	drive(t, m, 120, 30)
	m.Update(tickMsg(t0))
	_ = m.View()
	m.Update(tickMsg(t0))
	if m.dirty {
		t.Fatal("an idle tick marked the frame dirty")
	}
	eng.Tick(t0)
	m.Update(tickMsg(t0))
	if m.dirty {
		t.Fatal("an engine tick that changed nothing shown marked the frame dirty within the header's second")
	}
	clock = clock.Add(time.Second)
	m.Update(tickMsg(clock))
	if !m.dirty {
		t.Fatal("the header's figures were not refreshed a second later")
	}
	_ = m.View()
	extra := tcpFlow(99, "10.0.0.9", 1, "10.0.0.2", 80, flow.TCPSynSent, 0)
	eng.Apply([]flow.Event{{Type: flow.EventNew, Time: t0, Flow: extra}})
	m.Update(tickMsg(clock))
	if !m.dirty || !strings.Contains(ansi.Strip(m.View().Content), "10.0.0.9:1") {
		t.Fatal("a new flow in the table did not reach the frame")
	}
}

// TestFilterKeepsPrevious: a bad filter leaves the previous one in use;
// Esc restores the filter from before the line was opened.
func TestFilterKeepsPrevious(t *testing.T) {
	eng := newEngine(t, scenario())
	m := New(eng, testOptions())
	drive(t, m, 120, 30, "/", "u", "d", "p", "enter")
	if m.filterText() != "udp" || m.table.res.Matched != 1 {
		t.Fatalf("filter %q matched %d", m.filterText(), m.table.res.Matched)
	}
	drive(t, m, 120, 30, "/", " ", "a", "n", "d", " ", "(", "enter")
	if m.bar.mode != barFilter || m.bar.filterErr == nil || m.filterText() != "udp" || m.table.res.Matched != 1 {
		t.Fatalf("after a bad filter: mode %d err %v filter %q matched %d", m.bar.mode, m.bar.filterErr, m.filterText(), m.table.res.Matched)
	}
	drive(t, m, 120, 30, "esc")
	if m.bar.mode != barIdle || m.filterText() != "udp" {
		t.Fatalf("after esc: mode %d filter %q", m.bar.mode, m.filterText())
	}
	drive(t, m, 120, 30, "c")
	if m.filterText() != "" || m.table.res.Matched != 7 {
		t.Fatalf("after clear: filter %q matched %d", m.filterText(), m.table.res.Matched)
	}
	// A bad initial filter is reported, and everything is shown.
	m = New(eng, Options{Filter: "port", Now: testOptions().Now, NoProcs: true})
	out := ansi.Strip(drive(t, m, 120, 30))
	if !strings.Contains(out, "position") || m.table.res.Matched != 7 {
		t.Fatalf("bad initial filter:\n%s", out)
	}
}

// TestDelete runs deletes through a real engine and a Deleter source.
func TestDelete(t *testing.T) {
	f1 := tcpFlow(1, "10.0.0.1", 1000, "10.0.0.2", 80, flow.TCPEstablished, flow.StatusSeenReply)
	f2 := tcpFlow(2, "10.0.0.1", 1001, "10.0.0.2", 80, flow.TCPEstablished, flow.StatusSeenReply)
	f3 := tcpFlow(3, "10.0.0.1", 1002, "10.0.0.3", 443, flow.TCPEstablished, flow.StatusSeenReply)
	evs := []flow.Event{
		{Type: flow.EventNew, Time: t0, Flow: f1}, {Type: flow.EventNew, Time: t0, Flow: f2},
		{Type: flow.EventNew, Time: t0, Flow: f3}, {Type: flow.EventSynced, Time: t0},
	}
	src := sourcetest.New("test", evs, sourcetest.WithClock(func() time.Time { return t0 }))
	eng := engine.New(src, engine.Options{Now: func() time.Time { return t0 }, Tick: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, func() bool { return eng.Status().Synced })

	// Without --allow-delete: refused, nothing deleted.
	m := New(eng, testOptions())
	drive(t, m, 120, 30, "d")
	if m.actions.asking() || !strings.Contains(m.footer.text, "--allow-delete") {
		t.Fatalf("delete without AllowDelete: asking %v status %q", m.actions.asking(), m.footer.text)
	}

	o := testOptions()
	o.AllowDelete = true
	m = New(eng, o)
	drive(t, m, 120, 30, "/", dport80[0], dport80[1], dport80[2], dport80[3], dport80[4], dport80[5], dport80[6], dport80[7], "enter", "D")
	if m.actions.ask != askConfirm || m.actions.deleteCount != 2 {
		t.Fatalf("D: asking %d count %d", m.actions.ask, m.actions.deleteCount)
	}
	if !strings.Contains(ansi.Strip(m.View().Content), "delete 2 flows matching") {
		t.Fatalf("no confirmation shown:\n%s", ansi.Strip(m.View().Content))
	}
	_, cmd := m.Update(press("n"))
	if cmd != nil || len(src.Deleted()) != 0 {
		t.Fatal("answering n deleted something")
	}
	drive(t, m, 120, 30, "D")
	_, cmd = m.Update(press("y"))
	msg := runCmd(t, cmd)
	m.Update(msg)
	if dm, ok := msg.(DeleteDoneMsg); !ok || dm.Err != nil || dm.Deleted != 2 {
		t.Fatalf("delete result %#v", msg)
	}
	if got := src.Deleted(); len(got) != 2 || got[0].Orig.DstPort != 80 || got[1].Orig.DstPort != 80 {
		t.Fatalf("deleted %v", got)
	}
	waitFor(t, func() bool {
		n := 0
		eng.View(func(s *storeT) { n = s.Len() })
		return n == 1
	})
}

var dport80 = []string{"d", "p", "o", "r", "t", " ", "8", "0"}

// runCmd runs a command and its batch, returning the first message that is
// not a tick.
func runCmd(t *testing.T, cmd tea.Cmd) tea.Msg {
	t.Helper()
	if cmd == nil {
		t.Fatal("no command")
	}
	msg := cmd()
	if b, ok := msg.(tea.BatchMsg); ok {
		for _, c := range b {
			if c == nil {
				continue
			}
			if _, tick := c().(tickMsg); !tick {
				return runCmd(t, c)
			}
		}
		t.Fatal("only ticks in the batch")
	}
	return msg
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPortNames loads a services file and shows names instead of numbers.
func TestPortNames(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/services"
	if err := writeFile(path, "ftp 21/tcp\nssh 22/tcp\n"); err != nil {
		t.Fatal(err)
	}
	eng := newEngine(t, scenario())
	o := testOptions()
	o.ServicesFile = path
	m := New(eng, o)
	_, cmd := m.Update(press("P"))
	m.Update(runCmd(t, cmd))
	out := ansi.Strip(drive(t, m, 120, 30))
	if !strings.Contains(out, "10.0.0.2:ftp") || !strings.Contains(out, "[fd00::2]:ssh") {
		t.Fatalf("no port names:\n%s", out)
	}
	o.ServicesFile = dir + "/missing"
	m = New(eng, o)
	_, cmd = m.Update(press("P"))
	m.Update(runCmd(t, cmd))
	if m.portNames || !m.footer.err {
		t.Fatalf("missing services file: names %v status %q", m.portNames, m.footer.text)
	}
}

// TestEscapesHostileStrings: process names and helpers never reach the
// terminal raw.
func TestEscapesHostileStrings(t *testing.T) {
	eng := newEngine(t, scenario())
	m := New(eng, testOptions())
	m.procs[flow.Key{Proto: flow.ProtoTCP, Orig: flow.Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: 40000, DstPort: 21}}] =
		procAnswer{found: true}
	for _, keys := range [][]string{nil, {"enter"}} {
		out := drive(t, m, 200, 50, keys...)
		if strings.Contains(out, "\x1b[31m") {
			t.Fatalf("%v: raw escape from the kernel reached the frame", keys)
		}
	}
}

// Test80x24 is the terminal people open over SSH: with two notices in the
// header, at least 15 flow rows are shown, every IPv4 endpoint with its
// port in full, IPv6 shortened in the middle with its port, no header
// figure cut, and every notice on one line.
func Test80x24(t *testing.T) {
	eng := newEngine(t, wideScenario())
	eng.SetNotice(strings.Repeat("a long notice about the source that goes on and on ", 4))
	m := New(eng, testOptions())
	out := ansi.Strip(drive(t, m, 80, 24))
	lines := strings.Split(out, "\n")
	if len(lines) != 24 {
		t.Fatalf("%d lines", len(lines))
	}
	rows := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "EST ") || strings.HasPrefix(l, "NEW ") {
			rows++
		}
	}
	if rows < 15 {
		t.Fatalf("%d flow rows at 80x24, want at least 15:\n%s", rows, out)
	}
	for i := range m.table.res.Rows[:rows] {
		f := &m.table.res.Rows[i].Flow
		src, dst := f.Orig.Src.String(), f.Orig.Dst.String()
		sp, dp := ":"+strconv.Itoa(int(f.Orig.SrcPort)), ":"+strconv.Itoa(int(f.Orig.DstPort))
		if f.Family == flow.FamilyIPv6 {
			src, dst = "]", "]"
		}
		if !strings.Contains(out, src+sp+" ") || !strings.Contains(out, dst+dp+" ") {
			t.Errorf("row %d: %s%s or %s%s not in full:\n%s", i, src, sp, dst, dp, out)
		}
	}
	if !strings.Contains(out, "a long notice about the source that goes on and on a long") || !strings.Contains(out, "(? more)") {
		t.Errorf("the long notice is not shortened to one line:\n%s", out)
	}
	// The help page has it whole.
	help := ansi.Strip(drive(t, m, 80, 24, "?"))
	if strings.Count(help, "goes on and on") < 4 {
		t.Errorf("the help page lacks the whole notice:\n%s", help)
	}
}

// TestHeaderWrapsAtFields: big counters wrap at field boundaries; no line
// ends inside a number.
func TestHeaderWrapsAtFields(t *testing.T) {
	items := []item{{"drop 1,234,567 +12k/s", "drop 1,234,567 +12k/s", nil}, {"early_drop 7,654,321", "early 7,654,321", nil},
		{"insert_failed 99,999", "ins_fail 99,999", nil}, {"invalid 123,456,789", "inval 123,456,789", nil}, {"lost 1", "lost 1", nil}}
	lines := wrapItems(40, items)
	if len(lines) < 2 {
		t.Fatalf("no wrap: %q", lines)
	}
	for _, l := range lines {
		if len(l) > 40 {
			t.Fatalf("line longer than 40: %q", l)
		}
		for _, it := range items {
			if strings.Contains(l, strings.Fields(it.short)[0]+" ") && !strings.Contains(l, it.short) {
				t.Fatalf("item %q cut in %q", it.short, l)
			}
		}
	}
}

// TestPauseStillPicture: while paused, events change the engine but not
// the rows; moving the selection, sorting and filtering work on the
// frozen table; the header counts the changes waiting; resume catches up.
func TestPauseStillPicture(t *testing.T) {
	eng := newEngine(t, scenario())
	m := New(eng, testOptions())
	drive(t, m, 120, 30)
	_, cmd := m.Update(press("p"))
	m.Update(runCmd(t, cmd))
	if m.frozen == nil || len(m.frozen.rows) != 7 || m.frozen.partial {
		t.Fatalf("frozen: %v", m.frozen != nil)
	}
	before := ansi.Strip(m.View().Content)
	rowsBefore := tableLinesOf(before)

	// A new flow sorted first, an update and a destroy of shown flows.
	early := tcpFlow(99, "10.0.0.0", 1, "10.0.0.2", 80, flow.TCPSynSent, 0)
	gone := tcpFlow(1, "10.0.0.1", 40000, "10.0.0.2", 21, flow.TCPEstablished, flow.StatusSeenReply|flow.StatusAssured)
	eng.Apply([]flow.Event{
		{Type: flow.EventNew, Time: t0, Flow: early},
		{Type: flow.EventDestroy, Time: t0, Flow: gone},
	})
	m.Update(tickMsg(t0))
	after := ansi.Strip(m.View().Content)
	if got := tableLinesOf(after); strings.Join(got, "\n") != strings.Join(rowsBefore, "\n") {
		t.Fatalf("rows changed while paused:\n%s\nthen\n%s", before, after)
	}
	if !strings.Contains(after, "PAUSED 2 changes waiting") {
		t.Fatalf("header does not count the changes waiting:\n%s", after)
	}
	// Navigation, sort and filter on the frozen rows.
	drive(t, m, 120, 30, "down", "down")
	if r, ok := m.table.selectedRow(); !ok || r.Flow.ID != 3 {
		t.Fatalf("selection on %+v, want flow 3 (third oldest)", r.Flow.Orig)
	}
	drive(t, m, 120, 30, ">", ">", ">", ">") // sort by source
	if m.table.res.Matched != 7 || m.table.res.Rows[0].Flow.ID == 99 {
		t.Fatalf("sorted frozen table: matched %d, first %v", m.table.res.Matched, m.table.res.Rows[0].Flow.Orig)
	}
	if r, ok := m.table.selectedRow(); !ok || r.Flow.ID != 3 {
		t.Fatalf("selection moved off flow 3 when sorting: %+v", r.Flow.Orig)
	}
	drive(t, m, 120, 30, "/", "p", "o", "r", "t", " ", "2", "1", "enter")
	if m.table.res.Matched != 1 || m.table.res.Rows[0].Flow.ID != 1 || m.table.res.Rows[0].Destroyed {
		t.Fatalf("filtered frozen table: %d rows, first %+v", m.table.res.Matched, m.table.res.Rows[0])
	}
	// Resume: the live table, with the new flow and without the destroyed
	// one alive.
	drive(t, m, 120, 30, "c", "p")
	out := ansi.Strip(m.View().Content)
	if strings.Contains(out, "PAUSED") || !strings.Contains(out, "10.0.0.0:1 ") {
		t.Fatalf("after resume:\n%s", out)
	}
}

// tableLinesOf returns the lines of a frame from the table's column header
// down.
func tableLinesOf(frame string) []string {
	lines := strings.Split(frame, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "STATE") {
			return lines[i:]
		}
	}
	return nil
}

// TestPauseBigTable: a table larger than the freeze bound keeps the
// matched rows around the selection, and the header says how many.
func TestPauseBigTable(t *testing.T) {
	eng := newEngine(t, wideScenario())
	m := New(eng, testOptions())
	m.maxFrozen = 6
	drive(t, m, 120, 30, "down", "down", "down", "down", "down", "down", "down", "down", "down", "down")
	sel, _ := m.table.selectedRow()
	_, cmd := m.Update(press("p"))
	m.Update(runCmd(t, cmd))
	if m.frozen == nil || !m.frozen.partial || len(m.frozen.rows) != 6 || m.frozen.total != 20 {
		t.Fatal("want a partial freeze of 6 of 20 rows")
	}
	if r, ok := m.table.selectedRow(); !ok || r.Flow.Key() != sel.Flow.Key() {
		t.Fatal("the selection is not in the frozen rows")
	}
	if out := ansi.Strip(m.View().Content); !strings.Contains(out, "PAUSED (6 of 20 flows kept) 0 changes waiting") {
		t.Fatalf("header:\n%s", out)
	}
}

// screenY returns the screen line of the first line of the frame that
// contains text.
func screenY(t *testing.T, m *Model, text string) (int, int) {
	t.Helper()
	for y, l := range strings.Split(ansi.Strip(m.View().Content), "\n") {
		if x := strings.Index(l, text); x >= 0 {
			return ansi.StringWidth(l[:x]), y
		}
	}
	t.Fatalf("%q not on the screen:\n%s", text, ansi.Strip(m.View().Content))
	return 0, 0
}

func click(m *Model, x, y int) {
	m.Update(tea.MouseClickMsg{X: x, Y: y, Button: tea.MouseLeft})
}

// TestMouse sends Bubble Tea mouse messages: a click selects a row and a
// second click opens it, the wheel scrolls, a click on a column title
// sorts (again: reverses), a click on a view tab or a grouping opens it.
func TestMouse(t *testing.T) {
	eng := newEngine(t, wideScenario())
	m := New(eng, testOptions())
	drive(t, m, 80, 24)
	if v := m.View(); v.MouseMode != tea.MouseModeCellMotion {
		t.Fatalf("mouse mode %v", v.MouseMode)
	}
	x, y := screenY(t, m, "10.100.1.12:32222")
	click(m, x, y)
	if r, ok := m.table.selectedRow(); !ok || r.Flow.ID != 12 || m.page != pageTable {
		t.Fatalf("click selected %v (view %d)", r.Flow.Orig, m.page)
	}
	click(m, x, y)
	if m.page != pageDetail || !strings.Contains(ansi.Strip(m.View().Content), "original   10.100.1.12:32222") {
		t.Fatalf("second click did not open the detail:\n%s", ansi.Strip(m.View().Content))
	}
	drive(t, m, 80, 24, "esc")
	m.Update(tea.MouseWheelMsg{X: x, Y: y, Button: tea.MouseWheelDown})
	if r, _ := m.table.selectedRow(); r.Flow.ID != 15 {
		t.Fatalf("wheel down: selected flow %d, want 15", r.Flow.ID)
	}
	m.Update(tea.MouseWheelMsg{X: x, Y: y, Button: tea.MouseWheelUp})
	if r, _ := m.table.selectedRow(); r.Flow.ID != 12 {
		t.Fatalf("wheel up: selected flow %d, want 12", r.Flow.ID)
	}
	// Sort by a click on a column title; a second click reverses.
	hx, hy := screenY(t, m, "DESTINATION")
	click(m, hx+2, hy)
	if m.table.sortKey != store.SortDst || m.table.desc {
		t.Fatalf("click on DESTINATION: sort %d desc %v", m.table.sortKey, m.table.desc)
	}
	click(m, hx+2, hy)
	if m.table.sortKey != store.SortDst || !m.table.desc {
		t.Fatalf("second click on DESTINATION: sort %d desc %v", m.table.sortKey, m.table.desc)
	}
	if !strings.Contains(ansi.Strip(m.View().Content), "sort destination ▼") {
		t.Fatalf("sort not shown:\n%s", ansi.Strip(m.View().Content))
	}
	// View tabs.
	tx, ty := screenY(t, m, "groups")
	click(m, tx, ty)
	if m.page != pageGroups {
		t.Fatalf("click on the groups tab: view %d", m.page)
	}
	gx, gy := screenY(t, m, "source host")
	click(m, gx+1, gy)
	if m.groups.groupBy != store.GroupSrcHost {
		t.Fatalf("click on source host: grouping %d", m.groups.groupBy)
	}
	lx, ly := screenY(t, m, "10.100.1.12 ")
	click(m, lx, ly)
	click(m, lx, ly)
	if m.page != pageTable || m.table.res.Matched != 1 || m.table.res.Rows[0].Flow.ID != 12 {
		t.Fatalf("two clicks on a group: view %d, %d rows", m.page, m.table.res.Matched)
	}
	tx, ty = screenY(t, m, "transitions")
	click(m, tx+1, ty)
	if m.page != pageTransitions {
		t.Fatalf("click on the transitions tab: view %d", m.page)
	}
	// --no-mouse: no mouse reporting asked of the terminal.
	o := testOptions()
	o.NoMouse = true
	m = New(eng, o)
	drive(t, m, 80, 24)
	if v := m.View(); v.MouseMode != tea.MouseModeNone {
		t.Fatalf("NoMouse: mouse mode %v", v.MouseMode)
	}
}

// TestLightDark: the palette follows the background colour the terminal
// reports; the current view tab and grouping are marked without colour.
func TestLightDark(t *testing.T) {
	eng := newEngine(t, scenario())
	o := testOptions()
	o.NoColor = false
	m := New(eng, o)
	dark := drive(t, m, 120, 30)
	if !strings.Contains(dark, "38;5;"+darkPalette.ok) {
		t.Fatalf("no dark-background colours in %q", dark)
	}
	m.Update(tea.BackgroundColorMsg{Color: color.White})
	light := m.View().Content
	if !strings.Contains(light, "38;5;"+lightPalette.ok) || strings.Contains(light, "38;5;"+darkPalette.ok+"m") {
		t.Fatalf("light background: dark colours kept in %q", light)
	}
	m.Update(tea.BackgroundColorMsg{Color: color.Black})
	if got := m.View().Content; got != dark {
		t.Fatal("back on a dark background: not the dark frame")
	}
	if plain := ansi.Strip(drive(t, m, 120, 30, "g")); !strings.Contains(plain, "[groups]") || !strings.Contains(plain, "[destination port]") {
		t.Fatalf("current tab and grouping not marked in plain text:\n%s", plain)
	}
}

// TestEndpointWidth: the counted width is the formatted width.
func TestEndpointWidth(t *testing.T) {
	m := New(newEngine(t, scenario()), testOptions())
	for _, evs := range [][]flow.Event{scenario(), wideScenario()} {
		for _, ev := range evs {
			f := &ev.Flow
			if ev.Type != flow.EventNew {
				continue
			}
			for _, src := range []bool{true, false} {
				if got, want := m.endpointWidth(f.Proto, f.Orig, src), len(m.endpoint(f.Proto, f.Orig, src)); got != want {
					t.Errorf("%s src=%v: width %d, want %d", m.endpoint(f.Proto, f.Orig, src), src, got, want)
				}
			}
		}
	}
}

// TestListingReadsRowsEverySecond: while a live source lists its table,
// ticks read the header's figures but the rows (a query, a scan of the
// whole table on a big one) at most once a second; once the listing is
// complete, at the next tick.
func TestListingReadsRowsEverySecond(t *testing.T) {
	flows := func(from, n int) []flow.Event {
		var evs []flow.Event
		for i := from; i < from+n; i++ {
			evs = append(evs, flow.Event{Type: flow.EventNew, Time: t0,
				Flow: tcpFlow(uint32(i), "10.0.0.1", uint16(1000+i), "10.0.0.2", 80, flow.TCPEstablished, flow.StatusConfirmed)})
		}
		return evs
	}
	src := sourcetest.New("test", flows(0, 3), sourcetest.WithClock(func() time.Time { return t0 }))
	eng := engine.New(src, engine.Options{Now: func() time.Time { return t0 }, Tick: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, func() bool { return eng.Summary().Live == 3 })
	if st := eng.Status(); !st.Live || st.Synced {
		t.Fatalf("status %+v: want a live source still listing", st)
	}

	now := t0
	o := testOptions()
	o.Now = func() time.Time { return now }
	m := New(eng, o)
	drive(t, m, 120, 30)
	shown := func() int { matched, _ := m.table.matchedTotal(); return matched }
	if shown() != 3 {
		t.Fatalf("first frame shows %d flows, want 3", shown())
	}
	tick := func(d time.Duration) {
		now = now.Add(d)
		m.Update(tickMsg(now))
	}
	eng.Apply(flows(3, 2))
	tick(250 * time.Millisecond)
	if shown() != 3 {
		t.Fatalf("a quarter second into the listing: rows of %d flows, want those of 3 (not read again)", shown())
	}
	tick(750 * time.Millisecond)
	if shown() != 5 || m.sum.Live != 5 {
		t.Fatalf("a second into the listing: rows of %d flows, header %d; want 5 and 5", shown(), m.sum.Live)
	}
	eng.Apply(append(flows(5, 1), flow.Event{Type: flow.EventSynced, Time: t0}))
	waitFor(t, func() bool { return eng.Status().Synced })
	tick(10 * time.Millisecond)
	if shown() != 6 {
		t.Fatalf("at the tick after the listing: rows of %d flows, want 6", shown())
	}
}

// TestTickKeepsRowWhenFlowGoesFar: on a refresh (a tick, nothing the user
// did) a selected flow that moves far down the order, beyond what the
// view holds around its window, is not chased across the table: the
// selection stays on its row. Near moves are followed (see
// TestSelectionFollowsFlow).
func TestTickKeepsRowWhenFlowGoesFar(t *testing.T) {
	const n = 6000 // more than the few thousand a view holds around its window
	evs := make([]flow.Event, 0, n)
	for i := range n {
		f := tcpFlow(uint32(i+1), fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), uint16(1024+i), "10.0.0.2", 80, flow.TCPEstablished, flow.StatusAssured)
		evs = append(evs, flow.Event{Type: flow.EventNew, Time: t0, Flow: f})
	}
	eng := newEngine(t, evs)
	m := New(eng, testOptions())
	drive(t, m, 120, 30, ">", ">", "down", "down") // sort by TCP state
	sel, ok := m.table.selectedRow()
	if !ok || m.table.selIdx != 2 {
		t.Fatalf("selection at %d (%v)", m.table.selIdx, ok)
	}
	gone := sel.Flow
	gone.TCPState = flow.TCPTimeWait // sorts after every ESTABLISHED flow
	eng.Apply([]flow.Event{{Type: flow.EventUpdate, Time: t0, Flow: gone}})
	m.Update(tickMsg(t0))
	now, ok := m.table.selectedRow()
	if !ok || m.table.selIdx != 2 || now.Flow.Key() == sel.Flow.Key() {
		t.Fatalf("after the tick: selection at %d on %v; want row 2, another flow", m.table.selIdx, now.Flow.Orig)
	}
}
