//go:build linux

package conntrack

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"

	"github.com/conntop/conntop/internal/flow"
)

// The silent set holds the entries of the initial listing, which may never
// report events (see Source.Run), so that the periodic reconciliation can
// notice their changes and their disappearance. On a big table that is the
// whole table at start, for as long as its long-lived entries live, so the
// set is built for size: pointer-free records in two arrays outside the Go
// heap (see offArray), 16 bytes per IPv4 entry and 40 per IPv6 entry, plus
// a bucket directory of half a byte to one byte per entry.
//
// A record holds the entry's key material exactly (addresses, and ports or
// ICMP type, code and id) and the index of its class: protocol, zone,
// family, TCP state, status and mark, shared by all entries alike (a table
// holds few distinct ones). So a vanished entry's EventDestroy is rebuilt
// exactly, with its last known family, state, status and mark, and a
// change is noticed exactly; no hash stands in for a key. Keys that fit
// neither record (an address with an IPv6 zone, mixed families, ICMP fields
// on a protocol with ports) are kept in a map.
//
// The set is filled during the initial listing only and then sealed: its
// records are sorted in place into buckets by a seeded hash of the key (the
// top bits select the bucket, so the order also holds for fewer buckets),
// with a directory of bucket starts. It only shrinks afterwards: an entry
// that reports an event, or vanished, is marked dead; when the dead
// outnumber the live, the live are copied into arrays of their size, with
// half or fewer buckets, and the memory of the old ones is freed.
//
// The reconciliation tells present from vanished entries by a parity bit
// per record: every dump flips the expected parity, each entry listed gets
// it, and those that did not get it are gone.

// Bits of a record's cls word: dead, parity of the last dump that listed it,
// and the index of its class.
const (
	silentDead   = 1 << 31
	silentParity = 1 << 30
	silentIdx    = silentParity - 1
)

// Bucket sizes the directory aims at: a lookup scans at most about this
// many records (two cache lines).
const (
	silentPerBucket4 = 8
	silentPerBucket6 = 4
)

// silentClass is what entries share: everything but the key material.
type silentClass struct {
	family flow.Family
	proto  uint8
	zone   uint16
	tcp    flow.TCPState
	status flow.Status
	mark   uint32
}

// meta is the part of the key a class holds, as hashed.
func (c *silentClass) meta() uint64 { return uint64(c.proto)<<16 | uint64(c.zone) }

func keyMeta(proto uint8, zone uint16) uint64 { return uint64(proto)<<16 | uint64(zone) }

// silentState is a silent entry whose key fits no record (the odd map).
type silentState struct {
	family flow.Family
	tcp    flow.TCPState
	status flow.Status
	mark   uint32
	gen    uint32
}

// silentSeeds key the hash of a run, so that nobody who chooses the
// entries of a table can choose which share a bucket.
type silentSeeds struct{ a, b, c, d uint64 }

// mum is a 64x64->128-bit multiply folded to 64 bits.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// silentKey is the key material of one record type.
type silentKey interface {
	comparable
	hash(s *silentSeeds, meta uint64) uint64
	tuple(proto uint8) flow.Tuple
}

// v4Key is an IPv4 original tuple: addresses and ports (or ICMP type, code
// and id), 12 bytes.
type v4Key struct{ src, dst, ports uint32 }

func (k v4Key) hash(s *silentSeeds, meta uint64) uint64 {
	x := mum((uint64(k.src)<<32|uint64(k.dst))^s.a, (uint64(k.ports)<<32|meta)^s.b)
	return mum(x^s.c, s.d)
}

func (k v4Key) tuple(proto uint8) flow.Tuple {
	var a, b [4]byte
	binary.BigEndian.PutUint32(a[:], k.src)
	binary.BigEndian.PutUint32(b[:], k.dst)
	t := flow.Tuple{Src: netip.AddrFrom4(a), Dst: netip.AddrFrom4(b)}
	unpackPorts(proto, k.ports, &t)
	return t
}

// v6Key is an IPv6 original tuple, 36 bytes.
type v6Key struct {
	src, dst [16]byte
	ports    uint32
}

