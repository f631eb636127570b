package serve

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"maps"
	"net/netip"
	"slices"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/export"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// A snapshot over SSH does not copy the table: it collects the matching
// flows' keys (snapKey, 44 bytes a flow: 11.5 MB at 262,144 flows, 185 MB
// at 4,194,304, against ~230 bytes a flow for whole rows), sorts them as
// Store.Snapshot orders flows (by flow key), and then reads and writes the
// rows a page at a time, taking the engine's lock once per page. Each row
// is as it was when its page was read; a flow that ended meanwhile is
// still found while the store lingers it (its last state), and one already
// gone is counted and reported, never silently left out.

// snapshotPage is how many rows one page reads under the engine's lock.
const snapshotPage = 4096

// snapKey is a flow key in a compact form that orders as the store's
// snapshot does: protocol, family, source and destination address (IPv4
// in the last 4 bytes), the ports (ICMP: type<<8|code and id), zone, then
// the whole original tuple. Keys whose tuple the compact form does not
// give back exactly keep it in full (full indexes snapshotKeys.full).
type snapKey struct {
	src, dst           [16]byte
	sport, dport, zone uint16
	proto              uint8
	family             flow.Family
	full               int32 // -1: the compact form is exact
}

// snapshotKeys are the keys of one snapshot.
type snapshotKeys struct {
	keys []snapKey
	full []flow.Tuple
}

func packAddr(a netip.Addr) [16]byte {
	if a.Is4() {
		var b [16]byte
		v4 := a.As4()
		copy(b[12:], v4[:])
		return b
	}
	return a.As16()
}

// add appends the key of fl.
func (s *snapshotKeys) add(fl *flow.Flow) {
	k := snapKey{src: packAddr(fl.Orig.Src), dst: packAddr(fl.Orig.Dst), zone: fl.Zone, proto: fl.Proto,
		family: fl.Family, full: -1}
	if flow.IsICMP(fl.Proto) {
		k.sport, k.dport = uint16(fl.Orig.Type)<<8|uint16(fl.Orig.Code), fl.Orig.ID
	} else {
		k.sport, k.dport = fl.Orig.SrcPort, fl.Orig.DstPort
	}
	if k.compactTuple() != fl.Orig {
		k.full = int32(len(s.full))
		s.full = append(s.full, fl.Orig)
	}
	s.keys = append(s.keys, k)
}

// compactTuple is the original tuple the compact fields give.
func (k *snapKey) compactTuple() flow.Tuple {
	var t flow.Tuple
	if k.family == flow.FamilyIPv4 {
		t.Src = netip.AddrFrom4([4]byte(k.src[12:]))
		t.Dst = netip.AddrFrom4([4]byte(k.dst[12:]))
	} else {
		t.Src, t.Dst = netip.AddrFrom16(k.src), netip.AddrFrom16(k.dst)
	}
	if flow.IsICMP(k.proto) {
		t.Type, t.Code, t.ID = uint8(k.sport>>8), uint8(k.sport), k.dport
	} else {
		t.SrcPort, t.DstPort = k.sport, k.dport
	}
	return t
}

// tuple returns k's original tuple.
func (s *snapshotKeys) tuple(k *snapKey) flow.Tuple {
	if k.full >= 0 {
		return s.full[k.full]
	}
	return k.compactTuple()
}

// key returns k as the store looks flows up.
func (s *snapshotKeys) key(k *snapKey) flow.Key {
	return flow.Key{Proto: k.proto, Zone: k.zone, Orig: s.tuple(k)}
}

// sort orders the keys by flow key.
// dedup drops repeated keys from the sorted keys: a live walk in ranges
// can meet a flow twice when it was destroyed and created again meanwhile.
func (s *snapshotKeys) dedup() {
	if len(s.keys) < 2 {
		return
	}
	out := s.keys[:1]
	prev := s.key(&s.keys[0])
	for i := 1; i < len(s.keys); i++ {
		k := s.key(&s.keys[i])
		if k == prev {
			continue
		}
		prev = k
		out = append(out, s.keys[i])
	}
	s.keys = out
}

func (s *snapshotKeys) sort() {
	slices.SortFunc(s.keys, func(a, b snapKey) int {
		if c := cmp.Compare(a.proto, b.proto); c != 0 {
			return c
		}
		if c := cmp.Compare(a.family, b.family); c != 0 {
			return c
		}
		if c := bytes.Compare(a.src[:], b.src[:]); c != 0 {
			return c
		}
		if c := bytes.Compare(a.dst[:], b.dst[:]); c != 0 {
			return c
		}
		if c := cmp.Compare(a.sport, b.sport); c != 0 {
			return c
		}
		if c := cmp.Compare(a.dport, b.dport); c != 0 {
			return c
		}
		if c := cmp.Compare(a.zone, b.zone); c != 0 {
			return c
		}
		if a.full < 0 && b.full < 0 {
			return 0
		}
		ta, tb := s.tuple(&a), s.tuple(&b)
		return ta.Compare(&tb)
	})
}

// writeSnapshot writes the live flows of eng that pass m to w in format f,
// in flow-key order, as `conntop snapshot` does, holding only their keys
// and one page of rows. It returns how many flows ended and left the store
// before their page was read (not written), and stops early when ctx ends.
func writeSnapshot(ctx context.Context, eng *engine.Engine, w io.Writer, f export.Format, m store.Matcher) (gone int, err error) {
	head := export.Snapshot{Time: eng.Now(), Source: eng.Status().Source}
	var sk snapshotKeys
	eng.View(func(st *store.Store) {
		sum := st.Summary()
		head.Table = sum.Table
		head.Degraded = export.DegradedFrom(sum.Degraded)
		head.Table.InvalidReasons = maps.Clone(head.Table.InvalidReasons) // the store's map
		sk.keys = make([]snapKey, 0, st.Len())
	})
	// In ranges, so the event pump is not held up for the whole table.
	eng.Walk(m, func(r *store.Row) bool {
		sk.add(&r.Flow)
		return true
	})
	sk.sort()
	sk.dedup()
	sw := export.NewSnapshotWriter(w, f, &head)
	page := make([]flow.Flow, 0, min(snapshotPage, len(sk.keys)))
	for off := 0; off < len(sk.keys); off += snapshotPage {
		if err := ctx.Err(); err != nil {
			return gone, err
		}
		keys := sk.keys[off:min(off+snapshotPage, len(sk.keys))]
		page = page[:0]
		eng.View(func(st *store.Store) {
			for i := range keys {
				r, ok := st.Row(sk.key(&keys[i]))
				if !ok {
					gone++
					continue
				}
				page = append(page, r.Flow)
			}
		})
		for i := range page {
			if err := sw.Write(&page[i]); err != nil {
				return gone, err
			}
		}
	}
	return gone, sw.Close()
}
