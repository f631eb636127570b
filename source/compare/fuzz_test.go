package compare

import (
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// FuzzMerger feeds arbitrary interleavings of both sides' events (eight
// flows, some NATed, any state, resyncs, ticks) to a Merger and checks its
// invariants: every merged flow event says which side holds the flow,
// pending differences are a subset of the flows, and once both sides have
// destroyed everything the merged table is empty and every flow it
// announced was destroyed downstream exactly once.
func FuzzMerger(f *testing.F) {
	f.Add([]byte{0x00, 0x10, 0x21, 0x33, 0x44, 0x55})
	f.Add([]byte{0x08, 0x18, 0x0f, 0x80, 0x90, 0xff, 0x07, 0x17, 0x27})
	f.Add([]byte{0x40, 0x41, 0x42, 0xc0, 0xc1, 0x60, 0x70, 0x50})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 512 {
			ops = ops[:512]
		}
		m := NewMerger(time.Second)
		now := t0
		live := map[flow.Key]bool{} // announced downstream, not destroyed
		var buf []flow.Event
		check := func(evs []flow.Event) {
			for i := range evs {
				ev := &evs[i]
				switch ev.Type {
				case flow.EventNew, flow.EventUpdate, flow.EventCounters:
					if ev.Flow.Compare.Seen == 0 {
						t.Fatalf("%v event without sides: %+v", ev.Type, ev.Flow.Compare)
					}
					live[ev.Flow.Key()] = true
				case flow.EventDestroy:
					k := ev.Flow.Key()
					if !live[k] {
						t.Fatalf("destroy of a flow not announced (or destroyed twice): %v", k)
					}
					delete(live, k)
				}
			}
			if m.Pending() > m.Len() {
				t.Fatalf("pending %d > flows %d", m.Pending(), m.Len())
			}
		}
		mk := func(b byte) flow.Flow {
			fl := tcp(int(b&7), flow.TCPState(b>>4)%flow.NumTCPStates, uint32(b))
			if b&8 != 0 { // NATed
				fl.Reply.Src = fl.Reply.Src.Next()
			}
			return fl
		}
		for i, b := range ops {
			now = now.Add(time.Duration(b&3) * 400 * time.Millisecond)
			side := Side(b >> 7)
			var ev flow.Event
			switch (b >> 5) & 3 {
			case 0:
				ev = flow.Event{Type: flow.EventNew, Flow: mk(ops[(i+1)%len(ops)])}
			case 1:
				ev = flow.Event{Type: flow.EventUpdate, Flow: mk(b)}
			case 2:
				ev = flow.Event{Type: flow.EventDestroy, Flow: mk(b)}
			case 3:
				switch b & 3 {
				case 0:
					ev = flow.Event{Type: flow.EventResync, Lost: 1}
				case 1:
					ev = flow.Event{Type: flow.EventSynced}
				default:
					buf = m.Tick(buf[:0], now)
					check(buf)
					continue
				}
			}
			buf = m.Apply(buf[:0], side, &ev, now)
			check(buf)
		}
		// Both sides let everything go (a resync listing nothing).
		for _, s := range []Side{Kernel, Wire} {
			for _, typ := range []flow.EventType{flow.EventSynced, flow.EventResync, flow.EventSynced} {
				ev := flow.Event{Type: typ}
				buf = m.Apply(buf[:0], s, &ev, now)
				check(buf)
			}
		}
		if m.Len() != 0 || m.Pending() != 0 {
			t.Fatalf("after both sides emptied: %d flows, %d pending", m.Len(), m.Pending())
		}
		if len(live) != 0 {
			t.Fatalf("%d flows announced but never destroyed", len(live))
		}
	})
}
