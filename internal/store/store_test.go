package store

import (
	"math"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/conntop/conntop/internal/flow"
)

func TestLifecycle(t *testing.T) {
	s := newSynced(Options{})
	f := tcpFlow(1, 443, flow.TCPSynSent)
	k := f.Key()

	s.Apply([]flow.Event{ev(flow.EventNew, at(0), f)})
	f.TCPState, f.Status = flow.TCPSynRecv, f.Status|flow.StatusSeenReply
	s.Apply([]flow.Event{ev(flow.EventUpdate, at(10*time.Millisecond), f)})
	f.TCPState, f.Status = flow.TCPEstablished, f.Status|flow.StatusAssured
	f.Timeout = 432000
	s.Apply([]flow.Event{ev(flow.EventUpdate, at(20*time.Millisecond), f)})

	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
	d, ok := s.Detail(k)
	if !ok {
		t.Fatal("Detail: flow not found")
	}
	if diff := diff(f, d.Flow); diff != "" {
		t.Errorf("Detail flow (-want +got):\n%s", diff)
	}
	if !d.FirstSeen.Equal(at(0)) || !d.LastSeen.Equal(at(20*time.Millisecond)) {
		t.Errorf("FirstSeen/LastSeen = %v/%v", d.FirstSeen, d.LastSeen)
	}
	if want := at(20*time.Millisecond + 432000*time.Second); !d.Expires.Equal(want) {
		t.Errorf("Expires = %v, want %v", d.Expires, want)
	}
	wantHist := []Transition{
		{at(0), PhaseNone, PhaseTCP + Phase(flow.TCPSynSent)},
		{at(10 * time.Millisecond), PhaseTCP + Phase(flow.TCPSynSent), PhaseTCP + Phase(flow.TCPSynRecv)},
		{at(20 * time.Millisecond), PhaseTCP + Phase(flow.TCPSynRecv), PhaseTCP + Phase(flow.TCPEstablished)},
	}
	if diff := diff(wantHist, d.History); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}

	// Destroy with final counters; the flow lingers, then goes.
	s.Tick(at(1 * time.Second))
	fin := withCounters(f, 6, 398, 4, 292)
	s.Apply([]flow.Event{ev(flow.EventDestroy, at(1*time.Second), fin)})
	if s.Len() != 0 {
		t.Fatalf("Len after destroy = %d", s.Len())
	}
	d, ok = s.Detail(k)
	if !ok || !d.Destroyed || !d.DestroyedAt.Equal(at(1*time.Second)) || d.Flow.Counters.OrigBytes != 398 {
		t.Fatalf("lingering detail = %+v, %v", d.Row, ok)
	}
	if last := d.History[len(d.History)-1]; last.To != PhaseDestroyed {
		t.Errorf("last transition = %+v, want to destroyed", last)
	}
	sm := s.Summary()
	if sm.Live != 0 || sm.Lingering != 1 {
		t.Errorf("Live/Lingering = %d/%d, want 0/1", sm.Live, sm.Lingering)
	}
	if r := s.Query(Query{Limit: 10}); r.Total != 1 || len(r.Rows) != 1 || !r.Rows[0].Destroyed {
		t.Errorf("query while lingering = %+v", r)
	}
	s.Tick(at(5999 * time.Millisecond))
	if _, ok := s.Detail(k); !ok {
		t.Fatal("flow gone before the linger time")
	}
	s.Tick(at(6 * time.Second))
	if _, ok := s.Detail(k); ok {
		t.Fatal("flow still there after the linger time")
	}
	if r := s.Query(Query{Limit: 10}); r.Total != 0 || len(r.Rows) != 0 {
		t.Errorf("query after linger = %+v", r)
	}
	if sm := s.Summary(); sm.Lingering != 0 {
		t.Errorf("Lingering = %d after expiry", sm.Lingering)
	}
	// Destroy of an already removed flow is harmless.
	s.Apply([]flow.Event{ev(flow.EventDestroy, at(7*time.Second), fin)})
	if s.Len() != 0 {
		t.Fatal("Len changed")
	}
}

