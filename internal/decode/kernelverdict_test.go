package decode

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

// fragPiece is payload bytes [off, end) of a train; last marks the
// fragment without the more-fragments flag.
type fragPiece struct {
	off, end int
	last     bool
}

// TestReassemblyKernelVerdicts replays fragment trains whose outcome was
// checked against this kernel (6.18) with the tracker's kernel-oracle
// harness (internal/tracker, frag-* scenarios): reassembled or not. The
// kernel keeps runs of fragments (inet_frag_queue_insert): a fragment
// wholly inside one run is a duplicate, one spanning two runs is an
// overlap that discards the train.
func TestReassemblyKernelVerdicts(t *testing.T) {
	whole4 := ipv4Packet(17, "10.1.0.1", "10.2.0.2", 0x1234, udp(7000, 7001, seq(100)))
	pay6 := udp(7000, 7001, seq(100))
	whole6 := ipv6Packet(17, "fd00:1::1", "fd00:2::2", nil, pay6)
	p := func(off, end int) fragPiece { return fragPiece{off, end, false} }
	last := fragPiece{96, 108, true}
	for _, tc := range []struct {
		name   string
		pieces []fragPiece
		want   bool // the kernel reassembles the datagram
	}{
		{"in-order", []fragPiece{p(0, 32), p(32, 64), p(64, 96), last}, true},
		{"reverse", []fragPiece{last, p(64, 96), p(32, 64), p(0, 32)}, true},
		{"out-of-order", []fragPiece{p(32, 64), p(0, 32), last, p(64, 96)}, true},
		{"duplicate", []fragPiece{p(0, 32), p(32, 64), p(32, 64), p(64, 96), last}, true},
		{"duplicate-last", []fragPiece{p(0, 32), last, p(32, 64), last, p(64, 96)}, true},
		{"overlap", []fragPiece{p(0, 32), p(0, 64), p(64, 96), last}, false},
		{"overlap-tail", []fragPiece{p(0, 32), p(24, 64), p(32, 64), p(64, 96), last}, false},
		{"overlap-then-whole", []fragPiece{p(0, 32), p(16, 48), p(0, 32), p(32, 64), p(64, 96), last}, true},
		{"overlap-head", []fragPiece{p(64, 96), last, p(0, 72), p(0, 64)}, false},
		{"overlap-middle", []fragPiece{p(0, 32), last, p(40, 56), p(32, 64), p(64, 96)}, false},
		{"dup-in-run", []fragPiece{p(0, 32), p(32, 64), p(0, 64), p(16, 40), p(64, 96), last}, true},
		{"dup-inside-fragment", []fragPiece{last, p(32, 64), p(40, 56), p(64, 96), p(0, 32)}, true},
		{"span-two-runs", []fragPiece{last, p(64, 96), p(32, 64), p(32, 96), p(0, 32)}, false},
		{"span-two-runs-retry", []fragPiece{last, p(64, 96), p(32, 64), p(32, 96), p(0, 32), p(32, 64), p(64, 96), last}, true},
		{"span-appended-run", []fragPiece{p(0, 32), p(32, 64), p(64, 96), p(16, 80), last}, true},
		{"last-overlaps", []fragPiece{p(0, 32), p(32, 64), p(64, 96), {88, 108, true}}, false},
		{"tiny", []fragPiece{p(0, 8), p(8, 16), p(16, 24), p(24, 104), {104, 108, true}}, true},
	} {
		for _, v6 := range []bool{false, true} {
			name := "v4-" + tc.name
			if v6 {
				name = "v6-" + tc.name
			}
			t.Run(name, func(t *testing.T) {
				d := New(Config{})
				var pkts [][]byte
				for _, pc := range tc.pieces {
					if v6 {
						pkts = append(pkts, ipv6Fragment(17, "fd00:1::1", "fd00:2::2", 9, pay6, pc.off, pc.end, !pc.last, false))
					} else {
						pkts = append(pkts, ipv4Fragment(whole4, pc.off, pc.end, !pc.last))
					}
				}
				sts, got := feed(d, t0, pkts...)
				n := 0
				for _, st := range sts {
					if st == StatusDatagram {
						n++
					}
				}
				if tc.want != (n == 1) || n > 1 {
					t.Fatalf("statuses %v: want reassembled=%v", sts, tc.want)
				}
				want := whole4
				if v6 {
					want = whole6
				}
				if tc.want && !bytes.Equal(got, want) {
					t.Fatalf("reassembled datagram differs:\n got %x\nwant %x", got, want)
				}
			})
		}
	}
}

