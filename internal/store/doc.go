// Package store is conntop's live flow table: it applies batches of source
// events, keeps each flow's bounded transition history and counter rates,
// keeps destroyed flows visible for a while (Options.Linger), maintains the
// header figures incrementally, logs recent events, and answers windowed,
// filtered, sorted queries, group-by summaries and export snapshots.
//
// A Store is not safe for concurrent use; internal/engine owns it behind a
// lock. It does not import internal/filter: filters reach it as Matchers.
//
// # Layout and cost
//
// Flows are kept in a compact form (about 176 bytes: addresses as 16-byte
// arrays, ICMP fields folded into the port slots, the reply tuple stored
// only when it is not the inverse of the original one, rare fields such as
// the helper and master behind one pointer) in fixed chunks of 1024, so that
// an entry never moves. An open-addressing index of 4-byte slots maps flow
// keys to entries; its hash is seeded per store. With the query buffer
// included, the store holds 262,144 flows in about 241 bytes each
// (TestMemoryPerFlow keeps it at or under 256).
//
// Summary never walks the table: counts by state, protocol, TCP state,
// family and assured bit are adjusted on every change; new, update and
// destroy rates and the transition matrix's per-second rates come from
// per-second buckets that Tick rolls over (RateWindow); CountHistory holds
// one sample per second.
//
// Query makes one pass over the table (materializing each flow for the
// filter), keeps the matched flows as small items (an order-preserving
// 64-bit prefix of the sort value and of the flow key, plus the entry
// index), and then partially quicksorts them: only the parts that overlap
// the requested window are sorted, so the expected cost is linear for any
// window depth. The matched items are cached: while the filter and sort key
// stay the same, a query after a few changes re-evaluates only the changed
// flows (a dirty set), and queries on an unchanged table reuse the order (it
// is sorted fully on the third such query, after which a window costs only
// its own rows). Selection (Query.Select) moves the window as little as
// possible to keep the selected flow in view.
//
// # Event semantics
//
// See [Store.Apply]. Times in results are UTC.
package store
