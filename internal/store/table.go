package store

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"slices"
	"unsafe"

	"github.com/conntop/conntop/internal/flow"
)

// Slab part sizes: 262,144 records (12 MiB); 524,288 values of a column
// beside them (acct 10 MiB, marks 2 MiB, rates 4 MiB); each a whole number
// of huge pages, so that all of a part can be backed by them (see
// mapArray, adviseHuge: a 4 KiB page fault costs tens of microseconds in a
// virtual machine); 16,384 IPv6 address pairs and NAT tuples.
const (
	recBits    = 18
	columnBits = 19
	extBits    = 14
)

// table holds the records, their ext records and side table, and an
// open-addressing hash index over their keys (linear probing,
// backward-shift deletion). Slots hold record index+1; 0 is empty. The
// index costs 4 bytes per slot, at most 2 slots per record on average
// after growth (load factor 3/8 to 3/4); it is mapped outside the Go heap
// too, and the old one is unmapped as soon as it has been rehashed.
type table struct {
	recs  slab[rec]
	acct  column[acct]
	marks column[uint32] // the flows' conntrack marks (most are 0)
	rates rateTable
	v6    pool[v6addrs]
	nat   pool[nat4]
	rare  map[uint32]*rare
	hw    uint32   // high water: record indices below it have been handed out
	free  []uint32 // released record indices, reused first
	used  int
	nrare int
	slots []uint32
	mask  uint64
	hasher
	helpers map[string]string // interned helper names
	// zeroAcct is the acct of every flow without counters (acctOf),
	// zeroV6 the addresses of a free record (v6Of), zeroRec a record
	// above the mapped parts (at); they are never written.
	zeroAcct acct
	zeroV6   v6addrs
	zeroRec  rec
}

// hasher hashes flow keys with a random per-store seed (so that remote
// peers cannot choose flows that collide).
type hasher struct{ seed0, seed1 uint64 }

func newHasher() hasher {
	s := maphash.MakeSeed()
	var b [8]byte
	return hasher{seed0: maphash.Bytes(s, b[:]) | 1, seed1: maphash.String(s, "conntop")}
}

// newTable returns an empty table with a random hash seed (so that remote
// peers cannot choose flows that collide).
func newTable() *table {
	t := &table{
		recs:    newSlab[rec](recBits),
		acct:    column[acct]{s: newSlab[acct](columnBits)}, // index for index with recs
		marks:   column[uint32]{s: newSlab[uint32](columnBits)},
		rates:   rateTable{dense: column[rates]{s: newSlab[rates](columnBits)}},
		v6:      pool[v6addrs]{s: newSlab[v6addrs](extBits)},
		nat:     pool[nat4]{s: newSlab[nat4](extBits)},
		rare:    map[uint32]*rare{},
		hasher:  newHasher(),
		helpers: map[string]string{},
	}
	t.slots = mapArray[uint32](64)
	t.mask = 63
	return t
}

// release unmaps everything the table holds.
func (t *table) release() {
	t.recs.free()
	t.acct.shrink(0)
	t.marks.shrink(0)
	t.rates.reset()
	t.v6.reset()
	t.nat.reset()
	unmapArray(t.slots)
	t.slots = nil
}

// bytes estimates the memory the table holds.
func (t *table) bytes() int64 {
	const rareCost = 160 // the struct, its map slot and strings, roughly
	return t.recs.bytesBelow(t.hw) + t.acct.bytesBelow(t.hw) + t.marks.bytesBelow(t.hw) + t.rates.bytes(t.hw) + t.v6.bytes() + t.nat.bytes() + int64(len(t.slots))*4 + int64(cap(t.free))*4 + int64(t.nrare)*rareCost
}

// at returns the record with index i; a zero one above the mapped parts.
// A reader that let the writer in may still scan up to the old top of a
// table the writer trimmed meanwhile, or hold the index of a record
// trimmed away: such a record reads as a free one, and the catch-up after
// the reader's scan settles what changed.
func (t *table) at(i uint32) *rec {
	if int(i>>t.recs.bits) >= len(t.recs.parts) {
		return &t.zeroRec
	}
	return t.recs.at(i)
}

// v6Of returns an IPv6 record's addresses; zero ones for a free record (a
// reader holding the index of a record freed while it let the writer in
// reads zeros, and the catch-up after its scan corrects what it found).
func (t *table) v6Of(r *rec) *v6addrs {
	if r.ext == 0 {
		return &t.zeroV6
	}
	return t.v6.at(r.ext)
}

