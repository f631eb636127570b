package pcap

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/conntop/conntop/internal/csum"
	"github.com/conntop/conntop/internal/tracker"
	"github.com/conntop/conntop/internal/wiretrack"
)

// udpFrame builds an Ethernet frame with an IPv4 UDP datagram (no UDP
// checksum) of the given TTL.
func udpFrame(src, dst string, sport, dport uint16, ttl uint8) []byte {
	b := make([]byte, 14+20+8+4)
	copy(b[0:6], []byte{0x02, 0, 0, 0x6b, 0x6f, 0x01})
	copy(b[6:12], []byte{0x02, 0, 0, 0x6b, 0x6f, 0x02})
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8], ip[9] = ttl, 17
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], csum.Checksum(ip[:20]))
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], dport)
	binary.BigEndian.PutUint16(ip[24:], 12)
	copy(ip[28:], "data")
	return b
}

// TestReplayRouterModel: a replay keeps the table of a conntrack router in
// the path (mDNS it has not joined and a TTL 1 probe leave no entry; the
// all-hosts group and the limited broadcast are delivered to it); Host
// tracks every packet, as the capturing host would.
func TestReplayRouterModel(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	frames := [][]byte{
		udpFrame("10.1.0.1", "224.0.0.251", 5353, 5353, 255),
		udpFrame("10.1.0.1", "10.2.0.2", 40000, 53, 64),
		udpFrame("10.1.0.1", "10.2.0.2", 33434, 33434, 1),
		udpFrame("10.1.0.1", "239.255.255.250", 50000, 1900, 4),
		udpFrame("10.1.0.1", "224.0.0.1", 9, 9, 1),
		udpFrame("0.0.0.0", "255.255.255.255", 68, 67, 64),
	}
	var recs []record
	for i, f := range frames {
		recs = append(recs, record{ci: gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Millisecond)}, data: f})
	}
	data := writePcap(t, recs, layers.LinkTypeEthernet, 0, func(b []byte) []byte { return b })
	for _, tc := range []struct {
		name  string
		cfg   Config
		ports []uint16 // destination ports of the entries, in order
	}{
		{"router", Config{}, []uint16{53, 9, 67}},
		{"host", Config{Host: true}, []uint16{5353, 53, 33434, 1900, 9, 67}},
		// The router model is set by Host even when tracker settings are
		// given.
		{"router-explicit-tracker", Config{Pipeline: wiretrack.Config{Tracker: hostTracker()}}, []uint16{53, 9, 67}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Replay(context.Background(), bytes.NewReader(data), "test", tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint16
			for _, f := range res.Flows {
				got = append(got, f.Orig.DstPort)
			}
			if !slices.Equal(got, tc.ports) {
				t.Fatalf("entries to ports %v, want %v", got, tc.ports)
			}
			if res.Stats.Invalid != 0 {
				t.Fatalf("invalid %d: routing drops are not invalid", res.Stats.Invalid)
			}
		})
	}
}

// hostTracker is the tracker's default (host model) configuration.
func hostTracker() *tracker.Config {
	c := tracker.DefaultConfig()
	return &c
}
