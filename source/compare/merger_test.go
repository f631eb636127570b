package compare

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/conntop/conntop/internal/flow"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// tcp returns TCP flow number n (source port 40000+n) in TCP state st with
// id; SEEN_REPLY is set from SYN_RECV on, as the kernel does.
func tcp(n int, st flow.TCPState, id uint32) flow.Flow {
	f := flow.Flow{
		ID: id, Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: st, Status: flow.StatusConfirmed,
		Orig:    flow.Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: uint16(40000 + n), DstPort: 80},
		Timeout: 120,
	}
	if st >= flow.TCPSynRecv {
		f.Status |= flow.StatusSeenReply
	}
	f.Reply = f.Orig.Reverse(f.Proto)
	return f
}

// udp returns UDP flow number n with id.
func udp(n int, replied bool, id uint32) flow.Flow {
	f := flow.Flow{
		ID: id, Family: flow.FamilyIPv4, Proto: flow.ProtoUDP, Status: flow.StatusConfirmed,
		Orig:    flow.Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: uint16(50000 + n), DstPort: 53},
		Timeout: 30,
	}
	if replied {
		f.Status |= flow.StatusSeenReply
	}
	f.Reply = f.Orig.Reverse(f.Proto)
	return f
}

// step is one input to the merger at t0+at: an event of a side, or a tick,
// and the merged events expected from it (see summary).
type step struct {
	at   time.Duration
	side Side
	ev   flow.Event
	tick bool
	want []string
	// unordered: compare the events after the first `unordered` as a set
	// (a re-listing walks a map).
	unordered int
}

func kev(at time.Duration, typ flow.EventType, f flow.Flow, want ...string) step {
	return step{at: at, side: Kernel, ev: flow.Event{Type: typ, Time: t0.Add(at), Flow: f}, want: want}
}

func wev(at time.Duration, typ flow.EventType, f flow.Flow, want ...string) step {
	return step{at: at, side: Wire, ev: flow.Event{Type: typ, Time: t0.Add(at), Flow: f}, want: want}
}

func tick(at time.Duration, want ...string) step { return step{at: at, tick: true, want: want} }

// summary describes a merged event: type, flow id (kernel flows have ids
// 1xx, wire flows 2xx), sides and the disagreement text.
func summary(ev *flow.Event) string {
	switch ev.Type {
	case flow.EventResync:
		return fmt.Sprintf("resync lost=%d", ev.Lost)
	case flow.EventSynced:
		return "synced"
	case flow.EventStats:
		return fmt.Sprintf("stats count=%d ringdrops=%d", ev.Stats.Count, ev.Stats.RingDrops)
	}
	s := fmt.Sprintf("%s id=%d seen=%s", ev.Type, ev.Flow.ID, ev.Flow.Compare.Seen)
	if r := ev.Flow.DisagreeReason(); r != "" {
		s += " [" + r + "]"
	}
	return s
}