// freeExt releases r's IPv6 addresses or NAT tuple.
func (t *table) freeExt(r *rec) {
	if r.ext == 0 {
		return
	}
	if r.family == flow.FamilyIPv6 {
		t.v6.release(r.ext)
	} else {
		t.nat.release(r.ext)
	}
	r.ext = 0
}

// mix is a 64x64->128 multiply fold (as in wyhash).
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hashKey hashes a flow key.
func (t *hasher) hashKey(proto uint8, zone uint16, src, dst *[16]byte, sport, dport uint16) uint64 {
	const k1, k2 = 0xa0761d6478bd642f, 0xe7037ed1a0b428db
	h := mix(binary.LittleEndian.Uint64(src[:8])^t.seed0, binary.LittleEndian.Uint64(src[8:])^k1)
	h = mix(h^binary.LittleEndian.Uint64(dst[:8])^k2, binary.LittleEndian.Uint64(dst[8:])^t.seed1)
	return mix(h^(uint64(proto)|uint64(zone)<<8|uint64(sport)<<24|uint64(dport)<<40)^k1, t.seed0^k2)
}

// hashTuple hashes a key given as its parts. The record form and the
// full form of the same key hash alike.
func (t *hasher) hashTuple(proto uint8, zone uint16, o *flow.Tuple) uint64 {
	src, dst := packAddr(o.Src), packAddr(o.Dst)
	sp, dp, _ := compactTuple(proto, o)
	return t.hashKey(proto, zone, &src, &dst, sp, dp)
}

// hashRec hashes record i's key.
func (t *table) hashRec(i uint32) uint64 {
	r := t.at(i)
	if r.flags&flagRare != 0 {
		if x := t.rare[i]; x.hasOrig {
			return t.hashTuple(r.proto, r.zone, &x.orig)
		}
	}
	var src, dst [16]byte
	if r.family == flow.FamilyIPv4 {
		binary.BigEndian.PutUint32(src[12:], r.src4)
		binary.BigEndian.PutUint32(dst[12:], r.dst4)
	} else {
		x := t.v6Of(r)
		src, dst = x.src, x.dst
	}
	return t.hashKey(r.proto, r.zone, &src, &dst, r.sport, r.dport)
}

// lookup returns the index of the record with key k.
func (t *table) lookup(k *flow.Key) (uint32, bool) {
	i, ok, _ := t.find(k)
	return i, ok
}

// find returns the index of the record with key k, or false and the
// empty index slot where the probe for k ended (for insertAt).
func (t *table) find(k *flow.Key) (uint32, bool, uint64) {
	for p := t.hashTuple(k.Proto, k.Zone, &k.Orig) & t.mask; ; p = (p + 1) & t.mask {
		s := t.slots[p]
		if s == 0 {
			return 0, false, p
		}
		if t.hasKey(s-1, k) {
			return s - 1, true, p
		}
	}
}

// insertAt adds a new record for key k, whose probe (find) ended at the
// empty slot p with no change of the index since, and returns its index;
// the caller fills it.
func (t *table) insertAt(k *flow.Key, p uint64) uint32 {
	if uint64(t.used+1)*4 > uint64(len(t.slots))*3 {
		t.grow()
		p = t.hashTuple(k.Proto, k.Zone, &k.Orig) & t.mask
		for t.slots[p] != 0 {
			p = (p + 1) & t.mask
		}
	}
	var i uint32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		i = t.hw
		if i >= t.recs.cap() {
			t.recs.grow()
		}
		t.hw++
	}
	t.used++
	t.slots[p] = i + 1
	return i
}

// reserve makes room for n records without further growth: an index of
// the size n records need and the record slab's parts for them (mapped,
// not yet touched). The initial listing calls it with the table's count.
func (t *table) reserve(n int) {
	slots := len(t.slots)
	for uint64(n)*4 > uint64(slots)*3 {
		slots *= 2
	}
	if slots > len(t.slots) {
		t.rehash(slots)
	}
	for int(t.recs.cap()) < n {
		t.recs.grow()
	}
}

// grow doubles the index.
func (t *table) grow() { t.rehash(2 * len(t.slots)) }

