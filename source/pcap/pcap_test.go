package pcap

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/conntop/conntop/internal/decode"
	"github.com/conntop/conntop/internal/flow"
)

const ftpReplay = oracleDir + "/zeek-ftp-ipv4.replay.pcap"

type record struct {
	ci   gopacket.CaptureInfo
	data []byte
}

func readRecords(t testing.TB, path string) ([]record, layers.LinkType) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return out, r.LinkType()
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, record{ci, data})
	}
}

// runSource runs a Source over data and returns its events and error.
func runSource(t *testing.T, data []byte) ([]flow.Event, error) {
	t.Helper()
	out := make(chan flow.Event, 1<<14)
	err := NewReader("test", bytes.NewReader(data), Config{}).Run(context.Background(), out)
	close(out)
	var evs []flow.Event
	for ev := range out {
		evs = append(evs, ev)
	}
	return evs, err
}

// applyEvents rebuilds the table a consumer holds from the events.
func applyEvents(evs []flow.Event) map[flow.Key]flow.Flow {
	m := map[flow.Key]flow.Flow{}
	for _, ev := range evs {
		switch ev.Type {
		case flow.EventNew, flow.EventUpdate, flow.EventCounters:
			m[ev.Flow.Key()] = ev.Flow
		case flow.EventDestroy:
			delete(m, ev.Flow.Key())
		}
	}
	return m
}

func TestRunEventStream(t *testing.T) {
	data, err := os.ReadFile(ftpReplay)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := runSource(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 3 || evs[0].Type != flow.EventSynced || evs[len(evs)-1].Type != flow.EventStats {
		t.Fatalf("stream must start with synced and end with stats; got %d events", len(evs))
	}
	res, err := Replay(context.Background(), bytes.NewReader(data), "ftp", Config{})
	if err != nil {
		t.Fatal(err)
	}
	table := applyEvents(evs)
	if len(table) != len(res.Flows) {
		t.Fatalf("events leave %d flows, the final table has %d", len(table), len(res.Flows))
	}
	for _, f := range res.Flows {
		g, ok := table[f.Key()]
		if !ok {
			t.Fatalf("flow %v missing from the event stream", f.Orig)
		}
		if g.Status != f.Status || g.TCPState != f.TCPState || g.Counters != f.Counters {
			t.Errorf("flow %v: events say %v/%v/%+v, table %v/%v/%+v", f.Orig, g.Status, g.TCPState, g.Counters, f.Status, f.TCPState, f.Counters)
		}
	}
	last := evs[len(evs)-1].Stats
	if last.Count != uint64(len(res.Flows)) {
		t.Errorf("final stats count %d, want %d", last.Count, len(res.Flows))
	}
	// Event times are packet times, in order.
	for i := 2; i < len(evs); i++ {
		if evs[i].Time.Before(evs[i-1].Time) && evs[i-1].Type != flow.EventSynced {
			t.Fatalf("event %d at %v before event %d at %v", i, evs[i].Time, i-1, evs[i-1].Time)
		}
	}
}

func TestBrokenCaptures(t *testing.T) {
	data, err := os.ReadFile(ftpReplay)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := readRecords(t, ftpReplay)
	// Offset of record n (0-based) in the file.
	offset := func(n int) int {
		off := 24
		for i := 0; i < n; i++ {
			off += 16 + len(recs[i].data)
		}
		return off
	}
	corrupt := append([]byte(nil), data...)
	// Record 31's captured length beyond the snap length.
	binary.LittleEndian.PutUint32(corrupt[offset(30)+8:], 1<<30)

	tests := []struct {
		name    string
		data    []byte
		packets int    // records read before the error
		errHas  string // in the error
	}{
		{"cut inside record 41's data", data[:offset(40)+16+10], 40, "packet 41"},
		{"cut inside record 12's header", data[:offset(11)+5], 11, "packet 12"},
		{"corrupt record 31", corrupt, 30, "packet 31"},
		{"header only", data[:24], 0, ""},
		{"cut inside the file header", data[:10], 0, "not a pcap"},
		{"not a capture", []byte("hello, world, this is text"), 0, "not a pcap"},
		{"empty", nil, 0, "not a pcap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Replay(context.Background(), bytes.NewReader(tt.data), "x.pcap", Config{})
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.errHas)
			}
			if res.Packets != tt.packets {
				t.Fatalf("read %d packets before the error, want %d", res.Packets, tt.packets)
			}
			if tt.packets > 0 {
				// What was read is kept: the table of a clean capture of
				// the same first packets.
				var clean bytes.Buffer
				w := pcapgo.NewWriter(&clean)
				_ = w.WriteFileHeader(65536, layers.LinkTypeEthernet)
				for _, r := range recs[:tt.packets] {
					_ = w.WritePacket(r.ci, r.data)
				}
				want, err := Replay(context.Background(), &clean, "clean", Config{})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(flowEntries(want.Flows), flowEntries(res.Flows)); diff != "" || len(res.Flows) == 0 {
					t.Fatalf("table before the error (%d flows) differs:\n%s", len(res.Flows), diff)
				}
				// The source sent the events of those packets, then failed.
				evs, err := runSource(t, tt.data)
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("Run error %v", err)
				}
				if got := applyEvents(evs); len(got) != len(want.Flows) {
					t.Fatalf("events before the error leave %d flows, want %d", len(got), len(want.Flows))
				}
			}
		})
	}
}