func TestEventSemantics(t *testing.T) {
	tests := []struct {
		name      string
		evs       func() []flow.Event
		wantLen   int
		wantLog   []flow.EventType
		wantPhase Phase // of flow 1, PhaseNone when absent
	}{
		{
			name: "new for a known key is an update",
			evs: func() []flow.Event {
				a, b := tcpFlow(1, 80, flow.TCPSynSent), tcpFlow(1, 80, flow.TCPEstablished)
				return []flow.Event{ev(flow.EventNew, at(0), a), ev(flow.EventNew, at(1), b)}
			},
			wantLen: 1, wantLog: []flow.EventType{flow.EventNew, flow.EventUpdate},
			wantPhase: PhaseTCP + Phase(flow.TCPEstablished),
		},
		{
			name: "update for an unknown key adds it",
			evs: func() []flow.Event {
				return []flow.Event{ev(flow.EventUpdate, at(0), tcpFlow(1, 80, flow.TCPEstablished))}
			},
			wantLen: 1, wantLog: []flow.EventType{flow.EventNew},
			wantPhase: PhaseTCP + Phase(flow.TCPEstablished),
		},
		{
			name: "counters are not logged",
			evs: func() []flow.Event {
				f := tcpFlow(1, 80, flow.TCPEstablished)
				return []flow.Event{ev(flow.EventNew, at(0), f), ev(flow.EventCounters, at(1), withCounters(f, 1, 2, 3, 4))}
			},
			wantLen: 1, wantLog: []flow.EventType{flow.EventNew},
			wantPhase: PhaseTCP + Phase(flow.TCPEstablished),
		},
		{
			name: "destroy of an unknown flow is logged, not kept",
			evs: func() []flow.Event {
				return []flow.Event{ev(flow.EventDestroy, at(0), udp6Flow(1, 53, false))}
			},
			wantLen: 0, wantLog: []flow.EventType{flow.EventDestroy},
		},
		{
			name: "new for a lingering key starts a new flow",
			evs: func() []flow.Event {
				f := tcpFlow(1, 80, flow.TCPSynSent)
				return []flow.Event{ev(flow.EventNew, at(0), f), ev(flow.EventDestroy, at(1), f), ev(flow.EventNew, at(2), f)}
			},
			wantLen: 1, wantLog: []flow.EventType{flow.EventNew, flow.EventDestroy, flow.EventNew},
			wantPhase: PhaseTCP + Phase(flow.TCPSynSent),
		},
		{
			name: "second destroy is ignored",
			evs: func() []flow.Event {
				f := tcpFlow(1, 80, flow.TCPSynSent)
				return []flow.Event{ev(flow.EventNew, at(0), f), ev(flow.EventDestroy, at(1), f), ev(flow.EventDestroy, at(2), f)}
			},
			wantLen: 0, wantLog: []flow.EventType{flow.EventNew, flow.EventDestroy},
			wantPhase: PhaseDestroyed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSynced(Options{})
			s.Apply(tt.evs())
			if s.Len() != tt.wantLen {
				t.Errorf("Len = %d, want %d", s.Len(), tt.wantLen)
			}
			var got []flow.EventType
			for _, r := range s.Events(0, 0, nil) {
				got = append(got, r.Type)
			}
			if diff := diff(tt.wantLog, got); diff != "" {
				t.Errorf("event log (-want +got):\n%s", diff)
			}
			k := keyOf(tcpFlow(1, 80, 0))
			ph := PhaseNone
			if d, ok := s.Detail(k); ok {
				ph = d.History[len(d.History)-1].To
				if d.Destroyed != (ph == PhaseDestroyed) {
					t.Errorf("Destroyed = %v with last phase %v", d.Destroyed, ph)
				}
			}
			if ph != tt.wantPhase {
				t.Errorf("phase = %v, want %v", ph, tt.wantPhase)
			}
		})
	}
}

