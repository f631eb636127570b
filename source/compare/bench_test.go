package compare

import (
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// BenchmarkMergerApply measures the merge of one event (each flow's
// lifecycle as both sides report it, over a table of 65,536 live flows).
func BenchmarkMergerApply(b *testing.B) {
	const n = 1 << 16
	m := NewMerger(time.Second)
	var buf []flow.Event
	flows := make([]flow.Flow, n)
	for i := range flows {
		flows[i] = tcp(i, flow.TCPEstablished, uint32(i))
		flows[i].Orig.Src = flows[i].Orig.Src.Next() // vary more than the port
		if i&1 == 0 {
			flows[i].Orig.Dst = flows[i].Orig.Dst.Next()
		}
		flows[i].Reply = flows[i].Orig.Reverse(flows[i].Proto)
		for _, s := range []Side{Kernel, Wire} {
			ev := flow.Event{Type: flow.EventNew, Flow: flows[i]}
			buf = m.Apply(buf[:0], s, &ev, t0)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f := &flows[i%n]
		ev := flow.Event{Type: flow.EventUpdate, Flow: *f}
		buf = m.Apply(buf[:0], Side(i&1), &ev, t0)
		i++
	}
}
