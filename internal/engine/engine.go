// Package engine runs one Source into one Store and lets any number of
// viewers (the TUI, SSH sessions, the metrics endpoint, headless commands)
// read the store safely. The source's events are drained by a pump goroutine
// that applies them in bounded batches under the write lock; viewers read
// under the read lock and take values out. Each Viewer owns its query state
// (store.View): repeated queries cost only what changed, and a scan of the
// whole table (a new filter or sort) runs on every core in chunks, releasing
// the read lock between chunks, so readers never hold the pump up for more
// than one chunk (32,768 flows).
package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/source"
)

// ErrReadOnly is returned by Delete when the source cannot delete flows.
var ErrReadOnly = errors.New("this source cannot delete flows")

// Options configure an Engine.
type Options struct {
	// Store configures the store.
	Store store.Options
	// Now is the clock (default time.Now).
	Now func() time.Time
	// EventClock makes the latest event time the clock instead of Now: a
	// replayed capture's flows age on the capture's own timeline.
	EventClock bool
	// Tick is how often the store's clock advances while Run runs (default
	// 250ms).
	Tick time.Duration
	// Buffer is the capacity of the channel between source and pump
	// (default 65536 events).
	Buffer int
	// MaxBatch bounds the events applied under one lock (default 8192), so
	// readers are never starved.
	MaxBatch int
}

// Status says how the source is doing.
type Status struct {
	// Source is the source's name ("conntrack", "capture", "pcap").
	Source string
	// Live is true while the source runs.
	Live bool
	// Synced is true once the initial table listing is complete.
	Synced bool
	// Done is true once the source has ended (a replay finished, or an error).
	Done bool
	// Err is the error the source ended with, if any.
	Err error
	// Notice is a banner line set by the wiring (e.g. why auto chose capture).
	Notice string
}

// Engine owns a store fed by a source.
type Engine struct {
	src  source.Source
	opts Options

	mu sync.RWMutex
	st *store.Store

	version atomic.Uint64
	// eventTime is the latest event time seen (unix nanoseconds), the clock
	// with Options.EventClock.
	eventTime atomic.Int64

	smu    sync.Mutex
	status Status

	// published is the store's Summary as of the latest Tick, for readers
	// that must never wait for the lock (the metrics scrape).
	published atomic.Pointer[store.Summary]
}

// New returns an engine for src (which may be nil when the caller feeds
// events with Apply, as tests do).
func New(src source.Source, opts Options) *Engine {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = 250 * time.Millisecond
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 65536
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 8192
	}
	e := &Engine{src: src, opts: opts, st: store.New(opts.Store)}
	if src != nil {
		e.status.Source = src.Name()
	}
	if r, ok := src.(source.PollReconciler); ok {
		// The store holds every flow anyway: it, not a second set in the
		// source, remembers those that report no events.
		r.ReconcileDownstream(e.st.SilentLeft)
	}
	return e
}

// Now returns the engine's clock: the wall clock (Options.Now), or with
// Options.EventClock the time of the latest event applied.
func (e *Engine) Now() time.Time {
	if e.opts.EventClock {
		if ns := e.eventTime.Load(); ns != 0 {
			return time.Unix(0, ns)
		}
	}
	return e.opts.Now()
}

// Source returns the engine's source (nil when fed by Apply).
func (e *Engine) Source() source.Source { return e.src }

// Run runs the source and applies its events until ctx is done or the
// source ends. It returns the source's error, or nil.
func (e *Engine) Run(ctx context.Context) error {
	if e.src == nil {
		return errors.New("engine has no source")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan flow.Event, e.opts.Buffer)
	srcDone := make(chan error, 1)
	e.setStatus(func(s *Status) { s.Live = true })
	run := e.src.Run
	if b, ok := e.src.(source.Batcher); ok {
		run = b.RunBatches
	}
	go func() { srcDone <- run(ctx, ch) }()

	ticker := time.NewTicker(e.opts.Tick)
	defer ticker.Stop()
	batch := make([]flow.Event, 0, e.opts.MaxBatch)
	var srcErr error
	finished := false
	for !finished {
		select {
		case ev := <-ch:
			batch = append(batch[:0], ev)
			batch = drain(ch, batch, e.opts.MaxBatch)
			e.Apply(batch)
			clear(batch) // drop references to flows' strings and masters
		case <-ticker.C:
			e.Tick(e.Now())
		case srcErr = <-srcDone:
			finished = true
		}
	}
	// The source has returned: apply what it sent before it did.
	for len(ch) > 0 {
		batch = drain(ch, batch[:0], e.opts.MaxBatch)
		e.Apply(batch)
	}
	e.Tick(e.Now())
	if errors.Is(srcErr, context.Canceled) {
		srcErr = nil
	}
	e.setStatus(func(s *Status) {
		s.Live = false
		s.Done = true
		s.Err = srcErr
	})
	e.version.Add(1)
	if srcErr != nil {
		return fmt.Errorf("%s source: %w", e.status.Source, srcErr)
	}
	return nil
}

