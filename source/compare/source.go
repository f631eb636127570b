package compare

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/source"
)

// DefaultTick is how often pending differences are re-evaluated.
const DefaultTick = 250 * time.Millisecond

// Options configures a compare Source.
type Options struct {
	// Grace is how long a difference must last before the flow is marked
	// (default DefaultGrace).
	Grace time.Duration
	// Tick is how often differences in their grace period are re-evaluated
	// (default DefaultTick).
	Tick time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Source runs a kernel source and a wire source side by side and emits the
// merged stream (see the package documentation). It implements
// source.Source.
type Source struct {
	sides [2]source.Source
	opts  Options
}

var _ source.Source = (*Source)(nil)

// New returns a Source comparing kernel (the authority, normally
// source/conntrack) with wire (normally source/capture).
func New(kernel, wire source.Source, opts Options) *Source {
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Tick <= 0 {
		opts.Tick = DefaultTick
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Source{sides: [2]source.Source{kernel, wire}, opts: opts}
}

// Name implements source.Source: "conntrack,capture" for the usual pair
// (the two sides' names joined by a comma, as --source spells it).
func (s *Source) Name() string { return s.sides[Kernel].Name() + "," + s.sides[Wire].Name() }

// sideResult is how one side's Run ended.
type sideResult struct {
	side Side
	err  error
}

// Run implements source.Source: it runs both sides and sends the merged
// events until ctx is done. If a side fails, the other is stopped and the
// error returned, naming the side. A side that ends without error (a
// finite source) leaves the other running.
func (s *Source) Run(ctx context.Context, out chan<- flow.Event) error {
	if s.sides[Kernel] == nil || s.sides[Wire] == nil {
		return errNoSides
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var in [2]chan flow.Event
	done := make(chan sideResult, 2)
	for i := range s.sides {
		in[i] = make(chan flow.Event, 4096)
		go func() { done <- sideResult{Side(i), s.sides[i].Run(ctx, in[i])} }()
	}
	running := 2
	// stop cancels both sides and waits for them, draining what they
	// still send.
	stop := func() {
		cancel()
		for running > 0 {
			select {
			case <-done:
				running--
			case <-in[Kernel]:
			case <-in[Wire]:
			}
		}
	}
	m := NewMerger(s.opts.Grace)
	tk := time.NewTicker(s.opts.Tick)
	defer tk.Stop()
	var buf []flow.Event
	for {
		buf = buf[:0]
		select {
		case ev := <-in[Kernel]:
			buf = m.Apply(buf, Kernel, &ev, s.opts.Now())
		case ev := <-in[Wire]:
			buf = m.Apply(buf, Wire, &ev, s.opts.Now())
		case <-tk.C:
			buf = m.Tick(buf, s.opts.Now())
		case r := <-done:
			running--
			if r.err != nil && ctx.Err() == nil {
				stop()
				return fmt.Errorf("compare: %s side (%s): %w", r.side, s.sides[r.side].Name(), r.err)
			}
			if running == 0 && ctx.Err() == nil {
				// Both finite sides ended: send what is left, then stop.
				for side, ch := range in {
					for len(ch) > 0 {
						ev := <-ch
						buf = m.Apply(buf, Side(side), &ev, s.opts.Now())
					}
				}
				return s.send(ctx, out, buf)
			}
		case <-ctx.Done():
			stop()
			return nil
		}
		if err := s.send(ctx, out, buf); err != nil {
			stop()
			return nil
		}
	}
}

// send hands evs to out, giving up when ctx is done.
func (s *Source) send(ctx context.Context, out chan<- flow.Event, evs []flow.Event) error {
	for i := range evs {
		select {
		case out <- evs[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// errNoSides is returned by Run when a side is missing.
var errNoSides = errors.New("compare: both a kernel and a wire source are needed")
