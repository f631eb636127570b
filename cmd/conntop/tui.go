package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/tui"
)

// newEngine builds the engine for a chosen source with store options so
// (see storeOptions).
func (env *runEnv) newEngine(cs *chosenSource, so store.Options) *engine.Engine {
	eo := engine.Options{
		Store: so,
		// A replay's flows age on the capture's timeline, not today's.
		EventClock: cs.kind == "pcap",
	}
	switch {
	case so.CountsOnly:
		// One pump batch is enough between source and pump: bursts wait
		// in the kernel's socket buffer (128 MiB), and 65,536 events
		// would hold 21 MB of the metrics-only server's budget.
		eo.Buffer = 8192
	case cs.kind == "conntrack":
		// Two pump batches: the pump waits for readers only a chunk of
		// a scan at a time, and bursts wait in the kernel's socket
		// buffer; the engine's default (65,536 events, 21 MB) would
		// weigh on a big table's budget.
		eo.Buffer = 16384
	}
	eng := engine.New(cs.src, eo)
	if cs.notice != "" {
		eng.SetNotice(cs.notice)
	}
	return eng
}

// tuiOptions are the TUI settings the flags ask for.
func (env *runEnv) tuiOptions(eng *engine.Engine, readOnly bool) tui.Options {
	o := env.opts
	to := tui.Options{
		Now:         eng.Now,
		Refresh:     o.refresh,
		AllowDelete: o.allowDelete && !readOnly,
		ReadOnly:    readOnly,
		ASCII:       o.ascii,
		NoMouse:     o.noMouse,
		NoColor:     os.Getenv("NO_COLOR") != "",
		Filter:      o.filter,
		// Keys typed ahead over SSH arrive together: one query for them.
		CoalesceKeys: true,
	}
	// The owning-process lookup reads this namespace's socket tables; for
	// another namespace it needs a process inside it.
	if o.netns != "" {
		if pid, ok := strings.CutPrefix(o.netns, "pid:"); ok {
			to.ProcNet = "/proc/" + pid + "/net"
		} else {
			to.NoProcs = true
		}
	}
	return to
}

// tui runs the interactive UI until the user quits.
func (env *runEnv) tui(ctx context.Context) error {
	if _, err := env.parseFilter(); err != nil {
		return err
	}
	cs, err := env.chooseSource()
	if err != nil {
		return err
	}
	if env.opts.allowDelete && cs.kind != "conntrack" {
		return usageErr("--allow-delete needs the kernel source (--source conntrack)")
	}
	so, plan, merr := env.storeOptions(reserveTUI, false)
	eng := env.newEngine(cs, so)
	if merr != nil && cs.notice == "" {
		eng.SetNotice(merr.Error())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go plan.Tune(ctx, memTuneInterval)
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(ctx) }()

	topts := env.tuiOptions(eng, false)
	topts.Explain = env.explainHooks(cs)
	topts.Explain.SyncedAt = watchSynced(ctx, eng)
	p := tea.NewProgram(tui.New(eng, topts), tea.WithContext(ctx))
	_, perr := p.Run()
	cancel()
	var engErr error
	select {
	case engErr = <-engDone:
	case <-time.After(5 * time.Second):
		engErr = errors.New("source did not stop within 5s")
	}
	if perr != nil && !errors.Is(perr, tea.ErrProgramKilled) && !errors.Is(perr, context.Canceled) {
		return fmt.Errorf("terminal UI: %w", perr)
	}
	if engErr != nil && !errors.Is(engErr, context.Canceled) {
		return engErr
	}
	return nil
}
