package tui

import (
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// t0 is the fixed clock of the golden views.
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func tcpFlow(id uint32, src string, sport uint16, dst string, dport uint16, ts flow.TCPState, st flow.Status) flow.Flow {
	fam := flow.FamilyIPv4
	if addr(src).Is6() {
		fam = flow.FamilyIPv6
	}
	f := flow.Flow{ID: id, Family: fam, Proto: flow.ProtoTCP, TCPState: ts, Status: st | flow.StatusConfirmed, Timeout: 120,
		Orig: flow.Tuple{Src: addr(src), Dst: addr(dst), SrcPort: sport, DstPort: dport}}
	f.Reply = f.Orig.Reverse(f.Proto)
	return f
}

func withCounters(f flow.Flow, op, ob, rp, rb uint64) flow.Flow {
	f.HasCounters = true
	f.Counters = flow.Counters{OrigPackets: op, OrigBytes: ob, ReplyPackets: rp, ReplyBytes: rb}
	return f
}

// scenario is a small table with one of everything: NAT, IPv6, ICMP, UDP,
// a RELATED flow with its master, a helper name with an escape sequence,
// a destroyed (lingering) flow, marks and zones, and table statistics.
func scenario() []flow.Event {
	est := flow.StatusSeenReply | flow.StatusAssured
	ftp := withCounters(tcpFlow(1, "10.0.0.1", 40000, "10.0.0.2", 21, flow.TCPEstablished, est), 12, 800, 10, 1200)
	ftp.Helper = "ftp\x1b[31m"
	data := withCounters(tcpFlow(2, "10.0.0.2", 20, "10.0.0.1", 40001, flow.TCPEstablished, est|flow.StatusExpected), 300, 400000, 200, 12000)
	m := ftp.Orig
	data.Master = &m
	nat := withCounters(tcpFlow(3, "10.0.0.1", 51000, "192.0.2.10", 443, flow.TCPSynSent, 0), 1, 60, 0, 0)
	nat.Reply = flow.Tuple{Src: addr("10.0.0.3"), Dst: addr("10.0.0.1"), SrcPort: 8443, DstPort: 51000}
	nat.Status |= flow.StatusDstNAT
	v6 := withCounters(tcpFlow(4, "fd00::1", 33000, "fd00::2", 22, flow.TCPTimeWait, est), 20, 3000, 18, 4000)
	v6.Mark, v6.Zone = 7, 1
	udp := flow.Flow{ID: 5, Family: flow.FamilyIPv4, Proto: flow.ProtoUDP, Status: flow.StatusConfirmed | flow.StatusSeenReply, Timeout: 180,
		Orig: flow.Tuple{Src: addr("10.0.0.1"), Dst: addr("10.0.0.53"), SrcPort: 5353, DstPort: 53}, HasCounters: true,
		Counters: flow.Counters{OrigPackets: 1, OrigBytes: 70, ReplyPackets: 1, ReplyBytes: 130}}
	udp.Reply = udp.Orig.Reverse(udp.Proto)
	icmp := flow.Flow{ID: 6, Family: flow.FamilyIPv4, Proto: flow.ProtoICMP, Status: flow.StatusConfirmed, Timeout: 90,
		Orig: flow.Tuple{Src: addr("10.0.0.1"), Dst: addr("10.0.0.2"), Type: 8, ID: 77}}
	icmp.Reply = icmp.Orig.Reverse(icmp.Proto)
	refused := tcpFlow(7, "10.0.0.1", 52000, "10.0.0.2", 9, flow.TCPSynSent, 0)

	at := func(d time.Duration) time.Time { return t0.Add(-60 * time.Second).Add(d) }
	evs := []flow.Event{
		{Type: flow.EventStats, Time: at(0), Stats: &flow.TableStats{Time: at(0), Count: 0, Max: 8, Accounting: true}},
		{Type: flow.EventSynced, Time: at(0)},
	}
	for i, f := range []flow.Flow{ftp, data, nat, v6, udp, icmp, refused} {
		ev := f
		first := ev
		if ev.Proto == flow.ProtoTCP && ev.Status&flow.StatusSeenReply != 0 {
			first.TCPState, first.Status, first.HasCounters = flow.TCPSynSent, flow.StatusConfirmed|(ev.Status&flow.StatusExpected), false
		}
		evs = append(evs, flow.Event{Type: flow.EventNew, Time: at(time.Duration(i) * time.Second), Flow: first})
		if first.TCPState != ev.TCPState {
			mid := first
			mid.TCPState, mid.Status = flow.TCPSynRecv, first.Status|flow.StatusSeenReply
			evs = append(evs,
				flow.Event{Type: flow.EventUpdate, Time: at(time.Duration(i)*time.Second + 10*time.Millisecond), Flow: mid},
				flow.Event{Type: flow.EventUpdate, Time: at(time.Duration(i)*time.Second + 20*time.Millisecond), Flow: ev})
		}
	}
	evs = append(evs,
		flow.Event{Type: flow.EventStats, Time: at(30 * time.Second), Stats: &flow.TableStats{Time: at(30 * time.Second), Count: 7, Max: 8, Accounting: true}},
		flow.Event{Type: flow.EventDestroy, Time: t0.Add(-2 * time.Second), Flow: refused},
	)
	return evs
}

// pressure adds statistics showing a full table that drops packets.
func pressure() []flow.Event {
	return []flow.Event{
		{Type: flow.EventStats, Time: t0.Add(-time.Second), Stats: &flow.TableStats{Time: t0.Add(-time.Second), Count: 8, Max: 8,
			Accounting: true, Drop: 10, EarlyDrop: 5, Invalid: 3, InsertFailed: 1, EventsLost: 12, Resyncs: 1}},
		{Type: flow.EventStats, Time: t0, Stats: &flow.TableStats{Time: t0, Count: 8, Max: 8,
			Accounting: true, Drop: 30, EarlyDrop: 9, Invalid: 4, InsertFailed: 1, EventsLost: 12, Resyncs: 1}},
	}
}

// newEngine returns an engine fed with evs, its store clock ticked through
// the last minute (so rates and the sparkline have samples).
func newEngine(t testing.TB, evs []flow.Event) *engine.Engine {
	t.Helper()
	eng := engine.New(nil, engine.Options{Now: func() time.Time { return t0 }})
	i := 0
	for s := t0.Add(-60 * time.Second); !s.After(t0); s = s.Add(time.Second) {
		j := i
		for j < len(evs) && !evs[j].Time.After(s) {
			j++
		}
		eng.Apply(evs[i:j])
		i = j
		eng.Tick(s)
	}
	eng.Apply(evs[i:])
	eng.Tick(t0)
	return eng
}

func testOptions() Options {
	return Options{Now: func() time.Time { return t0 }, NoColor: true, NoProcs: true, ExportDir: "/tmp", Refresh: 20 * time.Millisecond}
}

// key builds a key press as the terminal would send it.
func press(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "right":
		return tea.KeyPressMsg{Code: tea.KeyRight}
	case "ctrl+u":
		return tea.KeyPressMsg{Code: 'u', Mod: tea.ModCtrl}
	}
	r := []rune(s)[0]
	return tea.KeyPressMsg{Code: r, Text: s}
}