func (k v6Key) hash(s *silentSeeds, meta uint64) uint64 {
	le := binary.LittleEndian
	x := mum(le.Uint64(k.src[:8])^s.a, le.Uint64(k.src[8:])^s.b)
	y := mum(le.Uint64(k.dst[:8])^s.c, le.Uint64(k.dst[8:])^s.d)
	return mum(x^(uint64(k.ports)<<32|meta)^s.b, y^s.c)
}

func (k v6Key) tuple(proto uint8) flow.Tuple {
	t := flow.Tuple{Src: netip.AddrFrom16(k.src), Dst: netip.AddrFrom16(k.dst)}
	unpackPorts(proto, k.ports, &t)
	return t
}

// packPorts packs the ports (or, for ICMP and ICMPv6, type, code and id)
// of t; ok is false when t carries fields of both kinds.
func packPorts(proto uint8, t *flow.Tuple) (p uint32, ok bool) {
	if flow.IsICMP(proto) {
		return uint32(t.Type)<<24 | uint32(t.Code)<<16 | uint32(t.ID), t.SrcPort == 0 && t.DstPort == 0
	}
	return uint32(t.SrcPort)<<16 | uint32(t.DstPort), t.Type == 0 && t.Code == 0 && t.ID == 0
}

func unpackPorts(proto uint8, p uint32, t *flow.Tuple) {
	if flow.IsICMP(proto) {
		t.Type, t.Code, t.ID = uint8(p>>24), uint8(p>>16), uint16(p)
		return
	}
	t.SrcPort, t.DstPort = uint16(p>>16), uint16(p)
}

// pack4 returns t as a v4Key; ok is false unless that is exact.
func pack4(proto uint8, t *flow.Tuple) (v4Key, bool) {
	if !t.Src.Is4() || !t.Dst.Is4() {
		return v4Key{}, false
	}
	p, ok := packPorts(proto, t)
	s, d := t.Src.As4(), t.Dst.As4()
	return v4Key{src: binary.BigEndian.Uint32(s[:]), dst: binary.BigEndian.Uint32(d[:]), ports: p}, ok
}

// pack6 returns t as a v6Key; ok is false unless that is exact.
func pack6(proto uint8, t *flow.Tuple) (v6Key, bool) {
	if !t.Src.Is6() || !t.Dst.Is6() || t.Src.Zone() != "" || t.Dst.Zone() != "" {
		return v6Key{}, false
	}
	p, ok := packPorts(proto, t)
	return v6Key{src: t.Src.As16(), dst: t.Dst.As16(), ports: p}, ok
}

// silentRec is one entry: key material and cls word.
type silentRec[K silentKey] struct {
	key K
	cls uint32
}

// silentTable is the records of one key type. Until sealed, recs is in
// listing order and dir is nil; afterwards bucket b's records are
// recs.a[dir[b]:dir[b+1]].
type silentTable[K silentKey] struct {
	recs       offArray[silentRec[K]]
	dir        []uint32
	bits       uint // log2 of the number of buckets
	per        int  // records per bucket aimed at
	live, dead int
}

// bucketBits returns the log2 of the bucket count for n records.
func bucketBits(n, per int) uint {
	var b uint
	for (1<<b)*per < n {
		b++
	}
	return b
}

// bucket returns the bucket of key material k with meta in a table of
// 2^bits buckets (a shift by 64 gives 0: one bucket).
func bucket(h uint64, bits uint) uint64 { return h >> (64 - bits) }

func (t *silentTable[K]) recBucket(s *silentSet, r *silentRec[K]) uint64 {
	return bucket(r.key.hash(&s.seeds, s.classes[r.cls&silentIdx].meta()), t.bits)
}

