package store

import (
	"math/bits"

	"github.com/conntop/conntop/internal/flow"
)

// countsTable is the flow index of a counts-only store
// (Options.CountsOnly): an open-addressing table (linear probing,
// backward-shift deletion) of one 64-bit fingerprint and one 32-bit state
// word per slot, in two pointer-free arrays mapped outside the Go heap.
//
// A flow is identified by its fingerprint (the store's seeded hash of the
// key) together with the identity bits of its state word: the protocol,
// the family and 12 check bits from a second, independently seeded hash
// of the key. A slot's fingerprint is 0 when the slot is empty. The rest
// of the state word is what the counts need: TCP state, netfilter state,
// assured bit, the resync epoch parity, and the silent mark with its poll
// parity (see Store.SilentLeft).
//
// Two different flows with the same fingerprint are a detected collision
// when their identity bits differ (another protocol or family, or other
// check bits): they simply occupy two slots, and both are counted (the
// table counts such collisions). Only two flows alive at the same time
// whose 64-bit fingerprints and all identity bits agree share one slot, so
// that one of them is missing from the counts; with 76 random bits (more
// with the protocol) the chance of that among n live flows is about
// n²/2^77 (1·10⁻¹⁰ with 4,194,304), and about 2^-54 per new flow arriving
// into a full 4,194,304-entry table — at 100,000 new flows a second, once
// in some 5,000 years. The seed is random per store, so no peer can
// choose flows that collide.
//
// Capacity is not a power of two: a fingerprint's home is
// fingerprint×capacity/2^64 (monotonic in the fingerprint), the table
// grows by half when it is 4/5 full, and the growth streams the old
// arrays into the new ones in fingerprint order, returning the old
// arrays' pages to the system as it goes, so that the peak is the new
// table alone: between 15 and 22.5 bytes per flow (12 bytes a slot).
type countsTable struct {
	hasher           // fingerprint
	check     hasher // check bits
	fps       []uint64
	sts       []uint32
	n         uint64 // capacity (slots)
	used      int
	collided  uint64                                     // detected collisions (same fingerprint, another flow)
	forceKeys func(fl *flow.Flow) (fp uint64, id uint32) // tests: forced fingerprints
}

// State word layout.
const (
	cntProtoShift = 0  // 8 bits
	cntTCPShift   = 8  // 4 bits
	cntFamShift   = 12 // 2 bits: 0 IPv4, 1 IPv6, 2 other
	cntStateShift = 14 // 2 bits
	cntAssuredBit = 1 << 16
	cntEpochBit   = 1 << 17
	cntCheckShift = 18 // 12 bits
	cntCheckBits  = 12
	// cntSilentBit and cntSilentSeen are auxSilent and auxSilentSeen of
	// the full store's record.
	cntSilentBit  = 1 << 30
	cntSilentSeen = 1 << 31
	// cntIDMask selects the state word's identity bits.
	cntIDMask = 0xff<<cntProtoShift | 3<<cntFamShift | (1<<cntCheckBits-1)<<cntCheckShift
	// cntCountedMask selects the counted state: TCP state, netfilter
	// state, assured.
	cntCountedMask = 15<<cntTCPShift | 3<<cntStateShift | cntAssuredBit

	cntInitialSlots = 1024
	// cntGrowChunk is how many old slots a growth moves before it returns
	// their pages (a multiple of the page size in both arrays).
	cntGrowChunk = 16384
)

func newCountsTable() *countsTable {
	c := &countsTable{hasher: newHasher(), check: newHasher()}
	c.alloc(cntInitialSlots)
	return c
}

func (c *countsTable) alloc(n uint64) {
	c.n = n
	c.fps = mapArray[uint64](int(n))
	c.sts = mapArray[uint32](int(n))
}

func (c *countsTable) release() {
	unmapArray(c.fps)
	unmapArray(c.sts)
	c.fps, c.sts = nil, nil
}

func (c *countsTable) bytes() int64 { return int64(c.n) * 12 }

// home returns the home slot of a fingerprint.
func (c *countsTable) home(fp uint64) uint64 {
	hi, _ := bits.Mul64(fp, c.n)
	return hi
}

// next returns the slot after p.
func (c *countsTable) next(p uint64) uint64 {
	if p++; p == c.n {
		return 0
	}
	return p
}

// keys returns fl's fingerprint (never 0) and identity bits.
func (c *countsTable) keys(fl *flow.Flow) (uint64, uint32) {
	if c.forceKeys != nil {
		return c.forceKeys(fl)
	}
	return c.hashKeys(fl)
}

