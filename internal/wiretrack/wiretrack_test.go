package wiretrack

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/decode"
	"github.com/conntop/conntop/internal/flow"
)

// udp4 builds a raw IPv4/UDP datagram (UDP checksum 0: none).
func udp4(src, dst [4]byte, sport, dport uint16) []byte {
	b := make([]byte, 28+4)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, 17
	copy(b[12:], src[:])
	copy(b[16:], dst[:])
	binary.BigEndian.PutUint16(b[10:], decode.Checksum(b[:20], 0))
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	binary.BigEndian.PutUint16(b[24:], 12)
	return b
}

func types(evs []flow.Event) map[flow.EventType]int {
	m := map[flow.EventType]int{}
	for _, e := range evs {
		m[e.Type]++
	}
	return m
}

func TestPipelineEvents(t *testing.T) {
	a, b := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	req, rep := udp4(a, b, 1000, 53), udp4(b, a, 53, 1000)
	t0 := time.Unix(1e9, 0)
	pl := New(Config{StatsEvery: time.Second})

	steps := []struct {
		name  string
		do    func()
		want  map[flow.EventType]int
		flows int
	}{
		{"request", func() { pl.Frame(t0, decode.LinkRaw, req, len(req), false) },
			map[flow.EventType]int{flow.EventNew: 1}, 1},
		{"reply", func() { pl.Frame(t0.Add(500*time.Millisecond), decode.LinkRaw, rep, len(rep), false) },
			map[flow.EventType]int{flow.EventUpdate: 1}, 1},
		{"first tick: counters and stats", func() { pl.Advance(t0.Add(1100 * time.Millisecond)) },
			map[flow.EventType]int{flow.EventCounters: 1, flow.EventStats: 1}, 1},
		{"quiet tick: stats only", func() { pl.Advance(t0.Add(2200 * time.Millisecond)) },
			map[flow.EventType]int{flow.EventStats: 1}, 1},
		{"not a datagram", func() { pl.Frame(t0.Add(2300*time.Millisecond), decode.LinkRaw, []byte{0x10}, 1, false) },
			map[flow.EventType]int{}, 1},
		{"expiry after 30 s", func() { pl.Finish(t0.Add(40 * time.Second)) },
			map[flow.EventType]int{flow.EventDestroy: 1, flow.EventStats: 1}, 0},
	}
	for _, s := range steps {
		s.do()
		got := types(pl.Events())
		if len(got) != len(s.want) {
			t.Fatalf("%s: events %v, want %v", s.name, got, s.want)
		}
		for k, v := range s.want {
			if got[k] != v {
				t.Fatalf("%s: events %v, want %v", s.name, got, s.want)
			}
		}
		pl.Reset()
		if pl.Len() != s.flows {
			t.Fatalf("%s: %d flows, want %d", s.name, pl.Len(), s.flows)
		}
	}
	if pl.Tracked() != 2 {
		t.Errorf("tracked %d datagrams, want 2", pl.Tracked())
	}
	pl.SetRingDrops(7)
	if st := pl.Stats(); st.RingDrops != 7 || st.Count != 0 {
		t.Errorf("stats %+v", st)
	}
}

// frag6 builds a raw IPv6 fragment of protocol 253 carrying n payload
// bytes at offset off, more fragments following.
func frag6(off, n int) []byte {
	b := make([]byte, 48+n)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(8+n))
	b[6], b[7] = 44, 64
	b[8], b[23] = 0xfd, 1
	b[24], b[39] = 0xfd, 2
	b[40] = 253
	binary.BigEndian.PutUint16(b[42:], uint16(off)|1)
	binary.BigEndian.PutUint32(b[44:], 7)
	return b
}

// TestMisalignedFragment6 checks that a misaligned non-last IPv6 fragment,
// which the decoder passes on unreassembled, reaches the tracker as the
// kernel's conntrack sees it: a later fragment is invalid, a first one is
// tracked from the header after its fragment header.
func TestMisalignedFragment6(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	pl := New(Config{StatsEvery: -1})
	for _, f := range [][]byte{frag6(0, 16), frag6(16, 12), frag6(0, 30)} {
		pl.Frame(t0, decode.LinkRaw, f, len(f), false)
	}
	if ds := pl.DecodeStats(); ds.Unreassembled != 2 || ds.FragQueues != 0 {
		t.Fatalf("decode stats %+v, want 2 unreassembled, no train left", ds)
	}
	if st := pl.Stats(); st.Invalid != 1 || pl.Len() != 1 {
		t.Fatalf("invalid %d with %d flows, want 1 invalid (the later fragment) and the first one tracked", st.Invalid, pl.Len())
	}
}

// icmpUnreach4 builds an ICMP port-unreachable from src to dst quoting q.
func icmpUnreach4(src, dst [4]byte, q []byte) []byte {
	b := make([]byte, 20+8+28)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, 1
	copy(b[12:], src[:])
	copy(b[16:], dst[:])
	binary.BigEndian.PutUint16(b[10:], decode.Checksum(b[:20], 0))
	b[20], b[21] = 3, 3
	copy(b[28:], q[:28])
	binary.BigEndian.PutUint16(b[22:], decode.Checksum(b[20:], 0))
	return b
}

// A flow whose only change is its INVALID count still gets a counters
// event, so the detail view can show it.
func TestCountersCarryInvalidChanges(t *testing.T) {
	a, b, other := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, [4]byte{10, 0, 0, 9}
	req := udp4(a, b, 1000, 53)
	t0 := time.Unix(1e9, 0)
	pl := New(Config{StatsEvery: time.Second})
	pl.Frame(t0, decode.LinkRaw, req, len(req), false)
	pl.Advance(t0.Add(1100 * time.Millisecond))
	pl.Reset()
	// An error about the flow sent to the wrong host: INVALID, on the flow.
	bad := icmpUnreach4(b, other, req)
	pl.Frame(t0.Add(1200*time.Millisecond), decode.LinkRaw, bad, len(bad), false)
	pl.Advance(t0.Add(2200 * time.Millisecond))
	var got *flow.Event
	for i, e := range pl.Events() {
		if e.Type == flow.EventCounters {
			got = &pl.Events()[i]
		}
	}
	if got == nil {
		t.Fatalf("no counters event after an INVALID packet of the flow: %v", types(pl.Events()))
	}
	if got.Flow.Invalid != 1 || got.Flow.InvalidReason == "" || got.Flow.Counters.OrigPackets != 1 {
		t.Errorf("counters event %+v, want invalid 1 with a reason and unchanged packets", got.Flow)
	}
}
