package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// TestHealthzDegraded checks that a store that gave something up to stay
// within its memory limit leaves /healthz at 200 while the source is live,
// with a second line saying what was given up.
func TestHealthzDegraded(t *testing.T) {
	live := engine.Status{Source: "conntrack", Live: true, Synced: true}
	tests := []struct {
		name       string
		st         engine.Status
		d          store.Degradation
		wantStatus int
		want       []string
		notWant    string
	}{
		{"not degraded", live, store.Degradation{Limit: 64 << 20, Used: 1 << 20}, 200,
			[]string{"ok: source conntrack live, synced\n"}, "degraded"},
		{"history off", live, store.Degradation{NoHistory: true, Limit: 64 << 20, Used: 70 << 20}, 200,
			[]string{"ok: source conntrack live, synced\n", "degraded: per-flow history off to stay within the memory limit (store uses 70.0 MiB of 64.0 MiB); flows and counts are complete\n"}, "linger"},
		{"history and linger off", live, store.Degradation{NoHistory: true, NoLinger: true, Limit: 64 << 20, Used: 63 << 20}, 200,
			[]string{"degraded: per-flow history and lingering of closed flows off"}, ""},
		{"source down", engine.Status{Source: "conntrack", Done: true}, store.Degradation{NoHistory: true}, 503,
			[]string{"down: source conntrack ended"}, "degraded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			healthz(rec, tt.st, tt.d)
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			body := rec.Body.String()
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("body %q lacks %q", body, w)
				}
			}
			if tt.notWant != "" && strings.Contains(body, tt.notWant) {
				t.Errorf("body %q has %q", body, tt.notWant)
			}
		})
	}
}

// TestDegradedStoreSaidOutLoud runs a store with a memory budget far below
// what its flows take: the collector exports what it gave up and the
// budget, /healthz says so and stays 200, and the counts stay exact.
func TestDegradedStoreSaidOutLoud(t *testing.T) {
	const n = 4096
	eng := engine.New(nil, engine.Options{Store: store.Options{MemoryLimit: 1 << 10}})
	fillEngine(eng, n)
	c := NewCollector(eng)
	for _, want := range []string{`conntop_store_degraded{what="history"} 1`, `conntop_store_degraded{what="linger"} 1`} {
		if got := gatherText(t, c, "conntop_store_degraded"); !strings.Contains(got, want) {
			t.Errorf("conntop_store_degraded:\n%s\nlacks %s", got, want)
		}
	}
	if got := gatherText(t, c, "conntop_store_memory_limit_bytes"); got != "conntop_store_memory_limit_bytes 1024\n" {
		t.Errorf("conntop_store_memory_limit_bytes: %q", got)
	}
	if got := gatherText(t, c, "conntop_store_memory_bytes"); !strings.HasPrefix(got, "conntop_store_memory_bytes ") || strings.HasSuffix(got, " 0\n") {
		t.Errorf("conntop_store_memory_bytes: %q", got)
	}
	if got := gatherText(t, c, "conntop_flows"); got != "conntop_flows 4096\n" {
		t.Errorf("a degraded store counts %q, want 4096 flows", got)
	}
	var d store.Degradation
	eng.View(func(s *store.Store) { d = s.Summary().Degraded })
	rec := httptest.NewRecorder()
	healthz(rec, engine.Status{Source: "conntrack", Live: true, Synced: true}, d)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "\ndegraded: per-flow history and lingering of closed flows off") {
		t.Errorf("/healthz of a degraded store: %d %q", rec.Code, rec.Body.String())
	}
}

// TestStoreMemoryUsedAt262k logs the store's own estimate for a
// 262,144-flow table (the lab test's degraded limit is set from it).
func TestStoreMemoryUsedAt262k(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 262,144-flow table")
	}
	eng := engine.New(nil, engine.Options{Store: store.Options{MemoryLimit: 1 << 40}})
	fillEngine(eng, 262144)
	var d store.Degradation
	eng.View(func(s *store.Store) { d = s.Summary().Degraded })
	t.Logf("store estimate at 262,144 flows: %.1f MiB (%.0f bytes/flow)", float64(d.Used)/(1<<20), float64(d.Used)/262144)
	if d.Any() || d.Used <= 0 {
		t.Errorf("degradation %+v", d)
	}
}

// fillEngine applies n synthetic flows and a synced marker.
func fillEngine(eng *engine.Engine, n int) {
	now := time.Now()
	batch := make([]flow.Event, 0, 8192)
	for i := range n {
		batch = append(batch, flow.Event{Type: flow.EventNew, Time: now, Flow: synthFlow(i)})
		if len(batch) == cap(batch) {
			eng.Apply(batch)
			batch = batch[:0]
		}
	}
	eng.Apply(append(batch, flow.Event{Type: flow.EventSynced, Time: now}))
}

// TestCountsOnlySameMetrics checks that a counts-only store (serve
// --metrics without --ssh) gives every conntop metric the full store gives.
func TestCountsOnlySameMetrics(t *testing.T) {
	const n = 1000
	full := engine.New(nil, engine.Options{})
	counts := engine.New(nil, engine.Options{Store: store.Options{CountsOnly: true}})
	fillEngine(full, n)
	fillEngine(counts, n)
	for _, name := range []string{"conntop_flows", "conntop_flows_lingering", "conntop_flows_assured", "conntop_flows_by_family",
		"conntop_flows_by_protocol", "conntop_flows_by_state", "conntop_tcp_flows_by_state", "conntop_events_total",
		"node_nf_conntrack_entries", "conntop_store_degraded"} {
		want := gatherText(t, NewCollector(full), name)
		if got := gatherText(t, NewCollector(counts), name); got != want || got == "" {
			t.Errorf("%s: counts-only store\n%s\nfull store\n%s", name, got, want)
		}
	}
}
