// Package store is conntop's live flow table: it applies batches of source
// events, keeps recent transitions and counter rates, keeps destroyed flows
// visible for a while (Options.Linger), maintains the header figures
// incrementally, logs recent events, and answers windowed, filtered, sorted
// queries (per reader, through a View), group-by summaries and export
// snapshots.
//
// Apply and Tick change the store; every other method only reads it, so
// readers may run concurrently with each other but not with a writer
// (internal/engine holds a read-write lock; a View releases it between the
// chunks of a scan). It does not import internal/filter: filters reach it
// as Matchers.
//
// # Layout and cost
//
// Memory per flow is the design constraint: a node may hold 4,194,304
// flows. Each flow is a fixed-size, pointer-free record of 48 bytes in
// slabs of 262,144 records (12 MiB, whole huge pages on a huge-page
// boundary) mapped outside the Go heap (anonymous mmap), so the garbage
// collector neither scans them nor lets them double the heap between
// collections; when the table shrinks, the slabs above the last record in
// use are unmapped and the pages above it released. A record holds IPv4
// addresses in 4 bytes each, the ports (ICMP type, code and id folded into
// them), state, status, id, timeout, zone, the first-seen time in nanoseconds and the last-seen time in
// milliseconds after it, and the sort keys, all readable without building
// a flow.Flow. What most tables do not have lives in columns beside the
// records whose parts are mapped only once a flow in them has it: the
// counters (32 bits of packets, 36 of bytes per direction) and the time of
// their last sample, 20 bytes (the kernel keeps counters only with
// nf_conntrack_acct=1, off by default), and the conntrack mark, 4 bytes.
// A table without counters or marks costs 48 bytes a record, with both 72.
// Per-direction rates (16 bits each, within 0.05 %, see rate16) exist only
// for flows whose counters moved between two samples: they are kept in a
// map while such flows are few, and in an 8-byte column once they are more
// than one record in six (see rateTable). IPv6 addresses (32
// bytes) and the reply tuple of an IPv4 NAT flow (12 bytes; without NAT the
// reply is the inverse of the original and not stored) live in slabs of
// their own. Whatever is rare lives in a side table keyed by record index:
// a tuple that does not fit the record, an IPv6 NAT reply, the helper
// (interned), the master, the tracker's INVALID figures, a compare mark
// with the wire's states, counters too big for the record; a field added
// to flow.Flow goes there first (see rare). An open-addressing index of
// 4-byte slots (also mapped) maps flow keys to records; its hash is seeded
// per store. The index and the record slabs are advised to use huge pages;
// a source's table count (EventStats) before its initial listing sizes
// them, the change log and the history ring at once, and Apply loads the
// index slots of 16 events together, so that the listing neither rehashes
// nor waits for one cache miss after another. At 4,194,304 flows a process
// holding the store and 16 views peaks at about 348 MiB with counters and
// 267 MiB without (BenchmarkMemoryPerFlow).
//
// A flow's transition history is not kept per flow: a bounded global ring
// (at most 524,288 transitions, 8 MiB) holds the recent transitions of all
// flows, and Detail returns those of one flow still there. A change log
// records the index of every changed record with a sequence number; views
// read it to catch up.
//
// Summary never walks the table: counts by state, protocol, TCP state,
// family and assured bit are adjusted on every change; new, update and
// destroy rates and the transition matrix's per-second rates come from
// per-second buckets that Tick rolls over (RateWindow); CountHistory holds
// one sample per second.
//
// # Queries
//
// Each reader owns a View: its filter's answers as a bitmap over record
// indices with their count, and an exact stretch of its sorted order around
// the window last asked for (a buffer of small items — an order-preserving
// 64-bit prefix of the sort value and 96 bits of the flow key, plus the
// record index — and a bitmap of the flows ranked before the buffer). A
// scan (new filter, new sort, a window outside the buffer) runs on every
// core over chunks of 32,768 records, releasing the read lock between
// chunks, and selects the buffer with bounded heaps per worker (a window
// near the top, or around a selected flow) or, for a deep window, in two
// passes: the first keeps a sample of the order (every n-th matched flow),
// the second only the flows between two sampled ones that bracket the
// window (about 2.5 % of the matched flows), never sorting the whole table
// nor holding every matched flow. Views with an equal filter (the same
// text) share its bitmap: a view that needs the filter evaluated starts
// from the latest full scan's bitmap and catches up from the change log.
// Afterwards the view re-evaluates only the records the change
// log names, so a frame on an unchanged table costs its window's rows, and
// View.Changed says cheaply whether its answer may have changed. Readers
// take one CPU slot per core before the lock, so that a writer waits only
// for readers that are running. Selection (Query.Select) moves the window
// as little as possible to keep the selected flow in view.
//
// # Limits
//
// Options.MemoryLimit bounds the store's own estimate of what it holds:
// past it the history ring goes first, then lingering (destroyed flows
// leave at once); both come back below three quarters of it; live flows
// are never dropped, so counts and snapshots stay exact, and
// Summary.Degraded says what was given up. Options.CountsOnly keeps no
// flows at all, only a 12-byte slot per flow (a 64-bit fingerprint of its
// key, and a state word with the protocol, family, 12 check bits of a
// second hash and what the counts need) in a table at most 4/5 full that
// grows without holding two copies: 15 to 22.5 bytes per flow. Flows whose
// fingerprints collide keep slots of their own when anything else differs;
// two flows that agree in all 76 identifying bits (about n²/2^77 for n live
// flows, 1·10⁻¹⁰ at 4,194,304) would be counted once (see countsTable).
//
// # Silent flows
//
// A kernel entry created before anyone listened for conntrack events
// never reports one: not its changes, not its end. The flows of the
// source's initial listing are therefore marked silent (two bits of the
// record, or of the counts slot) until they report an event, and the
// kernel source, told so (source.PollReconciler), lists the table every
// so often while any are left (Store.SilentLeft): each listed flow comes
// as flow.EventPolled, the end of the listing as flow.EventPollDone. A
// silent flow that changed is updated; one the listing missed is gone.
// So the store, which holds every flow anyway, is the only place that
// remembers them: no second set of the whole table in the source.
//
// # Event semantics
//
// See [Store.Apply]. Times in results are UTC.
package store
