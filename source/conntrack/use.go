//go:build linux

package conntrack

import "github.com/conntop/conntop/internal/flow"

// The kernel's use count (CTA_USE) is in listings and gets, never in
// events. An entry rests at 1 (the table's reference); a RELATED entry
// adds one to its master while it lives. So that an event does not reset a
// count a listing reported, the source remembers the counts above 1 that
// listings gave (few: masters of live RELATED flows) and fills them into
// events; other events report 1.

// recordUse remembers the use count of a listed (or fetched) entry.
func (r *run) recordUse(f *flow.Flow) {
	if f.Use <= 1 && r.nuses.Load() == 0 {
		return
	}
	r.usesMu.Lock()
	defer r.usesMu.Unlock()
	if f.Use > 1 {
		r.uses[f.Key()] = f.Use
	} else {
		delete(r.uses, f.Key())
	}
	r.nuses.Store(int64(len(r.uses)))
}

// clearUses forgets every count, before a full listing.
func (r *run) clearUses() {
	r.usesMu.Lock()
	defer r.usesMu.Unlock()
	clear(r.uses)
	r.nuses.Store(0)
}

// fillUse gives an event of type typ that carried no use count (h lacks
// haveUse) the last one listed, or 1; a DESTROY event also ends the
// entry's record.
func (r *run) fillUse(typ flow.EventType, h have, f *flow.Flow) {
	if h&haveUse != 0 {
		r.recordUse(f)
		return
	}
	f.Use = 1
	if r.nuses.Load() == 0 {
		return
	}
	r.usesMu.Lock()
	defer r.usesMu.Unlock()
	k := f.Key()
	if u, ok := r.uses[k]; ok {
		f.Use = u
		if typ == flow.EventDestroy {
			delete(r.uses, k)
			r.nuses.Store(int64(len(r.uses)))
		}
	}
}
