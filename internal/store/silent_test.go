package store

import (
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// TestSilentFlows follows the flows of an initial listing through events
// and polls (flow.EventPolled, flow.EventPollDone), in a full and a
// counts-only store fed alike: a flow that reports an event stops being
// silent; a silent flow a poll lists changed is updated, one it does not
// list is destroyed; polls never bring back or create flows, and flows
// that are not silent are left to their events.
func TestSilentFlows(t *testing.T) {
	a := tcpFlow(1, 443, flow.TCPEstablished) // reports an event: not silent
	b := tcpFlow(2, 443, flow.TCPEstablished) // listed by every poll, unchanged
	c := tcpFlow(3, 443, flow.TCPEstablished) // listed changed by the first poll, missing from the second
	d := tcpFlow(4, 443, flow.TCPEstablished) // missing from the first poll
	e := udp6Flow(5, 53, false)               // replied silently, then destroyed by an event
	newcomer := tcpFlow(6, 80, flow.TCPSynSent)

	cClosing := c
	cClosing.TCPState = flow.TCPTimeWait
	eReplied := e
	eReplied.Status |= flow.StatusSeenReply
	aCounted := withCounters(a, 10, 1000, 5, 500)

	type step struct {
		name       string
		evs        []flow.Event
		wantSilent int
		present    []flow.Flow // live, as given
		absent     []flow.Flow
	}
	steps := []step{
		{
			name: "initial listing",
			evs: []flow.Event{ev(flow.EventNew, at(0), a), ev(flow.EventNew, at(0), b), ev(flow.EventNew, at(0), c),
				ev(flow.EventNew, at(0), d), ev(flow.EventNew, at(0), e), synced(at(0))},
			wantSilent: 5, present: []flow.Flow{a, b, c, d, e},
		},
		{
			name:       "events",
			evs:        []flow.Event{ev(flow.EventUpdate, at(time.Second), a), ev(flow.EventNew, at(time.Second), newcomer)},
			wantSilent: 4, present: []flow.Flow{a, b, c, d, e, newcomer},
		},
		{
			name: "first poll",
			evs: []flow.Event{
				ev(flow.EventPolled, at(2*time.Second), aCounted), ev(flow.EventPolled, at(2*time.Second), b),
				ev(flow.EventPolled, at(2*time.Second), cClosing), ev(flow.EventPolled, at(2*time.Second), eReplied),
				ev(flow.EventPolled, at(2*time.Second), newcomer),
				// A flow the poll lists but the store never heard of (it
				// raced its own end): not created.
				ev(flow.EventPolled, at(2*time.Second), tcpFlow(7, 22, flow.TCPEstablished)),
				{Type: flow.EventPollDone, Time: at(2 * time.Second)},
			},
			wantSilent: 3, present: []flow.Flow{aCounted, b, cClosing, eReplied, newcomer},
			absent: []flow.Flow{d, tcpFlow(7, 22, flow.TCPEstablished)},
		},
		{
			name: "second poll",
			evs: []flow.Event{
				ev(flow.EventPolled, at(3*time.Second), b), ev(flow.EventPolled, at(3*time.Second), eReplied),
				{Type: flow.EventPollDone, Time: at(3 * time.Second)},
			},
			// a and newcomer are not silent: missing from a poll, they
			// stay (their own events will say when they end).
			wantSilent: 2, present: []flow.Flow{aCounted, b, eReplied, newcomer}, absent: []flow.Flow{c},
		},
		{
			name:       "destroy event",
			evs:        []flow.Event{ev(flow.EventDestroy, at(4*time.Second), eReplied)},
			wantSilent: 1, present: []flow.Flow{aCounted, b, newcomer}, absent: []flow.Flow{e},
		},
		{
			name: "third poll after a resync",
			evs: []flow.Event{
				{Type: flow.EventResync, Time: at(5 * time.Second), Lost: 1},
				ev(flow.EventNew, at(5*time.Second), aCounted), ev(flow.EventNew, at(5*time.Second), b),
				ev(flow.EventNew, at(5*time.Second), newcomer), synced(at(5 * time.Second)),
				ev(flow.EventPolled, at(6*time.Second), b),
				{Type: flow.EventPollDone, Time: at(6 * time.Second)},
			},
			// The relisting does not make b speak: still silent.
			wantSilent: 1, present: []flow.Flow{aCounted, b, newcomer},
		},
		{
			name:       "last one speaks",
			evs:        []flow.Event{ev(flow.EventUpdate, at(7*time.Second), b)},
			wantSilent: 0, present: []flow.Flow{aCounted, b, newcomer},
		},
	}

	full, counts := New(Options{Linger: -1}), New(Options{Linger: -1, CountsOnly: true})
	defer full.Close()
	defer counts.Close()
	for _, s := range []*Store{full, counts} {
		s.Tick(t0)
	}
	for _, st := range steps {
		for _, s := range []*Store{full, counts} {
			s.Apply(st.evs)
			if got := s.SilentLeft(); got != st.wantSilent {
				t.Errorf("%s (counts only %v): SilentLeft %d, want %d", st.name, s.cnt != nil, got, st.wantSilent)
			}
		}
		if full.Len() != len(st.present) || counts.Len() != len(st.present) {
			t.Errorf("%s: %d and %d (counts only) flows live, want %d", st.name, full.Len(), counts.Len(), len(st.present))
		}
		for _, f := range st.present {
			r, ok := full.Row(f.Key())
			if !ok {
				t.Errorf("%s: %v missing", st.name, f.Orig)
				continue
			}
			got := r.Flow
			if got.TCPState != f.TCPState || got.Status != f.Status || got.HasCounters != f.HasCounters || got.Counters != f.Counters {
				t.Errorf("%s: %v is %v %v counters %v %+v, want %v %v %v %+v", st.name, f.Orig,
					got.TCPState, got.Status, got.HasCounters, got.Counters, f.TCPState, f.Status, f.HasCounters, f.Counters)
			}
		}
		for _, f := range st.absent {
			if r, ok := full.Row(f.Key()); ok && !r.Destroyed {
				t.Errorf("%s: %v still live", st.name, f.Orig)
			}
		}
		fs, cs := full.Summary(), counts.Summary()
		if fs.ByState != cs.ByState || fs.ByTCP != cs.ByTCP || fs.IPv4 != cs.IPv4 || fs.IPv6 != cs.IPv6 || fs.Assured != cs.Assured {
			t.Errorf("%s: counts-only summary differs:\nfull   %v %v %d/%d\ncounts %v %v %d/%d", st.name,
				fs.ByState, fs.ByTCP, fs.IPv4, fs.IPv6, cs.ByState, cs.ByTCP, cs.IPv4, cs.IPv6)
		}
	}

	// What the log says: c's change found by the poll is an update, and
	// the flows polls found gone are destroys.
	var updates, destroys int
	for _, r := range full.EventsTail(100, nil) {
		switch r.Type {
		case flow.EventUpdate:
			updates++
		case flow.EventDestroy:
			destroys++
		}
	}
	if updates < 3 || destroys != 3 {
		t.Errorf("event log holds %d updates and %d destroys, want ≥ 3 (a, c, e) and 3 (d, c, e)", updates, destroys)
	}
}
