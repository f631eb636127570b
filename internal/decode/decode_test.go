package decode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestDecodeLinkTypes(t *testing.T) {
	p4 := ipv4Packet(17, "10.0.0.1", "10.0.0.2", 1, udp(1000, 53, []byte("query")))
	p6 := ipv6Packet(17, "fd00::1", "fd00::2", nil, udp(1000, 53, []byte("query6")))
	sll := func(et uint16, p []byte) []byte {
		b := make([]byte, 16, 16+len(p))
		binary.BigEndian.PutUint16(b[14:], et)
		return append(b, p...)
	}
	sll2 := func(et uint16, p []byte) []byte {
		b := make([]byte, 20, 20+len(p))
		binary.BigEndian.PutUint16(b, et)
		return append(b, p...)
	}
	le := func(af uint32, p []byte) []byte { return append(binary.LittleEndian.AppendUint32(nil, af), p...) }
	be := func(af uint32, p []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, af), p...) }
	padded := append(ether(0x0800, p4), make([]byte, 20)...)
	arp := ether(0x0806, make([]byte, 28))

	tests := []struct {
		name     string
		link     LinkType
		frame    []byte
		want     Status
		wantData []byte
		vlans    uint8
		vlan     uint16
	}{
		{"ethernet ipv4", LinkEthernet, ether(0x0800, p4), StatusDatagram, p4, 0, 0},
		{"ethernet padding trimmed", LinkEthernet, padded, StatusDatagram, p4, 0, 0},
		{"ethernet ipv6", LinkEthernet, ether(0x86DD, p6), StatusDatagram, p6, 0, 0},
		{"vlan 0 priority tag", LinkEthernet, ether(0x0800, p4, [2]uint16{0x8100, 0xA000}), StatusDatagram, p4, 1, 0},
		{"qinq 802.1ad", LinkEthernet, ether(0x0800, p4, [2]uint16{0x88A8, 13}, [2]uint16{0x8100, 10}), StatusDatagram, p4, 2, 13},
		{"qinq 802.1q twice", LinkEthernet, ether(0x86DD, p6, [2]uint16{0x8100, 13}, [2]uint16{0x8100, 10}), StatusDatagram, p6, 2, 13},
		{"arp", LinkEthernet, arp, StatusNotIP, nil, 0, 0},
		{"sll", LinkLinuxSLL, sll(0x0800, p4), StatusDatagram, p4, 0, 0},
		{"sll vlan", LinkLinuxSLL, sll(0x8100, append([]byte{0, 5, 0x86, 0xDD}, p6...)), StatusDatagram, p6, 1, 5},
		{"sll2", LinkLinuxSLL2, sll2(0x86DD, p6), StatusDatagram, p6, 0, 0},
		{"raw v4", LinkRaw, p4, StatusDatagram, p4, 0, 0},
		{"raw v6", LinkRaw, p6, StatusDatagram, p6, 0, 0},
		{"ipv4 linktype", LinkIPv4, p4, StatusDatagram, p4, 0, 0},
		{"ipv6 linktype", LinkIPv6, p6, StatusDatagram, p6, 0, 0},
		{"null little-endian v4", LinkNull, le(2, p4), StatusDatagram, p4, 0, 0},
		{"null big-endian v4", LinkNull, be(2, p4), StatusDatagram, p4, 0, 0},
		{"null darwin v6", LinkNull, le(30, p6), StatusDatagram, p6, 0, 0},
		{"null freebsd v6 big-endian", LinkNull, be(28, p6), StatusDatagram, p6, 0, 0},
		{"loop v6", LinkLoop, be(24, p6), StatusDatagram, p6, 0, 0},
		{"null other family", LinkNull, le(7, p4), StatusNotIP, nil, 0, 0},
		{"ethernet too short", LinkEthernet, make([]byte, 10), StatusDropped, nil, 0, 0},
		{"truncated vlan", LinkEthernet, ether(0x8100, []byte{0, 1}), StatusDropped, nil, 0, 0},
		{"ethertype ipv4 carrying ipv6", LinkEthernet, ether(0x0800, p6), StatusDropped, nil, 0, 0},
	}
	d := New(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dg Datagram
			got := d.Decode(t0, tt.link, tt.frame, len(tt.frame), &dg)
			if got != tt.want {
				t.Fatalf("status %v (drop %q), want %v", got, dg.Drop, tt.want)
			}
			if got != StatusDatagram {
				return
			}
			if !bytes.Equal(dg.Data, tt.wantData) || dg.Length != len(tt.wantData) {
				t.Errorf("data %x len %d, want %x len %d", dg.Data, dg.Length, tt.wantData, len(tt.wantData))
			}
			if dg.VLANTags != tt.vlans || dg.VLAN != tt.vlan {
				t.Errorf("vlan tags %d id %d, want %d %d", dg.VLANTags, dg.VLAN, tt.vlans, tt.vlan)
			}
		})
	}
}

