package explain

import (
	"net/netip"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
)

// pauseMatcher matches every flow; at the last flow of the first walk
// chunk it starts a writer and gives it time to wait for the lock, and at
// the first flow of the second chunk it requires that the writer has
// applied its event: only a walk that releases the lock between chunks
// lets it.
type pauseMatcher struct {
	eng     *engine.Engine
	n       int
	applied chan struct{}
	failed  bool
}

func (m *pauseMatcher) Match(*flow.Flow) bool {
	m.n++
	switch m.n {
	case engine.WalkChunk:
		go func() {
			m.eng.Apply([]flow.Event{{Type: flow.EventNew, Time: time.Unix(100, 0), Flow: tcpFlow(1 << 20)}})
			close(m.applied)
		}()
		time.Sleep(50 * time.Millisecond)
	case engine.WalkChunk + 1:
		select {
		case <-m.applied:
		case <-time.After(5 * time.Second):
			m.failed = true // the writer is still waiting: the lock was not released
		}
	}
	return true
}

func tcpFlow(i int) flow.Flow {
	return flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: flow.TCPEstablished, Status: flow.StatusConfirmed,
		Orig: flow.Tuple{Src: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Dst: netip.AddrFrom4([4]byte{10, 0, 0, 1}),
			SrcPort: uint16(1024 + i%60000), DstPort: 443}}
}

// TestCollectEngineLetsTheWriterIn: collecting from an engine walks the
// table in chunks under separate holds of the lock (the event pump gets in
// between), and still collects every flow.
func TestCollectEngineLetsTheWriterIn(t *testing.T) {
	const n = 3*engine.WalkChunk + 100
	eng := engine.New(nil, engine.Options{})
	evs := make([]flow.Event, 0, n+1)
	for i := range n {
		evs = append(evs, flow.Event{Type: flow.EventNew, Time: time.Unix(100, 0), Flow: tcpFlow(i)})
	}
	eng.Apply(append(evs, flow.Event{Type: flow.EventSynced, Time: time.Unix(100, 0)}))
	m := &pauseMatcher{eng: eng, applied: make(chan struct{})}
	var settings Settings
	c := NewCollector(time.Unix(101, 0), time.Time{}, &settings)
	in := collectEngine(eng, m, c)
	c.Analyze(3) // stops the collector's counting goroutine
	if m.failed {
		t.Fatal("the writer waited for the whole walk")
	}
	if c.Len() != n+1 || m.n != n+1 {
		t.Errorf("collected %d flows (matched %d), want %d", c.Len(), m.n, n+1)
	}
	if in.TableRows != n {
		t.Errorf("TableRows %d, want %d (as of the first chunk)", in.TableRows, n)
	}
}