// seal sorts the records into buckets in place and marks duplicate keys
// dead (a key listed twice while the table changed during the listing).
//
// The sort is an American-flag sort in two passes: on the top bits of the
// bucket number, then on the rest within each part. A single pass would
// move each record to a random place in the whole array, a cache and TLB
// miss each time; two passes write to at most 1,024 places at once, then
// within ranges that fit in a cache: several times faster on big tables.
func (t *silentTable[K]) seal(s *silentSet) {
	t.recs.trim() // give back what was reserved beyond the listing
	recs := t.recs.a
	n := len(recs)
	t.bits = bucketBits(n, t.per)
	nb := uint64(1) << t.bits
	t.dir = make([]uint32, nb+1)
	for i := range recs {
		t.dir[t.recBucket(s, &recs[i])+1]++
	}
	for b := range nb {
		t.dir[b+1] += t.dir[b]
	}
	hi := min(t.bits, 10)
	lo := t.bits - hi
	next := make([]uint32, 1<<max(hi, lo))
	t.permute(s, recs, 0, hi, lo, next)
	if lo > 0 {
		for d := range uint64(1) << hi {
			t.permute(s, recs, d<<lo, lo, 0, next)
		}
	}
	for b := range nb {
		rs := recs[t.dir[b]:t.dir[b+1]]
		for i := range rs {
			for j := i + 1; j < len(rs); j++ {
				if rs[j].cls&silentDead == 0 && rs[i].key == rs[j].key &&
					s.classes[rs[i].cls&silentIdx].meta() == s.classes[rs[j].cls&silentIdx].meta() {
					rs[j].cls |= silentDead
					t.dead++
				}
			}
		}
	}
	t.live = n - t.dead
}

// permute sorts in place the records of the buckets from first on, whose
// numbers all share the bits above width+below, by bits [below,
// below+width) of their bucket number, using t.dir for where each group
// starts; next is scratch space for 2^width values.
func (t *silentTable[K]) permute(s *silentSet, recs []silentRec[K], first uint64, width, below uint, next []uint32) {
	nd := uint64(1) << width
	for d := range nd {
		next[d] = t.dir[first+d<<below]
	}
	for d := range nd {
		end := t.dir[first+(d+1)<<below]
		for next[d] < end {
			i := next[d]
			r := recs[i]
			for e := (t.recBucket(s, &r) - first) >> below; e != d; e = (t.recBucket(s, &r) - first) >> below {
				j := next[e]
				next[e]++
				r, recs[j] = recs[j], r
			}
			recs[i] = r
			next[d]++
		}
	}
}

// find returns the index of the live record of key k with meta, or -1.
func (t *silentTable[K]) find(s *silentSet, k K, meta uint64) int {
	if t.live == 0 {
		return -1
	}
	b := bucket(k.hash(&s.seeds, meta), t.bits)
	for i := t.dir[b]; i < t.dir[b+1]; i++ {
		r := &t.recs.a[i]
		if r.key == k && r.cls&silentDead == 0 && s.classes[r.cls&silentIdx].meta() == meta {
			return int(i)
		}
	}
	return -1
}

// kill marks record i dead.
func (t *silentTable[K]) kill(i int) {
	t.recs.a[i].cls |= silentDead
	t.live--
	t.dead++
}

// see records that the entry f, listed by the current dump, has key k.
func (t *silentTable[K]) see(s *silentSet, k K, f *flow.Flow) (found, changed bool) {
	i := t.find(s, k, keyMeta(f.Proto, f.Zone))
	if i < 0 {
		return false, false
	}
	r := &t.recs.a[i]
	idx := r.cls & silentIdx
	c := s.classes[idx]
	if c.tcp != f.TCPState || c.status != f.Status || c.mark != f.Mark {
		changed = true
		c.tcp, c.status, c.mark = f.TCPState, f.Status, f.Mark
		idx = s.class(c)
	}
	r.cls = idx | s.parity()
	return true, changed
}

// sweep marks dead every live record the current dump did not list and
// calls gone with the entry each one was.
func (t *silentTable[K]) sweep(s *silentSet, gone func(*flow.Flow) error) error {
	p := s.parity()
	for i := range t.recs.a {
		r := &t.recs.a[i]
		if r.cls&silentDead != 0 || r.cls&silentParity == p {
			continue
		}
		t.kill(i)
		c := &s.classes[r.cls&silentIdx]
		orig := r.key.tuple(c.proto)
		f := flow.Flow{Family: c.family, Proto: c.proto, Zone: c.zone, Orig: orig,
			Reply: orig.Reverse(c.proto), Status: c.status, TCPState: c.tcp, Mark: c.mark}
		if err := gone(&f); err != nil {
			return err
		}
	}
	return nil
}