func run(t *testing.T, steps []step) *Merger {
	t.Helper()
	m := NewMerger(2 * time.Second)
	for i, st := range steps {
		var got []flow.Event
		now := t0.Add(st.at)
		if st.tick {
			got = m.Tick(nil, now)
		} else {
			got = m.Apply(nil, st.side, &st.ev, now)
		}
		sums := make([]string, 0, len(got))
		for j := range got {
			sums = append(sums, summary(&got[j]))
		}
		if st.tick {
			slices.Sort(sums) // a tick walks a map
		}
		if st.unordered > 0 && len(sums) > st.unordered {
			slices.Sort(sums[st.unordered:])
		}
		if d := cmp.Diff(st.want, sums, cmp.Comparer(func(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") })); d != "" {
			t.Fatalf("step %d (+%v): merged events (-want +got):\n%s", i, st.at, d)
		}
	}
	return m
}

const ms = time.Millisecond

func TestMerger(t *testing.T) {
	est := flow.TCPEstablished
	tests := []struct {
		name  string
		steps []step
	}{{
		name: "agree",
		steps: []step{
			wev(0, flow.EventNew, tcp(1, flow.TCPSynSent, 201), "new id=201 seen=wire"),
			kev(3*ms, flow.EventNew, tcp(1, flow.TCPSynSent, 101), "update id=101 seen=kernel+wire"),
			kev(4*ms, flow.EventUpdate, tcp(1, est, 101), "update id=101 seen=kernel+wire"),
			wev(5*ms, flow.EventUpdate, tcp(1, est, 201)), // the hidden side caught up: nothing to say
			tick(10 * time.Second),
		},
	}, {
		name: "kernel only after the grace period",
		steps: []step{
			kev(0, flow.EventNew, udp(1, false, 101), "new id=101 seen=kernel"),
			tick(1999 * ms),
			tick(2000*ms, "update id=101 seen=kernel [kernel only]"),
			tick(3000 * ms),
		},
	}, {
		name: "wire only shows the wire's flow",
		steps: []step{
			wev(0, flow.EventNew, tcp(2, flow.TCPSynSent, 202), "new id=202 seen=wire"),
			wev(1*time.Second, flow.EventUpdate, tcp(2, flow.TCPSynRecv, 202), "update id=202 seen=wire"),
			tick(2500*ms, "update id=202 seen=wire [wire only]"),
			// the kernel shows up late: agreement is published at once
			kev(3*time.Second, flow.EventNew, tcp(2, flow.TCPSynRecv, 102), "update id=102 seen=kernel+wire"),
		},
	}, {
		name: "state differs",
		steps: []step{
			kev(0, flow.EventNew, tcp(3, flow.TCPSynSent, 103), "new id=103 seen=kernel"),
			wev(1*ms, flow.EventNew, tcp(3, flow.TCPSynSent, 203), "update id=103 seen=kernel+wire"),
			// the kernel saw the SYN-ACK, the wire never did
			kev(10*ms, flow.EventUpdate, tcp(3, flow.TCPSynRecv, 103), "update id=103 seen=kernel+wire"),
			tick(1 * time.Second),
			tick(2010*ms, "update id=103 seen=kernel+wire [state differs: kernel ESTABLISHED/SYN_RECV, wire NEW/SYN_SENT]"),
			// the wire moves on but still differs: the text follows it
			wev(3*time.Second, flow.EventUpdate, tcp(3, flow.TCPSynSent2, 203),
				"update id=103 seen=kernel+wire [state differs: kernel ESTABLISHED/SYN_RECV, wire ESTABLISHED/SYN_SENT2]"),
			// and agrees: cleared at once
			wev(4*time.Second, flow.EventUpdate, tcp(3, flow.TCPSynRecv, 203), "update id=103 seen=kernel+wire"),
		},
	}, {
		name: "difference resolved within the grace period is never marked",
		steps: []step{
			kev(0, flow.EventNew, udp(4, false, 104), "new id=104 seen=kernel"),
			tick(1 * time.Second),
			wev(1900*ms, flow.EventNew, udp(4, false, 204), "update id=104 seen=kernel+wire"),
			tick(2100 * ms),
			tick(5 * time.Second),
			// the kernel's reply is seen before the wire's: a short state difference
			kev(6*time.Second, flow.EventUpdate, udp(4, true, 104), "update id=104 seen=kernel+wire"),
			tick(7 * time.Second),
			wev(7500*ms, flow.EventUpdate, udp(4, true, 204)),
			tick(9 * time.Second),
		},
	}, {
		name: "destroyed when both sides let go",
		steps: []step{
			kev(0, flow.EventNew, tcp(5, est, 105), "new id=105 seen=kernel"),
			wev(0, flow.EventNew, tcp(5, est, 205), "update id=105 seen=kernel+wire"),
			// kernel first: the wire's flow is shown until it goes too
			kev(1*time.Second, flow.EventDestroy, tcp(5, flow.TCPTimeWait, 105), "update id=205 seen=wire"),
			wev(1500*ms, flow.EventDestroy, tcp(5, est, 205), "destroy id=205 seen=wire"),
			tick(5 * time.Second),
			// a destroy for a flow never seen is dropped
			kev(6*time.Second, flow.EventDestroy, tcp(6, est, 106)),
		},
	}, {
		name: "a side that stays gone is marked",
		steps: []step{
			kev(0, flow.EventNew, tcp(7, est, 107), "new id=107 seen=kernel"),
			wev(0, flow.EventNew, tcp(7, est, 207), "update id=107 seen=kernel+wire"),
			wev(1*time.Second, flow.EventDestroy, tcp(7, est, 207), "update id=107 seen=kernel"),
			tick(2 * time.Second),
			tick(3*time.Second, "update id=107 seen=kernel [kernel only]"),
			kev(4*time.Second, flow.EventDestroy, tcp(7, est, 107), "destroy id=107 seen=kernel [kernel only]"),
		},
	}, {
		name: "counters",
		steps: []step{
			kev(0, flow.EventNew, tcp(8, est, 108), "new id=108 seen=kernel"),
			wev(0, flow.EventNew, tcp(8, est, 208), "update id=108 seen=kernel+wire"),
			kev(1*time.Second, flow.EventCounters, tcp(8, est, 108), "counters id=108 seen=kernel+wire"),
			wev(1*time.Second, flow.EventCounters, tcp(8, est, 208)),
		},
	}, {
		name: "listing ends when both sides synced; stats are the kernel's with ring drops",
		steps: []step{
			kev(0, flow.EventNew, tcp(9, est, 109), "new id=109 seen=kernel"),
			{side: Wire, ev: flow.Event{Type: flow.EventStats, Stats: &flow.TableStats{Count: 1, RingDrops: 7}}},
			{side: Kernel, ev: flow.Event{Type: flow.EventSynced}},
			{side: Kernel, ev: flow.Event{Type: flow.EventStats, Stats: &flow.TableStats{Count: 1, Max: 65536}}, want: []string{"stats count=1 ringdrops=7"}},
			{side: Wire, ev: flow.Event{Type: flow.EventSynced}, want: []string{"synced"}},
		},
	}, {
		name: "kernel resync re-lists the merged table",
		steps: []step{
			{side: Kernel, ev: flow.Event{Type: flow.EventSynced}},
			{side: Wire, ev: flow.Event{Type: flow.EventSynced}, want: []string{"synced"}},
			kev(0, flow.EventNew, tcp(10, est, 110), "new id=110 seen=kernel"),
			kev(0, flow.EventNew, tcp(11, est, 111), "new id=111 seen=kernel"),
			wev(0, flow.EventNew, tcp(11, est, 211), "update id=111 seen=kernel+wire"),
			wev(0, flow.EventNew, tcp(12, est, 212), "new id=212 seen=wire"),
			{at: 1 * time.Second, side: Kernel, ev: flow.Event{Type: flow.EventResync, Lost: 3}},
			// flow 10 is listed again, flow 11 is gone from the kernel
			kev(1*time.Second, flow.EventNew, tcp(10, est, 110), "new id=110 seen=kernel"),
			{at: 1 * time.Second, side: Kernel, ev: flow.Event{Type: flow.EventSynced}, want: []string{
				"update id=211 seen=wire", "resync lost=3",
				"new id=110 seen=kernel", "new id=211 seen=wire", "new id=212 seen=wire", "synced",
			}, unordered: 2},
		},
	}}
	// A DNATed kernel flow and the two legs the capture sees of it.
	nat := tcp(20, est, 120)
	nat.Reply = flow.Tuple{Src: netip.MustParseAddr("10.0.0.3"), Dst: nat.Orig.Src, SrcPort: 8080, DstPort: nat.Orig.SrcPort}
	pre := tcp(20, est, 220)
	post := tcp(20, est, 221)
	post.Orig = nat.Reply.Reverse(flow.ProtoTCP)
	post.Reply = nat.Reply
	tests = append(tests, struct {
		name  string
		steps []step
	}{
		name: "the post-NAT leg of a kernel flow is not wire only",
		steps: []step{
			wev(0, flow.EventNew, post, "new id=221 seen=wire"),
			tick(2500*ms, "update id=221 seen=wire [wire only]"),
			kev(3*time.Second, flow.EventNew, nat, "new id=120 seen=kernel", "update id=221 seen=wire"),
			wev(3*time.Second, flow.EventNew, pre, "update id=120 seen=kernel+wire"),
			tick(10 * time.Second),
			kev(11*time.Second, flow.EventDestroy, nat, "update id=220 seen=wire"),
			{at: 13100 * ms, tick: true, want: []string{"update id=220 seen=wire [wire only]", "update id=221 seen=wire [wire only]"}},
		},
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := run(t, tt.steps)
			if m.Pending() > m.Len() {
				t.Errorf("pending %d > flows %d", m.Pending(), m.Len())
			}
		})
	}
}
