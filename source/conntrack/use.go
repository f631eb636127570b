//go:build linux

package conntrack

import "github.com/conntop/conntop/internal/flow"

// The kernel's use count (CTA_USE) is in listings and gets, never in
// events. An entry rests at 1 (the table's reference); a RELATED entry
// adds one to its master while it lives. So that an event does not reset a
// count a listing reported, the source remembers the counts above 1 that
// listings gave (few: masters of live RELATED flows) and fills them into
// events; other events report 1.
//
// Few entries, usually; but every entry offloaded to an nft flowtable holds
// one more reference (its use is 2 while offloaded), so on a router or
// firewall with a flowtable most of a big table can be here: IPv4 keys are
// kept in a pointer-free 16-byte form (see useCounts).

// recordUse remembers the use count of a listed (or fetched) entry.
func (r *run) recordUse(f *flow.Flow) {
	if f.Use <= 1 && r.nuses.Load() == 0 {
		return
	}
	r.usesMu.Lock()
	defer r.usesMu.Unlock()
	k := f.Key()
	if f.Use > 1 {
		r.uses.set(&k, f.Use)
	} else {
		r.uses.del(&k)
	}
	r.nuses.Store(int64(r.uses.len()))
}

// clearUses forgets every count, before a full listing.
func (r *run) clearUses() {
	r.usesMu.Lock()
	defer r.usesMu.Unlock()
	r.uses.clear()
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
	if u, ok := r.uses.get(&k); ok {
		f.Use = u
		if typ == flow.EventDestroy {
			r.uses.del(&k)
			r.nuses.Store(int64(r.uses.len()))
		}
	}
}

// useKey4 is an IPv4 key without pointers: 16 bytes where a flow.Key
// takes 64, two of them pointers the GC follows.
type useKey4 struct {
	k     v4Key
	proto uint8
	zone  uint16
}

// useCounts maps entry keys to use counts; the zero value is empty.
type useCounts struct {
	v4    map[useKey4]uint32
	other map[flow.Key]uint32 // IPv6 and odd keys
}

func (u *useCounts) get(k *flow.Key) (uint32, bool) {
	if p, ok := pack4(k.Proto, &k.Orig); ok {
		n, ok := u.v4[useKey4{p, k.Proto, k.Zone}]
		return n, ok
	}
	n, ok := u.other[*k]
	return n, ok
}

func (u *useCounts) set(k *flow.Key, n uint32) {
	if p, ok := pack4(k.Proto, &k.Orig); ok {
		if u.v4 == nil {
			u.v4 = make(map[useKey4]uint32)
		}
		u.v4[useKey4{p, k.Proto, k.Zone}] = n
		return
	}
	if u.other == nil {
		u.other = make(map[flow.Key]uint32)
	}
	u.other[*k] = n
}

func (u *useCounts) del(k *flow.Key) {
	if p, ok := pack4(k.Proto, &k.Orig); ok {
		delete(u.v4, useKey4{p, k.Proto, k.Zone})
		return
	}
	delete(u.other, *k)
}

// clear forgets every count and the maps' memory (a map never shrinks).
func (u *useCounts) clear() { *u = useCounts{} }

func (u *useCounts) len() int { return len(u.v4) + len(u.other) }
