package store

import (
	"github.com/conntop/conntop/internal/flow"
)

// countsTable is the flow index of a counts-only store
// (Options.CountsOnly): one 8-byte slot per flow in an open-addressing
// table mapped outside the Go heap, holding a 46-bit fingerprint of the
// flow key (from the store's seeded hash) and what the counts need: the
// protocol, TCP state, family, netfilter state, assured bit and the resync
// epoch parity. Slots are 0 when empty. A slot's home is derived from its
// fingerprint, so the table can be rehashed without the keys.
//
// Two live flows whose keys have the same fingerprint, protocol and family
// share one slot: the chance that this happens at all is about n²/2^47
// (1 in 8 with 4,194,304 live flows, 1 in 2,000 with 262,144), and then one
// flow is missing from the counts.
type countsTable struct {
	hasher
	slots []uint64
	bits  uint
	used  int
}

// Slot layout.
const (
	cntProtoShift  = 0  // 8 bits
	cntTCPShift    = 8  // 4 bits
	cntFamShift    = 12 // 2 bits: 0 IPv4, 1 IPv6, 2 other
	cntStateShift  = 14 // 2 bits
	cntAssuredBit  = 1 << 16
	cntEpochBit    = 1 << 17
	cntFPShift     = 18
	cntMatchMask   = (1<<64-1)&^(1<<cntFPShift-1) | 0xff<<cntProtoShift | 3<<cntFamShift
	cntInitialBits = 10
)

func newCountsTable() *countsTable {
	c := &countsTable{hasher: newHasher(), bits: cntInitialBits}
	c.slots = mapArray[uint64](1 << c.bits)
	return c
}

func (c *countsTable) release() {
	unmapArray(c.slots)
	c.slots = nil
}

func (c *countsTable) bytes() int64 { return int64(len(c.slots)) * 8 }

// home returns the home slot of a slot value.
func (c *countsTable) home(v uint64) uint64 {
	return (v >> cntFPShift * 0x9e3779b97f4a7c15) >> (64 - c.bits)
}

// keyBits returns the slot bits that identify fl: fingerprint, protocol
// and family.
func (c *countsTable) keyBits(fl *flow.Flow) uint64 {
	h := c.hashTuple(fl.Proto, fl.Zone, &fl.Orig)
	fp := mix(h, 0x9e3779b97f4a7c15) >> cntFPShift
	if fp == 0 {
		fp = 1
	}
	fam := uint64(2)
	switch fl.Family {
	case flow.FamilyIPv4:
		fam = 0
	case flow.FamilyIPv6:
		fam = 1
	}
	return fp<<cntFPShift | uint64(fl.Proto)<<cntProtoShift | fam<<cntFamShift
}

// stateBits returns the counted state of fl as slot bits.
func stateBits(fl *flow.Flow) uint64 {
	v := uint64(min(fl.TCPState, 15))<<cntTCPShift | uint64(fl.State())<<cntStateShift
	if fl.Assured() {
		v |= cntAssuredBit
	}
	return v
}

// find returns the position of the slot with key bits kb.
func (c *countsTable) find(kb uint64) (uint64, bool) {
	mask := uint64(len(c.slots) - 1)
	for p := c.home(kb); ; p = (p + 1) & mask {
		v := c.slots[p]
		if v == 0 {
			return p, false
		}
		if v&cntMatchMask == kb {
			return p, true
		}
	}
}

// put stores v at the free position for it (after find said absent).
func (c *countsTable) put(p, v uint64) {
	c.slots[p] = v
	c.used++
	if uint64(c.used)*4 > uint64(len(c.slots))*3 {
		c.grow()
	}
}

func (c *countsTable) grow() {
	old := c.slots
	c.bits++
	c.slots = mapArray[uint64](1 << c.bits)
	mask := uint64(len(c.slots) - 1)
	for _, v := range old {
		if v == 0 {
			continue
		}
		p := c.home(v)
		for c.slots[p] != 0 {
			p = (p + 1) & mask
		}
		c.slots[p] = v
	}
	unmapArray(old)
}

// del empties position p (backward-shift deletion).
func (c *countsTable) del(p uint64) {
	mask := uint64(len(c.slots) - 1)
	for q := (p + 1) & mask; c.slots[q] != 0; q = (q + 1) & mask {
		home := c.home(c.slots[q])
		if (q-home)&mask >= (q-p)&mask {
			c.slots[p] = c.slots[q]
			p = q
		}
	}
	c.slots[p] = 0
	c.used--
}

// addSlot adds (sign 1) or removes (sign -1) a slot's flow from counts.
func (s *Store) addSlot(v uint64, sign int) {
	fam := flow.Family(0)
	switch v >> cntFamShift & 3 {
	case 0:
		fam = flow.FamilyIPv4
	case 1:
		fam = flow.FamilyIPv6
	}
	s.sum.addParts(flow.State(v>>cntStateShift&3), uint8(v>>cntProtoShift), flow.TCPState(v>>cntTCPShift&15), fam, v&cntAssuredBit != 0, sign)
}

// slotPhase returns the phase of a slot's flow.
func slotPhase(v uint64) Phase {
	return phaseOf(uint8(v>>cntProtoShift), flow.TCPState(v>>cntTCPShift&15), flow.State(v>>cntStateShift&3))
}

// countsUpsert is upsert for a counts-only store.
func (s *Store) countsUpsert(typ flow.EventType, at int64, fl *flow.Flow) {
	c := s.cnt
	kb := c.keyBits(fl)
	v := kb | stateBits(fl)
	if s.epoch {
		v |= cntEpochBit
	}
	counted := s.synced
	to := flowPhase(fl)
	p, ok := c.find(kb)
	if !ok {
		c.put(p, v)
		s.live++
		s.addSlot(v, 1)
		if counted {
			s.rates.cur.new++
			s.transition(PhaseNone, to)
			s.log.add(EventRecord{Time: unixTime(at), Type: flow.EventNew, Flow: *fl, From: PhaseNone, To: to})
		}
		return
	}
	old := c.slots[p]
	from := slotPhase(old)
	s.addSlot(old, -1)
	c.slots[p] = v
	s.addSlot(v, 1)
	if from != to && counted {
		s.transition(from, to)
	}
	if (typ == flow.EventUpdate || (typ == flow.EventNew && from != to)) && counted {
		s.rates.cur.update++
		s.log.add(EventRecord{Time: unixTime(at), Type: flow.EventUpdate, Flow: *fl, From: from, To: to})
	}
}

// countsDestroy is destroyKey for a counts-only store.
func (s *Store) countsDestroy(at int64, fl *flow.Flow) {
	c := s.cnt
	p, ok := c.find(c.keyBits(fl))
	from := flowPhase(fl)
	if ok {
		v := c.slots[p]
		if fl.Proto == flow.ProtoTCP && fl.TCPState == flow.TCPNone {
			from = slotPhase(v) // the kernel's DESTROY carries no TCP state
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
	c := s.cnt
	for p := 0; p < len(c.slots); {
		v := c.slots[p]
		if v == 0 || (v&cntEpochBit != 0) == s.epoch {
			p++
			continue
		}
		from := slotPhase(v)
		s.addSlot(v, -1)
		c.del(uint64(p)) // a later slot may move into p: look at p again
		s.live--
		if s.synced {
			s.rates.cur.destroy++
			s.transition(from, PhaseDestroyed)
			s.log.add(EventRecord{Time: unixTime(at), Type: flow.EventDestroy, From: from, To: PhaseDestroyed})
		}
	}
}