func TestDecodeIPChecks(t *testing.T) {
	p4 := ipv4Packet(6, "10.0.0.1", "10.0.0.2", 7, seq(60))
	badSum := append([]byte(nil), p4...)
	badSum[10] ^= 0xFF
	longer := append([]byte(nil), p4...) // total length one byte beyond the frame
	binary.BigEndian.PutUint16(longer[2:], uint16(len(p4)+1))
	binary.BigEndian.PutUint16(longer[10:], 0)
	binary.BigEndian.PutUint16(longer[10:], Checksum(longer[:20], 0))
	shortIHL := append([]byte(nil), p4...)
	shortIHL[0] = 0x44
	p6 := ipv6Packet(17, "fd00::1", "fd00::2", nil, udp(1, 2, seq(30)))
	mcast := ipv6Packet(17, "ff02::1", "fd00::2", nil, udp(1, 2, nil))
	jumbo := append([]byte(nil), p6...)
	jumbo[4], jumbo[5] = 0, 0
	empty := append([]byte(nil), jumbo...) // zero payload length, not hop-by-hop: a 40-byte datagram (ipv6_rcv)
	jumbo[6] = 0                           // hop-by-hop: a jumbogram

	tests := []struct {
		name    string
		frame   []byte
		caplen  int // bytes of frame captured (0 = all)
		want    Status
		drop    DropReason
		wantLen int
	}{
		{"ok", p4, 0, StatusDatagram, 0, len(p4)},
		{"snaplen cut keeps real length", p4, 40, StatusDatagram, 0, len(p4)},
		{"bad header checksum", badSum, 0, StatusDropped, DropBadIPChecksum, 0},
		{"total length beyond frame", longer, 0, StatusDropped, DropBadLength, 0},
		{"ihl below 20", shortIHL, 0, StatusDropped, DropBadHeader, 0},
		{"cut inside the header", p4, 12, StatusDropped, DropTruncatedIP, 0},
		{"ipv6 ok", p6, 0, StatusDatagram, 0, len(p6)},
		{"ipv6 cut", p6, 44, StatusDatagram, 0, len(p6)},
		{"ipv6 multicast source", mcast, 0, StatusDropped, DropMulticastSource, 0},
		{"ipv6 jumbo", jumbo, 0, StatusDropped, DropBadHeader, 0},
		{"ipv6 zero payload length", empty, 0, StatusDatagram, 0, 40},
		{"ipv6 cut inside header", p6, 30, StatusDropped, DropTruncatedIP, 0},
	}
	d := New(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := ether(0x0800, tt.frame)
			if tt.frame[0]>>4 == 6 {
				frame = ether(0x86DD, tt.frame)
			}
			wire := len(frame)
			if tt.caplen > 0 {
				frame = frame[:14+tt.caplen]
			}
			var dg Datagram
			got := d.Decode(t0, LinkEthernet, frame, wire, &dg)
			if got != tt.want || dg.Drop != tt.drop {
				t.Fatalf("got %v/%q, want %v/%q", got, dg.Drop, tt.want, tt.drop)
			}
			if got == StatusDatagram {
				if dg.Length != tt.wantLen {
					t.Errorf("length %d, want %d", dg.Length, tt.wantLen)
				}
				if dg.Truncated() != (tt.caplen > 0) {
					t.Errorf("truncated %v, want %v", dg.Truncated(), tt.caplen > 0)
				}
			}
		})
	}
}

