// Package source defines where flow events come from: the Source interface
// that the kernel conntrack, packet-capture and pcap-replay sources
// implement. The events and table statistics they emit are part of the flow
// model (internal/flow). It has no kernel imports; the adapters live in its
// sub-packages.
package source

import (
	"context"

	"github.com/conntop/conntop/internal/flow"
)

// A Source streams flow events until ctx is done.
//
// Every source starts with the full current table: one EventNew per flow,
// then one EventSynced. After that it streams changes. Run sends on out and
// never closes it; it returns nil when ctx is cancelled (or, for a finite
// source such as a pcap file, when the input is exhausted) and a wrapped
// error on a fatal failure.
type Source interface {
	// Name returns the snapshot's "source" name: "conntrack", "capture" or "pcap".
	Name() string
	Run(ctx context.Context, out chan<- flow.Event) error
}

// Deleter is implemented by sources that can remove flows from their table
// (the kernel source). Delete removes the given flows and returns how many were
// removed.
type Deleter interface {
	Delete(ctx context.Context, flows []flow.Flow) (int, error)
}

// PollReconciler is implemented by sources whose initial listing may hold
// flows that never report events (the kernel source: entries created
// before anyone listened for conntrack events). By default such a source
// remembers those flows itself and reconciles them by polling.
// ReconcileDownstream, called before Run, hands that job to the consumer,
// which holds every flow anyway (a store): the source then keeps no set of
// its own, and while left() reports silent flows it sends each flow of its
// polls as flow.EventPolled and ends each such poll with
// flow.EventPollDone (see store.Store.SilentLeft).
type PollReconciler interface {
	ReconcileDownstream(left func() int)
}

// Batcher is implemented by sources that can hand over runs of events
// (the initial listing of a big table) in EventBatch events: one channel
// operation per batch instead of one per event. RunBatches is Run, except
// that it may send EventBatch, whose events the receiver takes in order in
// its place and whose Batch it then releases (flow.Batch.Release).
type Batcher interface {
	RunBatches(ctx context.Context, out chan<- flow.Event) error
}
