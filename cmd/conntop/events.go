package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/conntop/conntop/internal/export"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/source"
)

// events streams flow events, like `conntrack -E`, until interrupted, after
// --count events or after --duration. The table listing every source starts
// with is not printed: only what happens from now on.
func (env *runEnv) events(ctx context.Context) error {
	o := env.opts
	flt, format, cs, err := env.headless(export.FormatNDJSON)
	if err != nil {
		return err
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	return env.writeOut(func(w io.Writer) error {
		return streamEvents(ctx, cs.src, w, format, func(ev *flow.Event) bool {
			return ev.Type == flow.EventResync || flt.Match(&ev.Flow)
		}, o.count)
	})
}

// streamEvents runs src and writes the events keep accepts, until ctx ends,
// the source ends or count events (0: no limit) were written.
func streamEvents(ctx context.Context, src source.Source, w io.Writer, f export.Format, keep func(*flow.Event) bool, count int) error {
	ch, done, stop := startSource(ctx, src, 65536)
	defer stop()
	ew := export.NewEventWriter(w, f)
	listing := true // the initial table listing is not news
	written := 0
	write := func(ev *flow.Event) error {
		switch ev.Type {
		case flow.EventSynced:
			listing = false
			return nil
		case flow.EventResync:
			listing = true // the re-listing that follows is not news either
		case flow.EventNew:
			if listing {
				return nil
			}
		case flow.EventUpdate, flow.EventDestroy:
		default:
			return nil
		}
		if !keep(ev) {
			return nil
		}
		if err := ew.Write(*ev); err != nil {
			return fmt.Errorf("write event: %w", err)
		}
		written++
		return nil
	}
	for {
		select {
		case ev := <-ch:
			if err := write(&ev); err != nil {
				return err
			}
			if count > 0 && written >= count {
				return nil
			}
		case err := <-done:
			// Deliver what the source sent before it ended.
			for len(ch) > 0 {
				ev := <-ch
				if werr := write(&ev); werr != nil {
					return werr
				}
				if count > 0 && written >= count {
					return nil
				}
			}
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("%s source: %w", src.Name(), err)
			}
			return nil
		}
	}
}

// startSource runs src in its own goroutine, sending on a channel of
// capacity buf; done receives Run's result. stop cancels the source and waits
// (at most 5 s) for it to end, so that its sockets are closed when a command
// returns.
func startSource(ctx context.Context, src source.Source, buf int) (ch chan flow.Event, done chan error, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	ch = make(chan flow.Event, buf)
	done = make(chan error, 1)
	ended := make(chan struct{})
	go func() {
		done <- src.Run(ctx, ch)
		close(ended)
	}()
	return ch, done, func() {
		cancel()
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
		}
	}
}