// compact copies the live records, when they are outnumbered by the dead,
// into arrays of their size: with fewer buckets, each the union of
// neighbours, so the order holds without hashing anything again.
func (t *silentTable[K]) compact() {
	if t.dead <= t.live || t.dir == nil {
		return
	}
	bits := min(bucketBits(t.live, t.per), t.bits)
	shift := t.bits - bits
	var recs offArray[silentRec[K]]
	if t.live > 0 {
		recs = mapOff[silentRec[K]](t.live)
	}
	dir := make([]uint32, 1<<bits+1)
	for b := range uint64(1) << t.bits {
		if b&(1<<shift-1) == 0 {
			dir[b>>shift] = uint32(len(recs.a))
		}
		for _, r := range t.recs.a[t.dir[b]:t.dir[b+1]] {
			if r.cls&silentDead == 0 {
				recs.a = append(recs.a, r) // within the capacity
			}
		}
	}
	dir[1<<bits] = uint32(len(recs.a))
	t.recs.free()
	t.recs, t.dir, t.bits, t.dead = recs, dir, bits, 0
}

// mapped returns the bytes the table holds outside the Go heap.
func (t *silentTable[K]) mapped() uintptr { return t.recs.mapped }

// silentSet is the set of silent entries (see the comment at the top).
// It is not safe for concurrent use. Free it when done.
type silentSet struct {
	seeds   silentSeeds
	v4      silentTable[v4Key]
	v6      silentTable[v6Key]
	odd     map[flow.Key]silentState
	classes []silentClass
	classOf map[silentClass]uint32
	last    uint32 // index of the class class returned last
	gen     uint32 // dumps begun (beginPoll)
	hint    int    // records to reserve for a family when its first comes
	sealed  bool
}

// newSilentSet returns an empty set with room for hint IPv4 entries.
func newSilentSet(hint int) *silentSet {
	s := &silentSet{
		seeds:   silentSeeds{rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64()},
		odd:     make(map[flow.Key]silentState),
		classOf: make(map[silentClass]uint32),
	}
	s.v4.per, s.v6.per = silentPerBucket4, silentPerBucket6
	if hint > 0 {
		// Address space for the table counted before the listing, for
		// each family when its first entry comes: the pages the listing
		// does not fill cost no memory and seal unmaps them.
		s.hint = min(hint, 1<<26) + hint/64 + 1024
	}
	return s
}

// free releases the set's memory; the set is empty afterwards.
func (s *silentSet) free() {
	s.v4.recs.free()
	s.v6.recs.free()
	s.v4 = silentTable[v4Key]{per: silentPerBucket4}
	s.v6 = silentTable[v6Key]{per: silentPerBucket6}
	s.odd, s.classes, s.classOf = nil, nil, make(map[silentClass]uint32)
}

// mapped returns the bytes the set holds outside the Go heap.
func (s *silentSet) mapped() uintptr { return s.v4.mapped() + s.v6.mapped() }

// class returns the index of class c, adding it if new.
func (s *silentSet) class(c silentClass) uint32 {
	if int(s.last) < len(s.classes) && s.classes[s.last] == c {
		return s.last // entries alike often come in a row
	}
	i, ok := s.classOf[c]
	if !ok {
		i = uint32(len(s.classes))
		s.classes = append(s.classes, c)
		s.classOf[c] = i
	}
	s.last = i
	return i
}

// parity returns the parity bit the current dump gives the entries it lists.
func (s *silentSet) parity() uint32 { return (s.gen & 1) << 30 }

// len returns the number of entries in the set.
func (s *silentSet) len() int { return s.v4.live + s.v6.live + len(s.odd) }

// add adds a listed entry; only before seal.
func (s *silentSet) add(f *flow.Flow) {
	if s.sealed {
		panic("conntrack: silent set: add after seal")
	}
	c := silentClass{family: f.Family, proto: f.Proto, zone: f.Zone, tcp: f.TCPState, status: f.Status, mark: f.Mark}
	if k, ok := pack4(f.Proto, &f.Orig); ok {
		if cap(s.v4.recs.a) == 0 {
			s.v4.recs.reserve(s.hint)
		}
		s.v4.recs.push(silentRec[v4Key]{key: k, cls: s.class(c)})
		return
	}
	if k, ok := pack6(f.Proto, &f.Orig); ok {
		if cap(s.v6.recs.a) == 0 {
			s.v6.recs.reserve(s.hint)
		}
		s.v6.recs.push(silentRec[v6Key]{key: k, cls: s.class(c)})
		return
	}
	s.odd[f.Key()] = silentState{family: f.Family, tcp: f.TCPState, status: f.Status, mark: f.Mark, gen: s.gen}
}

