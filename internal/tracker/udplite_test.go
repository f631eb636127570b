package tracker

import (
	"encoding/binary"
	"testing"

	"github.com/conntop/conntop/internal/csum"
	"github.com/conntop/conntop/internal/flow"
)

// liteDatagram builds a UDPLite datagram (IPv4 or IPv6) with checksum
// coverage cov (the length field) whose checksum covers its first covered
// bytes (all when cov is 0) with a pseudo header of protocol pseudoProto and
// the whole length; check, when not nil, replaces the checksum.
func liteDatagram(v6 bool, cov uint16, pseudoProto uint8, check *uint16, payload string) []byte {
	l4 := udpHdr(6000, 6001, []byte(payload))
	binary.BigEndian.PutUint16(l4[4:], cov)
	var d []byte
	var addrs []byte
	if v6 {
		d = ip6("fd00:1::1", "fd00:2::2", flow.ProtoUDPLite, 64, l4)
		addrs = d[8:40]
	} else {
		d = ip4("10.1.0.1", "10.2.0.2", flow.ProtoUDPLite, l4)
		addrs = d[12:20]
	}
	seg := d[len(d)-len(l4):]
	n := int(cov)
	if n == 0 || n > len(seg) {
		n = len(seg)
	}
	var c uint16
	if check != nil {
		c = *check
	} else {
		c = ^csum.Fold(csum.Partial(seg[:n], pseudoSum(addrs, pseudoProto, len(seg))))
	}
	binary.BigEndian.PutUint16(seg[6:], c)
	return d
}

// TestUDPLiteKernelVerdicts holds this kernel's (6.18) verdicts on UDPLite
// packets, found with the kernel-oracle harness (udplite-* scenarios of
// kerneldiff_udplite_test.go). The kernel checks the checksum with a pseudo
// header naming protocol 17, so a checksum computed with 136 (RFC 3828) is
// bad.
func TestUDPLiteKernelVerdicts(t *testing.T) {
	zero, bad := uint16(0), uint16(0x1234)
	for _, v6 := range []bool{false, true} {
		short := withProtoNoCsum(ip4(cli, srv, 253, []byte{0x17, 0x70, 0x17, 0x71, 0, 0}), flow.ProtoUDPLite)
		if v6 {
			short = ip6("fd00:1::1", "fd00:2::2", flow.ProtoUDPLite, 64, []byte{0x17, 0x70, 0x17, 0x71, 0, 0})
		}
		uncovered := liteDatagram(v6, 8, flow.ProtoUDP, nil, "lite payload")
		uncovered[len(uncovered)-1] ^= 0xFF
		for _, tc := range []struct {
			name   string
			data   []byte
			reason string // "" when the kernel tracks it
		}{
			{"cov0", liteDatagram(v6, 0, flow.ProtoUDP, nil, "lite payload"), ""},
			{"cov-whole", liteDatagram(v6, 20, flow.ProtoUDP, nil, "lite payload"), ""},
			{"cov8", liteDatagram(v6, 8, flow.ProtoUDP, nil, "lite payload"), ""},
			{"cov11", liteDatagram(v6, 11, flow.ProtoUDP, nil, "lite payload"), ""},
			{"uncovered-corrupt", uncovered, ""},
			{"pseudo-136", liteDatagram(v6, 0, flow.ProtoUDPLite, nil, "lite payload"), reasonUDPLiteChecksum},
			{"pseudo-136-cov8", liteDatagram(v6, 8, flow.ProtoUDPLite, nil, "lite payload"), reasonUDPLiteChecksum},
			{"cov7", liteDatagram(v6, 7, flow.ProtoUDP, nil, "lite payload"), reasonUDPLiteCoverage},
			{"cov1", liteDatagram(v6, 1, flow.ProtoUDP, nil, "lite payload"), reasonUDPLiteCoverage},
			{"cov-beyond", liteDatagram(v6, 21, flow.ProtoUDP, nil, "lite payload"), reasonUDPLiteCoverage},
			{"check0", liteDatagram(v6, 0, flow.ProtoUDP, &zero, "lite payload"), reasonUDPLiteNoChecksum},
			{"check0-cov8", liteDatagram(v6, 8, flow.ProtoUDP, &zero, "lite payload"), reasonUDPLiteNoChecksum},
			{"bad-check", liteDatagram(v6, 0, flow.ProtoUDP, &bad, "lite payload"), reasonUDPLiteChecksum},
			{"bad-check-cov8", liteDatagram(v6, 8, flow.ProtoUDP, &bad, "lite payload"), reasonUDPLiteChecksum},
			{"short", short, reasonUDPShort},
		} {
			name := "v4-" + tc.name
			if v6 {
				name = "v6-" + tc.name
			}
			t.Run(name, func(t *testing.T) {
				tr := New(DefaultConfig())
				v := tr.Handle(t0, &Packet{Data: tc.data})
				st := tr.Stats()
				if tc.reason == "" {
					if v.CtInfo != CtNew || st.Invalid != 0 {
						t.Fatalf("verdict %+v, invalid %d: want a new flow", v, st.Invalid)
					}
					f := only(t, tr, t0)
					if f.Orig.SrcPort != 6000 || f.Orig.DstPort != 6001 {
						t.Fatalf("ports %d>%d, want 6000>6001", f.Orig.SrcPort, f.Orig.DstPort)
					}
					return
				}
				if v.CtInfo != CtInvalid || st.Invalid != 1 || st.InvalidReasons[tc.reason] != 1 {
					t.Fatalf("verdict %+v, invalid %d %v: want invalid (%s)", v, st.Invalid, st.InvalidReasons, tc.reason)
				}
				if n := len(tr.AppendFlows(nil, t0)); n != 0 {
					t.Fatalf("%d entries, want none", n)
				}
			})
		}
	}
	// With checksum checking off (nf_conntrack_checksum=0) only the
	// coverage and the missing checksum are checked.
	cfg := DefaultConfig()
	cfg.Checksum = false
	tr := New(cfg)
	if v := tr.Handle(t0, &Packet{Data: liteDatagram(false, 0, flow.ProtoUDP, &bad, "x")}); v.CtInfo != CtNew {
		t.Fatalf("bad checksum, checking off: %+v", v)
	}
	if v := tr.Handle(t0, &Packet{Data: liteDatagram(false, 0, flow.ProtoUDP, &zero, "x")}); v.CtInfo != CtInvalid {
		t.Fatalf("checksum 0, checking off: %+v", v)
	}
}

// withProtoNoCsum changes an IPv4 datagram's protocol, fixing the header
// checksum only.
func withProtoNoCsum(d []byte, proto uint8) []byte {
	d[9] = proto
	d[10], d[11] = 0, 0
	binary.BigEndian.PutUint16(d[10:], csum.Checksum(d[:20]))
	return d
}
