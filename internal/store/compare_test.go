package store

import (
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// TestCompareMarkKept: the compare source's kernel-versus-wire mark
// survives the compact form, packed or (with the wire's states) in extra,
// on plain and NAT flows, and changes back without sticking.
func TestCompareMarkKept(t *testing.T) {
	plain := tcpFlow(1, 80, flow.TCPEstablished)
	nat := tcpFlow(2, 80, flow.TCPEstablished)
	nat.Reply.Src = nat.Reply.Src.Next()
	marks := []flow.Compare{
		{Seen: flow.SeenKernel | flow.SeenWire},
		{Seen: flow.SeenKernel | flow.SeenWire, Disagree: flow.DisagreeState, WireState: flow.StateNew, WireTCPState: flow.TCPSynSent},
		{Seen: flow.SeenWire, Disagree: flow.DisagreeWireOnly},
		{Seen: flow.SeenKernel, Disagree: flow.DisagreeKernelOnly},
		{},
	}
	for _, base := range []flow.Flow{plain, nat} {
		s := newSynced(Options{})
		for i, m := range marks {
			f := base
			f.Compare = m
			s.Apply([]flow.Event{ev(flow.EventUpdate, at(time.Duration(i)*time.Second), f)})
			d, ok := s.Detail(f.Key())
			if !ok {
				t.Fatalf("flow %v not found", f.Key())
			}
			if d.Flow.Compare != m {
				t.Errorf("NAT %v, mark %d: stored %+v, want %+v", base.NAT(), i, d.Flow.Compare, m)
			}
			if got := s.Snapshot(nil); len(got) != 1 || got[0].Compare != m {
				t.Errorf("NAT %v, mark %d: snapshot %+v", base.NAT(), i, got)
			}
		}
	}
}