// seal ends the filling: the set answers lookups from now on.
func (s *silentSet) seal() {
	s.v4.seal(s)
	s.v6.seal(s)
	s.sealed = true
	s.tidy()
}

// remove removes the entry with key k (it reported an event) and reports
// whether it was in the set.
func (s *silentSet) remove(k *flow.Key) bool {
	if !s.sealed {
		return false
	}
	meta := keyMeta(k.Proto, k.Zone)
	if p, ok := pack4(k.Proto, &k.Orig); ok {
		i := s.v4.find(s, p, meta)
		if i < 0 {
			return false
		}
		s.v4.kill(i)
	} else if p, ok := pack6(k.Proto, &k.Orig); ok {
		i := s.v6.find(s, p, meta)
		if i < 0 {
			return false
		}
		s.v6.kill(i)
	} else {
		if _, ok := s.odd[*k]; !ok {
			return false
		}
		delete(s.odd, *k)
	}
	s.tidy()
	return true
}

// beginPoll starts a reconciliation: a dump whose entries go to seen,
// followed by sweep.
func (s *silentSet) beginPoll() { s.gen++ }

// seen reports whether the listed entry f is in the set and, if so,
// whether its TCP state, status or mark changed since the set last saw
// it; the set keeps the new ones.
func (s *silentSet) seen(f *flow.Flow) (found, changed bool) {
	if !s.sealed {
		return false, false
	}
	if k, ok := pack4(f.Proto, &f.Orig); ok {
		return s.v4.see(s, k, f)
	}
	if k, ok := pack6(f.Proto, &f.Orig); ok {
		return s.v6.see(s, k, f)
	}
	k := f.Key()
	st, ok := s.odd[k]
	if !ok {
		return false, false
	}
	changed = st.tcp != f.TCPState || st.status != f.Status || st.mark != f.Mark
	st.tcp, st.status, st.mark, st.gen = f.TCPState, f.Status, f.Mark, s.gen
	s.odd[k] = st
	return true, changed
}

// sweep ends a reconciliation: it removes the entries the dump did not
// list and calls gone with each (which must copy it). An error from gone
// ends the sweep.
func (s *silentSet) sweep(gone func(*flow.Flow) error) error {
	defer s.tidy()
	if err := s.v4.sweep(s, gone); err != nil {
		return err
	}
	if err := s.v6.sweep(s, gone); err != nil {
		return err
	}
	for k, st := range s.odd {
		if st.gen == s.gen {
			continue
		}
		delete(s.odd, k)
		f := flow.Flow{Family: st.family, Proto: k.Proto, Zone: k.Zone, Orig: k.Orig,
			Reply: k.Orig.Reverse(k.Proto), Status: st.status, TCPState: st.tcp, Mark: st.mark}
		if err := gone(&f); err != nil {
			return err
		}
	}
	return nil
}

// tidy compacts the tables that are mostly dead and forgets the classes
// no entry has any more.
func (s *silentSet) tidy() {
	s.v4.compact()
	s.v6.compact()
	if len(s.odd) == 0 && s.odd != nil {
		s.odd = nil // a map does not shrink
	}
	if len(s.classes) <= 2*(s.v4.live+s.v6.live)+1024 {
		return
	}
	// Reindex the classes of the live records.
	old := s.classes
	s.classes, s.classOf = nil, make(map[silentClass]uint32)
	reindex(s, s.v4.recs.a, old)
	reindex(s, s.v6.recs.a, old)
}

// reindex gives the live records of recs their class's index in s, after
// s.classes was emptied (old is what it held); a dead record's class is
// never read again.
func reindex[K silentKey](s *silentSet, recs []silentRec[K], old []silentClass) {
	for i := range recs {
		r := &recs[i]
		if r.cls&silentDead != 0 {
			r.cls = silentDead
			continue
		}
		r.cls = r.cls&^silentIdx | s.class(old[r.cls&silentIdx])
	}
}
