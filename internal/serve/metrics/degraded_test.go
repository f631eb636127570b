package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/conntop/conntop/internal/engine"
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
