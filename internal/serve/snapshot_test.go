package serve

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/export"
	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// mixedFlow is flow i of a table that exercises every part of the
// snapshot order: TCP, UDP, GRE, SCTP over IPv4 and IPv6, ICMP and ICMPv6
// (type, code, id), zones, shared addresses with different ports, and
// tuples the compact key cannot give back (ports on ICMP, an ICMP id on
// UDP).
func mixedFlow(r *rand.Rand, i int) flow.Flow {
	protos := []uint8{flow.ProtoTCP, flow.ProtoUDP, flow.ProtoICMP, flow.ProtoICMPv6, flow.ProtoGRE, flow.ProtoSCTP}
	p := protos[r.IntN(len(protos))]
	fam := flow.FamilyIPv4
	if p == flow.ProtoICMPv6 || (p != flow.ProtoICMP && r.IntN(3) == 0) {
		fam = flow.FamilyIPv6
	}
	addr := func() netip.Addr {
		b := byte(r.IntN(4))
		if fam == flow.FamilyIPv4 {
			return netip.AddrFrom4([4]byte{10, b, 0, byte(r.IntN(3))})
		}
		return netip.AddrFrom16([16]byte{0xfd, b, 15: byte(r.IntN(3))})
	}
	orig := flow.Tuple{Src: addr(), Dst: addr()}
	switch {
	case flow.IsICMP(p):
		orig.Type, orig.Code, orig.ID = uint8(r.IntN(3)), uint8(r.IntN(2)), uint16(i)
		if i%97 == 0 {
			orig.SrcPort = 7 // not compact
		}
	case p == flow.ProtoGRE:
		orig.SrcPort, orig.DstPort = uint16(i), 0
	default:
		orig.SrcPort, orig.DstPort = uint16(r.IntN(4)), uint16(i)
		if i%89 == 0 {
			orig.ID = 3 // not compact
		}
	}
	fl := flow.Flow{ID: uint32(i + 1), Family: fam, Proto: p, Zone: uint16(r.IntN(2)),
		Status: flow.StatusConfirmed, Orig: orig, Reply: orig.Reverse(p), Timeout: 100}
	if p == flow.ProtoTCP {
		fl.TCPState = flow.TCPEstablished
	}
	return fl
}

func mixedEngine(t testing.TB, n int) *engine.Engine {
	t.Helper()
	eng := engine.New(nil, engine.Options{})
	r := rand.New(rand.NewPCG(1, uint64(n)))
	now := time.Now()
	evs := make([]flow.Event, 0, n+1)
	for i := range n {
		evs = append(evs, flow.Event{Type: flow.EventNew, Time: now, Flow: mixedFlow(r, i)})
	}
	evs = append(evs, flow.Event{Type: flow.EventSynced, Time: now})
	for len(evs) > 0 {
		k := min(len(evs), 8192)
		eng.Apply(evs[:k])
		evs = evs[k:]
	}
	return eng
}

// TestWriteSnapshotAsStore: the paged snapshot writes exactly what
// export.WriteSnapshot writes of Store.Snapshot (same flows, same order),
// in every format, with and without a filter, over more than one page.
func TestWriteSnapshotAsStore(t *testing.T) {
	const n = 3*snapshotPage + 123
	eng := mixedEngine(t, n)
	var sk snapshotKeys
	eng.View(func(st *store.Store) {
		st.Walk(nil, func(r *store.Row) bool { sk.add(&r.Flow); return true })
	})
	if len(sk.full) == 0 || len(sk.full) > n/40 {
		t.Fatalf("%d of %d keys kept in full; want the few non-compact ones", len(sk.full), n)
	}
	timeField := regexp.MustCompile(`"time":"[^"]*"`)
	for _, expr := range []string{"", "udp or icmp or src net 10.1.0.0/16"} {
		flt, err := filter.Parse(expr)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []export.Format{export.FormatJSON, export.FormatNDJSON, export.FormatCSV, export.FormatText} {
			var want, got bytes.Buffer
			snap := export.Snapshot{Time: eng.Now(), Source: eng.Status().Source}
			eng.View(func(st *store.Store) {
				snap.Table = st.Summary().Table
				snap.Flows = st.Snapshot(flt)
			})
			if expr == "" && len(snap.Flows) != n {
				t.Fatalf("the store holds %d flows; want %d", len(snap.Flows), n)
			}
			if err := export.WriteSnapshot(&want, f, &snap); err != nil {
				t.Fatal(err)
			}
			gone, err := writeSnapshot(context.Background(), eng, &got, f, flt)
			if err != nil || gone != 0 {
				t.Fatalf("writeSnapshot: %d gone, %v", gone, err)
			}
			w, g := timeField.ReplaceAll(want.Bytes(), nil), timeField.ReplaceAll(got.Bytes(), nil)
			if !bytes.Equal(w, g) {
				t.Errorf("filter %q, %v: the paged snapshot differs from the store's (%d bytes, want %d)", expr, f, len(g), len(w))
			}
		}
	}
}

// TestWriteSnapshotMemory: a snapshot of 100,000 flows allocates its keys
// and a page, not a copy of the table (Store.Snapshot: ~230 bytes a flow).
func TestWriteSnapshotMemory(t *testing.T) {
	const n = 100000
	eng := newTestEngine(t, n)
	var copyAlloc, pagedAlloc uint64
	measure := func(fn func()) uint64 {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		fn()
		runtime.ReadMemStats(&m1)
		return m1.TotalAlloc - m0.TotalAlloc
	}
	copyAlloc = measure(func() {
		eng.View(func(st *store.Store) { _ = st.Snapshot(nil) })
	})
	pagedAlloc = measure(func() {
		if _, err := writeSnapshot(context.Background(), eng, io.Discard, export.FormatJSON, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%d flows: the paged snapshot allocates %.1f MB (%.0f bytes a flow); a table copy %.1f MB",
		n, float64(pagedAlloc)/(1<<20), float64(pagedAlloc)/n, float64(copyAlloc)/(1<<20))
	if pagedAlloc > copyAlloc/3 {
		t.Errorf("the paged snapshot allocates %d bytes; want under a third of the table copy's %d", pagedAlloc, copyAlloc)
	}
}

// TestSnapshotKeysDedup: a key met twice by a walk in ranges is written once.
func TestSnapshotKeysDedup(t *testing.T) {
	mk := func(port uint16) flow.Flow {
		f := flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoUDP,
			Orig: flow.Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: port, DstPort: 53}}
		f.Reply = f.Orig.Reverse(f.Proto)
		return f
	}
	var sk snapshotKeys
	for _, p := range []uint16{3, 1, 3, 2, 1} {
		f := mk(p)
		sk.add(&f)
	}
	sk.sort()
	sk.dedup()
	var got []uint16
	for i := range sk.keys {
		got = append(got, sk.key(&sk.keys[i]).Orig.SrcPort)
	}
	if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Errorf("keys after dedup: %v, want [1 2 3]", got)
	}
}
