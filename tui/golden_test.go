package tui

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"
)

// goldenCase is one view driven through a real Bubble Tea program.
type goldenCase struct {
	name string
	keys []string
	// waitFor, when set, is text the program must print before it quits
	// (for results that arrive asynchronously).
	waitFor string
	// pressure applies rising drop counters after the first frame.
	pressure bool
	// compare uses the compare source's table (compareScenario).
	compare bool
	// wide uses the long-endpoint table (wideScenario).
	wide bool
	// notice is a banner set on the engine (why auto chose capture).
	notice string
	opts   func(o *Options, dir string)
}

var goldenCases = []goldenCase{
	{name: "table"},
	{name: "pressure", pressure: true},
	{name: "notice", notice: "showing conntop's own capture: kernel conntrack is not active here (the conntrack table is empty " +
		"and no nftables rule uses conntrack). For the kernel's table: nft 'add table inet conntop; add chain inet conntop " +
		"pre { type filter hook prerouting priority 0; }; add rule inet conntop pre ct state new'"},
	{name: "filter_error", keys: []string{"/", "t", "c", "p", " ", "a", "n", "d", " ", "p", "o", "r", "t", " ", "x", "enter"}},
	{name: "filter_preview", keys: []string{"/", "t", "c", "p", " ", "a", "n", "d", " ", "d", "p", "o", "r", "t", " ", "2", "1"}},
	{name: "detail", keys: []string{"down", "enter"}},
	{name: "detail_master", keys: []string{"down", "enter", "m"}},
	{name: "transitions", keys: []string{"t"}},
	{name: "groups", keys: []string{"g"}},
	{name: "groups_enter", keys: []string{"g", "down", "enter"}},
	{name: "help", keys: []string{"?"}},
	{name: "quick_toggles", keys: []string{"T", "E", ":", "2", "2", "enter"}},
	{name: "sorted_bytes_desc", keys: []string{">", ">", ">", ">", ">", ">", ">", ">", ">", "r"}},
	{name: "export_ok", keys: []string{"x", "enter"}, waitFor: "flows to"},
	{name: "export_error", keys: []string{"x", "enter"}, waitFor: "failed:",
		opts: func(o *Options, dir string) { o.ExportDir = "/nonexistent-conntop-dir" }},
	{name: "export_readonly", keys: []string{"x"}, opts: func(o *Options, dir string) { o.ReadOnly = true }},
	{name: "delete_refused", keys: []string{"d"}},
	{name: "ascii", opts: func(o *Options, dir string) { o.ASCII = true }},
	{name: "compare", compare: true},
	{name: "compare_detail", compare: true, keys: []string{"down", "down", "down", "enter"}},
	{name: "wide", wide: true, notice: "showing conntop's own capture: kernel conntrack is not active here (details)"},
	{name: "wide_nat_detail", wide: true, keys: []string{"down", "enter"}},
	{name: "wide_transitions", wide: true, keys: []string{"t"}},
}

// TestGolden drives the Model through Bubble Tea (teatest) at 80x24 and
// 200x50 with a fixed clock and compares the final screen (styles
// stripped) with testdata/TestGolden/*.golden. Regenerate with -update.
func TestGolden(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {200, 50}} {
		for _, gc := range goldenCases {
			t.Run(fmt.Sprintf("%s_%dx%d", gc.name, size[0], size[1]), func(t *testing.T) {
				dir := fixedLenDir(t)
				evs := scenario()
				if gc.pressure {
					evs = append(evs, pressure()[0])
				}
				if gc.compare {
					evs = compareScenario()
				}
				if gc.wide {
					evs = wideScenario()
				}
				eng := newEngine(t, evs)
				if gc.notice != "" {
					eng.SetNotice(gc.notice)
				}
				opts := testOptions()
				opts.ExportDir = dir
				if gc.opts != nil {
					gc.opts(&opts, dir)
				}
				m := New(eng, opts)
				tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(size[0], size[1]))
				teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("conntop")) },
					teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(5*time.Millisecond))
				if gc.pressure {
					// Two statistics samples, one second apart: the drop
					// counters rise, and the header must say so loudly.
					eng.Apply(pressure()[1:])
					tm.Send(tickMsg(t0))
				}
				for _, k := range gc.keys {
					tm.Send(press(k))
				}
				if gc.waitFor != "" {
					teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(gc.waitFor)) },
						teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(5*time.Millisecond))
				}
				if err := tm.Quit(); err != nil {
					t.Fatal(err)
				}
				fm := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
				fm.dirty = true // the golden is the full frame, not a reused one
				out := ansi.Strip(fm.View().Content)
				out = strings.ReplaceAll(out, dir, "$DIR")
				out = tmpName.ReplaceAllString(out, ".tmp-N")
				golden.RequireEqual(t, out+"\n")
				if gc.name == "export_ok" {
					checkExport(t, dir)
				}
			})
		}
	}
}

func checkExport(t *testing.T, dir string) {
	t.Helper()
	path := dir + "/conntop-20261125-120000.json"
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("export mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte(`{"version":1`)) && !bytes.HasPrefix(b, []byte("{\n")) {
		t.Fatalf("export does not look like a v1 snapshot: %.80s", b)
	}
	if n := bytes.Count(b, []byte(`"proto"`)); n != 6 {
		t.Fatalf("export has %d flows, want the 6 live ones", n)
	}
}

var tmpName = regexp.MustCompile(`\.tmp-[0-9]+`)

// fixedLenDir makes an empty directory whose path always has the same
// length, so that a golden screen that shows it wraps at the same place on
// every run (t.TempDir's length varies with the test name and a counter).
func fixedLenDir(t *testing.T) string {
	t.Helper()
	for i := 0; i < 100; i++ {
		d := filepath.Join("/tmp", fmt.Sprintf("conntop-golden-%09d", rand.IntN(1e9)))
		if err := os.Mkdir(d, 0o700); err == nil {
			t.Cleanup(func() { _ = os.RemoveAll(d) })
			return d
		}
	}
	t.Fatal("cannot create a directory in /tmp")
	return ""
}