// hashKeys is keys from the seeded hashes.
func (c *countsTable) hashKeys(fl *flow.Flow) (uint64, uint32) {
	src, dst := packAddr(fl.Orig.Src), packAddr(fl.Orig.Dst)
	sp, dp, _ := compactTuple(fl.Proto, &fl.Orig)
	fp := c.hashKey(fl.Proto, fl.Zone, &src, &dst, sp, dp)
	if fp == 0 {
		fp = 1
	}
	chk := uint32(c.check.hashKey(fl.Proto, fl.Zone, &src, &dst, sp, dp) >> (64 - cntCheckBits))
	return fp, identity(fl, chk)
}

// identity returns the state word's identity bits of fl with check bits
// chk (cntCheckBits bits).
func identity(fl *flow.Flow, chk uint32) uint32 {
	fam := uint32(2)
	switch fl.Family {
	case flow.FamilyIPv4:
		fam = 0
	case flow.FamilyIPv6:
		fam = 1
	}
	return uint32(fl.Proto)<<cntProtoShift | fam<<cntFamShift | (chk&(1<<cntCheckBits-1))<<cntCheckShift
}

// stateBits returns the counted state of fl as state word bits.
func stateBits(fl *flow.Flow) uint32 {
	v := uint32(min(fl.TCPState, 15))<<cntTCPShift | uint32(fl.State())<<cntStateShift
	if fl.Assured() {
		v |= cntAssuredBit
	}
	return v
}

// find returns the slot of the flow with fingerprint fp and identity id,
// or the free slot where it goes; shared says whether a slot on the way
// holds another flow with the same fingerprint.
func (c *countsTable) find(fp uint64, id uint32) (p uint64, found, shared bool) {
	for p = c.home(fp); ; p = c.next(p) {
		switch c.fps[p] {
		case 0:
			return p, false, shared
		case fp:
			if c.sts[p]&cntIDMask == id {
				return p, true, shared
			}
			shared = true
		}
	}
}

// put stores a new flow at free slot p (from find).
func (c *countsTable) put(p, fp uint64, st uint32) {
	c.fps[p], c.sts[p] = fp, st
	c.used++
	if uint64(c.used)*5 > c.n*4 {
		c.grow(c.n + c.n/2)
	}
}

// reserve grows the table so that it holds n flows without growing again.
func (c *countsTable) reserve(n int) {
	if want := uint64(n)*5/4 + 1; want > c.n {
		c.grow(want)
	}
}

// grow moves the flows into a table of n slots. Homes are monotonic in the
// fingerprint, so reading the old table in order writes the new one almost
// in order: the old arrays' pages are returned as soon as they are read.
func (c *countsTable) grow(n uint64) {
	ofps, osts := c.fps, c.sts
	c.alloc(n)
	for from := 0; from < len(ofps); from += cntGrowChunk {
		to := min(from+cntGrowChunk, len(ofps))
		for j := from; j < to; j++ {
			fp := ofps[j]
			if fp == 0 {
				continue
			}
			p := c.home(fp)
			for c.fps[p] != 0 {
				p = c.next(p)
			}
			c.fps[p], c.sts[p] = fp, osts[j]
		}
		releasePages(ofps[from:to])
		releasePages(osts[from:to])
	}
	unmapArray(ofps)
	unmapArray(osts)
}

// del empties slot p (backward-shift deletion).
func (c *countsTable) del(p uint64) {
	dist := func(a, b uint64) uint64 { // slots from a forward to b
		if b >= a {
			return b - a
		}
		return b + c.n - a
	}
	for q := c.next(p); c.fps[q] != 0; q = c.next(q) {
		if dist(c.home(c.fps[q]), q) >= dist(p, q) {
			c.fps[p], c.sts[p] = c.fps[q], c.sts[q]
			p = q
		}
	}
	c.fps[p], c.sts[p] = 0, 0
	c.used--
}

// addSlot adds (sign 1) or removes (sign -1) a state word's flow from
// counts.
func (s *Store) addSlot(v uint32, sign int) {
	fam := flow.Family(0)
	switch v >> cntFamShift & 3 {
	case 0:
		fam = flow.FamilyIPv4
	case 1:
		fam = flow.FamilyIPv6
	}
	s.sum.addParts(flow.State(v>>cntStateShift&3), uint8(v>>cntProtoShift), flow.TCPState(v>>cntTCPShift&15), fam, v&cntAssuredBit != 0, sign)
}

// slotPhase returns the phase of a state word's flow.
func slotPhase(v uint32) Phase {
	return phaseOf(uint8(v>>cntProtoShift), flow.TCPState(v>>cntTCPShift&15), flow.State(v>>cntStateShift&3))
}

