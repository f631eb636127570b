//go:build linux

package conntrack

import (
	"context"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// Sizes of the initial listing's batches (RunBatches).
const (
	// listBatchSize is the events per batch: the channel operations, and
	// the pump's wake-ups, of a listing of millions of entries drop by
	// this factor.
	listBatchSize = 1024
	// listBatches is how many batches circulate between the source and
	// its receiver (about 2.7 MB of events).
	listBatches = 8
)

// listing collects the initial listing's EventNew into batches sent as
// EventBatch. Only the initial listing is batched: it runs before the
// event and poll loops start, so no other event of the source can fall
// between its entries; a resync's listing runs beside the poll loop and
// keeps one send per entry, which the silent set's ordering relies on.
type listing struct {
	free chan *flow.Batch // released batches (the receiver sends them back)
	cur  *flow.Batch      // being filled; nil when none
}

func newListing() *listing {
	l := &listing{free: make(chan *flow.Batch, listBatches)}
	for range listBatches {
		l.free <- flow.NewBatch(listBatchSize, l.free)
	}
	return l
}

// add appends the EventNew of a listed entry, sending the batch when
// full; it waits for a released batch unless ctx ends first.
func (l *listing) add(ctx context.Context, r *run, now time.Time, f *flow.Flow) error {
	if l.cur == nil {
		select {
		case l.cur = <-l.free:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.cur.Events = append(l.cur.Events, flow.Event{Type: flow.EventNew, Time: now, Flow: *f})
	if len(l.cur.Events) < cap(l.cur.Events) {
		return nil
	}
	return l.flush(ctx, r)
}

// flush sends the batch being filled, if any.
func (l *listing) flush(ctx context.Context, r *run) error {
	b := l.cur
	if b == nil || len(b.Events) == 0 {
		return nil
	}
	l.cur = nil
	return r.send(ctx, flow.Event{Type: flow.EventBatch, Batch: b})
}