func TestInitialListingNotCounted(t *testing.T) {
	s := New(Options{})
	s.Tick(t0)
	var evs []flow.Event
	for i := range 100 {
		evs = append(evs, ev(flow.EventNew, t0, tcpFlow(i, 443, flow.TCPEstablished)))
	}
	evs = append(evs, synced(t0))
	s.Apply(evs)
	if !s.Synced() {
		t.Fatal("not synced after EventSynced")
	}
	s.Tick(at(time.Second))
	sm := s.Summary()
	if sm.Live != 100 || sm.ByTCP[flow.TCPEstablished] != 100 || sm.Assured != 100 {
		t.Errorf("counts = live %d tcp-est %d assured %d", sm.Live, sm.ByTCP[flow.TCPEstablished], sm.Assured)
	}
	if sm.NewRate != 0 || sm.Transitions[PhaseNone][PhaseTCP+Phase(flow.TCPEstablished)].Total != 0 {
		t.Errorf("listing counted: new rate %v, matrix %v", sm.NewRate, sm.Transitions[PhaseNone][PhaseTCP+Phase(flow.TCPEstablished)])
	}
	if n := len(s.Events(0, 0, nil)); n != 0 {
		t.Errorf("listing logged %d events", n)
	}
	if sm.Events[flow.EventNew] != 100 || sm.Events[flow.EventSynced] != 1 {
		t.Errorf("Events by type = %v", sm.Events)
	}
	d, _ := s.Detail(keyOf(tcpFlow(5, 443, 0)))
	if len(d.History) != 1 || d.History[0].From != PhaseNone {
		t.Errorf("history of a listed flow = %+v", d.History)
	}
}

func TestResync(t *testing.T) {
	s := newSynced(Options{})
	a, b, c := tcpFlow(1, 22, flow.TCPEstablished), tcpFlow(2, 22, flow.TCPEstablished), udp6Flow(3, 53, true)
	s.Apply([]flow.Event{ev(flow.EventNew, at(0), a), ev(flow.EventNew, at(0), b), ev(flow.EventNew, at(0), c)})
	seq := s.LastSeq()

	// Events were lost: b was destroyed, a moved on, d appeared, c unchanged.
	a2 := a
	a2.TCPState = flow.TCPTimeWait
	d := udp6Flow(4, 53, false)
	s.Tick(at(time.Second))
	s.Apply([]flow.Event{
		{Type: flow.EventResync, Time: at(time.Second), Lost: 42},
		ev(flow.EventNew, at(time.Second), a2),
		ev(flow.EventNew, at(time.Second), c),
		ev(flow.EventNew, at(time.Second), d),
		synced(at(time.Second)),
	})
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3 (a, c, d)", s.Len())
	}
	if r, ok := s.Detail(b.Key()); !ok || !r.Destroyed {
		t.Fatalf("b not destroyed: %+v %v", r.Row, ok)
	}
	type rec struct {
		Type     flow.EventType
		ID       uint32
		Lost     uint64
		From, To Phase
	}
	var got []rec
	for _, r := range s.Events(seq, 0, nil) {
		got = append(got, rec{r.Type, r.Flow.ID, r.Lost, r.From, r.To})
	}
	tw, est := PhaseTCP+Phase(flow.TCPTimeWait), PhaseTCP+Phase(flow.TCPEstablished)
	want := []rec{
		{flow.EventResync, 0, 42, 0, 0},
		{flow.EventUpdate, a.ID, 0, est, tw},
		{flow.EventNew, d.ID, 0, PhaseNone, PhaseNew},
		{flow.EventDestroy, b.ID, 0, est, PhaseDestroyed},
	}
	if diff := diff(want, got); diff != "" {
		t.Errorf("events after resync (-want +got):\n%s", diff)
	}
	sm := s.Summary()
	if sm.ByTCP[flow.TCPEstablished] != 0 || sm.ByTCP[flow.TCPTimeWait] != 1 || sm.ByProto[flow.ProtoUDP] != 2 || sm.IPv6 != 2 || sm.IPv4 != 1 {
		t.Errorf("summary after resync: %+v", sm.ByTCP)
	}
	// A second resync with everything listed destroys nothing.
	s.Apply([]flow.Event{{Type: flow.EventResync, Lost: 1}, ev(flow.EventNew, at(2*time.Second), a2),
		ev(flow.EventNew, at(2*time.Second), c), ev(flow.EventNew, at(2*time.Second), d), synced(at(2 * time.Second))})
	if s.Len() != 3 {
		t.Errorf("Len after a clean resync = %d", s.Len())
	}
}

