package tui

import (
	"cmp"
	"slices"

	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// maxFrozen bounds the rows a pause keeps (368 bytes a row: about 37 MB). A table
// of up to maxFrozen flows is frozen whole, so that sort and filter work
// on all of it; a bigger one freezes maxFrozen rows of the matched set
// around the selection, in the order shown, and the header says so.
const maxFrozen = 100_000

// FrozenMsg carries the still picture a pause shows.
type FrozenMsg struct {
	Table *frozenTable
}

// frozenTable is the table as it was when the user paused: a private copy
// of rows that answers the same queries as the live store (filter, sort,
// window, selection), so that navigation, sort and filter work on the
// still picture.
type frozenTable struct {
	rows []store.Row
	// total is the number of flows in the table at the pause; partial is
	// set when rows hold only a window of the matched set (total >
	// maxFrozen).
	total   int
	partial bool
	// events is the store's event count at the pause.
	events uint64

	// The last filtered, sorted order (indexes into rows).
	order     []int32
	lastF     store.Matcher
	lastSort  store.SortKey
	lastDesc  bool
	lastKnown bool
}

// eventCount is the number of flow events the store applied so far.
func eventCount(sum *store.Summary) uint64 {
	return sum.Events[flow.EventNew] + sum.Events[flow.EventUpdate] + sum.Events[flow.EventDestroy]
}

// freezeCmd copies the table (or, when it is larger than maxFrozen, the
// window of the matched set around the selection) in the background,
// through a viewer of its own.
func freezeCmd(eng *engine.Engine, q store.Query, selIdx, limit int) tea.Cmd {
	return func() tea.Msg {
		var events uint64
		var total int
		eng.View(func(s *store.Store) {
			sum := s.Summary()
			events = eventCount(&sum)
			total = sum.Live + sum.Lingering
		})
		v := eng.NewViewer()
		defer v.Close()
		ft := &frozenTable{events: events}
		if total <= limit {
			res := v.Query(store.Query{Sort: q.Sort, Desc: q.Desc, Limit: limit})
			ft.rows, ft.total = res.Rows, res.Total
			if res.Total > len(res.Rows) { // grew since the count
				ft.partial = true
			}
		} else {
			q.Offset, q.Limit = max(0, selIdx-limit/2), limit
			res := v.Query(q)
			ft.rows, ft.total, ft.partial = res.Rows, res.Total, true
		}
		return FrozenMsg{Table: ft}
	}
}

// Query answers q from the frozen rows as store.Store.Query answers it
// from the live table.
func (ft *frozenTable) Query(q store.Query) store.Result {
	if !ft.lastKnown || !sameMatcher(ft.lastF, q.Filter) || ft.lastSort != q.Sort || ft.lastDesc != q.Desc {
		ft.order = ft.order[:0]
		for i := range ft.rows {
			if q.Filter == nil || q.Filter.Match(&ft.rows[i].Flow) {
				ft.order = append(ft.order, int32(i))
			}
		}
		slices.SortFunc(ft.order, func(a, b int32) int {
			c := cmpRows(&ft.rows[a], &ft.rows[b], q.Sort)
			if q.Desc {
				return -c
			}
			return c
		})
		ft.lastF, ft.lastSort, ft.lastDesc, ft.lastKnown = q.Filter, q.Sort, q.Desc, true
	}
	res := store.Result{Total: len(ft.rows), Matched: len(ft.order), SelectedIndex: -1}
	if q.Select != nil {
		for i, j := range ft.order {
			if ft.rows[j].Flow.Key() == *q.Select {
				res.SelectedIndex = i
				if i < q.Offset {
					q.Offset = i
				} else if i >= q.Offset+q.Limit {
					q.Offset = i - q.Limit + 1
				}
				break
			}
		}
	}
	off := max(0, min(q.Offset, len(ft.order)-max(q.Limit, 0)))
	end := min(len(ft.order), off+max(q.Limit, 0))
	res.Offset = off
	res.Rows = make([]store.Row, 0, end-off)
	for _, j := range ft.order[off:end] {
		res.Rows = append(res.Rows, ft.rows[j])
	}
	return res
}

// find returns the frozen row of flow k.
func (ft *frozenTable) find(k flow.Key) (store.Row, bool) {
	for i := range ft.rows {
		if ft.rows[i].Flow.Key() == k {
			return ft.rows[i], true
		}
	}
	return store.Row{}, false
}

// sameMatcher reports whether two filters are the same one (a new filter is
// a new value, so identity is enough).
func sameMatcher(a, b store.Matcher) bool {
	return a == b
}

// cmpRows orders rows by a sort key as the store does, ties by flow key.
func cmpRows(a, b *store.Row, key store.SortKey) int {
	fa, fb := &a.Flow, &b.Flow
	var c int
	switch key {
	case store.SortAge:
		c = a.FirstSeen.Compare(b.FirstSeen)
	case store.SortState:
		c = cmp.Compare(fa.State(), fb.State())
	case store.SortTCPState:
		c = cmp.Compare(fa.TCPState, fb.TCPState)
	case store.SortProto:
		c = cmp.Compare(fa.Proto, fb.Proto)
	case store.SortSrc:
		c = cmpAddrPort(fa, fb, true)
	case store.SortDst:
		c = cmpAddrPort(fa, fb, false)
	case store.SortSport:
		c = cmp.Compare(fa.Orig.SrcPort, fb.Orig.SrcPort)
	case store.SortDport:
		c = cmp.Compare(fa.Orig.DstPort, fb.Orig.DstPort)
	case store.SortPackets:
		c = cmp.Compare(fa.Counters.OrigPackets+fa.Counters.ReplyPackets, fb.Counters.OrigPackets+fb.Counters.ReplyPackets)
	case store.SortBytes:
		c = cmp.Compare(fa.Counters.OrigBytes+fa.Counters.ReplyBytes, fb.Counters.OrigBytes+fb.Counters.ReplyBytes)
	case store.SortRate:
		c = cmp.Compare(a.OrigBPS+a.ReplyBPS, b.OrigBPS+b.ReplyBPS)
	case store.SortTimeout:
		c = a.Expires.Compare(b.Expires)
	case store.SortMark:
		c = cmp.Compare(fa.Mark, fb.Mark)
	}
	if c != 0 {
		return c
	}
	return cmpKeys(fa, fb)
}

func cmpAddrPort(a, b *flow.Flow, src bool) int {
	if c := cmp.Compare(a.Family, b.Family); c != 0 {
		return c
	}
	if src {
		if c := a.Orig.Src.Compare(b.Orig.Src); c != 0 {
			return c
		}
		return cmp.Compare(a.Orig.SrcPort, b.Orig.SrcPort)
	}
	if c := a.Orig.Dst.Compare(b.Orig.Dst); c != 0 {
		return c
	}
	return cmp.Compare(a.Orig.DstPort, b.Orig.DstPort)
}

// cmpKeys orders flows by key: proto, family, addresses, ports, zone, the
// rest of the tuple.
func cmpKeys(a, b *flow.Flow) int {
	return cmp.Or(
		cmp.Compare(a.Proto, b.Proto),
		cmp.Compare(a.Family, b.Family),
		a.Orig.Src.Compare(b.Orig.Src),
		a.Orig.Dst.Compare(b.Orig.Dst),
		cmp.Compare(a.Orig.SrcPort, b.Orig.SrcPort),
		cmp.Compare(a.Orig.DstPort, b.Orig.DstPort),
		cmp.Compare(a.Zone, b.Zone),
		cmp.Compare(a.Orig.Type, b.Orig.Type),
		cmp.Compare(a.Orig.Code, b.Orig.Code),
		cmp.Compare(a.Orig.ID, b.Orig.ID),
	)
}
