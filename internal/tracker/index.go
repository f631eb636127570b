package tracker

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"

	"github.com/conntop/conntop/internal/flow"
)

// index finds entries by tuple, in either direction, like the kernel's
// single conntrack hash: every confirmed entry is in it under its original
// and its reply tuple (once when the two are equal).
//
// It is an open-addressing table with linear probing and backward-shift
// deletion (no tombstones), kept at most half full. A slot holds the
// entry, which of its tuples the slot stands for, and 32 bits of the
// tuple's hash; the hash is a keyed multiply-mix (wyhash style) over the
// tuple's words with a random key per tracker, so tuples chosen by a remote
// sender cannot be made to collide on purpose. This is cheaper than a Go map
// keyed by flow.Key, whose generic hash of two netip.Addr values dominated
// the per-packet cost.
type index struct {
	slots []slot
	mask  uint32
	used  int
	key   [6]uint64
}

type slot struct {
	hash  uint32
	reply bool
	c     *conn
}

const indexMinSlots = 64

func newIndex() index {
	ix := index{slots: make([]slot, indexMinSlots), mask: indexMinSlots - 1}
	for i := range ix.key {
		ix.key[i] = rand.Uint64() | 1
	}
	return ix
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash hashes the tuple tu of protocol proto in zone zone.
func (ix *index) hash(proto uint8, zone uint16, tu *flow.Tuple) uint32 {
	w := uint64(tu.SrcPort) | uint64(tu.DstPort)<<16 | uint64(tu.ID)<<32 |
		uint64(tu.Type)<<48 | uint64(tu.Code)<<56
	z := uint64(proto) | uint64(zone)<<8
	var h uint64
	if tu.Src.Is4() && tu.Dst.Is4() {
		// Both addresses fit one word; the flag keeps 1.2.3.4 and
		// ::ffff:1.2.3.4 apart.
		s, d := tu.Src.As4(), tu.Dst.As4()
		a := uint64(binary.LittleEndian.Uint32(s[:])) | uint64(binary.LittleEndian.Uint32(d[:]))<<32
		h = mix(a^ix.key[0], (z|1<<24)^ix.key[1])
	} else {
		s, d := tu.Src.As16(), tu.Dst.As16()
		h = mix(binary.LittleEndian.Uint64(s[:8])^ix.key[0], binary.LittleEndian.Uint64(s[8:])^ix.key[1])
		h = mix(h^binary.LittleEndian.Uint64(d[:8])^ix.key[2], binary.LittleEndian.Uint64(d[8:])^ix.key[3])
		h ^= z
	}
	h = mix(h^w^ix.key[4], h^ix.key[5])
	return uint32(h) ^ uint32(h>>32)
}

// find returns the entry with tuple tu (protocol proto, zone zone) and
// whether tu is the entry's reply tuple (a tuple that is its own inverse
// is).
func (ix *index) find(proto uint8, zone uint16, tu *flow.Tuple) (*conn, bool) {
	h := ix.hash(proto, zone, tu)
	for i := h & ix.mask; ; i = (i + 1) & ix.mask {
		s := &ix.slots[i]
		c := s.c
		if c == nil {
			return nil, false
		}
		if s.hash != h || c.key.Proto != proto || c.key.Zone != zone {
			continue
		}
		if s.reply {
			if c.reply == *tu {
				return c, true
			}
		} else if c.key.Orig == *tu {
			return c, c.reply == *tu
		}
	}
}

// insert adds c under its original and reply tuples.
func (ix *index) insert(c *conn) {
	if (ix.used+2)*2 > len(ix.slots) {
		ix.grow()
	}
	ix.put(slot{hash: ix.hash(c.key.Proto, c.key.Zone, &c.key.Orig), c: c})
	if c.reply != c.key.Orig {
		ix.put(slot{hash: ix.hash(c.key.Proto, c.key.Zone, &c.reply), reply: true, c: c})
	}
}

func (ix *index) put(s slot) {
	i := s.hash & ix.mask
	for ix.slots[i].c != nil {
		i = (i + 1) & ix.mask
	}
	ix.slots[i] = s
	ix.used++
}

// remove takes c out under both its tuples.
func (ix *index) remove(c *conn) {
	ix.del(c, false, &c.key.Orig)
	if c.reply != c.key.Orig {
		ix.del(c, true, &c.reply)
	}
}

func (ix *index) del(c *conn, reply bool, tu *flow.Tuple) {
	h := ix.hash(c.key.Proto, c.key.Zone, tu)
	i := h & ix.mask
	for {
		s := &ix.slots[i]
		if s.c == nil {
			return // not present
		}
		if s.c == c && s.reply == reply {
			break
		}
		i = (i + 1) & ix.mask
	}
	ix.used--
	// Backward shift: move later slots of the run into the hole unless
	// their home position lies cyclically in (hole, slot].
	for j := (i + 1) & ix.mask; ix.slots[j].c != nil; j = (j + 1) & ix.mask {
		home := ix.slots[j].hash & ix.mask
		if (j-home)&ix.mask >= (j-i)&ix.mask {
			ix.slots[i] = ix.slots[j]
			i = j
		}
	}
	ix.slots[i] = slot{}
}

func (ix *index) grow() {
	old := ix.slots
	ix.slots = make([]slot, 2*len(old))
	ix.mask = uint32(len(ix.slots) - 1)
	ix.used = 0
	for _, s := range old {
		if s.c != nil {
			ix.put(s)
		}
	}
}