func TestHistoryBound(t *testing.T) {
	s := newSynced(Options{HistoryLen: 3})
	f := tcpFlow(1, 80, flow.TCPSynSent)
	states := []flow.TCPState{flow.TCPSynSent, flow.TCPSynRecv, flow.TCPEstablished, flow.TCPFinWait, flow.TCPTimeWait}
	for i, st := range states {
		f.TCPState = st
		s.Apply([]flow.Event{ev(flow.EventUpdate, at(time.Duration(i)*time.Second), f)})
	}
	d, _ := s.Detail(f.Key())
	want := []Transition{
		{at(2 * time.Second), PhaseTCP + Phase(flow.TCPSynRecv), PhaseTCP + Phase(flow.TCPEstablished)},
		{at(3 * time.Second), PhaseTCP + Phase(flow.TCPEstablished), PhaseTCP + Phase(flow.TCPFinWait)},
		{at(4 * time.Second), PhaseTCP + Phase(flow.TCPFinWait), PhaseTCP + Phase(flow.TCPTimeWait)},
	}
	if diff := diff(want, d.History); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

func TestFlowRates(t *testing.T) {
	s := newSynced(Options{})
	f := tcpFlow(1, 80, flow.TCPEstablished)
	s.Apply([]flow.Event{ev(flow.EventNew, at(0), f)})
	s.Apply([]flow.Event{ev(flow.EventCounters, at(time.Second), withCounters(f, 10, 1000, 5, 500))})
	row := func() Row { d, _ := s.Detail(f.Key()); return d.Row }
	if r := row(); r.OrigBPS != 0 || r.Flow.Counters.OrigBytes != 1000 {
		t.Fatalf("first sample: %+v", r)
	}
	// 2 s later: +200 packets, +20000 bytes orig; +100 packets, +4000 bytes reply.
	s.Apply([]flow.Event{ev(flow.EventCounters, at(3*time.Second), withCounters(f, 210, 21000, 105, 4500))})
	r := row()
	want := [4]float64{100, 10000, 50, 2000}
	got := [4]float64{r.OrigPPS, r.OrigBPS, r.ReplyPPS, r.ReplyBPS}
	if got != want {
		t.Fatalf("rates = %v, want %v", got, want)
	}
	// A sample 0.5 s later moves the rate half way towards the new one.
	s.Apply([]flow.Event{ev(flow.EventCounters, at(3500*time.Millisecond), withCounters(f, 210, 21000+15000, 105, 4500))})
	if r := row(); math.Abs(r.OrigBPS-(10000+(30000-10000)*0.5)) > 0.5 || r.OrigPPS != 50 {
		t.Fatalf("smoothed rates = %v %v", r.OrigBPS, r.OrigPPS)
	}
	// Counters going backwards give zero, not a huge number.
	s.Apply([]flow.Event{ev(flow.EventCounters, at(5*time.Second), withCounters(f, 1, 1, 1, 1))})
	if r := row(); r.OrigBPS != 0 || r.ReplyPPS != 0 {
		t.Fatalf("rates after reset = %+v", r)
	}
	// An update without counters keeps them.
	s.Apply([]flow.Event{ev(flow.EventUpdate, at(6*time.Second), f)})
	if r := row(); !r.Flow.HasCounters || r.Flow.Counters.OrigPackets != 1 {
		t.Fatalf("counters lost on update: %+v", r.Flow)
	}
}

func TestSummaryRatesAndMatrix(t *testing.T) {
	s := newSynced(Options{CountHistory: 4 * time.Second})
	n := 0
	// Seconds 0..5: 10 new flows per second, each updated to ESTABLISHED,
	// and from second 2 on, 4 destroys per second.
	for sec := range 6 {
		now := at(time.Duration(sec) * time.Second)
		s.Tick(now)
		var evs []flow.Event
		for range 10 {
			f := tcpFlow(n, 443, flow.TCPSynSent)
			g := tcpFlow(n, 443, flow.TCPEstablished)
			evs = append(evs, ev(flow.EventNew, now, f), ev(flow.EventUpdate, now, g))
			n++
		}
		if sec >= 2 {
			for j := range 4 {
				evs = append(evs, ev(flow.EventDestroy, now, tcpFlow((sec-2)*4+j, 443, flow.TCPEstablished)))
			}
		}
		s.Apply(evs)
	}
	s.Tick(at(6 * time.Second))
	sm := s.Summary()
	// Complete seconds 1..5 are averaged.
	if sm.NewRate != 10 || sm.UpdateRate != 10 || sm.DestroyRate != 16.0/5 {
		t.Errorf("rates new %v update %v destroy %v", sm.NewRate, sm.UpdateRate, sm.DestroyRate)
	}
	syn, est := PhaseTCP+Phase(flow.TCPSynSent), PhaseTCP+Phase(flow.TCPEstablished)
	if c := sm.Transitions[PhaseNone][syn]; c.Total != 60 || c.PerSecond != 10 {
		t.Errorf("none->SYN_SENT = %+v", c)
	}
	if c := sm.Transitions[syn][est]; c.Total != 60 {
		t.Errorf("SYN_SENT->ESTABLISHED = %+v", c)
	}
	if c := sm.Transitions[est][PhaseDestroyed]; c.Total != 16 || c.PerSecond != 16.0/5 {
		t.Errorf("ESTABLISHED->destroyed = %+v", c)
	}
	// The destroys of seconds 2..5 all still linger (5 s) at second 6.
	if sm.Live != 44 || sm.Lingering != 16 {
		t.Errorf("Live/Lingering = %d/%d, want 44/16", sm.Live, sm.Lingering)
	}
	// CountHistory: 4 samples (the bound), one per second, oldest first.
	var times []time.Time
	var cnt []int
	for _, c := range sm.CountHistory {
		times = append(times, c.Time)
		cnt = append(cnt, c.Count)
	}
	wantTimes := []time.Time{at(3 * time.Second), at(4 * time.Second), at(5 * time.Second), at(6 * time.Second)}
	if diff := diff(wantTimes, times); diff != "" {
		t.Errorf("sample times (-want +got):\n%s", diff)
	}
	// Samples are taken at the Tick that opens each second, before that
	// second's events.
	if diff := diff([]int{26, 32, 38, 44}, cnt); diff != "" {
		t.Errorf("sample counts (-want +got):\n%s", diff)
	}
	// Rates decay once the seconds pass with nothing happening.
	s.Tick(at(20 * time.Second))
	if sm := s.Summary(); sm.NewRate != 0 || sm.Transitions[PhaseNone][syn].PerSecond != 0 || sm.Transitions[PhaseNone][syn].Total != 60 {
		t.Errorf("after idle: new rate %v, %+v", sm.NewRate, sm.Transitions[PhaseNone][syn])
	}
	if sm := s.Summary(); sm.Lingering != 0 || sm.Live != 44 {
		t.Errorf("after idle: lingering %d live %d", sm.Lingering, sm.Live)
	}
}

func TestStatsEvent(t *testing.T) {
	s := newSynced(Options{})
	st := &flow.TableStats{Count: 3, Max: 262144, Drop: 7, InvalidReasons: map[string]uint64{"bad": 1}}
	s.Apply([]flow.Event{{Type: flow.EventStats, Stats: st}})
	st.InvalidReasons["bad"] = 99 // the store keeps its own copy
	sm := s.Summary()
	if sm.Table.Max != 262144 || sm.Table.Drop != 7 || sm.Table.InvalidReasons["bad"] != 1 {
		t.Errorf("Table = %+v", sm.Table)
	}
}

func TestOddTuplesRoundTrip(t *testing.T) {
	s := newSynced(Options{})
	icmp := flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoICMP, Status: flow.StatusConfirmed,
		Orig: flow.Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Type: 8, Code: 0, ID: 777}}
	icmp.Reply = icmp.Orig.Reverse(icmp.Proto)
	weird := flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoGRE,
		Orig: flow.Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Type: 3, ID: 9}}
	weird.Reply = weird.Orig.Reverse(weird.Proto)
	icmpPorts := icmp
	icmpPorts.Orig.SrcPort = 5 // not in compact form
	icmpPorts.Reply = icmpPorts.Orig.Reverse(icmpPorts.Proto)
	master := icmp.Orig
	nat := tcpFlow(9, 80, flow.TCPEstablished)
	nat.Reply.Src = netip.MustParseAddr("192.0.2.7")
	nat.Helper, nat.Master, nat.Invalid, nat.InvalidReason = "ftp", &master, 2, "bad seq"
	v6mapped := udp6Flow(5, 53, true)
	v6mapped.Orig.Src = netip.MustParseAddr("::ffff:10.1.2.3")
	v6mapped.Reply = v6mapped.Orig.Reverse(v6mapped.Proto)
	noFamily := flow.Flow{Proto: 99}
	// The fidelity fields: SCTP state, use counts, per-verdict packets.
	sctp := tcpFlow(10, 80, flow.TCPNone)
	sctp.Proto, sctp.SCTPState, sctp.Use = flow.ProtoSCTP, flow.SCTPEstablished, 1
	useTwo := tcpFlow(11, 21, flow.TCPEstablished)
	useTwo.Use = 2
	verdicts := udp6Flow(12, 53, true)
	verdicts.Use, verdicts.Verdicts = 1, flow.Verdicts{1, 4, 2, 1, 0}
	useOne := tcpFlow(13, 80, flow.TCPEstablished)
	useOne.Use = 1
	all := []flow.Flow{icmp, weird, icmpPorts, nat, v6mapped, noFamily, sctp, useTwo, verdicts, useOne}
	for i, f := range all {
		s.Apply([]flow.Event{ev(flow.EventNew, at(time.Duration(i)), f)})
	}
	if s.Len() != len(all) {
		t.Fatalf("Len = %d, want %d", s.Len(), len(all))
	}
	for _, f := range all {
		d, ok := s.Detail(f.Key())
		if !ok {
			t.Errorf("flow %+v not found", f.Orig)
			continue
		}
		if diff := diff(f, d.Flow); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	if got := s.Query(Query{Limit: 100, Sort: SortSrc}); got.Matched != len(all) {
		t.Errorf("Matched = %d", got.Matched)
	}
}