func TestCheckLinkType(t *testing.T) {
	for _, l := range []LinkType{LinkNull, LinkEthernet, LinkRaw, LinkLoop, LinkLinuxSLL, LinkIPv4, LinkIPv6, LinkLinuxSLL2} {
		if err := CheckLinkType(l); err != nil {
			t.Errorf("%v: %v", l, err)
		}
	}
	err := CheckLinkType(127)
	if !errors.Is(err, ErrUnsupportedLinkType) || !strings.Contains(err.Error(), "IEEE802_11_RADIOTAP") {
		t.Errorf("radiotap: %v", err)
	}
	if err := CheckLinkType(4242); err == nil || !strings.Contains(err.Error(), "LINKTYPE_4242") {
		t.Errorf("4242: %v", err)
	}
}

// feed decodes Ethernet-wrapped IPv4/IPv6 packets and returns the statuses
// and the last datagram's bytes (copied).
func feed(d *Decoder, at time.Time, pkts ...[]byte) ([]Status, []byte) {
	var sts []Status
	var last []byte
	for _, p := range pkts {
		et := uint16(0x0800)
		if p[0]>>4 == 6 {
			et = 0x86DD
		}
		f := ether(et, p)
		var dg Datagram
		st := d.Decode(at, LinkEthernet, f, len(f), &dg)
		sts = append(sts, st)
		if st == StatusDatagram {
			last = append([]byte(nil), dg.Data...)
		}
	}
	return sts, last
}

func TestReassembly4(t *testing.T) {
	whole := ipv4Packet(17, "10.1.0.1", "10.1.0.2", 4242, udp(5000, 6000, seq(3000)))
	pay := len(whole) - 20
	f0 := ipv4Fragment(whole, 0, 1480, true)
	f1 := ipv4Fragment(whole, 1480, 2960, true)
	f2 := ipv4Fragment(whole, 2960, pay, false)
	overlap := ipv4Fragment(whole, 1000, 2000, true)
	dup := ipv4Fragment(whole, 1480, 2000, true)

	tests := []struct {
		name  string
		pkts  [][]byte
		want  []Status
		whole bool // the last status yields the original datagram
	}{
		{"in order", [][]byte{f0, f1, f2}, []Status{StatusFragment, StatusFragment, StatusDatagram}, true},
		{"reverse order", [][]byte{f2, f1, f0}, []Status{StatusFragment, StatusFragment, StatusDatagram}, true},
		{"duplicate ignored", [][]byte{f0, f1, dup, f2}, []Status{StatusFragment, StatusFragment, StatusDropped, StatusDatagram}, true},
		{"overlap discards the train", [][]byte{f0, overlap, f1, f2}, []Status{StatusFragment, StatusDropped, StatusFragment, StatusFragment}, false},
		{"incomplete train never completes", [][]byte{f0, f1}, []Status{StatusFragment, StatusFragment}, false},
		{"last fragment twice with another end", [][]byte{f2, ipv4Fragment(whole, 2960, pay-8, false)}, []Status{StatusFragment, StatusDropped}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(Config{})
			sts, last := feed(d, t0, tt.pkts...)
			if len(sts) != len(tt.want) {
				t.Fatalf("statuses %v, want %v", sts, tt.want)
			}
			for i := range sts {
				if sts[i] != tt.want[i] {
					t.Fatalf("statuses %v, want %v", sts, tt.want)
				}
			}
			if tt.whole {
				want := append([]byte(nil), whole...)
				if !bytes.Equal(last, want) {
					t.Fatalf("reassembled datagram differs:\n got %x\nwant %x", last[:40], want[:40])
				}
				if s := d.Stats(); s.FragQueues != 0 || s.FragBytes != 0 || s.Reassembled != 1 {
					t.Errorf("stats after completion: %+v", s)
				}
			}
		})
	}
}

