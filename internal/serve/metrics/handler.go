package metrics

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/internal/termsafe"
)

// NewRegistry returns a registry holding a Collector for eng and the Go
// runtime and process collectors.
func NewRegistry(eng *engine.Engine) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		NewCollector(eng),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics collector: %w", err)
		}
	}
	return reg, nil
}

// Handler returns the HTTP handler of the metrics listener: /metrics (the
// Prometheus exposition of reg) and /healthz (200 while eng's source is
// live, 503 otherwise).
func Handler(eng *engine.Engine, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		d := eng.Summary().Degraded
		healthz(w, eng.Status(), d)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "conntop: see /metrics and /healthz")
	})
	return mux
}

// healthz writes the health answer for st: 200 while the source is live,
// 503 otherwise. A store that gave something up to stay within its memory
// limit (d) is still healthy (its flows and counts are complete) but says
// so on a second line.
func healthz(w http.ResponseWriter, st engine.Status, d store.Degradation) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	src := st.Source
	if src == "" {
		src = "none"
	}
	if st.Live {
		synced := "listing the table"
		if st.Synced {
			synced = "synced"
		}
		fmt.Fprintf(w, "ok: source %s live, %s\n", src, synced)
		if d.Any() {
			fmt.Fprintln(w, degradedLine(d))
		}
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	switch {
	case st.Err != nil:
		// The error may quote kernel text or a user's path: a health check
		// is often read with curl on a terminal.
		fmt.Fprintf(w, "down: source %s failed: %s\n", src, termsafe.Escape(st.Err.Error()))
	case st.Done:
		fmt.Fprintf(w, "down: source %s ended\n", src)
	default:
		fmt.Fprintf(w, "down: source %s not running\n", src)
	}
}

// degradedLine says in one line what the store gave up and why.
func degradedLine(d store.Degradation) string {
	var off []string
	if d.NoHistory {
		off = append(off, "per-flow history")
	}
	if d.NoLinger {
		off = append(off, "lingering of closed flows")
	}
	return fmt.Sprintf("degraded: %s off to stay within the memory limit (store uses %.1f MiB of %.1f MiB); flows and counts are complete",
		strings.Join(off, " and "), float64(d.Used)/(1<<20), float64(d.Limit)/(1<<20))
}
