// Package metrics exposes a conntop engine to Prometheus: the conntrack
// table figures under node_exporter's names (node_nf_conntrack_entries,
// node_nf_conntrack_stat_found, …) so that existing dashboards and alerts
// keep working, conntop's own breakdowns (flows by family, protocol, state
// and TCP state; events by type; loss and resync counters; capture ring drops
// and tracker INVALID reasons; the store's memory budget and what it gave
// up to stay within it, conntop_store_degraded{what="history"|"linger"}) and
// a build-info gauge. /healthz answers 200 while the source is live (with a
// "degraded: …" line when the store gave something up), 503 otherwise.
//
// A scrape reads the store's incrementally maintained [store.Summary] once,
// under the engine's read lock: its cost does not depend on the number of
// flows. Labels carry only bounded sets of names (family, protocol, state,
// event type, INVALID reason), never addresses or ports.
package metrics
