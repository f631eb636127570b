package tui

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"github.com/conntop/conntop/internal/flow"
)

// compareScenario is a table from the compare source (--source
// conntrack,capture): one flow both sides agree on, one only the kernel
// has, one only the wire shows, one in different states, and one still
// within the grace period (wire only, not yet marked).
func compareScenario() []flow.Event {
	est := flow.StatusSeenReply | flow.StatusAssured
	both := withCounters(tcpFlow(1, "10.99.1.2", 40000, "10.99.1.1", 8080, flow.TCPEstablished, est), 6, 398, 4, 292)
	both.Compare = flow.Compare{Seen: flow.SeenKernel | flow.SeenWire}
	kern := withCounters(tcpFlow(2, "10.99.1.2", 40001, "10.99.1.1", 9003, flow.TCPEstablished, est), 5, 300, 4, 250)
	kern.Compare = flow.Compare{Seen: flow.SeenKernel, Disagree: flow.DisagreeKernelOnly}
	wire := withCounters(tcpFlow(3, "10.99.1.2", 40002, "10.99.1.1", 9001, flow.TCPEstablished, est), 6, 398, 4, 292)
	wire.Compare = flow.Compare{Seen: flow.SeenWire, Disagree: flow.DisagreeWireOnly}
	state := tcpFlow(4, "10.99.1.2", 40003, "10.99.1.1", 9002, flow.TCPSynRecv, flow.StatusSeenReply)
	state.Compare = flow.Compare{Seen: flow.SeenKernel | flow.SeenWire, Disagree: flow.DisagreeState,
		WireState: flow.StateNew, WireTCPState: flow.TCPSynSent}
	pend := tcpFlow(5, "10.99.1.2", 40004, "10.99.1.1", 8080, flow.TCPSynSent, 0)
	pend.Compare = flow.Compare{Seen: flow.SeenWire}
	var evs []flow.Event
	for _, f := range []flow.Flow{both, kern, wire, state, pend} {
		evs = append(evs, flow.Event{Type: flow.EventNew, Time: t0.Add(-10e9), Flow: f})
	}
	return append(evs, flow.Event{Type: flow.EventSynced, Time: t0.Add(-10e9)},
		flow.Event{Type: flow.EventStats, Time: t0, Stats: &flow.TableStats{Time: t0, Count: 4, Max: 65536, Accounting: true}})
}

// TestCompareMarks: the K/W column appears only for the compare source and
// marks exactly the disagreeing flows; the filter keywords select them;
// the detail view gives the reason.
func TestCompareMarks(t *testing.T) {
	view := func(m *Model, keys ...string) string { return ansi.Strip(drive(t, m, 200, 30, keys...)) }
	plain := view(New(newEngine(t, scenario()), testOptions()))
	if strings.Contains(plain, "K/W") {
		t.Errorf("K/W column shown without the compare source:\n%s", plain)
	}
	eng := newEngine(t, compareScenario())
	out := view(New(eng, testOptions()))
	want := map[string]string{":8080": "K+W", ":9003": "K!", ":9001": "W!", ":9002": "K≠W"}
	rows := 0
	for _, line := range strings.Split(out, "\n") {
		for port, mark := range want {
			if strings.Contains(line, port+" ") && strings.Contains(line, "40000") == (port == ":8080") {
				rows++
				if !strings.Contains(line, " "+mark+" ") {
					t.Errorf("row for %s lacks %q: %q", port, mark, line)
				}
			}
		}
	}
	if rows != len(want) {
		t.Errorf("found %d of the %d marked rows:\n%s", rows, len(want), out)
	}
	if !strings.Contains(out, "K/W") {
		t.Fatalf("no K/W column:\n%s", out)
	}
	ascii := testOptions()
	ascii.ASCII = true
	if out := view(New(eng, ascii)); !strings.Contains(out, "K!=W") {
		t.Errorf("ASCII mode: no K!=W:\n%s", out)
	}
	filtered := view(New(eng, testOptions()), append(strings.Split("/disagree", ""), "enter")...)
	for port, in := range map[string]bool{":9003": true, ":9001": true, ":9002": true, "40000": false, "40004": false} {
		if strings.Contains(filtered, port) != in {
			t.Errorf("filter disagree: %s shown = %v, want %v:\n%s", port, !in, in, filtered)
		}
	}
	// Detail of the state difference (sorted by age, the 4th row).
	detail := view(New(eng, testOptions()), append(strings.Split("/state syn_recv", ""), "enter", "enter")...)
	if !strings.Contains(detail, "seen by kernel+wire  disagree: state differs: kernel ESTABLISHED/SYN_RECV, wire NEW/SYN_SENT") {
		t.Errorf("detail lacks the reason:\n%s", detail)
	}
}