// rehash moves the index to one of n slots (a power of two).
func (t *table) rehash(n int) {
	old := t.slots
	t.slots = mapArray[uint32](n)
	adviseHuge(t.slots)
	t.mask = uint64(len(t.slots) - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		p := t.hashRec(s-1) & t.mask
		for t.slots[p] != 0 {
			p = (p + 1) & t.mask
		}
		t.slots[p] = s
	}
	unmapArray(old)
}

// remove deletes record i from the index and releases its storage.
func (t *table) remove(i uint32) {
	p := t.hashRec(i) & t.mask
	for t.slots[p] != i+1 {
		p = (p + 1) & t.mask
	}
	// Backward-shift deletion: move later members of the probe run into
	// the hole when their home slot allows it.
	for q := (p + 1) & t.mask; t.slots[q] != 0; q = (q + 1) & t.mask {
		home := t.hashRec(t.slots[q]-1) & t.mask
		// The entry at q may move to p if its home is not in (p, q].
		if (q-home)&t.mask >= (q-p)&t.mask {
			t.slots[p] = t.slots[q]
			p = q
		}
	}
	t.slots[p] = 0
	r := t.at(i)
	t.freeExt(r)
	t.acct.set(i, acct{})
	t.marks.set(i, 0)
	t.clearRates(i, r)
	if r.flags&flagRare != 0 {
		delete(t.rare, i)
		t.nrare--
	}
	*r = rec{}
	t.free = append(t.free, i)
	t.used--
}

// trim gives memory back once at most half the records below the high
// water are in use and the free records at its top fill at least a huge
// page: the high water comes down to the last record in use, the parts
// above it are unmapped and the pages of the last part above it released
// (they read as zeros, as free records are).
func (t *table) trim() {
	if t.used*2 > int(t.hw) {
		return
	}
	hw := t.hw
	for hw > 0 && t.at(hw-1).flags&flagUsed == 0 {
		hw--
	}
	bits := t.recs.bits
	if hw != 0 && uint64(t.hw-hw) < min(hugePage/uint64(recSize), 1<<bits) {
		return
	}
	t.recs.trimTo(hw)
	t.acct.s.trimTo(hw)
	t.marks.s.trimTo(hw)
	t.rates.dense.s.trimTo(hw) // nothing mapped while the rates are in the map
	t.hw = hw
	free := t.free[:0]
	for _, i := range t.free {
		if i < hw {
			free = append(free, i)
		}
	}
	t.free = slices.Clip(free)
	if t.used == 0 {
		t.free = nil
		t.rates.reset()
		t.v6.reset()
		t.nat.reset()
	}
}

// intern returns the table's copy of a helper name.
func (t *table) intern(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := t.helpers[s]; ok {
		return v
	}
	if len(t.helpers) < 1024 {
		t.helpers[s] = s
	}
	return s
}

