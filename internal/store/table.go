package store

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"

	"github.com/conntop/conntop/internal/flow"
)

// chunkBits sets the number of entries per storage chunk (1024). Entries
// live in fixed chunks so that growing the table never copies it and an
// entry's index stays valid for its lifetime.
const (
	chunkBits = 10
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

// table holds the entries and an open-addressing hash index over their
// keys (linear probing, backward-shift deletion). Slots hold entry index+1;
// 0 is empty. It costs 4 bytes per slot, at most 2 slots per entry on
// average after growth (load factor 3/8 to 3/4).
type table struct {
	chunks [][]entry
	hw     uint32   // high water: indices below it have been handed out
	free   []uint32 // released indices, reused first
	used   int
	slots  []uint32
	mask   uint64
	seed0  uint64
	seed1  uint64
}

// newTable returns an empty table with a random hash seed (so that remote
// peers cannot choose flows that collide).
func newTable() *table {
	s := maphash.MakeSeed()
	var b [8]byte
	t := &table{
		seed0: maphash.Bytes(s, b[:]) | 1,
		seed1: maphash.String(s, "conntop"),
	}
	t.slots = make([]uint32, 64)
	t.mask = 63
	return t
}

// at returns the entry with index i.
func (t *table) at(i uint32) *entry { return &t.chunks[i>>chunkBits][i&chunkMask] }

// mix is a 64x64->128 multiply fold (as in wyhash).
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hashKey hashes a flow key.
func (t *table) hashKey(proto uint8, zone uint16, src, dst *[16]byte, sport, dport uint16) uint64 {
	const k1, k2 = 0xa0761d6478bd642f, 0xe7037ed1a0b428db
	h := mix(binary.LittleEndian.Uint64(src[:8])^t.seed0, binary.LittleEndian.Uint64(src[8:])^k1)
	h = mix(h^binary.LittleEndian.Uint64(dst[:8])^k2, binary.LittleEndian.Uint64(dst[8:])^t.seed1)
	return mix(h^(uint64(proto)|uint64(zone)<<8|uint64(sport)<<24|uint64(dport)<<40)^k1, t.seed0^k2)
}

// hashEntry hashes an entry's key.
func (t *table) hashEntry(e *entry) uint64 {
	if e.extra != nil && e.extra.origFull != nil {
		return t.hashTuple(e.proto, e.zone, e.extra.origFull)
	}
	return t.hashKey(e.proto, e.zone, &e.src, &e.dst, e.sport, e.dport)
}

// hashTuple hashes a key given as its parts. The compact form and the
// full form of the same key hash alike.
func (t *table) hashTuple(proto uint8, zone uint16, o *flow.Tuple) uint64 {
	src, dst := packAddr(o.Src), packAddr(o.Dst)
	sp, dp, _ := compactTuple(proto, o)
	return t.hashKey(proto, zone, &src, &dst, sp, dp)
}

// lookup returns the index of the entry with key k.
func (t *table) lookup(k *flow.Key) (uint32, bool) {
	for p := t.hashTuple(k.Proto, k.Zone, &k.Orig) & t.mask; ; p = (p + 1) & t.mask {
		s := t.slots[p]
		if s == 0 {
			return 0, false
		}
		if t.at(s - 1).hasKey(k) {
			return s - 1, true
		}
	}
}

// insert adds a new entry for key k (which must not be present) and
// returns its index; the caller fills it.
func (t *table) insert(k *flow.Key) uint32 {
	if uint64(t.used+1)*4 > uint64(len(t.slots))*3 {
		t.grow()
	}
	var i uint32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		i = t.hw
		if i>>chunkBits >= uint32(len(t.chunks)) {
			t.chunks = append(t.chunks, make([]entry, chunkSize))
		}
		t.hw++
	}
	t.used++
	p := t.hashTuple(k.Proto, k.Zone, &k.Orig) & t.mask
	for t.slots[p] != 0 {
		p = (p + 1) & t.mask
	}
	t.slots[p] = i + 1
	return i
}

// grow doubles the index.
func (t *table) grow() {
	old := t.slots
	t.slots = make([]uint32, 2*len(old))
	t.mask = uint64(len(t.slots) - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		p := t.hashEntry(t.at(s-1)) & t.mask
		for t.slots[p] != 0 {
			p = (p + 1) & t.mask
		}
		t.slots[p] = s
	}
}

// remove deletes entry i from the index and releases its storage.
func (t *table) remove(i uint32) {
	e := t.at(i)
	p := t.hashEntry(e) & t.mask
	for t.slots[p] != i+1 {
		p = (p + 1) & t.mask
	}
	// Backward-shift deletion: move later members of the probe run into
	// the hole when their home slot allows it.
	for q := (p + 1) & t.mask; t.slots[q] != 0; q = (q + 1) & t.mask {
		home := t.hashEntry(t.at(t.slots[q]-1)) & t.mask
		// The entry at q may move to p if its home is not in (p, q].
		if (q-home)&t.mask >= (q-p)&t.mask {
			t.slots[p] = t.slots[q]
			p = q
		}
	}
	t.slots[p] = 0
	*e = entry{}
	t.free = append(t.free, i)
	t.used--
}