// writePcap writes records as a classic pcap of link type lt, applying wrap
// to each frame and cutting it to snap bytes (0 = no cut).
func writePcap(t *testing.T, recs []record, lt layers.LinkType, snap int, wrap func([]byte) []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(262144, lt); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		d := wrap(r.data)
		ci := r.ci
		ci.Length = len(d)
		if snap > 0 && len(d) > snap {
			d = d[:snap]
		}
		ci.CaptureLength = len(d)
		if err := w.WritePacket(ci, d); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestFormatsAndLinkTypes replays the same packets in other containers and
// link types (pcapng, Linux cooked SLL and SLL2, raw IP, BSD loopback) and
// cut by a snaplen: the table must stay the kernel's.
func TestFormatsAndLinkTypes(t *testing.T) {
	recs, _ := readRecords(t, oracleDir+"/zeek-http-vlan-0.replay.pcap")
	want := kernelEntries(t, oracleDir+"/zeek-http-vlan-0.kernel.json")
	strip := func(d []byte) []byte { return d[18:] } // Ethernet + one VLAN tag
	if binary.BigEndian.Uint16(recs[0].data[12:]) != 0x8100 {
		t.Fatal("expected a VLAN-tagged capture")
	}
	sll := func(d []byte) []byte {
		h := make([]byte, 16)
		binary.BigEndian.PutUint16(h[14:], 0x0800)
		return append(h, strip(d)...)
	}
	sll2 := func(d []byte) []byte {
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h, 0x0800)
		return append(h, strip(d)...)
	}
	null := func(d []byte) []byte { return append([]byte{2, 0, 0, 0}, strip(d)...) }
	ident := func(d []byte) []byte { return d }

	var ng bytes.Buffer
	nw, err := pcapgo.NewNgWriter(&ng, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := nw.WritePacket(r.ci, r.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := nw.Flush(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		data []byte
		link decode.LinkType
	}{
		{"pcapng", ng.Bytes(), decode.LinkEthernet},
		{"sll", writePcap(t, recs, layers.LinkTypeLinuxSLL, 0, sll), decode.LinkLinuxSLL},
		{"sll2", writePcap(t, recs, layers.LinkType(276), 0, sll2), decode.LinkLinuxSLL2},
		{"raw", writePcap(t, recs, layers.LinkType(101), 0, strip), decode.LinkRaw},
		{"null", writePcap(t, recs, layers.LinkTypeNull, 0, null), decode.LinkNull},
		// Headers only (Ethernet+VLAN, IP, TCP with options): each record
		// stands for the packet of its original length.
		{"snaplen 98", writePcap(t, recs, layers.LinkTypeEthernet, 98, ident), decode.LinkEthernet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Replay(context.Background(), bytes.NewReader(tt.data), tt.name, Config{})
			if err != nil {
				t.Fatal(err)
			}
			if res.LinkType != tt.link {
				t.Errorf("link type %v, want %v", res.LinkType, tt.link)
			}
			if diff := cmp.Diff(want, flowEntries(res.Flows)); diff != "" {
				t.Errorf("table differs from the kernel's (-kernel +conntop):\n%s", diff)
			}
		})
	}
}

func TestUnsupportedLinkType(t *testing.T) {
	recs, _ := readRecords(t, ftpReplay)
	data := writePcap(t, recs[:1], layers.LinkType(127), 0, func(d []byte) []byte { return d })
	_, err := Replay(context.Background(), bytes.NewReader(data), "radiotap.pcap", Config{})
	if !errors.Is(err, decode.ErrUnsupportedLinkType) || !strings.Contains(err.Error(), "IEEE802_11_RADIOTAP") {
		t.Fatalf("error %v", err)
	}
	evs, err := runSource(t, data)
	if err == nil || len(evs) != 1 || evs[0].Type != flow.EventSynced {
		t.Fatalf("Run: %v, %d events", err, len(evs))
	}
}

func TestRunCancelled(t *testing.T) {
	data, err := os.ReadFile(ftpReplay)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan flow.Event) // nobody reads: Run blocks on the first send
	done := make(chan error, 1)
	go func() { done <- NewReader("ftp", bytes.NewReader(data), Config{}).Run(ctx, out) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("cancelled Run returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestOpenFile(t *testing.T) {
	s := New(ftpReplay, Config{})
	if s.Name() != "pcap" {
		t.Fatalf("name %q", s.Name())
	}
	out := make(chan flow.Event, 1<<14)
	if err := s.Run(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	if err := New("/nonexistent/x.pcap", Config{}).Run(context.Background(), out); err == nil || !strings.Contains(err.Error(), "open capture") {
		t.Fatalf("missing file: %v", err)
	}
}
