package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"

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
	if !metricsOnly {
		cores, undo := spareScheduler(os.Getenv("GOMAXPROCS"))
		defer undo()
		so.Cores = cores
	}
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

// spareScheduler runs Go's scheduler with one P more than the cores the
// store's readers use (the returned count, for store.Options.Cores) and
// returns how to undo it. Go notices a ready network connection (a scrape,
// an SSH key press) when a P runs out of work, or else at its monitor's
// network poll, every 10 ms at most; viewers' scans can keep every P busy
// for longer than that, and scrapes then waited 10-40 ms before their
// handler ran. With a spare P, one is mostly idle, waiting in the network
// poller. The machine's cores are as many as before and the store still
// reads with one goroutine per core, so the spare adds no work to the
// store's reads (explain's analysis sizes itself by Ps: one task more). A
// GOMAXPROCS the user set (gomaxprocsEnv) is left as it is; undo gives
// the runtime back its default (which follows a container's CPU limit).
func spareScheduler(gomaxprocsEnv string) (cores int, undo func()) {
	cores = runtime.GOMAXPROCS(0)
	if n, err := strconv.Atoi(gomaxprocsEnv); err == nil && n > 0 {
		return cores, func() {} // the runtime ignores other values
	}
	runtime.GOMAXPROCS(cores + 1)
	return cores, runtime.SetDefaultGOMAXPROCS
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
