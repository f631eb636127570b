package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/conntop/conntop/internal/ctsysctl"
	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/explain"
	"github.com/conntop/conntop/internal/store"
)

// explainDefaultDuration is how long `conntop explain` watches a live
// source by default, to measure the rate of new entries.
const explainDefaultDuration = 5 * time.Second

// explain prints what fills the table and what would relieve it: the
// kernel's table (read, then watched for --duration to measure new-entry
// rates), the capture's after --duration, or a replay's at its end.
func (env *runEnv) explain(ctx context.Context) error {
	o := env.opts
	flt, err := env.parseFilter()
	if err != nil {
		return err
	}
	whatIf, err := parseWhatIf(o.whatIf)
	if err != nil {
		return err
	}
	format := o.format
	if format == "" {
		format = "text"
	}
	cs, err := env.chooseSource()
	if err != nil {
		return err
	}
	if cs.notice != "" {
		fmt.Fprintf(env.stderr, "conntop: %s\n", escapeLines(cs.notice))
	}
	hooks := env.explainHooks(cs)
	// A one-shot walk of live flows: no lingering, the TUI's memory budget.
	so, plan, _ := env.storeOptions(reserveTUI, false)
	so.Linger = -1
	eng := env.newEngine(cs, so)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go plan.Tune(runCtx, memTuneInterval)
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(runCtx) }()

	d := o.duration
	if !o.set["duration"] {
		d = explainDefaultDuration
	}
	var syncedAt time.Time
	fresh := false
	switch cs.kind {
	case "pcap":
		// The whole file, then the table as it stands after the last
		// packet; the rate window is the capture's last minute.
		if err := <-engDone; err != nil {
			return err
		}
		syncedAt = earliestFirstSeen(eng)
		fresh = true // the tracker's timers are exact at every packet
	default:
		if syncedAt, err = waitSynced(ctx, eng, engDone); err != nil {
			return err
		}
		if cs.kind == "capture" {
			fmt.Fprintf(env.stderr, "conntop: capturing for %v\n", d)
			fresh = true
		} else {
			// Timers are as listed; watching longer lets packets refresh
			// them silently (no event), by at most the watch.
			fresh = d == 0
		}
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case err := <-engDone:
				t.Stop()
				if err != nil {
					return err
				}
				return errors.New("the source ended early")
			}
		}
	}
	hooks.SyncedAt = func() time.Time { return syncedAt }
	opts := explain.Options{Filter: flt.String(), WhatIf: whatIf, FreshTimeouts: fresh}
	if flt.String() != "" {
		opts.Matcher = flt
	}
	rep := explain.FromEngine(eng, hooks, opts)
	if cs.kind != "pcap" && !fresh && d > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("remaining timeouts are from the listing %v ago and later events: "+
			"idle times may be overstated by up to that much (--duration 0 for exact what-if figures, without rates)", d))
	}
	cancel()
	select {
	case err := <-engDone:
		_ = err // the report is made: how the source stopped does not change it
	case <-time.After(5 * time.Second):
	}
	return env.writeOut(func(w io.Writer) error {
		if format == "json" {
			return explain.WriteJSON(w, rep)
		}
		return explain.WriteText(w, rep)
	})
}

// explainHooks returns how explain reads the settings of the chosen
// source: the kernel's sysctls in the watched namespace, or the tracker's
// configuration.
func (env *runEnv) explainHooks(cs *chosenSource) explain.Hooks {
	switch cs.kind {
	case "capture", "pcap":
		cfg := env.trackerConfig()
		return explain.Hooks{Settings: func() explain.Settings { return explain.TrackerSettings(cfg) }}
	}
	spec := env.opts.netns
	return explain.Hooks{Settings: func() explain.Settings {
		s, err := ctsysctl.Read(spec)
		if err != nil {
			s.Problems = append(s.Problems, err.Error())
		}
		return s
	}}
}

// watchSynced records when eng's source completes its initial listing,
// polling its status until then or until ctx ends; the returned function
// reports that time (zero before).
func watchSynced(ctx context.Context, eng *engine.Engine) func() time.Time {
	var at atomic.Int64
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if st := eng.Status(); st.Synced || st.Done {
				at.Store(eng.Now().UnixNano())
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() time.Time {
		if n := at.Load(); n != 0 {
			return time.Unix(0, n)
		}
		return time.Time{}
	}
}

// waitSynced waits for the source's initial listing and returns when it
// ended.
func waitSynced(ctx context.Context, eng *engine.Engine, engDone <-chan error) (time.Time, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if eng.Status().Synced {
			return eng.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case err := <-engDone:
			if err == nil {
				err = errors.New("the source ended before listing the table")
			}
			return time.Time{}, err
		case <-t.C:
		}
	}
}

// earliestFirstSeen is the first time any flow of eng's table was seen
// (zero for an empty table).
func earliestFirstSeen(eng *engine.Engine) time.Time {
	var first time.Time
	eng.View(func(s *store.Store) {
		s.Walk(nil, func(r *store.Row) bool {
			if first.IsZero() || r.FirstSeen.Before(first) {
				first = r.FirstSeen
			}
			return true
		})
	})
	return first
}

// parseWhatIf parses --what-if (see explain.ParseWhatIf); a bad value is
// a usage error.
func parseWhatIf(s string) (map[string]uint32, error) {
	m, err := explain.ParseWhatIf(s)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return m, nil
}
