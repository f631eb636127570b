package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/conntop/conntop/internal/buildinfo"
	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// maxInvalidReasons bounds the reason label's values per scrape, should a
// source ever report an unbounded set of reasons.
const maxInvalidReasons = 64

// alwaysProtos are the protocols whose flow gauge is exported even at zero,
// so that their series do not come and go.
var alwaysProtos = [...]uint8{flow.ProtoTCP, flow.ProtoUDP, flow.ProtoICMP, flow.ProtoICMPv6}

// Collector is a prometheus.Collector over one engine. Each Collect reads
// the engine's summary and status once.
type Collector struct {
	eng *engine.Engine

	// node_exporter's conntrack collector names (all gauges there).
	entries, limit                                     *prometheus.Desc
	found, invalid, ignore, insert, insertFailed, drop *prometheus.Desc
	earlyDrop, searchRestart                           *prometheus.Desc
	flows, lingering, assured                          *prometheus.Desc
	byFamily, byProto, byState, byTCPState             *prometheus.Desc
	events, eventsLost, resyncs, ringDrops, invReasons *prometheus.Desc
	statError, clashResolve, chainTooLong, statsTime   *prometheus.Desc
	up, synced, buildInfo                              *prometheus.Desc
	verdicts, foreign                                  *prometheus.Desc
	degraded, memLimit, memUsed                        *prometheus.Desc
	build                                              buildinfo.Info
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector reading eng.
func NewCollector(eng *engine.Engine) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	c := &Collector{
		eng:           eng,
		entries:       d("node_nf_conntrack_entries", "Number of currently allocated flow entries for connection tracking."),
		limit:         d("node_nf_conntrack_entries_limit", "Maximum size of connection tracking table."),
		found:         d("node_nf_conntrack_stat_found", "Number of searched entries which were successful."),
		invalid:       d("node_nf_conntrack_stat_invalid", "Number of packets seen which can not be tracked."),
		ignore:        d("node_nf_conntrack_stat_ignore", "Number of packets seen which are already connected to a conntrack entry."),
		insert:        d("node_nf_conntrack_stat_insert", "Number of entries inserted into the list."),
		insertFailed:  d("node_nf_conntrack_stat_insert_failed", "Number of entries for which list insertion was attempted but failed."),
		drop:          d("node_nf_conntrack_stat_drop", "Number of packets dropped due to conntrack failure."),
		earlyDrop:     d("node_nf_conntrack_stat_early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached."),
		searchRestart: d("node_nf_conntrack_stat_search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes."),

		flows:        d("conntop_flows", "Flows in the table."),
		lingering:    d("conntop_flows_lingering", "Destroyed flows still shown by conntop (not in the table)."),
		assured:      d("conntop_flows_assured", "Flows in the table with the ASSURED status bit (not evicted by early drop)."),
		byFamily:     d("conntop_flows_by_family", "Flows in the table by address family.", "family"),
		byProto:      d("conntop_flows_by_protocol", "Flows in the table by layer-4 protocol.", "protocol"),
		byState:      d("conntop_flows_by_state", "Flows in the table by netfilter state (ct state).", "state"),
		byTCPState:   d("conntop_tcp_flows_by_state", "TCP flows in the table by TCP conntrack state.", "tcp_state"),
		events:       d("conntop_events_total", "Source events applied, by type.", "type"),
		eventsLost:   d("conntop_events_lost_total", "Events lost to receive-buffer overruns."),
		resyncs:      d("conntop_resyncs_total", "Full re-listings of the table after lost events."),
		ringDrops:    d("conntop_capture_ring_drops_total", "Packets dropped by the capture ring (capture source)."),
		invReasons:   d("conntop_tracker_invalid_total", "Packets the in-process tracker found INVALID, by reason (capture and pcap sources).", "reason"),
		statError:    d("conntop_nf_conntrack_stat_error", "Packets for which conntrack returned an error (kernel statistic \"error\")."),
		clashResolve: d("conntop_nf_conntrack_stat_clash_resolve", "Insertion clashes resolved by the kernel (newer kernels only)."),
		chainTooLong: d("conntop_nf_conntrack_stat_chain_toolong", "Insertions that found a too-long hash chain (newer kernels only)."),
		statsTime:    d("conntop_table_stats_timestamp_seconds", "Unix time at which the source last read the table statistics."),
		foreign:      d("conntop_netlink_foreign_messages_total", "Netlink datagrams dropped because their sender was not the kernel (conntrack source)."),
		up:           d("conntop_source_up", "1 while the source runs, else 0.", "source"),
		synced:       d("conntop_source_synced", "1 once the source's initial table listing is complete, else 0.", "source"),
		verdicts:     d("conntop_tracker_packets_total", "Packets the in-process tracker handled, by the ct state the kernel's `ct state` match gives them at prerouting (capture and pcap sources).", "verdict"),
		buildInfo:    d("conntop_build_info", "A metric with a constant '1' value labeled by conntop's version, revision, build date and Go version (as conntop --version prints them).", "version", "revision", "build_date", "goversion"),
		degraded:     d("conntop_store_degraded", "1 when the store gave up what (per-flow history, lingering of closed flows) to stay within its memory limit; flows and counts stay complete.", "what"),
		memLimit:     d("conntop_store_memory_limit_bytes", "The store's memory budget (from the cgroup's memory limit or GOMEMLIMIT, less a reserve)."),
		memUsed:      d("conntop_store_memory_bytes", "The store's own estimate of the memory it holds."),
	}
	c.build = buildinfo.Get()
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.entries, c.limit, c.found, c.invalid, c.ignore, c.insert, c.insertFailed, c.drop,
		c.earlyDrop, c.searchRestart, c.flows, c.lingering, c.assured, c.byFamily, c.byProto,
		c.byState, c.byTCPState, c.events, c.eventsLost, c.resyncs, c.ringDrops, c.invReasons,
		c.statError, c.clashResolve, c.chainTooLong, c.statsTime, c.up, c.synced, c.buildInfo,
		c.verdicts, c.foreign,
		c.degraded, c.memLimit, c.memUsed,
	} {
		ch <- d
	}
}