// set stores fl into record i (keeping the store's bookkeeping fields:
// times, flags other than counters, rates).
func (t *table) set(i uint32, fl *flow.Flow) {
	r := t.at(i)
	if r.family != fl.Family {
		t.freeExt(r) // by the old family
	}
	r.family = fl.Family
	r.proto = fl.Proto
	r.zone = fl.Zone
	sp, dp, compact := compactTuple(fl.Proto, &fl.Orig)
	compact = compact && fitsFamily(fl.Family, &fl.Orig)
	r.sport, r.dport = sp, dp
	r.id = fl.ID
	r.status = uint32(fl.Status)
	r.timeout = fl.Timeout
	t.marks.set(i, fl.Mark)
	r.tcpState = fl.TCPState
	cmp, cmpPacked := packCompare(fl.Compare)
	r.aux = r.aux&^auxCompare | cmp
	bigCounters := false
	if fl.HasCounters {
		r.flags |= flagHasCounters
		bigCounters = !r.packCounters(t.acct.at(i), &fl.Counters)
	}

	// Orig addresses and the reply tuple.
	v6 := compact && fl.Family == flow.FamilyIPv6
	nat := fl.Reply != fl.Orig.Reverse(fl.Proto)
	rsp, rdp, replyFits := compactTuple(fl.Proto, &fl.Reply)
	natExt := nat && replyFits && compact && fl.Family == flow.FamilyIPv4 && fitsFamily(fl.Family, &fl.Reply)
	switch {
	case v6:
		if r.ext == 0 {
			r.ext = t.v6.alloc()
		}
		x := t.v6Of(r)
		x.src, x.dst = fl.Orig.Src.As16(), fl.Orig.Dst.As16()
		r.src4, r.dst4 = binary.BigEndian.Uint32(x.src[:4]), binary.BigEndian.Uint32(x.dst[:4])
	case natExt:
		if r.ext == 0 {
			r.ext = t.nat.alloc()
		}
		*t.nat.at(r.ext) = nat4{src: addr4(fl.Reply.Src), dst: addr4(fl.Reply.Dst), sport: rsp, dport: rdp}
	default:
		t.freeExt(r)
	}
	if compact && !v6 {
		r.src4, r.dst4 = addr4(fl.Orig.Src), addr4(fl.Orig.Dst)
	} else if !compact {
		r.src4, r.dst4 = 0, 0
	}

	r.flags &^= flagUseOne
	if fl.Use == 1 {
		r.flags |= flagUseOne
	}

	// The side table.
	fidelity := fl.SCTPState != 0 || fl.Use > 1 || fl.Verdicts != (flow.Verdicts{})
	needRare := !compact || (nat && !natExt) || fl.Master != nil || fl.Helper != "" || fl.Invalid != 0 ||
		fl.InvalidReason != "" || !cmpPacked || bigCounters || fidelity
	if !needRare {
		if r.flags&flagRare != 0 {
			delete(t.rare, i)
			t.nrare--
			r.flags &^= flagRare | flagBigCounters
		}
		return
	}
	x := t.rare[i]
	if x == nil {
		x = &rare{}
		t.rare[i] = x
		t.nrare++
		r.flags |= flagRare
	}
	x.hasOrig = !compact
	if !compact {
		x.orig = fl.Orig
	} else {
		x.orig = flow.Tuple{}
	}
	x.hasReply = nat && !natExt
	if x.hasReply {
		x.reply = fl.Reply
	} else {
		x.reply = flow.Tuple{}
	}
	if x.master == nil || fl.Master == nil || *x.master != *fl.Master {
		x.master = fl.Master
	}
	if x.helper != fl.Helper {
		x.helper = t.intern(fl.Helper)
	}
	x.invalid, x.invalidReason = fl.Invalid, fl.InvalidReason
	if cmpPacked {
		x.cmp = flow.Compare{}
	} else {
		x.cmp = fl.Compare
	}
	x.sctp, x.verdicts, x.use = fl.SCTPState, fl.Verdicts, 0
	if fl.Use > 1 {
		x.use = fl.Use
	}
	if bigCounters {
		r.flags |= flagBigCounters
		x.counters = fl.Counters
	} else {
		r.flags &^= flagBigCounters
		x.counters = flow.Counters{}
	}
}

// acctOf returns the acct of record i, r, to read only: a zero one,
// without reading the column, for a flow that never had counters.
func (t *table) acctOf(i uint32, r *rec) *acct {
	if r.flags&(flagHasCounters|flagCountersAt) != 0 {
		if a := t.acct.ptr(i); a != nil {
			return a
		}
	}
	return &t.zeroAcct
}

// countersAt returns when record i, r last had its counters sampled (in
// milliseconds after its firstSeen), and whether it has counters from a
// sample: what a rate needs as its start.
func (t *table) countersAt(i uint32, r *rec) (uint32, bool) {
	if r.flags&flagCountersAt == 0 || r.flags&flagHasCounters == 0 {
		return 0, false
	}
	return t.acctOf(i, r).countersAt, true
}

// ratesOf returns record i, r's rates.
func (t *table) ratesOf(i uint32, r *rec) rates {
	if r.aux&auxRate == 0 {
		return rates{}
	}
	return t.rates.get(i)
}

// setRates sets record i, r's rates.
func (t *table) setRates(i uint32, r *rec, v rates) {
	if v == (rates{}) {
		t.clearRates(i, r)
		return
	}
	r.aux |= auxRate
	t.rates.set(i, v, t.hw)
}

// clearRates sets record i, r's rates to 0.
func (t *table) clearRates(i uint32, r *rec) {
	if r.aux&auxRate != 0 {
		r.aux &^= auxRate
		t.rates.clear(i)
	}
}

// counters returns the counters of record i, r.
func (t *table) counters(i uint32, r *rec) flow.Counters {
	if r.flags&flagBigCounters != 0 {
		return t.rare[i].counters
	}
	return r.unpackCounters(t.acctOf(i, r))
}

