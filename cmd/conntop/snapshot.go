package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/export"
	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/source"
	"github.com/conntop/conntop/source/pcap"
)

// snapshot prints the table once: the kernel's as dumped, the pcap replay's
// as it stands right after the last packet, or the capture's after
// --duration.
func (env *runEnv) snapshot(ctx context.Context) error {
	o := env.opts
	flt, format, cs, err := env.headless(export.FormatJSON)
	if err != nil {
		return err
	}
	var snap *export.Snapshot
	var readErr error
	switch cs.kind {
	case "pcap":
		snap, readErr = env.replaySnapshot(ctx)
		if snap == nil {
			return readErr
		}
	case "conntrack":
		// Streamed: a full table is printed as it is read, never held.
		return env.writeOut(func(w io.Writer) error { return streamDump(ctx, cs.src, w, format, flt) })
	default:
		d := o.duration
		if d == 0 {
			d = 5 * time.Second
		}
		fmt.Fprintf(env.stderr, "conntop: capturing for %v\n", d)
		snap, err = captureSnapshot(ctx, cs.src, d)
	}
	if err != nil {
		return err
	}
	snap.Flows = filterFlows(snap.Flows, flt)
	werr := env.writeOut(func(w io.Writer) error { return export.WriteSnapshot(w, format, snap) })
	if werr != nil {
		return werr
	}
	return readErr
}

// headless prepares a headless command: the parsed filter, the output
// format (def unless --format says otherwise) and the source, whose notice
// (why auto chose it) goes to stderr.
func (env *runEnv) headless(def export.Format) (*filter.Filter, export.Format, *chosenSource, error) {
	flt, err := env.parseFilter()
	if err != nil {
		return nil, 0, nil, err
	}
	format := def
	if env.opts.format != "" {
		if format, err = export.ParseFormat(env.opts.format); err != nil {
			return nil, 0, nil, usageErr("--format: %v", err)
		}
	}
	cs, err := env.chooseSource()
	if err != nil {
		return nil, 0, nil, err
	}
	if cs.notice != "" {
		fmt.Fprintf(env.stderr, "conntop: %s\n", escapeLines(cs.notice))
	}
	return flt, format, cs, nil
}

// writeOut runs fn on stdout, or on --output written atomically.
func (env *runEnv) writeOut(fn func(w io.Writer) error) error {
	if env.opts.output == "" || env.opts.output == "-" {
		if err := fn(env.stdout); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	if err := export.WriteFile(env.opts.output, export.FileOptions{Force: env.opts.force}, fn); err != nil {
		return err // WriteFile's errors name the path
	}
	return nil
}

// filterFlows keeps the flows f matches, in place.
func filterFlows(flows []flow.Flow, f *filter.Filter) []flow.Flow {
	out := flows[:0]
	for i := range flows {
		if f.Match(&flows[i]) {
			out = append(out, flows[i])
		}
	}
	clear(flows[len(out):])
	return out
}

// replaySnapshot tracks the whole capture file. A read error part way keeps
// the table built so far and is returned alongside it.
func (env *runEnv) replaySnapshot(ctx context.Context) (*export.Snapshot, error) {
	o := env.opts
	r, name := env.stdin, "stdin"
	if o.read != "-" {
		f, err := os.Open(o.read)
		if err != nil {
			return nil, fmt.Errorf("--read: %w", err)
		}
		defer f.Close()
		r, name = f, o.read
	}
	res, err := pcap.Replay(ctx, r, name, env.pcapConfig())
	if res == nil {
		return nil, err
	}
	snap := &export.Snapshot{Time: res.EndTime, Source: "pcap", Table: res.Stats, Flows: res.Flows}
	if snap.Time.IsZero() {
		snap.Time = time.Now()
	}
	return snap, err
}

// streamDump runs the kernel source until its initial listing is complete
// and writes each flow f matches as it arrives. The JSON document starts with
// the table statistics, so flows read before the first statistics are held
// until they come (the source sends them at once).
func streamDump(ctx context.Context, src source.Source, w io.Writer, format export.Format, f *filter.Filter) error {
	ch, done, stop := startSource(ctx, src, 4096)
	defer stop()
	head := &export.Snapshot{Source: src.Name()}
	var sw *export.SnapshotWriter
	var held []flow.Flow
	open := func() error {
		sw = export.NewSnapshotWriter(w, format, head)
		for i := range held {
			if err := sw.Write(&held[i]); err != nil {
				return err
			}
		}
		held = nil
		return nil
	}
	if format != export.FormatJSON {
		if err := open(); err != nil {
			return err
		}
	}
	statsWait := time.NewTimer(5 * time.Second)
	defer statsWait.Stop()
	// After the listing, the source's next statistics say whether any entry
	// could not be decoded: such a loss is reported, never silent.
	synced, statsAfter := false, false
	var undecodable uint64
	for !synced || sw == nil || !statsAfter {
		select {
		case ev := <-ch:
			switch ev.Type {
			case flow.EventNew:
				if synced || !f.Match(&ev.Flow) {
					continue
				}
				if sw == nil {
					held = append(held, ev.Flow)
				} else if err := sw.Write(&ev.Flow); err != nil {
					return err
				}
			case flow.EventSynced:
				synced = true
				statsWait.Reset(5 * time.Second)
			case flow.EventStats:
				if synced {
					statsAfter = true
					undecodable = ev.Stats.Undecodable
				}
				if sw == nil {
					head.Table = *ev.Stats
					head.Time = ev.Time
					if err := open(); err != nil {
						return err
					}
				}
			}
		case err := <-done:
			if err == nil {
				err = ctx.Err()
			}
			return fmt.Errorf("read %s table: %w", src.Name(), err)
		case <-statsWait.C:
			if sw == nil {
				return fmt.Errorf("read %s table: no table statistics within 5s", src.Name())
			}
			statsAfter = true // the listing is complete; no later figures to wait for
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := sw.Close(); err != nil {
		return err
	}
	stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("read %s table: %w", src.Name(), err)
		}
	default: // still stopping after 5 s: the table is written, leave it
	}
	if undecodable > 0 {
		return fmt.Errorf("read %s table: %d entries from the kernel could not be decoded and are missing from this snapshot",
			src.Name(), undecodable)
	}
	return nil
}

// captureSnapshot runs a live source for d and returns the table then.
func captureSnapshot(ctx context.Context, src source.Source, d time.Duration) (*export.Snapshot, error) {
	eng := engine.New(src, engine.Options{})
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := eng.Run(runCtx)
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	snap := &export.Snapshot{Time: eng.Now(), Source: src.Name()}
	flows, sum := eng.Snapshot(nil)
	snap.Flows, snap.Table, snap.Degraded = flows, sum.Table, export.DegradedFrom(sum.Degraded)
	return snap, nil
}
