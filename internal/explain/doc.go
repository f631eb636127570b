// Package explain answers "what fills the conntrack table, and what would
// relieve it" from the live table and the settings that govern it.
//
// A Collector takes every flow (store.Row) once and Analyze keeps, per
// class of entries whose lifetime one sysctl governs (protocol × state),
// the count, the assured share and a per-second histogram of how long each
// entry has been idle; per consumer dimension (destination port,
// destination host, source host, source network, zone, mark) the count
// and the entries first seen inside the rate window. Report turns that
// into a Report: the classes with their sysctl and its value, the top
// consumers, what-if figures for lower timeouts, the hash table and memory
// facts, and ranked advice with the exact command. Nothing here changes a
// setting: the commands are for a person to run.
//
// How it stays cheap at millions of flows: the walk (under the engine's
// lock, released every 65,536 records) only copies each flow into a 24-byte record; chunks of records are
// counted on another core meanwhile, with compact integer keys (an IPv4
// address as 32 bits, protocol<<16|port, a /24 as the address>>8) in a
// small open-addressing table that stays in cache and, once a dimension
// has too many keys for it, in a column radix-sorted and counted in runs
// at the end; IPv6 addresses are sorted apart. Every count is exact. The
// idle-time histograms are turned into suffix sums, so that any what-if
// value is one lookup and an Analysis reports again with another value
// without a walk.
//
// How the figures are computed:
//
//   - Idle time. The kernel restarts an entry's timer at the class's
//     timeout V on every packet, so an entry with R seconds left has been
//     idle V-R seconds. With the timeout set to W it would have expired
//     once idle W seconds: "freed now" counts entries idle at least W,
//     "freed within 60 s" the entries that W removes within a minute but
//     the current value keeps past it (no further packets assumed). This
//     is exact for a fresh listing (a dump) when every entry of the class
//     had its timer set from V; it is estimated where another setting can
//     cap the timer (TCP states whose timeout exceeds
//     nf_conntrack_tcp_timeout_max_retrans / _unacknowledged: an entry
//     with no more than that cap left is taken as capped), and where the
//     remaining timeouts are only as fresh as each flow's last event.
//   - New entries per second. Entries first seen inside the window (the
//     last 60 s, or since the source's initial listing ended if that is
//     more recent) that are still in the table, divided by the window.
//     Entries that came and went inside the window are not counted: they
//     no longer occupy the table.
//   - Time to full. The growth of the table count over the last minute of
//     per-second samples (a least-squares slope).
//   - Memory. Each entry is one object of the nf_conntrack slab cache
//     (its size read from /proc/slabinfo when readable) plus its extension
//     area, which the kernel allocates with at least 128 bytes
//     (NF_CT_EXT_PREALLOC); each hash bucket is one 8-byte pointer.
package explain
