package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/serve"
	"github.com/conntop/conntop/internal/untrack"
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

	hooks := env.explainHooks(cs)
	hooks.SyncedAt = watchSynced(ctx, eng)
	topts := env.tuiOptions(eng, true)
	topts.Explain = hooks
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
		Explain:        hooks,
		NewModel: func(eng *engine.Engine, _ serve.SessionInfo) tea.Model {
			return tui.New(eng, topts)
		},
	}
	srv, err := serve.New(eng, cfg)
	if err != nil {
		return err
	}
	if o.untracked {
		tab, err := untrack.Install(listenPorts(srv.SSHAddr(), srv.MetricsAddr()), untrack.Options{})
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("serve --untracked: %w", err)
		}
		logger.Info("untracked: connections to these ports skip conntrack", "table", "inet "+untrack.TableName,
			"ports", fmt.Sprint(tab.Ports()))
		defer func() {
			if err := tab.Remove(); err != nil {
				logger.Error("untracked: remove the nftables table", "error", err)
				return
			}
			logger.Info("untracked: nftables table removed", "table", "inet "+untrack.TableName)
		}()
	}
	serr := srv.Run(ctx)
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

// listenPorts returns the TCP listening sockets to exempt from conntrack.
func listenPorts(addrs ...net.Addr) []untrack.Port {
	var ports []untrack.Port
	for _, a := range addrs {
		if ta, ok := a.(*net.TCPAddr); ok && ta != nil {
			ip, _ := netip.AddrFromSlice(ta.IP)
			ports = append(ports, untrack.Port{Addr: ip.Unmap(), Port: uint16(ta.Port)})
		}
	}
	return ports
}