func TestReassemblyTimeoutAndLimits(t *testing.T) {
	whole := ipv4Packet(17, "10.1.0.1", "10.1.0.2", 9, udp(5000, 6000, seq(2000)))
	f0 := ipv4Fragment(whole, 0, 1480, true)
	f1 := ipv4Fragment(whole, 1480, len(whole)-20, false)

	d := New(Config{})
	feed(d, t0, f0)
	// Past the 30 s ipfrag_time the train is gone: the tail alone does not complete it.
	sts, _ := feed(d, t0.Add(31*time.Second), f1)
	if sts[0] != StatusFragment {
		t.Fatalf("late tail: %v", sts)
	}
	if s := d.Stats(); s.Dropped[DropFragmentTimeout] != 1 {
		t.Fatalf("timeouts %d, want 1", s.Dropped[DropFragmentTimeout])
	}
	d.Expire(t0.Add(2 * time.Minute))
	if s := d.Stats(); s.FragQueues != 0 || s.FragBytes != 0 {
		t.Fatalf("after Expire: %d queues, %d bytes", s.FragQueues, s.FragBytes)
	}

	// Within the timeout it completes.
	if sts, _ := feed(d, t0.Add(3*time.Minute), f0, f1); sts[1] != StatusDatagram {
		t.Fatalf("in time: %v", sts)
	}

	// Memory bound: a 2 KiB limit refuses the second train's fragment.
	d = New(Config{FragMemory: 2048})
	other := ipv4Packet(17, "10.1.0.3", "10.1.0.2", 10, udp(5000, 6000, seq(2000)))
	sts, _ = feed(d, t0, f0, ipv4Fragment(other, 0, 1480, true))
	if sts[1] != StatusDropped {
		t.Fatalf("over memory: %v", sts)
	}
	// Queue bound.
	d = New(Config{FragQueues: 1})
	sts, _ = feed(d, t0, f0, ipv4Fragment(other, 0, 1480, true))
	if sts[1] != StatusDropped {
		t.Fatalf("over queue limit: %v", sts)
	}
}

