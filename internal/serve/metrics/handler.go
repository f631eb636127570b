package metrics

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/conntop/conntop/internal/engine"
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
		healthz(w, eng.Status())
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "conntop: see /metrics and /healthz")
	})
	return mux
}

// healthz writes the health answer for st.
func healthz(w http.ResponseWriter, st engine.Status) {
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
