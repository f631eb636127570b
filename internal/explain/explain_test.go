package explain

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// kernelSettings are default kernel settings with some values changed.
func kernelSettings(changes map[string]uint32) *Settings {
	s := &Settings{Max: 1000, Buckets: 1024, Timeouts: map[string]uint32{}, EntryBytes: 320, EntryBytesFrom: "/proc/slabinfo"}
	for _, t := range TimeoutSysctls {
		s.Timeouts[t.Name] = t.Default
	}
	for k, v := range changes {
		s.Timeouts[k] = v
	}
	return s
}

// row builds a flow row with rem seconds left, first seen at first.
func row(proto uint8, tcp flow.TCPState, status flow.Status, src, dst string, sport, dport uint16, rem int, first time.Time) store.Row {
	f := flow.Flow{Family: flow.FamilyIPv4, Proto: proto, TCPState: tcp, Status: status | flow.StatusConfirmed,
		Orig:    flow.Tuple{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), SrcPort: sport, DstPort: dport},
		Timeout: uint32(rem)}
	if netip.MustParseAddr(src).Is6() {
		f.Family = flow.FamilyIPv6
	}
	f.Reply = f.Orig.Reverse(proto)
	return store.Row{Flow: f, FirstSeen: first, LastSeen: first, Expires: t0.Add(time.Duration(rem) * time.Second)}
}

const (
	replied = flow.StatusSeenReply
	assured = flow.StatusSeenReply | flow.StatusAssured
)

func collect(s *Settings, window time.Duration, rows []store.Row) *Collector {
	start := time.Time{}
	if window > 0 {
		start = t0.Add(-window)
	}
	c := NewCollector(t0, start, s)
	for i := range rows {
		c.Add(&rows[i])
	}
	return c
}

func findClass(t *testing.T, r *Report, proto, state string) Class {
	t.Helper()
	for _, c := range r.Classes {
		if c.Proto == proto && c.State == state {
			return c
		}
	}
	t.Fatalf("no class %s %s in %+v", proto, state, r.Classes)
	return Class{}
}

func findWhatIf(t *testing.T, c Class, v uint32) WhatIf {
	t.Helper()
	for _, w := range c.WhatIf {
		if w.Value == v {
			return w
		}
	}
	t.Fatalf("class %s %s has no what-if at %d: %+v", c.Proto, c.State, v, c.WhatIf)
	return WhatIf{}
}

