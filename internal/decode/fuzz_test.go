package decode

import (
	"encoding/binary"
	"testing"
	"time"
)

// FuzzDecode feeds arbitrary bytes as frames of every link type; the input
// is split into several frames (a 2-byte length before each) so fragment
// reassembly gets trains to chew on. Nothing may panic and the results must
// stay consistent.
func FuzzDecode(f *testing.F) {
	whole := ipv4Packet(17, "10.1.0.1", "10.1.0.2", 4242, udp(5000, 6000, seq(100)))
	p6 := udp(1, 2, seq(64))
	seeds := [][][]byte{
		{ether(0x0800, whole)},
		{ether(0x0800, ipv4Fragment(whole, 0, 48, true)), ether(0x0800, ipv4Fragment(whole, 48, len(whole)-20, false))},
		{ether(0x86DD, ipv6Fragment(17, "fd00::1", "fd00::2", 1, p6, 0, 32, true, true)),
			ether(0x86DD, ipv6Fragment(17, "fd00::1", "fd00::2", 1, p6, 32, len(p6), false, true))},
		{ether(0x0800, whole, [2]uint16{0x88A8, 1}, [2]uint16{0x8100, 2})},
		{{0xff, 0xff}},
	}
	for li, s := range seeds {
		var in []byte
		for _, fr := range s {
			in = binary.BigEndian.AppendUint16(in, uint16(len(fr)))
			in = append(in, fr...)
		}
		f.Add(uint8(li%3), uint16(0), in)
	}
	links := []LinkType{LinkEthernet, LinkLinuxSLL, LinkLinuxSLL2, LinkRaw, LinkIPv4, LinkIPv6, LinkNull, LinkLoop, 4242}
	f.Fuzz(func(t *testing.T, link uint8, extra uint16, in []byte) {
		d := New(Config{FragMemory: 8192, FragQueues: 4})
		lt := links[int(link)%len(links)]
		now := time.Unix(1000, 0)
		for len(in) > 0 {
			n := len(in)
			if len(in) >= 2 {
				n = int(binary.BigEndian.Uint16(in))
				in = in[2:]
				if n > len(in) {
					n = len(in)
				}
			}
			frame := in[:n]
			in = in[n:]
			var dg Datagram
			st := d.Decode(now, lt, frame, len(frame)+int(extra%64), &dg)
			now = now.Add(time.Duration(extra) * time.Millisecond)
			switch st {
			case StatusDatagram:
				if len(dg.Data) > dg.Length || len(dg.Data) == 0 || dg.Data[0]>>4 != dg.Version {
					t.Fatalf("inconsistent datagram: len %d length %d version %d", len(dg.Data), dg.Length, dg.Version)
				}
				if dg.Reassembled && dg.Truncated() {
					t.Fatal("reassembled datagram is truncated")
				}
			case StatusDropped:
				if dg.Drop == DropNone {
					t.Fatal("drop without a reason")
				}
			}
			if s := d.Stats(); s.FragBytes > 8192 || s.FragQueues > 4 || s.FragBytes < 0 {
				t.Fatalf("reassembly limits broken: %+v", s)
			}
		}
		d.Expire(now.Add(time.Hour))
		if s := d.Stats(); s.FragBytes != 0 || s.FragQueues != 0 {
			t.Fatalf("after expiry: %+v", s)
		}
	})
}