// drive sends a window size and keys straight to the model (no program),
// and returns the plain frame.
func drive(t testing.TB, m *Model, w, h int, keys ...string) string {
	t.Helper()
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	for _, k := range keys {
		m.Update(press(k))
	}
	return m.View().Content
}

type storeT = store.Store

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// wideScenario is what an 80x24 terminal must show whole: the longest IPv4
// endpoints with five-digit ports, long IPv6 addresses (shortened in the
// middle, the port kept), a NAT reply, and enough flows to fill the table.
// Accounting is off, so the header carries a notice too.
func wideScenario() []flow.Event {
	at := func(d time.Duration) time.Time { return t0.Add(-30 * time.Second).Add(d) }
	est := flow.StatusSeenReply | flow.StatusAssured
	var fs []flow.Flow
	fs = append(fs, tcpFlow(1, "255.255.255.254", 65535, "203.0.113.254", 65534, flow.TCPEstablished, est))
	nat := tcpFlow(2, "10.100.1.100", 30000, "198.51.100.200", 44333, flow.TCPSynSent, 0)
	nat.Reply = flow.Tuple{Src: addr("172.16.254.254"), Dst: addr("10.100.1.100"), SrcPort: 8443, DstPort: 30000}
	nat.Status |= flow.StatusDstNAT
	fs = append(fs, nat)
	fs = append(fs, tcpFlow(3, "2001:db8:1234:5678:9abc:def0:1234:5678", 54321, "2001:db8:ffff:eeee:dddd:cccc:bbbb:aaaa", 443, flow.TCPCloseWait, est))
	fs = append(fs, tcpFlow(4, "fd00::1", 33000, "fd00::2", 22, flow.TCPTimeWait, est))
	for i := range 16 {
		fs = append(fs, tcpFlow(uint32(10+i), "10.100.1."+strconv.Itoa(10+i), uint16(30000+i*1111), "10.100.2.200", 8080, flow.TCPEstablished, est))
	}
	evs := []flow.Event{{Type: flow.EventStats, Time: at(0), Stats: &flow.TableStats{Time: at(0), Count: 0, Max: 262144, Accounting: false}},
		{Type: flow.EventSynced, Time: at(0)}}
	for i, f := range fs {
		evs = append(evs, flow.Event{Type: flow.EventNew, Time: at(time.Duration(i) * time.Second), Flow: f})
	}
	return append(evs, flow.Event{Type: flow.EventStats, Time: at(25 * time.Second), Stats: &flow.TableStats{Time: at(25 * time.Second), Count: uint64(len(fs)), Max: 262144}})
}
