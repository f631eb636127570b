package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/conntop/conntop/internal/buildinfo"
	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/source/sourcetest"
)

// synthFlow returns flow i of a synthetic table: TCP (three in four, in
// varying states) and UDP, IPv4 and IPv6.
func synthFlow(i int) flow.Flow {
	f := flow.Flow{ID: uint32(i + 1), Family: flow.FamilyIPv4, Proto: flow.ProtoTCP,
		TCPState: flow.TCPEstablished, Status: flow.StatusConfirmed | flow.StatusSeenReply | flow.StatusAssured, Timeout: 100}
	src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	dst := netip.MustParseAddr("10.255.0.1")
	if i%5 == 4 {
		f.Family = flow.FamilyIPv6
		src = netip.AddrFrom16([16]byte{0xfd, 0, 15: byte(i), 14: byte(i >> 8), 13: byte(i >> 16)})
		dst = netip.MustParseAddr("fd00::1")
	}
	switch i % 4 {
	case 1:
		f.TCPState = flow.TCPTimeWait
	case 2:
		f.TCPState, f.Status = flow.TCPSynSent, flow.StatusConfirmed
	case 3:
		f.Proto, f.TCPState = flow.ProtoUDP, flow.TCPNone
	}
	f.Orig = flow.Tuple{Src: src, Dst: dst, SrcPort: uint16(1024 + i%60000), DstPort: 443}
	f.Reply = f.Orig.Reverse(f.Proto)
	return f
}

// engineWith returns an engine (without a source) holding n synthetic flows
// and the given table statistics.
func engineWith(tb testing.TB, n int, st *flow.TableStats) *engine.Engine {
	tb.Helper()
	eng := engine.New(nil, engine.Options{})
	now := time.Now()
	batch := make([]flow.Event, 0, 8192)
	for i := range n {
		batch = append(batch, flow.Event{Type: flow.EventNew, Time: now, Flow: synthFlow(i)})
		if len(batch) == cap(batch) {
			eng.Apply(batch)
			batch = batch[:0]
		}
	}
	batch = append(batch, flow.Event{Type: flow.EventSynced, Time: now})
	if st != nil {
		batch = append(batch, flow.Event{Type: flow.EventStats, Time: now, Stats: st})
	}
	eng.Apply(batch)
	return eng
}

func testStats() *flow.TableStats {
	return &flow.TableStats{
		Time: time.Now(), Count: 8, Max: 262144, Found: 1, Invalid: 2, Ignore: 3, Insert: 4,
		InsertFailed: 5, Drop: 6, EarlyDrop: 7, Error: 8, SearchRestart: 9, EventsLost: 10, Resyncs: 11,
		RingDrops: 12, InvalidReasons: map[string]uint64{"tcp: bad flags": 13},
		HasVerdicts: true, Verdicts: flow.Verdicts{14, 15, 16, 17, 18},
	}
}