// drain appends up to max-len(batch) events already waiting in ch.
func drain(ch <-chan flow.Event, batch []flow.Event, max int) []flow.Event {
	for len(batch) < max {
		select {
		case ev := <-ch:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

// Apply applies a batch of events to the store. An EventBatch in it
// stands for its batch's events, applied in its place (in slices of at
// most MaxBatch events, so that readers wait no longer than for any other
// batch) before the batch is released.
func (e *Engine) Apply(evs []flow.Event) {
	for {
		i := slices.IndexFunc(evs, func(ev flow.Event) bool { return ev.Type == flow.EventBatch })
		if i < 0 {
			e.apply(evs)
			return
		}
		e.apply(evs[:i])
		if b := evs[i].Batch; b != nil {
			for run := b.Events; len(run) > 0; {
				n := min(len(run), e.opts.MaxBatch)
				e.apply(run[:n])
				run = run[n:]
			}
			b.Release()
		}
		evs = evs[i+1:]
	}
}

// apply applies events (no EventBatch) to the store.
func (e *Engine) apply(evs []flow.Event) {
	if len(evs) == 0 {
		return
	}
	synced := false
	latest := e.eventTime.Load()
	for i := range evs {
		if evs[i].Type == flow.EventSynced {
			synced = true
		}
		switch evs[i].Type {
		case flow.EventNew, flow.EventUpdate, flow.EventDestroy, flow.EventCounters, flow.EventPolled:
			// Flow events carry the source's own clock (packet time for a
			// replay); markers such as EventSynced may not.
			if t := evs[i].Time.UnixNano(); !evs[i].Time.IsZero() && t > latest {
				latest = t
			}
		}
	}
	e.eventTime.Store(latest)
	e.mu.Lock()
	e.st.Apply(evs)
	e.mu.Unlock()
	if synced {
		e.setStatus(func(s *Status) { s.Synced = true })
	}
	e.version.Add(1)
}

// Tick advances the store's clock to now.
func (e *Engine) Tick(now time.Time) {
	e.mu.Lock()
	e.st.Tick(now)
	sum := e.st.Summary()
	e.mu.Unlock()
	e.published.Store(&sum)
	e.version.Add(1)
}

// Summary returns the store's header figures without waiting behind the
// event pump or the viewers: read fresh when the store's lock is free at
// once, else the copy taken at the latest Tick (at most Options.Tick old).
// Its InvalidReasons map is shared: read it, do not change it.
func (e *Engine) Summary() store.Summary {
	if e.mu.TryRLock() {
		sum := e.st.Summary()
		e.mu.RUnlock()
		return sum
	}
	if p := e.published.Load(); p != nil {
		return *p
	}
	var sum store.Summary
	e.View(func(s *store.Store) { sum = s.Summary() })
	return sum
}

// View runs fn with the store under the read lock: several viewers (SSH
// sessions, the metrics scrape) read at once, and the event pump waits
// for them. fn must only read the store (its read methods change
// nothing), must not keep it nor anything it returns by reference beyond
// its own return, and should be quick: a table-wide query belongs in a
// Viewer, whose scans let the pump in between chunks.
func (e *Engine) View(fn func(s *store.Store)) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	fn(e.st)
}

// Snapshot returns the live flows passing m in key order (see
// store.Store.Snapshot) without holding the event pump up for long: the
// store is read in chunks under the read lock, released between them, and
// the answer is exactly the table as the last chunk left it (see
// store.Store.SnapshotLocked). sum is the store's summary as the snapshot
// ended: the source's table statistics (their InvalidReasons map a copy)
// and what the store gave up to stay within its memory limit.
func (e *Engine) Snapshot(m store.Matcher) (flows []flow.Flow, sum store.Summary) {
	flows = e.st.SnapshotLocked(m, e.mu.RLocker())
	e.View(func(s *store.Store) { sum = s.Summary() })
	sum.Table.InvalidReasons = maps.Clone(sum.Table.InvalidReasons)
	return flows, sum
}

// Version increases whenever the store changed; a viewer that saw the same
// version has nothing new to draw.
func (e *Engine) Version() uint64 { return e.version.Load() }

// Status returns the source's status.
func (e *Engine) Status() Status {
	e.smu.Lock()
	defer e.smu.Unlock()
	return e.status
}

// SetNotice sets the banner line viewers show.
func (e *Engine) SetNotice(text string) {
	e.setStatus(func(s *Status) { s.Notice = text })
	e.version.Add(1)
}

func (e *Engine) setStatus(fn func(*Status)) {
	e.smu.Lock()
	fn(&e.status)
	e.smu.Unlock()
}

// CanDelete reports whether the source can delete flows.
func (e *Engine) CanDelete() bool {
	_, ok := e.src.(source.Deleter)
	return ok
}

// Delete removes flows from the source's table (the kernel's); the removal
// then arrives as destroy events.
func (e *Engine) Delete(ctx context.Context, flows []flow.Flow) (int, error) {
	d, ok := e.src.(source.Deleter)
	if !ok {
		return 0, ErrReadOnly
	}
	n, err := d.Delete(ctx, flows)
	if err != nil {
		return n, fmt.Errorf("delete flows: %w", err)
	}
	return n, nil
}

// WalkChunk is how many records Walk reads under one hold of the lock.
const WalkChunk = 65536

// Walk calls fn with every live flow that passes m, in table order, until
// fn returns false. The table is read in ranges of WalkChunk records, each
// under its own read lock, so the event pump waits at most for one range,
// never for the whole table. As in any live walk, a flow that is destroyed
// and created again meanwhile may be seen twice, and one created meanwhile
// may be missed. The Row is only valid during the call.
func (e *Engine) Walk(m store.Matcher, fn func(r *store.Row) bool) {
	stop := false
	visit := func(r *store.Row) bool {
		stop = !fn(r)
		return !stop
	}
	for from, end := uint32(0), uint32(1); from < end && !stop; {
		to := from + WalkChunk
		if to < from {
			to = ^uint32(0)
		}
		e.View(func(s *store.Store) { end = s.WalkRange(m, from, to, visit) })
		from = to
	}
}