// origTuple returns record i's orig tuple.
func (t *table) origTuple(i uint32) flow.Tuple {
	r := t.at(i)
	if r.flags&flagRare != 0 {
		if x := t.rare[i]; x.hasOrig {
			return x.orig
		}
	}
	src, dst := t.origAddrs(r)
	return tupleFromParts(r.proto, src, dst, r.sport, r.dport)
}

// origAddrs returns the orig addresses of a record in compact form.
func (t *table) origAddrs(r *rec) (netip.Addr, netip.Addr) {
	if r.family == flow.FamilyIPv4 {
		return unpack4(r.src4), unpack4(r.dst4)
	}
	x := t.v6Of(r)
	return netip.AddrFrom16(x.src), netip.AddrFrom16(x.dst)
}

// flow materializes record i into fl. It assigns every field of
// flow.Flow: this runs for every flow a filter looks at.
func (t *table) flow(i uint32, fl *flow.Flow) {
	r := t.at(i)
	var x *rare
	if r.flags&flagRare != 0 {
		x = t.rare[i]
	}
	switch {
	case x != nil && x.hasOrig:
		fl.Orig = x.orig
	case r.family == flow.FamilyIPv4:
		fl.Orig = tupleFromParts(r.proto, unpack4(r.src4), unpack4(r.dst4), r.sport, r.dport)
	default:
		src, dst := t.origAddrs(r)
		fl.Orig = tupleFromParts(r.proto, src, dst, r.sport, r.dport)
	}
	fl.ID = r.id
	fl.Family = r.family
	fl.Proto = r.proto
	fl.TCPState = r.tcpState
	fl.Status = flow.Status(r.status)
	fl.Timeout = r.timeout
	fl.Mark = t.marks.get(i)
	fl.Zone = r.zone
	fl.HasCounters = r.flags&flagHasCounters != 0
	if r.flags&flagBigCounters != 0 {
		fl.Counters = x.counters
	} else {
		fl.Counters = r.unpackCounters(t.acctOf(i, r))
	}
	switch {
	case x != nil && x.hasReply:
		fl.Reply = x.reply
	case r.ext != 0 && r.family == flow.FamilyIPv4:
		e := t.nat.at(r.ext)
		fl.Reply = tupleFromParts(r.proto, unpack4(e.src), unpack4(e.dst), e.sport, e.dport)
	case flow.IsICMP(r.proto) || (x != nil && x.hasOrig):
		fl.Reply = fl.Orig.Reverse(r.proto)
	default:
		fl.Reply = flow.Tuple{Src: fl.Orig.Dst, Dst: fl.Orig.Src, SrcPort: fl.Orig.DstPort, DstPort: fl.Orig.SrcPort}
	}
	fl.SCTPState, fl.Use, fl.Verdicts = 0, uint32(r.flags&flagUseOne)/uint32(flagUseOne), flow.Verdicts{}
	if x != nil {
		fl.Master, fl.Helper, fl.Invalid, fl.InvalidReason = x.master, x.helper, x.invalid, x.invalidReason
		fl.SCTPState, fl.Verdicts = x.sctp, x.verdicts
		if x.use > 1 {
			fl.Use = x.use
		}
		if x.cmp != (flow.Compare{}) {
			fl.Compare = x.cmp
			return
		}
	} else {
		fl.Master, fl.Helper, fl.Invalid, fl.InvalidReason = nil, "", 0, ""
	}
	fl.Compare = unpackCompare(r.aux & auxCompare)
}

// hasKey reports whether record i is the flow with key k.
func (t *table) hasKey(i uint32, k *flow.Key) bool {
	r := t.at(i)
	if r.proto != k.Proto || r.zone != k.Zone {
		return false
	}
	if r.flags&flagRare != 0 {
		if x := t.rare[i]; x.hasOrig {
			return x.orig == k.Orig
		}
	}
	sp, dp, ok := compactTuple(k.Proto, &k.Orig)
	if !ok || sp != r.sport || dp != r.dport || !fitsFamily(r.family, &k.Orig) {
		return false
	}
	if r.family == flow.FamilyIPv4 {
		return addr4(k.Orig.Src) == r.src4 && addr4(k.Orig.Dst) == r.dst4
	}
	x := t.v6Of(r)
	return k.Orig.Src.As16() == x.src && k.Orig.Dst.As16() == x.dst
}

// recSize is the size of a record, for the documentation's figures.
const recSize = unsafe.Sizeof(rec{})