// TestMisalignedFragment6KernelVerdicts replays IPv6 trains holding a
// non-last fragment whose payload is not a multiple of 8 bytes, with the
// outcome this kernel (6.18) gave in the tracker's kernel-oracle harness
// (frag-v6-misaligned* scenarios): nf_ct_frag6_queue kills the train and
// nf_ct_frag6_gather accepts the fragment unreassembled, so it alone
// reaches conntrack; fragments already queued are lost.
func TestMisalignedFragment6KernelVerdicts(t *testing.T) {
	pay6 := udp(7000, 7001, seq(100))
	whole6 := ipv6Packet(17, "fd00:1::1", "fd00:2::2", nil, pay6)
	p := func(off, end int) fragPiece { return fragPiece{off, end, false} }
	last := fragPiece{96, 108, true}
	for _, tc := range []struct {
		name   string
		pieces []fragPiece
		passed []int // indexes of the pieces passed on unreassembled
		whole  bool  // the train is reassembled at the end
	}{
		{"first", []fragPiece{p(0, 30), p(32, 64), p(64, 96), last}, []int{0}, false},
		{"middle", []fragPiece{p(0, 32), p(32, 62), p(64, 96), last}, []int{1}, false},
		{"after", []fragPiece{p(0, 32), p(64, 96), last, p(32, 62)}, []int{3}, false},
		{"then-whole", []fragPiece{p(32, 62), p(0, 32), p(32, 64), p(64, 96), last}, []int{0}, true},
		{"twice", []fragPiece{p(0, 30), p(0, 30)}, []int{0, 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Config{})
			var passed []int
			var got []byte
			for i, pc := range tc.pieces {
				frag := ipv6Fragment(17, "fd00:1::1", "fd00:2::2", 9, pay6, pc.off, pc.end, !pc.last, false)
				f := ether(0x86DD, frag)
				var dg Datagram
				if d.Decode(t0, LinkEthernet, f, len(f), &dg) != StatusDatagram {
					continue
				}
				if !dg.Fragment {
					got = append([]byte(nil), dg.Data...)
					continue
				}
				passed = append(passed, i)
				if !bytes.Equal(dg.Data, frag) || dg.Length != len(frag) || dg.Reassembled {
					t.Fatalf("piece %d: passed on %+v, want the fragment as it is", i, dg)
				}
			}
			if !slices.Equal(passed, tc.passed) {
				t.Fatalf("passed on pieces %v, want %v", passed, tc.passed)
			}
			if tc.whole != (got != nil) || (tc.whole && !bytes.Equal(got, whole6)) {
				t.Fatalf("reassembled %x, want reassembled=%v", got, tc.whole)
			}
			if st := d.Stats(); st.Unreassembled != uint64(len(tc.passed)) {
				t.Fatalf("Unreassembled = %d, want %d", st.Unreassembled, len(tc.passed))
			}
		})
	}
}

// TestReassemblyPast65535 checks trains ending past 65535 as this kernel
// treats them: IPv4 queues such a last fragment (ip_frag_queue does not
// check), so a normal train of the same identification that follows is
// refused; IPv6 drops the fragment alone (nf_ct_frag6_queue), and the
// normal train completes.
func TestReassemblyPast65535(t *testing.T) {
	whole4 := ipv4Packet(17, "10.1.0.1", "10.2.0.2", 0x1234, udp(7000, 7001, seq(100)))
	big4 := ipv4Packet(17, "10.1.0.1", "10.2.0.2", 0x1234, make([]byte, 16))
	binary.BigEndian.PutUint16(big4[6:], 65528/8)
	big4[10], big4[11] = 0, 0
	binary.BigEndian.PutUint16(big4[10:], Checksum(big4[:20], 0))
	d := New(Config{})
	sts, _ := feed(d, t0, big4, ipv4Fragment(whole4, 0, 32, true), ipv4Fragment(whole4, 32, 64, true),
		ipv4Fragment(whole4, 64, 96, true), ipv4Fragment(whole4, 96, 108, false))
	for i, st := range sts {
		if st == StatusDatagram {
			t.Fatalf("IPv4: frame %d reassembled (%v); the kernel refuses the train", i, sts)
		}
	}

	pay6 := udp(7000, 7001, seq(100))
	big6 := ipv6Fragment(17, "fd00:1::1", "fd00:2::2", 9, make([]byte, 16), 0, 16, false, false)
	binary.BigEndian.PutUint16(big6[42:], 65528)
	d = New(Config{})
	sts, _ = feed(d, t0, big6, ipv6Fragment(17, "fd00:1::1", "fd00:2::2", 9, pay6, 0, 32, true, false),
		ipv6Fragment(17, "fd00:1::1", "fd00:2::2", 9, pay6, 32, 108, false, false))
	if sts[0] != StatusDropped || sts[2] != StatusDatagram {
		t.Fatalf("IPv6: %v, want the big fragment dropped and the train reassembled", sts)
	}
}