func TestIndexChurn(t *testing.T) {
	// Many inserts and removals with no lingering exercise index growth
	// and backward-shift deletion; every live key must stay findable.
	s := newSynced(Options{Linger: -1})
	live := map[int]bool{}
	rnd := uint64(1)
	next := func() int { rnd = rnd*6364136223846793005 + 1442695040888963407; return int(rnd >> 40 % 5000) }
	for step := range 40000 {
		if step%10000 == 9999 {
			checkIndex(t, s.tab)
		}
		n := next()
		f := tcpFlow(n, 80, flow.TCPEstablished)
		if live[n] {
			s.Apply([]flow.Event{ev(flow.EventDestroy, at(time.Duration(step)), f)})
			delete(live, n)
		} else {
			s.Apply([]flow.Event{ev(flow.EventNew, at(time.Duration(step)), f)})
			live[n] = true
		}
	}
	if s.Len() != len(live) {
		t.Fatalf("Len = %d, want %d", s.Len(), len(live))
	}
	for n := range 5000 {
		_, ok := s.Detail(keyOf(tcpFlow(n, 80, 0)))
		if ok != live[n] {
			t.Fatalf("flow %d found=%v, want %v", n, ok, live[n])
		}
	}
	if r := s.Query(Query{Limit: 1}); r.Total != len(live) {
		t.Fatalf("Total = %d, want %d", r.Total, len(live))
	}
	checkIndex(t, s.tab)
}

