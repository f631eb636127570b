package tracker

import (
	"testing"

	"github.com/conntop/conntop/internal/flow"
)

// TestKernelDiffRegressions are divergences the kernel-oracle harness found
// (kerneldiff_scen_test.go), with the kernel's verdict written in, so they
// run without root.
func TestKernelDiffRegressions(t *testing.T) {
	greV1 := []byte{0x30, 0x01, 0x88, 0x0b, 0, 4, 0, 7, 0, 0, 0, 1, 1, 2, 3, 4}
	greV1IP := []byte{0x30, 0x01, 0x08, 0x00, 0, 4, 0, 7, 0, 0, 0, 1, 1, 2, 3, 4}
	greV0 := []byte{0, 0, 0x08, 0x00, 0x45, 0, 0, 20}
	dccp := make([]byte, 24)
	dccp[1], dccp[3] = 0x88, 0x89 // ports 136, 137
	for _, tc := range []struct {
		name    string
		data    []byte
		want    CtInfo
		tuple   flow.Tuple // Orig, ports only
		invalid uint64
	}{
		// gre_pkt_to_tuple: PPTP (version 1) keys: the call ID is the
		// destination key; the source key needs the PPTP helper: 0.
		{"gre-v1-call-id", ip4(cli, srv, flow.ProtoGRE, greV1), CtNew, flow.Tuple{DstPort: 7}, 0},
		// Version 1 with a protocol other than PPP has no tuple: invalid.
		{"gre-v1-not-ppp", ip4(cli, srv, flow.ProtoGRE, greV1IP), CtInvalid, flow.Tuple{}, 1},
		{"gre-v0-no-keys", ip4(cli, srv, flow.ProtoGRE, greV0), CtNew, flow.Tuple{}, 0},
		// 6.16+ has no DCCP tracker: generic, without ports.
		{"dccp-generic", ip4(cli, srv, flow.ProtoDCCP, dccp), CtNew, flow.Tuple{}, 0},
		// A zero payload length is a jumbogram only with a hop-by-hop
		// header; with "no next header" it is an empty datagram, which
		// conntrack finds invalid.
		{"ipv6-empty-no-next-header", ip6("fd00::1", "fd00::2", 59, 64, nil), CtInvalid, flow.Tuple{}, 1},
		{"ipv6-empty-generic", ip6("fd00::1", "fd00::2", 253, 64, nil), CtNew, flow.Tuple{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(DefaultConfig())
			v := tr.Handle(t0, &Packet{Data: tc.data})
			if v.CtInfo != tc.want {
				t.Fatalf("verdict %+v, want %v", v, tc.want)
			}
			if got := tr.Stats().Invalid; got != tc.invalid {
				t.Fatalf("invalid = %d, want %d", got, tc.invalid)
			}
			if tc.want == CtInvalid {
				return
			}
			f := only(t, tr, t0)
			if f.Orig.SrcPort != tc.tuple.SrcPort || f.Orig.DstPort != tc.tuple.DstPort ||
				f.Reply.SrcPort != tc.tuple.DstPort || f.Reply.DstPort != tc.tuple.SrcPort {
				t.Fatalf("tuples %+v / %+v, want ports %d>%d", f.Orig, f.Reply, tc.tuple.SrcPort, tc.tuple.DstPort)
			}
		})
	}
}
