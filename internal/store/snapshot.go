package store

import (
	"cmp"
	"slices"

	"github.com/conntop/conntop/internal/flow"
)

// SnapshotLocked is Snapshot for a reader that must not hold the store
// for long: it takes lk (a read lock of the store) itself and releases it
// between chunks of records; at the end, under the lock, it reads again the
// records the change log says changed meanwhile, so the answer is exactly
// the table at that moment. (After more changes than the log holds, it
// reads the table once more without releasing the lock.)
func (s *Store) SnapshotLocked(m Matcher, lk Locker) []flow.Flow {
	lk.Lock()
	defer lk.Unlock()
	if s.tab == nil {
		return nil
	}
	for attempt := 0; ; attempt++ {
		release := attempt < 2
		start := s.changes.seq
		out := make([]flow.Flow, 0, s.live)
		idx := make([]uint32, 0, s.live)
		hw := s.tab.hw
		for c := uint32(0); c < hw; c += s.chunk {
			s.eachLive(m, c, min(c+s.chunk, hw), func(i uint32) {
				out = append(out, flow.Flow{})
				s.tab.flow(i, &out[len(out)-1])
				idx = append(idx, i)
			})
			if release && c+s.chunk < hw {
				lk.Unlock()
				lk.Lock()
			}
		}
		a, b, ok := s.changes.since(start)
		if !ok {
			continue
		}
		if len(a)+len(b) > 0 {
			ch := slices.Concat(a, b)
			slices.Sort(ch)
			ch = slices.Compact(ch)
			// Drop what was read of the changed records, read them again.
			keep := 0
			for j := range out {
				if _, hit := slices.BinarySearch(ch, idx[j]); !hit {
					out[keep], idx[keep] = out[j], idx[j]
					keep++
				}
			}
			clear(out[keep:])
			out, idx = out[:keep], idx[:keep]
			for _, i := range ch {
				s.eachLive(m, i, i+1, func(i uint32) {
					out = append(out, flow.Flow{})
					s.tab.flow(i, &out[len(out)-1])
				})
			}
		}
		slices.SortFunc(out, func(x, y flow.Flow) int { return cmpFlowKey(&x, &y) })
		return out
	}
}

// cmpFlowKey orders flows as Snapshot does (see cmpKey): proto, family,
// source, destination, ports (ICMP type<<8|code and id), zone, then the
// full tuples.
func cmpFlowKey(a, b *flow.Flow) int {
	if c := cmp.Compare(a.Proto, b.Proto); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Family, b.Family); c != 0 {
		return c
	}
	as, bs := packAddr(a.Orig.Src), packAddr(b.Orig.Src)
	if c := slices.Compare(as[:], bs[:]); c != 0 {
		return c
	}
	ad, bd := packAddr(a.Orig.Dst), packAddr(b.Orig.Dst)
	if c := slices.Compare(ad[:], bd[:]); c != 0 {
		return c
	}
	asp, adp, _ := compactTuple(a.Proto, &a.Orig)
	bsp, bdp, _ := compactTuple(b.Proto, &b.Orig)
	if c := cmp.Compare(asp, bsp); c != 0 {
		return c
	}
	if c := cmp.Compare(adp, bdp); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Zone, b.Zone); c != 0 {
		return c
	}
	return a.Orig.Compare(&b.Orig)
}