// checkIndex checks the index's invariants: it holds every used record
// once, and each one lies on its probe run (no empty slot between its
// home and its slot, wrapping around the end).
func checkIndex(t *testing.T, tab *table) {
	t.Helper()
	held := 0
	for p, v := range tab.slots {
		if v == 0 {
			continue
		}
		held++
		for q := tab.hashRec(v-1) & tab.mask; q != uint64(p); q = (q + 1) & tab.mask {
			if tab.slots[q] == 0 {
				t.Fatalf("record %d in slot %d of %d: its probe run breaks at slot %d", v-1, p, len(tab.slots), q)
			}
		}
	}
	if held != tab.used {
		t.Fatalf("the index holds %d records, the table %d", held, tab.used)
	}
}

func TestUpdateDoesNotAllocate(t *testing.T) {
	s := newSynced(Options{})
	nat := tcpFlow(1, 80, flow.TCPEstablished)
	nat.Reply.Src = netip.MustParseAddr("192.0.2.1")
	nat.Helper = "ftp"
	plain := tcpFlow(2, 80, flow.TCPEstablished)
	s.Apply([]flow.Event{ev(flow.EventNew, at(0), nat), ev(flow.EventNew, at(0), plain)})
	for _, f := range []flow.Flow{nat, plain} {
		evs := []flow.Event{ev(flow.EventUpdate, at(time.Second), f)}
		if n := testing.AllocsPerRun(50, func() { s.Apply(evs) }); n != 0 {
			t.Errorf("update of %v allocated %v times", f.Orig, n)
		}
	}
}