func TestClasses(t *testing.T) {
	old := t0.Add(-time.Hour)
	rows := []store.Row{
		row(flow.ProtoTCP, flow.TCPTimeWait, assured, "10.0.0.1", "10.0.1.1", 1000, 80, 100, old),
		row(flow.ProtoTCP, flow.TCPTimeWait, assured, "10.0.0.1", "10.0.1.1", 1001, 80, 50, old),
		row(flow.ProtoTCP, flow.TCPEstablished, assured, "10.0.0.2", "10.0.1.1", 1002, 443, 431000, old),
		row(flow.ProtoUDP, 0, 0, "10.0.0.3", "10.0.1.53", 2000, 53, 20, old),
		row(flow.ProtoUDP, 0, replied, "10.0.0.3", "10.0.1.53", 2001, 53, 25, old),
		row(flow.ProtoUDP, 0, assured, "10.0.0.3", "10.0.1.53", 2002, 53, 110, old),
		row(flow.ProtoICMP, 0, replied, "10.0.0.4", "10.0.1.1", 0, 0, 29, old),
		row(flow.ProtoGRE, 0, 0, "10.0.0.5", "10.0.1.1", 0, 0, 29, old),
		row(flow.ProtoSCTP, 0, 0, "10.0.0.5", "10.0.1.1", 5, 6, 3, old),
		row(50, 0, 0, "10.0.0.5", "10.0.1.1", 0, 0, 500, old), // ESP: generic
	}
	c := collect(kernelSettings(nil), 0, rows)
	r := c.Report(Input{Source: "conntrack", TableRows: len(rows), FreshTimeouts: true})
	tests := []struct {
		proto, state    string
		flows, assured  int
		sysctl          string
		value, expiring int
	}{
		{"tcp", "TIME_WAIT", 2, 2, SysTCPTimeWait, 120, 1},
		{"tcp", "ESTABLISHED", 1, 1, SysTCPEstablished, 432000, 0},
		{"udp", "UNREPLIED", 1, 0, SysUDP, 30, 1},
		{"udp", "REPLIED", 1, 0, SysUDP, 30, 1},
		{"udp", "ASSURED", 1, 1, SysUDPStream, 120, 0},
		{"icmp", "ANY", 1, 0, SysICMP, 30, 1},
		{"gre", "UNREPLIED", 1, 0, SysGRE, 30, 1},
		{"sctp", "ANY", 1, 0, "", -1, 1},
		{"other", "ANY", 1, 0, SysGeneric, 600, 0},
	}
	for _, tt := range tests {
		t.Run(tt.proto+"_"+tt.state, func(t *testing.T) {
			cl := findClass(t, r, tt.proto, tt.state)
			if cl.Flows != tt.flows || cl.Assured != tt.assured || cl.Evictable != tt.flows-tt.assured {
				t.Errorf("flows/assured/evictable = %d/%d/%d, want %d/%d/%d", cl.Flows, cl.Assured, cl.Evictable,
					tt.flows, tt.assured, tt.flows-tt.assured)
			}
			if cl.Sysctl != tt.sysctl {
				t.Errorf("sysctl %q, want %q", cl.Sysctl, tt.sysctl)
			}
			if tt.value < 0 {
				if cl.Value != nil {
					t.Errorf("value %d, want none", *cl.Value)
				}
			} else if cl.Value == nil || int(*cl.Value) != tt.value {
				t.Errorf("value %v, want %d", cl.Value, tt.value)
			}
			if cl.ExpiringWithin60s != tt.expiring {
				t.Errorf("expiring within 60 s = %d, want %d", cl.ExpiringWithin60s, tt.expiring)
			}
			if want := float64(tt.flows) / float64(len(rows)); cl.Share != round4(want) {
				t.Errorf("share %v, want %v", cl.Share, want)
			}
		})
	}
	if r.Classes[0].Proto != "tcp" || r.Classes[0].State != "TIME_WAIT" {
		t.Errorf("largest class first: got %s %s", r.Classes[0].Proto, r.Classes[0].State)
	}
	if r.Table.Assured != 4 || r.Table.Evictable != 6 {
		t.Errorf("table assured/evictable %d/%d, want 4/6", r.Table.Assured, r.Table.Evictable)
	}
}

func TestWhatIfExact(t *testing.T) {
	// udp_timeout raised to 120: entries idle 20, 70 and 110 s.
	s := kernelSettings(map[string]uint32{SysUDP: 120})
	rows := []store.Row{
		row(flow.ProtoUDP, 0, 0, "10.0.0.1", "10.0.1.1", 1, 53, 100, t0),
		row(flow.ProtoUDP, 0, 0, "10.0.0.1", "10.0.1.1", 2, 53, 50, t0),
		row(flow.ProtoUDP, 0, 0, "10.0.0.1", "10.0.1.1", 3, 53, 10, t0),
	}
	r := collect(s, 0, rows).Report(Input{TableRows: 3, FreshTimeouts: true, WhatIf: map[string]uint32{"": 15}})
	cl := findClass(t, r, "udp", "UNREPLIED")
	if !cl.Exact {
		t.Errorf("UDP UNREPLIED from a fresh listing should be exact: %s", cl.Basis)
	}
	tests := []struct {
		value         uint32
		label         string
		now, within60 int
	}{
		// default 30: idle >= 30 is gone (70, 110); within 60 s the one
		// with 100 s left (idle 20) goes too, the others go anyway.
		{30, "default", 2, 1},
		{60, "half", 2, 1},
		{15, "user", 3, 1},
	}
	for _, tt := range tests {
		w := findWhatIf(t, cl, tt.value)
		if w.Label != tt.label || w.FreedNow != tt.now || w.FreedWithin60s != tt.within60 {
			t.Errorf("what-if %d: got %+v, want %s now %d within60 %d", tt.value, w, tt.label, tt.now, tt.within60)
		}
	}
	// Advice: lower to the default (frees 2), exact.
	var found bool
	for _, a := range r.Advice {
		if a.Kind == "timeout" {
			found = true
			if a.Command != "sysctl -w net.netfilter.nf_conntrack_udp_timeout=30" || a.Frees != 2 {
				t.Errorf("timeout advice %+v", a)
			}
		}
	}
	if !found {
		t.Errorf("no timeout advice in %+v", r.Advice)
	}
}

