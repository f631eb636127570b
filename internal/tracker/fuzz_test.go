package tracker

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// FuzzTracker feeds arbitrary bytes as datagrams (several per input, split
// at a length prefix) through a small tracker and checks its invariants.
func FuzzTracker(f *testing.F) {
	for _, st := range [][]step{handshake, ftpSession("227 Entering Passive Mode (10,0,0,2,4,1).\r\n")} {
		var in []byte
		for _, s := range st {
			in = binary.BigEndian.AppendUint16(in, uint16(len(s.data)))
			in = append(in, s.data...)
		}
		f.Add(in)
	}
	f.Add(ip6("fd00::1", "fd00::2", flow.ProtoICMPv6, 64, icmpHdr(1, 4, 0, 0,
		ip6("fd00::2", "fd00::1", flow.ProtoUDP, 64, udpHdr(1, 2, nil)))))
	f.Add(ip4(srv, cli, flow.ProtoICMP, icmpHdr(3, 3, 0, 0, ip4(cli, srv, flow.ProtoTCP, tcpHdr(1, 2, 3, 4, fSYN, 5, nil, nil)))))
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := DefaultConfig()
		cfg.Max = 4
		tr := New(cfg)
		now := t0
		for len(in) > 0 {
			n := len(in)
			if len(in) >= 2 {
				if l := int(binary.BigEndian.Uint16(in)); l+2 <= len(in) {
					in = in[2:]
					n = l
				}
			}
			d := in[:n]
			in = in[n:]
			for _, cut := range []int{len(d), len(d) / 2} {
				v := tr.Handle(now, &Packet{Data: d[:cut], Length: len(d)})
				if v.CtInfo > CtUntracked {
					t.Fatalf("bad verdict %+v", v)
				}
				if v.CtInfo == CtInvalid && v.Reason == "" {
					t.Fatalf("INVALID without a reason: %+v", v)
				}
				if tr.Len() > cfg.Max {
					t.Fatalf("table has %d entries, max %d", tr.Len(), cfg.Max)
				}
				now = now.Add(time.Second)
			}
		}
		fl := tr.AppendFlows(nil, now)
		if len(fl) > tr.Len() {
			t.Fatalf("%d flows, Len %d", len(fl), tr.Len())
		}
		for _, f := range fl {
			if f.Status&flow.StatusConfirmed == 0 || f.Reply != f.Orig.Reverse(f.Proto) {
				t.Fatalf("bad flow %+v", f)
			}
		}
		tr.Expire(now.Add(1000 * time.Hour))
		if tr.Len() != 0 {
			t.Fatalf("%d entries left after expiry", tr.Len())
		}
		for _, e := range tr.AppendEvents(nil) {
			if e.Flow.ID == 0 {
				t.Fatalf("event without id: %+v", e)
			}
		}
	})
}