func TestClockAndLingerEdges(t *testing.T) {
	s := newSynced(Options{Linger: -1})
	f := tcpFlow(1, 80, flow.TCPEstablished)
	s.Apply([]flow.Event{ev(flow.EventNew, at(0), f), ev(flow.EventDestroy, at(time.Second), f)})
	if _, ok := s.Detail(f.Key()); ok {
		t.Fatal("Linger < 0: destroyed flow still held")
	}
	if sm := s.Summary(); sm.Lingering != 0 || sm.Live != 0 {
		t.Fatalf("Linger < 0: lingering %d live %d", sm.Lingering, sm.Live)
	}
	// Events without a time take the store clock; the clock never goes
	// back.
	s.Tick(at(10 * time.Second))
	s.Tick(at(5 * time.Second))
	if got := s.Summary().Now; !got.Equal(at(10 * time.Second)) {
		t.Fatalf("Now = %v after a backwards Tick", got)
	}
	s.Apply([]flow.Event{{Type: flow.EventNew, Flow: f}})
	if d, _ := s.Detail(f.Key()); !d.FirstSeen.Equal(at(10 * time.Second)) {
		t.Fatalf("FirstSeen of an untimed event = %v", d.FirstSeen)
	}
	// Lingering is measured on the store clock, even when event times are
	// far off (a replay with old timestamps).
	s2 := newSynced(Options{})
	s2.Tick(at(time.Hour))
	old := at(-24 * time.Hour)
	s2.Apply([]flow.Event{ev(flow.EventNew, old, f), ev(flow.EventDestroy, old, f)})
	s2.Tick(at(time.Hour + time.Second))
	if _, ok := s2.Detail(f.Key()); !ok {
		t.Fatal("flow with an old destroy time vanished before its linger time on the store clock")
	}
	s2.Tick(at(time.Hour + 5*time.Second))
	if _, ok := s2.Detail(f.Key()); ok {
		t.Fatal("flow still lingering after 5 s of store clock")
	}
}

func TestWalk(t *testing.T) {
	s := New(Options{Linger: time.Minute})
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var evs []flow.Event
	for i := range 5 {
		f := flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoUDP, Timeout: 30,
			Orig: flow.Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: uint16(1000 + i), DstPort: 53}}
		f.Reply = f.Orig.Reverse(f.Proto)
		evs = append(evs, flow.Event{Type: flow.EventNew, Time: t0, Flow: f})
	}
	gone := evs[0].Flow
	evs = append(evs, flow.Event{Type: flow.EventSynced, Time: t0}, flow.Event{Type: flow.EventDestroy, Time: t0, Flow: gone})
	s.Apply(evs)
	seen := map[uint16]bool{}
	s.Walk(nil, func(r *Row) bool {
		seen[r.Flow.Orig.SrcPort] = true
		if want := t0.Add(30 * time.Second); !r.Expires.Equal(want) {
			t.Errorf("Expires = %v, want %v", r.Expires, want)
		}
		return true
	})
	if len(seen) != 4 || seen[1000] {
		t.Errorf("Walk saw %v, want the 4 live flows 1001..1004", seen)
	}
	n := 0
	s.Walk(nil, func(*Row) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("Walk went on after fn returned false: %d calls", n)
	}
}

