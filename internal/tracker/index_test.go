package tracker

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/conntop/conntop/internal/flow"
)

// TestIndexAgainstMap runs random inserts and removals (growth, long
// probe runs, wrap-around, backward-shift deletion) and checks every lookup
// against a Go map.
func TestIndexAgainstMap(t *testing.T) {
	tests := []struct {
		name  string
		addrs int // distinct addresses: few means many similar tuples
		ops   int
	}{
		{"few addresses", 3, 20000},
		{"many addresses", 5000, 20000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(tt.addrs)))
			addr := func() netip.Addr {
				n := rng.IntN(tt.addrs)
				if n%2 == 0 {
					return netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
				}
				return netip.AddrFrom16([16]byte{0xfd, 14: byte(n >> 8), 15: byte(n)})
			}
			ix := newIndex()
			ref := map[flow.Key]*conn{}
			var live []*conn
			check := func(k flow.Key) {
				t.Helper()
				want := ref[k]
				got, reply := ix.find(k.Proto, k.Zone, &k.Orig)
				if got != want {
					t.Fatalf("find(%+v) = %p, want %p", k, got, want)
				}
				if got != nil && reply != (k.Orig == got.reply) {
					t.Fatalf("find(%+v) reply = %v", k, reply)
				}
			}
			for i := 0; i < tt.ops; i++ {
				if len(live) > 0 && rng.IntN(3) == 0 {
					j := rng.IntN(len(live))
					c := live[j]
					live[j] = live[len(live)-1]
					live = live[:len(live)-1]
					ix.remove(c)
					delete(ref, c.key)
					delete(ref, flow.Key{Proto: c.key.Proto, Zone: c.key.Zone, Orig: c.reply})
					check(c.key)
					continue
				}
				proto := []uint8{flow.ProtoTCP, flow.ProtoUDP, flow.ProtoICMP}[rng.IntN(3)]
				var tu flow.Tuple
				tu.Src, tu.Dst = addr(), addr()
				if tu.Src.Is4() != tu.Dst.Is4() {
					tu.Dst = tu.Src // same family; sometimes its own inverse
				}
				if proto == flow.ProtoICMP {
					tu.Type, tu.ID = 8, uint16(rng.IntN(4))
				} else {
					tu.SrcPort, tu.DstPort = uint16(rng.IntN(8)), uint16(rng.IntN(8))
				}
				k := flow.Key{Proto: proto, Zone: uint16(rng.IntN(2)), Orig: tu}
				c := &conn{key: k, reply: tu.Reverse(proto)}
				rk := flow.Key{Proto: proto, Zone: k.Zone, Orig: c.reply}
				if ref[k] != nil || ref[rk] != nil {
					check(k)
					check(rk)
					continue // the tracker never inserts a tuple already present
				}
				ix.insert(c)
				ref[k], ref[rk] = c, c
				live = append(live, c)
				check(k)
				check(rk)
			}
			for k := range ref {
				check(k)
			}
			want := 0
			for _, c := range live {
				want += 2
				if c.reply == c.key.Orig {
					want--
				}
			}
			if ix.used != want {
				t.Fatalf("used = %d, want %d", ix.used, want)
			}
		})
	}
}

// BenchmarkIndexFind looks up tuples of a table of 100,000 entries.
func BenchmarkIndexFind(b *testing.B) {
	ix := newIndex()
	keys := make([]flow.Key, 100000)
	for i := range keys {
		tu := flow.Tuple{
			Src:     netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}),
			Dst:     netip.AddrFrom4([4]byte{10, 1, 0, 1}),
			SrcPort: uint16(i), DstPort: 443,
		}
		keys[i] = flow.Key{Proto: flow.ProtoTCP, Orig: tu}
		ix.insert(&conn{key: keys[i], reply: tu.Reverse(flow.ProtoTCP)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := &keys[i%len(keys)]
		if c, _ := ix.find(k.Proto, k.Zone, &k.Orig); c == nil {
			b.Fatal("not found")
		}
	}
}
