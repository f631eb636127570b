// Package compare is the kernel-versus-wire source (`--source
// conntrack,capture`): it runs the kernel's conntrack table (source/conntrack)
// and conntop's own tracker on the captured packets (source/capture) side by
// side, keeps each side's view of every flow by flow.Key, and emits one
// merged event stream in which every flow carries a flow.Compare mark: which
// side(s) hold it and whether they disagree.
//
// # Which flow is shown
//
// The kernel is the authority: while the kernel holds a flow, the merged
// flow is the kernel's (its id, status, timeout and counters), and a state
// difference puts the wire's netfilter and TCP state in the mark
// (Compare.WireState, Compare.WireTCPState). A flow only the wire holds is
// shown as the wire tracker has it. The merged flow is destroyed when the
// last side lets it go; until then a side that leaves only changes the mark.
//
// Flows are matched by flow.Key (protocol, zone, original tuple). On a host
// that NATs, the capture may also see the translated packets on another
// interface as a flow of its own; such a wire flow whose original tuple is
// the inverse of a kernel flow's reply tuple is that flow's post-NAT leg and
// is not marked "wire only".
//
// # Grace period
//
// The two sides do not see a change at the same instant: the capture reads
// a packet a little before or after the kernel reports the entry, and each
// side expires entries on its own timer. A raw difference (one side only,
// or different states) is therefore published as a disagreement only once
// it has lasted Options.Grace (default 2 s). Agreement is published at once.
// The mark is re-evaluated on every event of either side and on a ticker
// (Options.Tick), so a pending difference becomes a disagreement, and the
// store sees an EventUpdate, even when neither side says anything more.
//
// # Listing and resynchronisation
//
// The merged initial listing ends (EventSynced) when both sides have
// finished theirs. When a side resynchronises after lost events, its
// re-listing is applied, entries it did not list again are dropped from
// that side, and the merged table is re-listed downstream (EventResync,
// EventNew per merged flow, EventSynced) so that the store reconciles too.
//
// # Statistics
//
// Table statistics are the kernel's (count, max, kernel counters), with the
// capture's ring drops added as TableStats.RingDrops so that a capture drop
// (which makes the wire's view incomplete) is never silent.
//
// The merging itself is [Merger], a pure state machine (time passed in, no
// goroutines) that [Source] drives.
package compare