// snapshot is what one scrape takes out of the store: fixed-size values,
// plus the tracker's INVALID reasons (a small bounded set).
type snapshot struct {
	live, lingering, assured int
	ipv4, ipv6               int
	byState                  [3]int
	byProto                  [256]int
	byTCP                    [flow.NumTCPStates]int
	events                   [flow.NumEventTypes]uint64
	table                    flow.TableStats
	reasons                  []reason
	degraded                 store.Degradation
}

type reason struct {
	name  string
	count uint64
}

// take copies what Collect needs out of the store's summary. The scrape
// never waits for the event pump or the SSH viewers (engine.Summary: at
// most one tick old when the store is busy).
func (c *Collector) take(sn *snapshot) {
	sum := c.eng.Summary()
	sn.live, sn.lingering, sn.assured = sum.Live, sum.Lingering, sum.Assured
	sn.ipv4, sn.ipv6 = sum.IPv4, sum.IPv6
	sn.byState, sn.byProto, sn.byTCP = sum.ByState, sum.ByProto, sum.ByTCP
	sn.events = sum.Events
	sn.degraded = sum.Degraded
	sn.table = sum.Table
	sn.table.InvalidReasons = nil // the map belongs to the store
	for name, n := range sum.Table.InvalidReasons {
		if len(sn.reasons) == maxInvalidReasons {
			break
		}
		sn.reasons = append(sn.reasons, reason{name, n})
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var sn snapshot
	c.take(&sn)
	st := c.eng.Status()

	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ctr := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	t := &sn.table
	if t.Time.IsZero() {
		// No statistics from the source yet: the store's own count.
		g(c.entries, float64(sn.live))
	} else {
		g(c.entries, float64(t.Count))
		if t.Max > 0 {
			g(c.limit, float64(t.Max))
		}
		g(c.found, float64(t.Found))
		g(c.invalid, float64(t.Invalid))
		g(c.ignore, float64(t.Ignore))
		g(c.insert, float64(t.Insert))
		g(c.insertFailed, float64(t.InsertFailed))
		g(c.drop, float64(t.Drop))
		g(c.earlyDrop, float64(t.EarlyDrop))
		g(c.searchRestart, float64(t.SearchRestart))
		g(c.statError, float64(t.Error))
		if t.HasClashResolve {
			g(c.clashResolve, float64(t.ClashResolve))
			g(c.chainTooLong, float64(t.ChainTooLong))
		}
		g(c.statsTime, float64(t.Time.UnixNano())/1e9)
	}

	g(c.flows, float64(sn.live))
	g(c.lingering, float64(sn.lingering))
	g(c.assured, float64(sn.assured))
	g(c.byFamily, float64(sn.ipv4), "ipv4")
	g(c.byFamily, float64(sn.ipv6), "ipv6")
	for p, n := range sn.byProto {
		if n > 0 || isAlwaysProto(uint8(p)) {
			g(c.byProto, float64(n), flow.ProtoName(uint8(p)))
		}
	}
	for s, n := range sn.byState {
		g(c.byState, float64(n), flow.State(s).String())
	}
	for s := 1; s < int(flow.NumTCPStates); s++ { // skip TCPNone
		g(c.byTCPState, float64(sn.byTCP[s]), flow.TCPState(s).String())
	}
	// Every type a store applies, polls' listings included (they say how
	// much of the source's work re-reads the table); a batch is only the
	// envelope of the events it carries.
	for typ := flow.EventNew; typ < flow.EventBatch; typ++ {
		ctr(c.events, sn.events[typ], typ.String())
	}
	ctr(c.eventsLost, t.EventsLost)
	ctr(c.resyncs, t.Resyncs)
	if st.Source == "capture" {
		ctr(c.ringDrops, t.RingDrops)
	}
	if st.Source == "conntrack" {
		ctr(c.foreign, t.ForeignMessages)
	}
	for _, r := range sn.reasons {
		ctr(c.invReasons, r.count, r.name)
	}
	if t.HasVerdicts {
		for v := range flow.NumVerdicts {
			ctr(c.verdicts, t.Verdicts[v], v.String())
		}
	}

	dg := &sn.degraded
	g(c.degraded, b2f(dg.NoHistory), "history")
	g(c.degraded, b2f(dg.NoLinger), "linger")
	if dg.Limit > 0 {
		g(c.memLimit, float64(dg.Limit))
	}
	if dg.Limit > 0 || dg.Used > 0 {
		g(c.memUsed, float64(dg.Used))
	}

	src := st.Source
	if src == "" {
		src = "none"
	}
	g(c.up, b2f(st.Live), src)
	g(c.synced, b2f(st.Synced), src)
	g(c.buildInfo, 1, c.build.Version, c.build.Commit, c.build.Date, c.build.GoVersion)
}

func isAlwaysProto(p uint8) bool {
	for _, q := range alwaysProtos {
		if p == q {
			return true
		}
	}
	return false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