// countsUpsert is upsert for a counts-only store.
func (s *Store) countsUpsert(typ flow.EventType, at int64, fl *flow.Flow, from origin) {
	c := s.cnt
	fp, id := c.keys(fl)
	v := id | stateBits(fl)
	if s.epoch {
		v |= cntEpochBit
	}
	counted := s.synced
	to := flowPhase(fl)
	p, ok, shared := c.find(fp, id)
	if !ok {
		if shared {
			c.collided++
		}
		if from == fromInitial {
			v |= cntSilentBit
			if s.pollParity {
				v |= cntSilentSeen
			}
			s.addSilent(1)
		}
		c.put(p, fp, v)
		s.live++
		s.addSlot(v, 1)
		if counted {
			s.rates.cur.new++
			s.transition(PhaseNone, to)
			s.log.add(EventRecord{Time: unixTime(at), Type: flow.EventNew, Flow: *fl, From: PhaseNone, To: to})
		}
		return
	}
	old := c.sts[p]
	if old&cntSilentBit != 0 {
		if from == fromStream {
			s.addSilent(-1)
		} else {
			v |= old & (cntSilentBit | cntSilentSeen)
		}
	}
	before := slotPhase(old)
	s.addSlot(old, -1)
	c.sts[p] = v
	s.addSlot(v, 1)
	if before != to && counted {
		s.transition(before, to)
	}
	if (typ == flow.EventUpdate || (typ == flow.EventNew && before != to)) && counted {
		s.rates.cur.update++
		s.log.add(EventRecord{Time: unixTime(at), Type: flow.EventUpdate, Flow: *fl, From: before, To: to})
	}
}

// countsPolled is polled for a counts-only store, which keeps no counters.
func (s *Store) countsPolled(at int64, fl *flow.Flow) {
	c := s.cnt
	p, ok, _ := c.find(c.keys(fl))
	if !ok || c.sts[p]&cntSilentBit == 0 {
		return
	}
	v := c.sts[p]&^cntSilentSeen | s.listedCountsParity()
	c.sts[p] = v
	if v&cntCountedMask != stateBits(fl) {
		s.countsUpsert(flow.EventUpdate, at, fl, fromPoll)
	}
}

// listedCountsParity is listedParity as a state word bit.
func (s *Store) listedCountsParity() uint32 {
	if s.pollParity {
		return 0
	}
	return cntSilentSeen
}

// countsPollDone is pollDone for a counts-only store.
func (s *Store) countsPollDone(at int64) {
	if s.silent == 0 {
		return
	}
	listed := s.listedCountsParity()
	s.countsSweep(at, func(v uint32) bool { return v&cntSilentBit != 0 && v&cntSilentSeen != listed })
}

// countsDestroy is destroyKey for a counts-only store.
func (s *Store) countsDestroy(at int64, fl *flow.Flow) {
	c := s.cnt
	p, ok, _ := c.find(c.keys(fl))
	from := flowPhase(fl)
	if ok {
		v := c.sts[p]
		if fl.Proto == flow.ProtoTCP && fl.TCPState == flow.TCPNone {
			from = slotPhase(v) // the kernel's DESTROY carries no TCP state
		}
		if v&cntSilentBit != 0 {
			s.addSilent(-1)
		}
		s.addSlot(v, -1)
		c.del(p)
		s.live--
	}
	if s.synced {
		s.rates.cur.destroy++
		s.transition(from, PhaseDestroyed)
		rec := EventRecord{Time: unixTime(at), Type: flow.EventDestroy, Flow: *fl, From: from, To: PhaseDestroyed}
		if ok && from >= PhaseTCP {
			rec.Flow.TCPState = flow.TCPState(from - PhaseTCP)
		}
		s.log.add(rec)
	}
}

// countsReconcile is reconcile for a counts-only store: flows not listed
// or touched since the resync began are counted as destroyed.
func (s *Store) countsReconcile(at int64) {
	s.countsSweep(at, func(v uint32) bool { return (v&cntEpochBit != 0) != s.epoch })
}

// countsSweep drops the flows whose state word gone is true for: flows a
// listing found gone.
func (s *Store) countsSweep(at int64, gone func(v uint32) bool) {
	c := s.cnt
	for p := uint64(0); p < c.n; {
		if c.fps[p] == 0 || !gone(c.sts[p]) {
			p++
			continue
		}
		s.countsDrop(p, at) // a later slot may move into p: look at p again
	}
}

// countsDrop removes the flow in slot p, found gone by a listing, and
// counts it destroyed.
func (s *Store) countsDrop(p uint64, at int64) {
	c := s.cnt
	v := c.sts[p]
	if v&cntSilentBit != 0 {
		s.addSilent(-1)
	}
	from := slotPhase(v)
	s.addSlot(v, -1)
	c.del(p)
	s.live--
	if s.synced {
		s.rates.cur.destroy++
		s.transition(from, PhaseDestroyed)
		s.log.add(EventRecord{Time: unixTime(at), Type: flow.EventDestroy, From: from, To: PhaseDestroyed})
	}
}
