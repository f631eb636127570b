package flow

import (
	"maps"
	"time"
)

// EventType says what an Event reports.
type EventType uint8

// Event types.
const (
	// EventNew reports a flow that entered the table (or was listed by a dump).
	EventNew EventType = iota
	// EventUpdate reports a change of a flow's state, status, timeout or mark.
	EventUpdate
	// EventDestroy reports a flow that left the table; Flow carries its final
	// counters when known.
	EventDestroy
	// EventCounters carries refreshed packet/byte counters (and timeout) of a
	// flow from a periodic poll; it is not a state change and is not shown in
	// the event stream.
	EventCounters
	// EventResync reports that Lost events were lost (receive-buffer overrun)
	// and that a full listing of the table follows: EventNew for every flow
	// now present, then EventSynced. Flows not listed are gone.
	EventResync
	// EventSynced ends a full listing of the table (the initial dump or a
	// resync).
	EventSynced
	// EventStats carries fresh table statistics in Stats.
	EventStats
	// EventPolled carries one flow as a periodic poll of the table listed
	// it, from a source that leaves the reconciliation of its silent
	// flows to the consumer (see source.PollReconciler). Silent flows are
	// those of the initial listing that have reported no event since: a
	// kernel entry created before anyone listened for events never reports
	// one. For a silent flow that changed (state, status or mark) it is an
	// update; for any other flow it is EventCounters when the counters
	// moved, else nothing.
	EventPolled
	// EventPollDone ends the listing of a poll whose flows were sent as
	// EventPolled: the silent flows it did not list are gone.
	EventPollDone
	// EventBatch carries a run of events in Batch, to be taken in order in
	// place of this one. Only a source asked for batches sends it (see
	// source.Batcher): one channel operation per batch instead of one per
	// event for the initial listing of a big table.
	EventBatch

	// NumEventTypes is the number of event types (for tables indexed by
	// type).
	NumEventTypes
)

var eventTypeNames = [...]string{"new", "update", "destroy", "counters", "resync", "synced", "stats", "polled", "poll-done", "batch"}

// String returns the NDJSON name of the event type ("new", "update", …).
func (t EventType) String() string {
	if int(t) < len(eventTypeNames) {
		return eventTypeNames[t]
	}
	return "unknown"
}

// Event is one thing a source reports about the table. It is a value and
// safe to hand across goroutines, with one care: Stats points at table
// statistics whose InvalidReasons map the receiver must not modify; a
// sender that keeps changing its own map sends a copy (TableStats.Clone).
type Event struct {
	Type EventType
	// Time is when the event happened: wall clock for live sources, the
	// packet timestamp for pcap replay.
	Time time.Time
	// Flow is set for EventNew, EventUpdate, EventDestroy and EventCounters.
	Flow Flow
	// Lost is the number of events lost, for EventResync.
	Lost uint64
	// Stats is set for EventStats.
	Stats *TableStats
	// Batch is set for EventBatch.
	Batch *Batch
}

// TableStats are the table-pressure figures of a source: entry count and
// limit, the kernel's per-CPU statistics summed over CPUs, and conntop's own
// loss counters. Fields a source cannot know stay zero and their Has flag
// false.
type TableStats struct {
	Time time.Time
	// Count is the number of entries; Max the limit (nf_conntrack_max).
	Count, Max uint64
	// Kernel statistics (struct ip_conntrack_stat), summed over CPUs.
	Found, Invalid, Ignore, Insert, InsertFailed uint64
	Drop, EarlyDrop, Error, SearchRestart        uint64
	// ClashResolve and ChainTooLong exist on newer kernels only.
	ClashResolve, ChainTooLong uint64
	HasClashResolve            bool
	// EventsLost counts events lost to receive-buffer overruns; Resyncs the
	// full re-listings done because of them.
	EventsLost, Resyncs uint64
	// RingDrops counts packets the capture ring dropped (capture source).
	RingDrops uint64
	// Undecodable counts messages from the kernel that could not be decoded
	// and were skipped (kernel source): entries missing from the table.
	Undecodable uint64
	// ForeignMessages counts netlink datagrams dropped because their
	// sender was not the kernel (kernel source): forgeries, or a
	// misdirected process.
	ForeignMessages uint64
	// Accounting says whether byte/packet counters are kept
	// (nf_conntrack_acct for the kernel; always true for the tracker).
	Accounting bool
	// InvalidReasons counts INVALID packets by reason (tracker only); nil
	// for the kernel source.
	InvalidReasons map[string]uint64
	// Verdicts counts packets by the ct state the kernel's `ct state`
	// match would give them at prerouting (tracker sources, HasVerdicts).
	// Packets that never reach that match (dropped by the IP layer or a
	// full table, held by defragmentation) are not counted.
	Verdicts    Verdicts
	HasVerdicts bool
	// Expectations are the pending expectations (HasExpectations says the
	// source lists them). A sender builds a new slice for every EventStats
	// and never changes it afterwards, so receivers may keep it.
	Expectations    []Expectation
	HasExpectations bool
}

// Clone returns a copy of st that shares no map with it.
func (st *TableStats) Clone() *TableStats {
	c := *st
	c.InvalidReasons = maps.Clone(st.InvalidReasons)
	return &c
}