func TestReassembly6(t *testing.T) {
	payload := udp(7000, 8000, seq(2500))
	for _, destOpts := range []bool{false, true} {
		d := New(Config{})
		pkts := [][]byte{
			ipv6Fragment(17, "fd00::1", "fd00::2", 77, payload, 1232, len(payload), false, destOpts),
			ipv6Fragment(17, "fd00::1", "fd00::2", 77, payload, 0, 1232, true, destOpts),
		}
		sts, last := feed(d, t0, pkts...)
		if sts[0] != StatusFragment || sts[1] != StatusDatagram {
			t.Fatalf("destOpts=%v: %v", destOpts, sts)
		}
		var want []byte
		if destOpts {
			do := make([]byte, 8)
			do[0] = 17
			do[2], do[3] = 1, 4
			want = ipv6Packet(60, "fd00::1", "fd00::2", do, payload)
		} else {
			want = ipv6Packet(17, "fd00::1", "fd00::2", nil, payload)
		}
		if !bytes.Equal(last, want) {
			t.Fatalf("destOpts=%v: reassembled differs:\n got %x\nwant %x", destOpts, last[:56], want[:56])
		}
	}
	// A misaligned non-last fragment discards its train and is passed on
	// as it is (nf_ct_frag6_gather's -EPROTO): the rest of the train
	// starts a new one that never completes.
	d := New(Config{})
	mis := ipv6Fragment(17, "fd00::1", "fd00::2", 5, payload, 1232, 2233, true, false)
	sts, got := feed(d, t0,
		ipv6Fragment(17, "fd00::1", "fd00::2", 5, payload, 0, 1232, true, false),
		mis,
		ipv6Fragment(17, "fd00::1", "fd00::2", 5, payload, 1232, len(payload), false, false))
	if sts[0] != StatusFragment || sts[1] != StatusDatagram || sts[2] != StatusFragment {
		t.Fatalf("misaligned: %v, want fragment, datagram, fragment", sts)
	}
	if !bytes.Equal(got, mis) {
		t.Fatalf("misaligned: passed on %x, want the fragment itself", got[:min(len(got), 56)])
	}
	if st := d.Stats(); st.Unreassembled != 1 || st.Reassembled != 0 || st.FragQueues != 1 || st.FragBytes != len(payload)-1232 {
		t.Fatalf("misaligned: stats %+v, want 1 unreassembled and only the last fragment queued", st)
	}
	// Atomic fragment (offset 0, no M flag) passes at once.
	d = New(Config{})
	if sts, _ := feed(d, t0, ipv6Fragment(17, "fd00::1", "fd00::2", 6, payload, 0, len(payload), false, false)); sts[0] != StatusDatagram {
		t.Fatalf("atomic: %v", sts)
	}
}

func TestReassemblyNoAllocs(t *testing.T) {
	whole := ipv4Packet(17, "10.1.0.1", "10.1.0.2", 4242, udp(5000, 6000, seq(3000)))
	frames := [][]byte{
		ether(0x0800, ipv4Fragment(whole, 0, 1480, true)),
		ether(0x0800, ipv4Fragment(whole, 1480, 2960, true)),
		ether(0x0800, ipv4Fragment(whole, 2960, len(whole)-20, false)),
	}
	d := New(Config{})
	var dg Datagram
	run := func() {
		for _, f := range frames {
			d.Decode(t0, LinkEthernet, f, len(f), &dg)
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("%v allocations per reassembled datagram", n)
	}
}

func TestChecksum(t *testing.T) {
	// RFC 1071's example: 0001 f203 f4f5 f6f7 sums to ddf2; complement 220d.
	if got := Checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0); got != 0x220d {
		t.Fatalf("got %04x", got)
	}
	if got := Checksum([]byte{0x01}, 0); got != 0xfeff {
		t.Fatalf("odd length: got %04x", got)
	}
}

// BenchmarkDecode measures link-layer and IP decoding of a VLAN-tagged TCP
// frame and of a 3-fragment UDP datagram train.
func BenchmarkDecode(b *testing.B) {
	tcp := ether(0x0800, ipv4Packet(6, "10.0.0.1", "10.0.0.2", 1, seq(40)), [2]uint16{0x8100, 5})
	b.Run("tcp-vlan", func(b *testing.B) {
		d := New(Config{})
		var dg Datagram
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if d.Decode(t0, LinkEthernet, tcp, len(tcp), &dg) != StatusDatagram {
				b.Fatal("not decoded")
			}
		}
	})
	whole := ipv4Packet(17, "10.1.0.1", "10.1.0.2", 4242, udp(5000, 6000, seq(3000)))
	frames := [][]byte{
		ether(0x0800, ipv4Fragment(whole, 0, 1480, true)),
		ether(0x0800, ipv4Fragment(whole, 1480, 2960, true)),
		ether(0x0800, ipv4Fragment(whole, 2960, len(whole)-20, false)),
	}
	b.Run("fragments", func(b *testing.B) {
		d := New(Config{})
		var dg Datagram
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			f := frames[i%3]
			d.Decode(t0, LinkEthernet, f, len(f), &dg)
		}
	})
}