func TestWhatIfLongIdle(t *testing.T) {
	// time_wait 300: idle 250 (50 left) and idle 100 (200 left).
	s := kernelSettings(map[string]uint32{SysTCPTimeWait: 300})
	rows := []store.Row{
		row(flow.ProtoTCP, flow.TCPTimeWait, assured, "10.0.0.1", "10.0.1.1", 1, 80, 50, t0),
		row(flow.ProtoTCP, flow.TCPTimeWait, assured, "10.0.0.1", "10.0.1.1", 2, 80, 200, t0),
	}
	r := collect(s, 0, rows).Report(Input{TableRows: 2, FreshTimeouts: true})
	cl := findClass(t, r, "tcp", "TIME_WAIT")
	w := findWhatIf(t, cl, 150) // half
	// now: idle >= 150 -> the one idle 250. within 60: idle >= 90 and
	// more than 60 s left -> the one idle 100 (200 left).
	if w.FreedNow != 1 || w.FreedWithin60s != 1 {
		t.Errorf("half: %+v", w)
	}
	w = findWhatIf(t, cl, 120) // default
	if w.FreedNow != 1 || w.FreedWithin60s != 1 {
		t.Errorf("default: %+v", w)
	}
}

func TestWhatIfCapped(t *testing.T) {
	s := kernelSettings(nil)
	rows := []store.Row{
		// 200 s left of an ESTABLISHED entry: capped by unacknowledged
		// (300), idle 100.
		row(flow.ProtoTCP, flow.TCPEstablished, assured, "10.0.0.1", "10.0.1.1", 1, 22, 200, t0),
		// Idle one day.
		row(flow.ProtoTCP, flow.TCPEstablished, assured, "10.0.0.1", "10.0.1.1", 2, 22, 432000-86400, t0),
	}
	r := collect(s, 0, rows).Report(Input{TableRows: 2, FreshTimeouts: true, WhatIf: map[string]uint32{SysTCPEstablished: 3600}})
	cl := findClass(t, r, "tcp", "ESTABLISHED")
	if cl.Exact || !strings.Contains(cl.Basis, "capped") {
		t.Errorf("capped class should be estimated: exact %v basis %q", cl.Exact, cl.Basis)
	}
	w := findWhatIf(t, cl, 3600)
	// The day-idle entry goes now; the capped one (idle 100 < min(3600,
	// 300)) does not, and within 60 s: capped needs idle >= 240: no.
	if w.FreedNow != 1 || w.FreedWithin60s != 1 {
		t.Errorf("3600: %+v", w)
	}
}

func TestStaleTimeoutsAreEstimates(t *testing.T) {
	rows := []store.Row{row(flow.ProtoUDP, 0, 0, "10.0.0.1", "10.0.1.1", 1, 53, 10, t0)}
	r := collect(kernelSettings(nil), 0, rows).Report(Input{TableRows: 1})
	if cl := findClass(t, r, "udp", "UNREPLIED"); cl.Exact {
		t.Error("timeouts as of the last event must not be called exact")
	}
}

