package store

import (
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// Options configure a Store. Zero values mean the defaults.
type Options struct {
	// Linger is how long a destroyed flow stays visible (default 5s), so a
	// refused connection can be seen. Negative: destroyed flows go at once.
	Linger time.Duration
	// HistoryLen bounds the transitions kept per flow (default 16).
	HistoryLen int
	// EventLog bounds the recent events kept for the transitions view
	// (default 10000).
	EventLog int
	// CountHistory is how far back the per-second table-count samples go
	// (default 10 minutes), for the header sparkline.
	CountHistory time.Duration
	// MemoryLimit is how many bytes the store may use for its flows,
	// their history and lingering destroyed flows (0: no limit). When the
	// table outgrows it the store gives up per-flow history first, then
	// lingering, and says so in Summary.Degraded; it never drops a live
	// flow, so counts and snapshots stay exact.
	MemoryLimit int64
	// CountsOnly keeps only what the counts of Summary need (by family,
	// protocol, state, TCP state, assured), not the flows themselves: for
	// a metrics-only server. Query, Detail, Snapshot, Walk and Groups then
	// return nothing.
	CountsOnly bool
	// Cores is how many goroutines may read the store at once, one per
	// core it may use (default GOMAXPROCS when the store is made). A
	// server that runs the Go scheduler with a spare P (so that one is
	// free to notice the network while viewers' scans keep the others
	// busy) gives the cores here, not its P count.
	Cores int
}

// Degradation says what the store gave up to stay within
// Options.MemoryLimit. The zero value means nothing.
type Degradation struct {
	// NoHistory is set once per-flow transition history is no longer kept
	// (beyond what is already held); NoLinger once destroyed flows leave
	// the table at once instead of lingering.
	NoHistory, NoLinger bool
	// Limit is Options.MemoryLimit; Used the store's own estimate of the
	// memory it holds, in bytes.
	Limit, Used int64
}

// Any reports whether anything was given up.
func (d Degradation) Any() bool { return d.NoHistory || d.NoLinger }

// Matcher selects flows; *filter.Filter implements it. A nil Matcher
// matches every flow, and so does one whose MatchesAll method says so.
// Match must be safe for concurrent use: scans call it from several
// goroutines.
type Matcher interface {
	Match(f *flow.Flow) bool
}

// matchesAll is implemented by a Matcher that can tell it passes every
// flow (*filter.Filter for an empty expression).
type matchesAll interface{ MatchesAll() bool }

// effective returns m, or nil when m says it passes every flow: the store
// then evaluates nothing per flow and a view keeps no bitmap for it, as
// for no filter at all.
func effective(m Matcher) Matcher {
	if a, ok := m.(matchesAll); ok && a.MatchesAll() {
		return nil
	}
	return m
}

// SortKey is a column to sort the table by.
type SortKey uint8

// Sort keys. Ties are broken by the flow key so that the order is stable.
const (
	SortAge SortKey = iota // first seen, oldest first
	SortState
	SortTCPState
	SortProto
	SortSrc // orig source address, then port
	SortDst // orig destination address, then port
	SortSport
	SortDport
	SortPackets // both directions
	SortBytes   // both directions
	SortRate    // bytes per second, both directions
	SortTimeout
	SortMark
	NumSortKeys
)

// Query asks for a window of the filtered, sorted table.
type Query struct {
	Filter Matcher
	Sort   SortKey
	Desc   bool
	// Offset and Limit select the window (rows Offset..Offset+Limit-1).
	Offset, Limit int
	// Select, when non-nil, is the key of the selected flow: the returned
	// window is shifted as little as possible so that it contains that flow.
	Select *flow.Key
	// Near, with Select and the view's filter and order unchanged, looks
	// for the selected flow only among the flows the view holds (the
	// window and a few thousand around it): a flow whose rank jumped
	// farther is reported not there (SelectedIndex -1) rather than found
	// by a scan of the whole table. For a refresh that should keep the
	// selection on the same row when its flow went far away, instead of
	// chasing it (a scan of 4,194,304 flows on every refresh).
	Near bool
	// Background marks a refresh nobody waits for (a viewer's periodic
	// redraw): a scan it needs, when churn has moved the flows it shows
	// past what the view holds, runs on one core instead of all of them,
	// yielding it between chunks, and all background reads together hold
	// one core less than there are, leaving one to the event pump, key
	// presses and scrapes. A View reading with its own lock runs them on
	// threads backgroundNice nicer than the process (background.go).
	Background bool
}

// Row is one flow as the table shows it.
type Row struct {
	Flow      flow.Flow
	FirstSeen time.Time
	LastSeen  time.Time
	// Expires is when the entry times out (last event time + Flow.Timeout).
	Expires time.Time
	// Destroyed is true while a destroyed flow lingers; DestroyedAt says when.
	Destroyed   bool
	DestroyedAt time.Time
	// Rates in packets and bytes per second per direction, from counter
	// deltas (zero when counters are unknown).
	OrigPPS, OrigBPS, ReplyPPS, ReplyBPS float64
}

// Result is the answer to a Query.
type Result struct {
	Rows []Row
	// Offset is the window's actual first row (after clamping and Select).
	Offset int
	// Total counts all flows held (live and lingering); Matched those that
	// pass the filter.
	Total, Matched int
	// SelectedIndex is the position of Query.Select in the matched order, or
	// -1 when it is not there.
	SelectedIndex int
}

// Phase is a point in a flow's life as the transition history records it:
// for TCP flows the TCP state, for others the netfilter state, plus the
// endpoints "not in the table" and "destroyed".
type Phase uint8

// Phases. PhaseTCP+s is TCP state s.
const (
	PhaseNone Phase = iota // before the flow existed
	PhaseNew
	PhaseEstablished
	PhaseRelated
	PhaseDestroyed
	PhaseTCP  // PhaseTCP + flow.TCPState
	NumPhases = PhaseTCP + Phase(flow.NumTCPStates)
)

// Transition is one change of a flow's phase.
type Transition struct {
	Time     time.Time
	From, To Phase
}

// Detail is one flow with its transition history, oldest first.
type Detail struct {
	Row
	History []Transition
}

// TransitionCount is one cell of the transition matrix.
type TransitionCount struct {
	Total     uint64
	PerSecond float64
}

// CountSample is the table's entry count at one time.
type CountSample struct {
	Time  time.Time
	Count int
}

// Summary is what the header and the metrics show.
type Summary struct {
	Now       time.Time
	Live      int // flows in the table
	Lingering int // destroyed flows still shown
	ByState   [3]int
	ByProto   [256]int
	ByTCP     [flow.NumTCPStates]int
	IPv4      int
	IPv6      int
	Assured   int
	Unassured int
	// NewRate and DestroyRate are events per second over the last seconds.
	NewRate, DestroyRate, UpdateRate float64
	// Events counts events applied, by flow.EventType.
	Events [flow.NumEventTypes]uint64
	// Table is the source's latest table statistics.
	Table flow.TableStats
	// CountHistory is one sample per second, oldest first.
	CountHistory []CountSample
	// Transitions[from][to] counts phase changes.
	Transitions [NumPhases][NumPhases]TransitionCount
	// Degraded says what the store gave up to stay within its memory
	// limit (Options.MemoryLimit).
	Degraded Degradation
}

// EventRecord is one applied event, as the transitions view lists it.
type EventRecord struct {
	Seq      uint64
	Time     time.Time
	Type     flow.EventType
	Flow     flow.Flow
	From, To Phase
	Lost     uint64 // EventResync
}

// GroupBy is a dimension of the group-by view.
type GroupBy uint8

// Group-by dimensions.
const (
	GroupDport GroupBy = iota // protocol + orig destination port
	GroupSrcHost
	GroupDstHost
	GroupState
	GroupProto
	NumGroupBys
)

// Group is one line of the group-by view.
type Group struct {
	// Label names the group ("tcp/443", "10.0.0.1", "ESTABLISHED").
	Label string
	// Filter is a filter expression selecting the group's flows.
	Filter  string
	Count   int
	Packets uint64
	Bytes   uint64
	BPS     float64 // bytes per second
}
