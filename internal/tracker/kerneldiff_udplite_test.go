//go:build linux

package tracker

import "github.com/conntop/conntop/internal/flow"

func udpliteScenarios() []scenario {
	var out []scenario
	add := func(name string, dgs ...[]byte) {
		s := scen{name: "udplite-" + name}
		s.add(dgs...)
		out = append(out, s.done())
	}
	zero := uint16(0)
	bad := uint16(0x1234)
	for _, v6 := range []bool{false, true} {
		fam := "v4-"
		if v6 {
			fam = "v6-"
		}
		for _, pp := range []struct {
			name  string
			proto uint8
		}{{"pseudo-udplite-", flow.ProtoUDPLite}, {"pseudo-udp-", flow.ProtoUDP}} {
			pre := fam + pp.name
			add(pre+"cov0", liteDatagram(v6, 0, pp.proto, nil, "lite payload"))
			add(pre+"cov-whole", liteDatagram(v6, 20, pp.proto, nil, "lite payload"))
			add(pre+"cov8", liteDatagram(v6, 8, pp.proto, nil, "lite payload"))
			add(pre+"cov12", liteDatagram(v6, 12, pp.proto, nil, "lite payload"))
			add(pre+"cov12-odd", liteDatagram(v6, 11, pp.proto, nil, "lite payload"))
		}
		add(fam+"cov7", liteDatagram(v6, 7, flow.ProtoUDP, nil, "lite payload"))
		add(fam+"cov1", liteDatagram(v6, 1, flow.ProtoUDP, nil, "lite payload"))
		add(fam+"cov-beyond", liteDatagram(v6, 21, flow.ProtoUDP, nil, "lite payload"))
		add(fam+"check0", liteDatagram(v6, 0, flow.ProtoUDP, &zero, "lite payload"))
		add(fam+"check0-cov8", liteDatagram(v6, 8, flow.ProtoUDP, &zero, "lite payload"))
		add(fam+"bad-check", liteDatagram(v6, 0, flow.ProtoUDP, &bad, "lite payload"))
		add(fam+"bad-check-cov8", liteDatagram(v6, 8, flow.ProtoUDP, &bad, "lite payload"))
		// Bytes past the coverage are not checked.
		unc := liteDatagram(v6, 8, flow.ProtoUDP, nil, "lite payload")
		unc[len(unc)-1] ^= 0xFF
		add(fam+"uncovered-corrupt", unc)
		short := withProto(ip4("10.1.0.1", "10.2.0.2", 253, []byte{0x17, 0x70, 0x17, 0x71, 0, 0}), flow.ProtoUDPLite)
		if v6 {
			short = ip6("fd00:1::1", "fd00:2::2", flow.ProtoUDPLite, 64, []byte{0x17, 0x70, 0x17, 0x71, 0, 0})
		}
		add(fam+"short", short)
	}
	return out
}
