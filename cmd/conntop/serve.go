package main

import (
	"context"
	"errors"
	"log/slog"

	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/serve"
	"github.com/conntop/conntop/tui"
)

// serve runs one engine for many SSH viewers and the metrics endpoint until
// interrupted.
func (env *runEnv) serve(ctx context.Context) error {
	o := env.opts
	if _, err := env.parseFilter(); err != nil {
		return err
	}
	cs, err := env.chooseSource()
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(env.stderr, nil))
	if cs.notice != "" {
		logger.Warn(cs.notice)
	}
	// Without SSH viewers nobody looks at flows: keep only the counts the
	// metrics need.
	metricsOnly := o.ssh == ""
	reserve := int64(reserveMetricsOnly)
	if !metricsOnly {
		reserve = reserveServe + int64(o.maxSessions)*reservePerSession
	}
	so, plan, merr := env.storeOptions(reserve, metricsOnly)
	if merr != nil {
		logger.Warn(merr.Error())
	}
	logger.Info(plan.String(), "counts_only", metricsOnly)
	eng := env.newEngine(cs, so)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go plan.Tune(ctx, memTuneInterval)
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(ctx) }()

	topts := env.tuiOptions(eng, true)
	// Remote viewers see flows, not which of the server's processes own them.
	topts.NoProcs = true
	cfg := serve.Config{
		SSHAddr:        o.ssh,
		AuthorizedKeys: o.authorizedKeys,
		HostKey:        o.hostKey,
		MaxSessions:    o.maxSessions,
		IdleTimeout:    o.idleTimeout,
		MetricsAddr:    o.metrics,
		Refresh:        o.refresh,
		Logger:         logger,
		NewModel: func(eng *engine.Engine, _ serve.SessionInfo) tea.Model {
			return tui.New(eng, topts)
		},
	}
	serr := serve.Run(ctx, eng, cfg)
	cancel()
	eerr := <-engDone
	if serr != nil {
		return serr
	}
	if eerr != nil && !errors.Is(eerr, context.Canceled) {
		return eerr
	}
	return nil
}