func TestTopConsumersAndRates(t *testing.T) {
	var rows []store.Row
	recent, old := t0.Add(-10*time.Second), t0.Add(-5*time.Minute)
	for i := range 30 { // 30 DNS flows from 10.1.1.0/24, 20 of them recent
		first := old
		if i < 20 {
			first = recent
		}
		rows = append(rows, row(flow.ProtoUDP, 0, 0, "10.1.1."+itoa(i%5+1), "10.9.9.53", uint16(3000+i), 53, 20, first))
	}
	for i := range 10 {
		rows = append(rows, row(flow.ProtoTCP, flow.TCPEstablished, assured, "fd00::"+itoa(i+1), "fd00::443", uint16(4000+i), 443, 431000, old))
	}
	rows[0].Flow.Mark, rows[1].Flow.Mark = 7, 7
	rows[2].Flow.Zone = 3
	c := collect(kernelSettings(nil), 60*time.Second, rows)
	r := c.Report(Input{TableRows: 50, FreshTimeouts: true, Top: 3})
	if r.RateWindow != 60 {
		t.Errorf("rate window %v, want 60", r.RateWindow)
	}
	top := r.Top.Dport[0]
	if top.Key != "udp/53" || top.Flows != 30 || top.Share != 0.6 || top.Filter != "udp and dst port 53" {
		t.Errorf("top dport %+v", top)
	}
	if top.NewPerS == nil || *top.NewPerS != round4(20.0/60) {
		t.Errorf("udp/53 new_per_s %v, want %v", top.NewPerS, 20.0/60)
	}
	if r.Table.NewPerS == nil || *r.Table.NewPerS != round4(20.0/60) {
		t.Errorf("table new_per_s %v", r.Table.NewPerS)
	}
	if got := r.Top.Dport[1]; got.Key != "tcp/443" || got.Flows != 10 {
		t.Errorf("second dport %+v", got)
	}
	if got := r.Top.DstHost[0]; got.Key != "10.9.9.53" || got.Flows != 30 || got.Filter != "dst host 10.9.9.53" {
		t.Errorf("top dst host %+v", got)
	}
	if got := r.Top.SrcNet[0]; got.Key != "10.1.1.0/24" || got.Flows != 30 {
		t.Errorf("top src net %+v", got)
	}
	if got := r.Top.SrcNet[1]; got.Key != "fd00::/64" || got.Flows != 10 || got.Filter != "src net fd00::/64" {
		t.Errorf("second src net %+v", got)
	}
	if got := r.Top.SrcHost; len(got) != 3 || got[0].Flows != 6 || got[0].Key != "10.1.1.1" {
		t.Errorf("src hosts %+v", got)
	}
	if got := r.Top.Mark; got[0].Key != "0" || got[0].Flows != 38 || got[1].Key != "7" || got[1].Flows != 2 {
		t.Errorf("marks %+v", got)
	}
	if got := r.Top.Zone; got[1].Key != "3" || got[1].Flows != 1 {
		t.Errorf("zones %+v", got)
	}
	// udp/53 dominates: notrack advice with the exact rule.
	var nt *Advice
	for i := range r.Advice {
		if r.Advice[i].Kind == "notrack" {
			nt = &r.Advice[i]
		}
	}
	if nt == nil || nt.Frees != 30 || !strings.Contains(nt.Command, "udp dport 53 notrack") {
		t.Errorf("notrack advice %+v", nt)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestLimitAdviceAndTimeToFull(t *testing.T) {
	s := kernelSettings(nil)
	s.Max, s.Buckets = 1000, 512
	s.CommandPrefix = "ip netns exec lab "
	var rows []store.Row
	for i := range 900 {
		rows = append(rows, row(flow.ProtoTCP, flow.TCPEstablished, assured, "10.0.0.1", "10.0.1.1", uint16(i+1), uint16(i%50+1000), 431990, t0))
	}
	var hist []store.CountSample
	for i := range 11 {
		hist = append(hist, store.CountSample{Time: t0.Add(time.Duration(i-10) * time.Second), Count: 800 + 10*i})
	}
	st := flow.TableStats{Time: t0, Count: 900, Max: 1000, EarlyDrop: 3, SearchRestart: 5}
	r := collect(s, 0, rows).Report(Input{TableRows: 900, FreshTimeouts: true, CountHistory: hist, Stats: st})
	if r.Table.Fill != 0.9 || r.Table.GrowthPerS != 10 || r.Table.TimeToFull == nil || *r.Table.TimeToFull != 10 {
		t.Errorf("fill %v growth %v ttf %v", r.Table.Fill, r.Table.GrowthPerS, r.Table.TimeToFull)
	}
	if r.Table.Hash.Load != round4(900.0/512) || !strings.Contains(r.Table.Hash.Verdict, "search_restart") {
		t.Errorf("hash %+v", r.Table.Hash)
	}
	if r.Table.Memory.PerEntry != 320+ExtBytes || r.Table.Memory.AtMax != 1000*448+512*8 {
		t.Errorf("memory %+v", r.Table.Memory)
	}
	var mx *Advice
	for i := range r.Advice {
		if r.Advice[i].Kind == "max" {
			mx = &r.Advice[i]
		}
	}
	if mx == nil {
		t.Fatalf("no max advice: %+v", r.Advice)
	}
	// Machine-wide: no namespace prefix.
	if mx.Command != "sysctl -w net.netfilter.nf_conntrack_max=2048 net.netfilter.nf_conntrack_buckets=2048" || mx.Headroom != 1048 {
		t.Errorf("max advice %+v", mx)
	}
	if mx.Rank != 1 {
		t.Errorf("max advice should rank first here: %+v", r.Advice)
	}
}

func TestTrackerSettingsAdvice(t *testing.T) {
	cfgS := kernelSettings(nil)
	cfgS.Tracker, cfgS.Max, cfgS.Buckets = true, 10, 0
	var rows []store.Row
	for i := range 9 {
		rows = append(rows, row(flow.ProtoUDP, 0, 0, "10.0.0.1", "10.0.1.1", uint16(i+1), 53, 20, t0))
	}
	r := collect(cfgS, 0, rows).Report(Input{TableRows: 9, FreshTimeouts: true})
	var cmds []string
	for _, a := range r.Advice {
		cmds = append(cmds, a.Command)
	}
	if !strings.Contains(strings.Join(cmds, "\n"), "conntop --max 32") {
		t.Errorf("tracker max advice missing: %q", cmds)
	}
	if !r.Tracker {
		t.Error("report should say it is the tracker")
	}
}

// TestJSONShape checks the document has the fields of the sketch.
func TestJSONShape(t *testing.T) {
	rows := []store.Row{
		row(flow.ProtoUDP, 0, 0, "10.0.0.1", "10.0.1.1", 1, 53, 10, t0),
		row(flow.ProtoUDP, 0, 0, "10.0.0.1", "10.0.1.1", 2, 53, 25, t0),
	}
	r := collect(kernelSettings(map[string]uint32{SysUDP: 60}), time.Minute, rows).Report(Input{Source: "conntrack", TableRows: 2, FreshTimeouts: true})
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version int `json:"version"`
		Table   struct {
			Count, Max, Buckets *uint64
		} `json:"table"`
		Classes []struct {
			Proto, State, Sysctl *string
			Flows, Assured       *int
			Value                *uint32
			WhatIf               []struct {
				Value          *uint32 `json:"value"`
				FreedNow       *int    `json:"freed_now"`
				FreedWithin60s *int    `json:"freed_within_60s"`
			} `json:"what_if"`
		} `json:"classes"`
		Top map[string][]struct {
			Key     *string  `json:"key"`
			Flows   *int     `json:"flows"`
			NewPerS *float64 `json:"new_per_s"`
		} `json:"top"`
		Advice []struct {
			Text, Command *string
			Frees         *int
		} `json:"advice"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != 1 || doc.Table.Count == nil || doc.Table.Max == nil || doc.Table.Buckets == nil {
		t.Fatalf("version/table: %s", buf.String())
	}
	c := doc.Classes[0]
	if c.Proto == nil || *c.Proto != "udp" || *c.State != "UNREPLIED" || *c.Sysctl != "nf_conntrack_udp_timeout" ||
		*c.Value != 60 || *c.Flows != 2 || c.Assured == nil || len(c.WhatIf) == 0 || c.WhatIf[0].FreedNow == nil ||
		c.WhatIf[0].FreedWithin60s == nil || c.WhatIf[0].Value == nil {
		t.Fatalf("class: %s", buf.String())
	}
	for _, dim := range []string{"dport", "dst_host", "src_host", "src_net", "zone", "mark"} {
		if len(doc.Top[dim]) == 0 || doc.Top[dim][0].Key == nil || doc.Top[dim][0].NewPerS == nil {
			t.Errorf("top %s: %s", dim, buf.String())
		}
	}
	if len(doc.Advice) == 0 || doc.Advice[0].Command == nil || doc.Advice[0].Frees == nil || doc.Advice[0].Text == nil {
		t.Errorf("advice: %s", buf.String())
	}
	// The text form renders too, and says nothing is applied.
	var tb bytes.Buffer
	if err := WriteText(&tb, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"WHERE THE ENTRIES ARE", "nf_conntrack_udp_timeout", "udp/53", "nothing is changed by conntop"} {
		if !strings.Contains(tb.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, tb.String())
		}
	}
}

func TestNoRowsNoWindow(t *testing.T) {
	r := collect(kernelSettings(nil), 0, nil).Report(Input{})
	if r.Table.NewPerS != nil || len(r.Classes) != 0 || len(r.Advice) != 0 {
		t.Errorf("empty report %+v", r)
	}
	if len(r.Notes) == 0 {
		t.Error("an empty report should say no rate was measured")
	}
}

func TestAddrKeyRoundTrip(t *testing.T) {
	for _, s := range []string{"10.1.2.3", "0.0.0.0", "255.255.255.255", "fd00::1", "::ffff:1.2.3.4", "2001:db8::ff00:42:8329"} {
		a := netip.MustParseAddr(s)
		if got := keyOf(a).addr(); got != a {
			t.Errorf("%s: round trip gave %s", s, got)
		}
	}
	if got := netKey(netip.MustParseAddr("10.1.2.3")).addr().String(); got != "10.1.2.0" {
		t.Errorf("v4 /24: %s", got)
	}
	if got := netKey(netip.MustParseAddr("fd00:1:2:3:4:5:6:7")).addr().String(); got != "fd00:1:2:3::" {
		t.Errorf("v6 /64: %s", got)
	}
}
