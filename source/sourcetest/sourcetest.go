// Package sourcetest provides a scripted Source for tests of the store, the
// engine and the TUI: it emits a given list of events (each carrying its own
// time) and then blocks until its context is done, as a live source that has
// gone quiet does. It can also act as a Deleter, turning deletions into
// destroy events the way the kernel source does.
package sourcetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/source"
)

// ErrDeleteRefused is returned by Delete when the script was built with
// RefuseDelete.
var ErrDeleteRefused = errors.New("sourcetest: delete refused")

// Source is a scripted source.Source. The zero value is not usable; build it
// with New.
type Source struct {
	name   string
	events []flow.Event
	// Gap, when non-zero, is slept between consecutive events.
	gap time.Duration

	mu           sync.Mutex
	out          chan<- flow.Event
	deleted      []flow.Flow
	refuseDelete bool
	now          func() time.Time
	sent         chan struct{}
}

// Option configures a Source.
type Option func(*Source)

// WithGap makes Run sleep d between events (to exercise batching).
func WithGap(d time.Duration) Option { return func(s *Source) { s.gap = d } }

// WithRefuseDelete makes Delete fail with ErrDeleteRefused.
func WithRefuseDelete() Option { return func(s *Source) { s.refuseDelete = true } }

// WithClock sets the clock stamped on the destroy events Delete emits
// (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Source) { s.now = now } }

// New returns a source named name (the snapshot's "source" field) that emits
// evs in order.
func New(name string, evs []flow.Event, opts ...Option) *Source {
	s := &Source{name: name, events: evs, now: time.Now, sent: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	return s
}

var (
	_ source.Source  = (*Source)(nil)
	_ source.Deleter = (*Source)(nil)
)

// Name implements source.Source.
func (s *Source) Name() string { return s.name }

// Run implements source.Source: it sends the scripted events, then blocks
// until ctx is done and returns nil. Run may be called once.
func (s *Source) Run(ctx context.Context, out chan<- flow.Event) error {
	s.mu.Lock()
	s.out = out
	s.mu.Unlock()
	for i, ev := range s.events {
		if i > 0 && s.gap > 0 {
			t := time.NewTimer(s.gap)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		select {
		case out <- ev:
		case <-ctx.Done():
			return nil
		}
	}
	close(s.sent)
	<-ctx.Done()
	return nil
}

// Sent returns a channel closed once every scripted event was handed to the
// consumer.
func (s *Source) Sent() <-chan struct{} { return s.sent }

// Delete implements source.Deleter: it records the flows and, while Run
// runs, emits a destroy event for each of them.
func (s *Source) Delete(ctx context.Context, flows []flow.Flow) (int, error) {
	s.mu.Lock()
	if s.refuseDelete {
		s.mu.Unlock()
		return 0, fmt.Errorf("delete %d flows: %w", len(flows), ErrDeleteRefused)
	}
	s.deleted = append(s.deleted, flows...)
	out := s.out
	now := s.now
	s.mu.Unlock()
	if out == nil {
		return len(flows), nil
	}
	for i := range flows {
		select {
		case out <- flow.Event{Type: flow.EventDestroy, Time: now(), Flow: flows[i]}:
		case <-ctx.Done():
			return i, fmt.Errorf("delete flows: %w", ctx.Err())
		}
	}
	return len(flows), nil
}

// Deleted returns a copy of the flows passed to Delete so far.
func (s *Source) Deleted() []flow.Flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]flow.Flow(nil), s.deleted...)
}
