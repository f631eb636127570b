//go:build linux

package conntrack

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// expectKey identifies a pending expectation: the kernel's id (a hash of
// its addresses, so not unique on its own) with its tuples.
type expectKey struct {
	id     uint32
	proto  uint8
	tuple  flow.Tuple
	master flow.Tuple
}

func keyOf(e *flow.Expectation) expectKey {
	return expectKey{id: e.ID, proto: e.Proto, tuple: e.Tuple, master: e.Master}
}

// expectEntry is one expectation and when it expires.
type expectEntry struct {
	e        flow.Expectation
	deadline time.Time
}

// expectOp is an event applied while a listing was in flight.
type expectOp struct {
	del bool
	ent expectEntry
}

// expectations is the source's copy of the kernel's pending expectations.
// Listings replace it (at start, on a resync, and while entries that
// predate the event subscription exist: their expectations report no
// events); NEW and DESTROY events keep it current in between. The event
// loop and the poll loop share it, under mu; listings are serialised by
// listMu. Events that arrive while a listing is in flight are journalled
// and replayed over the listing's result, so that the listing (possibly
// older than they are) never undoes them.
type expectations struct {
	listMu  sync.Mutex
	mu      sync.Mutex
	m       map[expectKey]expectEntry
	listing bool
	journal []expectOp
}

// entryAt returns the entry for e received at now. The kernel rounds the
// seconds left down; half a second more centres the estimate.
func entryAt(e *flow.Expectation, now time.Time) expectEntry {
	return expectEntry{e: *e, deadline: now.Add(time.Duration(e.Timeout)*time.Second + time.Second/2)}
}

// apply records a NEW (del false) or DESTROY event for e received at now.
func (x *expectations) apply(del bool, e *flow.Expectation, now time.Time) {
	ent := entryAt(e, now)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.applyLocked(del, ent)
	if x.listing {
		x.journal = append(x.journal, expectOp{del: del, ent: ent})
	}
}

func (x *expectations) applyLocked(del bool, ent expectEntry) {
	k := keyOf(&ent.e)
	if del {
		delete(x.m, k)
		return
	}
	if x.m == nil {
		x.m = make(map[expectKey]expectEntry)
	}
	x.m[k] = ent
}

// list replaces the set with what fetch lists (fetch calls add for each
// expectation); on error the set is left as it was.
func (x *expectations) list(now func() time.Time, fetch func(add func(*flow.Expectation)) error) error {
	x.listMu.Lock()
	defer x.listMu.Unlock()
	x.mu.Lock()
	x.listing, x.journal = true, x.journal[:0]
	x.mu.Unlock()
	fresh := make(map[expectKey]expectEntry)
	err := fetch(func(e *flow.Expectation) {
		ent := entryAt(e, now())
		fresh[keyOf(&ent.e)] = ent
	})
	x.mu.Lock()
	defer x.mu.Unlock()
	if err == nil {
		x.m = fresh
		for _, op := range x.journal {
			x.applyLocked(op.del, op.ent)
		}
	}
	clear(x.journal)
	x.listing, x.journal = false, x.journal[:0]
	return err
}

// snapshot returns a new slice with the expectations alive at now, their
// timeouts as of now, soonest to expire first. Those past their deadline
// (whose DESTROY event is due or never comes) are forgotten.
func (x *expectations) snapshot(now time.Time) []flow.Expectation {
	x.mu.Lock()
	live := make([]expectEntry, 0, len(x.m))
	for k, ent := range x.m {
		if !ent.deadline.After(now) {
			delete(x.m, k)
			continue
		}
		live = append(live, ent)
	}
	x.mu.Unlock()
	slices.SortFunc(live, func(a, b expectEntry) int {
		if c := a.deadline.Compare(b.deadline); c != 0 {
			return c
		}
		return cmp.Compare(a.e.ID, b.e.ID)
	})
	out := make([]flow.Expectation, len(live))
	for i := range live {
		out[i] = live[i].e
		out[i].Timeout = uint32(live[i].deadline.Sub(now) / time.Second)
	}
	return out
}

// listExpects lists the kernel's expectations through s into r.exp.
// Expectations that do not decode are skipped and counted in bad (when not
// nil).
func (r *run) listExpects(s *sock, bad *atomic.Uint64) error {
	err := r.exp.list(r.opts.Now, func(add func(*flow.Expectation)) error {
		return dumpExpects(s, bad, add)
	})
	if err != nil {
		return classify("list conntrack expectations", err)
	}
	return nil
}

// dumpExpects dumps all expectations (IPv4 and IPv6) through s, calling fn
// with each decoded one (fn must copy it).
func dumpExpects(s *sock, bad *atomic.Uint64, fn func(*flow.Expectation)) error {
	s.begin(subsysCTExp, msgExpGet, flagRequest|flagDump, 0)
	var e flow.Expectation
	return s.transact(func(m message) error {
		if m.typ != uint16(subsysCTExp)<<8|msgExpNew {
			return nil
		}
		if err := decodeExpect(m.data, &e); err != nil {
			if bad != nil {
				bad.Add(1)
			}
			return nil
		}
		fn(&e)
		return nil
	})
}

// handleExpect applies one expectation event (NEW or DESTROY) received at
// now.
func (r *run) handleExpect(m message, now time.Time) {
	var del bool
	switch uint8(m.typ) {
	case msgExpNew:
	case msgExpDelete:
		del = true
	default:
		return
	}
	var e flow.Expectation
	if err := decodeExpect(m.data, &e); err != nil {
		r.bad.Add(1)
		return
	}
	r.exp.apply(del, &e, now)
}
