package store

import (
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

func TestCountersRefreshOnlyCounters(t *testing.T) {
	s := newSynced(Options{Linger: 5 * time.Second})
	est := tcpFlow(1, 443, flow.TCPEstablished)
	s.Apply([]flow.Event{ev(flow.EventNew, at(time.Second), est)})

	// A poll read before a state change but applied after it must not undo
	// the change: only counters, timeout and INVALID figures are taken.
	fin := est
	fin.TCPState = flow.TCPFinWait
	s.Apply([]flow.Event{ev(flow.EventUpdate, at(2*time.Second), fin)})
	poll := withCounters(est, 10, 1000, 8, 800)
	poll.Timeout = 77
	poll.Invalid, poll.InvalidReason = 2, "tcp: ack above upper bound"
	s.Apply([]flow.Event{ev(flow.EventCounters, at(3*time.Second), poll)})
	d, ok := s.Detail(keyOf(est))
	if !ok {
		t.Fatal("flow gone")
	}
	if d.Flow.TCPState != flow.TCPFinWait {
		t.Errorf("tcp state %v, want FIN_WAIT (a counters poll is not a state change)", d.Flow.TCPState)
	}
	if !d.Flow.HasCounters || d.Flow.Counters.OrigPackets != 10 || d.Flow.Timeout != 77 || d.Flow.Invalid != 2 {
		t.Errorf("counters not refreshed: %+v", d.Flow)
	}

	// Counters for an unknown key, or for a destroyed one, are ignored: a
	// poll that raced the flow's end must not resurrect it.
	other := withCounters(tcpFlow(2, 443, flow.TCPEstablished), 1, 1, 1, 1)
	s.Apply([]flow.Event{ev(flow.EventCounters, at(4*time.Second), other)})
	if _, ok := s.Detail(keyOf(other)); ok {
		t.Error("a counters event created a flow")
	}
	s.Apply([]flow.Event{ev(flow.EventDestroy, at(5*time.Second), est)})
	s.Apply([]flow.Event{ev(flow.EventCounters, at(5500*time.Millisecond), poll)})
	d, ok = s.Detail(keyOf(est))
	if !ok || !d.Destroyed {
		t.Errorf("after destroy + late poll: ok %v destroyed %v (want still destroyed)", ok, d.Destroyed)
	}
	if s.Len() != 0 {
		t.Errorf("Len %d after the only flow was destroyed", s.Len())
	}
}

func TestDestroyKeepsLastKnownState(t *testing.T) {
	s := newSynced(Options{Linger: 5 * time.Second})
	f := tcpFlow(1, 21, flow.TCPTimeWait)
	f.Helper = "ftp"
	s.Apply([]flow.Event{ev(flow.EventNew, at(time.Second), f)})
	// The kernel's DESTROY event carries tuples, status and counters, but no
	// TCP state and no helper.
	bare := withCounters(f, 5, 300, 4, 200)
	bare.TCPState, bare.Helper, bare.Timeout = flow.TCPNone, "", 0
	s.Apply([]flow.Event{ev(flow.EventDestroy, at(2*time.Second), bare)})
	d, ok := s.Detail(keyOf(f))
	if !ok || !d.Destroyed {
		t.Fatalf("destroyed flow not lingering: %v %+v", ok, d)
	}
	if d.Flow.TCPState != flow.TCPTimeWait || d.Flow.Helper != "ftp" || d.Flow.Counters.OrigPackets != 5 {
		t.Errorf("destroyed flow lost what was known: %+v", d.Flow)
	}
	evs := s.Events(0, 10, nil)
	last := evs[len(evs)-1]
	if last.Type != flow.EventDestroy || last.Flow.TCPState != flow.TCPTimeWait {
		t.Errorf("destroy record %+v, want the last TCP state", last)
	}
	if last.From != PhaseTCP+Phase(flow.TCPTimeWait) || last.To != PhaseDestroyed {
		t.Errorf("transition %v -> %v", last.From, last.To)
	}
}