func TestCollectorNodeExporterNames(t *testing.T) {
	eng := engineWith(t, 8, testStats())
	c := NewCollector(eng)
	want := `
# HELP node_nf_conntrack_entries Number of currently allocated flow entries for connection tracking.
# TYPE node_nf_conntrack_entries gauge
node_nf_conntrack_entries 8
# HELP node_nf_conntrack_entries_limit Maximum size of connection tracking table.
# TYPE node_nf_conntrack_entries_limit gauge
node_nf_conntrack_entries_limit 262144
# HELP node_nf_conntrack_stat_drop Number of packets dropped due to conntrack failure.
# TYPE node_nf_conntrack_stat_drop gauge
node_nf_conntrack_stat_drop 6
# HELP node_nf_conntrack_stat_early_drop Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.
# TYPE node_nf_conntrack_stat_early_drop gauge
node_nf_conntrack_stat_early_drop 7
# HELP node_nf_conntrack_stat_found Number of searched entries which were successful.
# TYPE node_nf_conntrack_stat_found gauge
node_nf_conntrack_stat_found 1
# HELP node_nf_conntrack_stat_ignore Number of packets seen which are already connected to a conntrack entry.
# TYPE node_nf_conntrack_stat_ignore gauge
node_nf_conntrack_stat_ignore 3
# HELP node_nf_conntrack_stat_insert Number of entries inserted into the list.
# TYPE node_nf_conntrack_stat_insert gauge
node_nf_conntrack_stat_insert 4
# HELP node_nf_conntrack_stat_insert_failed Number of entries for which list insertion was attempted but failed.
# TYPE node_nf_conntrack_stat_insert_failed gauge
node_nf_conntrack_stat_insert_failed 5
# HELP node_nf_conntrack_stat_invalid Number of packets seen which can not be tracked.
# TYPE node_nf_conntrack_stat_invalid gauge
node_nf_conntrack_stat_invalid 2
# HELP node_nf_conntrack_stat_search_restart Number of conntrack table lookups which had to be restarted due to hashtable resizes.
# TYPE node_nf_conntrack_stat_search_restart gauge
node_nf_conntrack_stat_search_restart 9
`
	names := []string{"node_nf_conntrack_entries", "node_nf_conntrack_entries_limit", "node_nf_conntrack_stat_found",
		"node_nf_conntrack_stat_invalid", "node_nf_conntrack_stat_ignore", "node_nf_conntrack_stat_insert",
		"node_nf_conntrack_stat_insert_failed", "node_nf_conntrack_stat_drop", "node_nf_conntrack_stat_early_drop",
		"node_nf_conntrack_stat_search_restart"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestCollectorConntopMetrics(t *testing.T) {
	// 10 flows: i%4 = 0,1,2 TCP (ESTABLISHED, TIME_WAIT, SYN_SENT), 3 UDP;
	// i%5 = 4 IPv6.
	eng := engineWith(t, 10, testStats())
	c := NewCollector(eng)
	tests := []struct {
		name string
		want string
	}{
		{"conntop_flows", "conntop_flows 10\n"},
		{"conntop_flows_by_family", "conntop_flows_by_family{family=\"ipv4\"} 8\nconntop_flows_by_family{family=\"ipv6\"} 2\n"},
		{"conntop_flows_by_protocol", "conntop_flows_by_protocol{protocol=\"icmp\"} 0\nconntop_flows_by_protocol{protocol=\"icmpv6\"} 0\n" +
			"conntop_flows_by_protocol{protocol=\"tcp\"} 8\nconntop_flows_by_protocol{protocol=\"udp\"} 2\n"},
		{"conntop_flows_by_state", "conntop_flows_by_state{state=\"ESTABLISHED\"} 8\nconntop_flows_by_state{state=\"NEW\"} 2\nconntop_flows_by_state{state=\"RELATED\"} 0\n"},
		{"conntop_events_lost_total", "conntop_events_lost_total 10\n"},
		{"conntop_resyncs_total", "conntop_resyncs_total 11\n"},
		{"conntop_tracker_invalid_total", "conntop_tracker_invalid_total{reason=\"tcp: bad flags\"} 13\n"},
		{"conntop_source_up", "conntop_source_up{source=\"none\"} 0\n"},
		{"conntop_tracker_packets_total", "conntop_tracker_packets_total{verdict=\"established\"} 15\nconntop_tracker_packets_total{verdict=\"invalid\"} 17\n" +
			"conntop_tracker_packets_total{verdict=\"new\"} 14\nconntop_tracker_packets_total{verdict=\"related\"} 16\nconntop_tracker_packets_total{verdict=\"untracked\"} 18\n"},
		{"conntop_store_degraded", "conntop_store_degraded{what=\"history\"} 0\nconntop_store_degraded{what=\"linger\"} 0\n"},
		{"conntop_store_memory_limit_bytes", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := gatherText(t, c, tt.name)
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
	tcp := gatherText(t, c, "conntop_tcp_flows_by_state")
	for _, want := range []string{`{tcp_state="ESTABLISHED"} 3`, `{tcp_state="TIME_WAIT"} 3`, `{tcp_state="SYN_SENT"} 2`, `{tcp_state="CLOSE"} 0`} {
		if !strings.Contains(tcp, want) {
			t.Errorf("conntop_tcp_flows_by_state lacks %s:\n%s", want, tcp)
		}
	}
	if strings.Contains(tcp, "NONE") {
		t.Errorf("conntop_tcp_flows_by_state has a NONE state:\n%s", tcp)
	}
	ev := gatherText(t, c, "conntop_events_total")
	for _, want := range []string{`{type="new"} 10`, `{type="stats"} 1`, `{type="polled"} 0`, `{type="poll-done"} 0`} {
		if !strings.Contains(ev, "conntop_events_total"+want+"\n") {
			t.Errorf("conntop_events_total lacks %s:\n%s", want, ev)
		}
	}
	if strings.Contains(ev, "batch") {
		t.Errorf("conntop_events_total counts batches, the envelopes of events:\n%s", ev)
	}
	// A poll's listing counts too: it is how much of the source's work
	// re-reads the table.
	now := time.Now()
	eng.Apply([]flow.Event{{Type: flow.EventPolled, Time: now, Flow: synthFlow(0)}, {Type: flow.EventPolled, Time: now, Flow: synthFlow(1)}, {Type: flow.EventPollDone, Time: now}})
	ev = gatherText(t, c, "conntop_events_total")
	for _, want := range []string{`{type="polled"} 2`, `{type="poll-done"} 1`} {
		if !strings.Contains(ev, "conntop_events_total"+want+"\n") {
			t.Errorf("after a poll, conntop_events_total lacks %s:\n%s", want, ev)
		}
	}
	if bi := gatherText(t, c, "conntop_build_info"); !strings.Contains(bi, "goversion=\"go") || !strings.HasSuffix(bi, " 1\n") {
		t.Errorf("conntop_build_info:\n%s", bi)
	}
	// The same version, commit and date as conntop --version.
	in := buildinfo.Get()
	for _, l := range []string{`version="` + in.Version + `"`, `revision="` + in.Commit + `"`, `build_date="` + in.Date + `"`} {
		if bi := gatherText(t, c, "conntop_build_info"); !strings.Contains(bi, l) {
			t.Errorf("conntop_build_info lacks %s:\n%s", l, bi)
		}
	}
	// The ring-drop counter belongs to the capture source only.
	if got := gatherText(t, c, "conntop_capture_ring_drops_total"); got != "" {
		t.Errorf("ring drops exported for a non-capture source: %s", got)
	}
}

func TestCollectorWithoutStats(t *testing.T) {
	eng := engineWith(t, 3, nil)
	c := NewCollector(eng)
	if got := gatherText(t, c, "node_nf_conntrack_entries"); got != "node_nf_conntrack_entries 3\n" {
		t.Errorf("entries without source statistics: %q; want the store's count", got)
	}
	if got := gatherText(t, c, "node_nf_conntrack_entries_limit"); got != "" {
		t.Errorf("limit exported without source statistics: %q", got)
	}
}

// gatherText returns the samples of the named metric, one a line, as
// "name{labels} value", sorted.
func gatherText(t *testing.T, c prometheus.Collector, name string) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			b.WriteString(name)
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				b.WriteString("{" + strings.Join(ls, ",") + "}")
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			fmt.Fprintf(&b, " %g\n", v)
		}
	}
	return b.String()
}

func TestHandler(t *testing.T) {
	stopped := engineWith(t, 2, nil)
	src := sourcetest.New("conntrack", []flow.Event{{Type: flow.EventSynced, Time: time.Now()}})
	live := engine.New(src, engine.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- live.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-src.Sent():
	case <-time.After(5 * time.Second):
		t.Fatal("source did not start")
	}

	tests := []struct {
		name       string
		eng        *engine.Engine
		path       string
		wantStatus int
		wantBody   string
	}{
		{"healthz live", live, "/healthz", 200, "ok: source conntrack live"},
		{"healthz not running", stopped, "/healthz", 503, "down: source none not running"},
		{"metrics", live, "/metrics", 200, `conntop_source_up{source="conntrack"} 1`},
		{"go runtime metrics", live, "/metrics", 200, "go_goroutines"},
		{"unknown path", live, "/nope", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := NewRegistry(tt.eng)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(Handler(tt.eng, reg))
			defer srv.Close()
			var resp *http.Response
			var body []byte
			// The engine reports Live once its pump runs.
			ok := false
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				resp, err = http.Get(srv.URL + tt.path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				if resp.StatusCode == tt.wantStatus && strings.Contains(string(body), tt.wantBody) {
					ok = true
					break
				}
			}
			if !ok {
				t.Errorf("GET %s: %d %q; want %d containing %q", tt.path, resp.StatusCode, truncate(string(body), 300), tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// TestScrapeAllocsDoNotGrow checks that a scrape of a 262,144-flow table
// allocates no more than one of a 10-flow table: the collector never walks
// the table.
func TestScrapeAllocsDoNotGrow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 262,144-flow table")
	}
	small := scrapeAllocs(t, engineWith(t, 10, testStats()))
	big := scrapeAllocs(t, engineWith(t, 262144, testStats()))
	t.Logf("allocations per scrape: %.0f at 10 flows, %.0f at 262,144", small, big)
	// The tables differ in the protocols present (one label each); allow that.
	if big > small+4 {
		t.Errorf("a scrape allocates %.0f times at 262,144 flows, %.0f at 10", big, small)
	}
}

func scrapeAllocs(t *testing.T, eng *engine.Engine) float64 {
	reg := prometheus.NewRegistry()
	if err := reg.Register(NewCollector(eng)); err != nil {
		t.Fatal(err)
	}
	return testing.AllocsPerRun(20, func() {
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkScrape measures one Gather of the conntop collector (what a
// Prometheus scrape costs beyond the exposition encoding).
func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{10, 262144} {
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			eng := engineWith(b, n, testStats())
			reg := prometheus.NewRegistry()
			if err := reg.Register(NewCollector(eng)); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := reg.Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScrapeHTTP measures a whole /metrics request (with the Go and
// process collectors and text encoding) at 262,144 flows.
func BenchmarkScrapeHTTP(b *testing.B) {
	eng := engineWith(b, 262144, testStats())
	reg, err := NewRegistry(eng)
	if err != nil {
		b.Fatal(err)
	}
	h := Handler(eng, reg)
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// TestHealthzEscapesTheSourceError checks that a failed source's error,
// which may quote kernel text or a path, is answered with its terminal
// controls made visible.
func TestHealthzEscapesTheSourceError(t *testing.T) {
	rec := httptest.NewRecorder()
	healthz(rec, engine.Status{Source: "conntrack", Done: true, Err: errors.New("open /run/netns/x\x1b[2J: no such file")}, store.Degradation{})
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", rec.Code)
	}
	body := rec.Body.String()
	if want := `down: source conntrack failed: open /run/netns/x\x1b[2J: no such file`; !strings.Contains(body, want) {
		t.Errorf("body %q lacks %q", body, want)
	}
	if strings.Contains(body, "\x1b") {
		t.Errorf("body %q carries a raw escape", body)
	}
}