func TestRowIsDetailWithoutHistory(t *testing.T) {
	s := newSynced(Options{})
	f := tcpFlow(1, 443, flow.TCPSynSent)
	s.Apply([]flow.Event{ev(flow.EventNew, at(0), f)})
	f.TCPState = flow.TCPEstablished
	s.Apply([]flow.Event{ev(flow.EventUpdate, at(time.Second), f)})
	d, ok := s.Detail(f.Key())
	r, rok := s.Row(f.Key())
	if !ok || !rok || r != d.Row {
		t.Fatalf("Row = %+v, %v; Detail.Row = %+v, %v", r, rok, d.Row, ok)
	}
	other := tcpFlow(2, 80, flow.TCPSynSent)
	if _, ok := s.Row(other.Key()); ok {
		t.Error("Row found a flow that is not there")
	}
}

// TestTrimLowersHighWater: once the records at the top of the table are
// free, a Tick brings the high water down to the last record in use,
// gives their memory back (parts unmapped, the last part's pages
// released) and keeps every live flow; records handed out again start
// from zero.
func TestTrimLowersHighWater(t *testing.T) {
	s := newSynced(Options{Linger: -1})
	const bits = 12
	smallParts(s, bits)
	const n, keep = 1<<bits + 3000, 2500
	evs := make([]flow.Event, 0, n)
	for i := range n {
		evs = append(evs, ev(flow.EventNew, at(0), withCounters(bigFlow(i), 5, 500, 3, 300)))
	}
	s.Apply(evs)
	before := s.memoryUsed()
	evs = evs[:0]
	for i := keep; i < n; i++ {
		evs = append(evs, ev(flow.EventDestroy, at(time.Second), bigFlow(i)))
	}
	s.Apply(evs)
	s.Tick(at(2 * time.Second))
	if s.tab.hw != keep || len(s.tab.recs.parts) != 1 || len(s.tab.acct.s.parts) != 1 {
		t.Fatalf("high water %d, %d record parts, %d acct parts; want %d, 1, 1", s.tab.hw, len(s.tab.recs.parts), len(s.tab.acct.s.parts), keep)
	}
	recs := s.tab.recs.bytesBelow(s.tab.hw) + s.tab.acct.bytesBelow(s.tab.hw)
	if max := int64(1<<bits) * int64(recSize+unsafe.Sizeof(acct{})); recs > max || s.memoryUsed() >= before {
		t.Errorf("records and counters take %d bytes after trimming (want at most %d); memory estimate %d, before %d", recs, max, s.memoryUsed(), before)
	}
	checkIndex(t, s.tab)
	if s.Len() != keep || len(s.Snapshot(nil)) != keep {
		t.Fatalf("Len %d, snapshot %d, want %d", s.Len(), len(s.Snapshot(nil)), keep)
	}
	for _, i := range []int{0, keep / 2, keep - 1} {
		if r, ok := s.Row(keyOf(bigFlow(i))); !ok || r.Flow.Counters.OrigBytes != 500 {
			t.Fatalf("flow %d after trimming: %v %+v", i, ok, r.Flow)
		}
	}
	// New flows without counters take records above the high water
	// again: they read zero, whatever was there before.
	plain := func(i int) flow.Flow {
		f := bigFlow(i)
		f.HasCounters, f.Counters = false, flow.Counters{}
		return f
	}
	evs = evs[:0]
	for i := n; i < n+30000; i++ {
		evs = append(evs, ev(flow.EventNew, at(3*time.Second), plain(i)))
	}
	s.Apply(evs)
	checkIndex(t, s.tab)
	for _, i := range []int{n, n + 29999} {
		r, ok := s.Row(keyOf(plain(i)))
		if !ok || r.Flow.HasCounters || r.Flow.Counters != (flow.Counters{}) || r.OrigBPS != 0 {
			t.Fatalf("new flow %d: %v %+v", i, ok, r)
		}
	}
}
