package tracker

import (
	"encoding/binary"
	"testing"

	"github.com/conntop/conntop/internal/csum"
	"github.com/conntop/conntop/internal/flow"
)

// routerConfig is DefaultConfig with the router model, as the kernel oracle
// and the kernel-diff harness are set up.
func routerConfig() Config {
	cfg := DefaultConfig()
	cfg.Router = true
	return cfg
}

// ttl sets the TTL (IPv4) or hop limit (IPv6) of a datagram, fixing the
// IPv4 header checksum.
func ttl(d []byte, v uint8) []byte {
	if d[0]>>4 == 6 {
		d[7] = v
		return d
	}
	d[8] = v
	d[10], d[11] = 0, 0
	binary.BigEndian.PutUint16(d[10:], csum.Checksum(d[:20]))
	return d
}

// TestRouterModel checks the router model against the verdicts Linux 6.18
// gave in the kernel-oracle topology (kerneldiff_route_test.go replays the
// same packets into the kernel): whether a first packet leaves an entry.
func TestRouterModel(t *testing.T) {
	u4 := func(src, dst string, hl uint8) []byte {
		return ttl(ip4(src, dst, flow.ProtoUDP, udpHdr(5353, 5353, []byte("m"))), hl)
	}
	u6 := func(src, dst string, hl uint8) []byte {
		return ip6(src, dst, flow.ProtoUDP, hl, udpHdr(5353, 5353, []byte("m")))
	}
	a, b, a6, b6 := "10.1.0.1", "10.2.0.2", "fd00:1::1", "fd00:2::2"
	for _, tc := range []struct {
		name  string
		data  []byte
		entry bool
	}{
		{"v4-unicast-ttl0", u4(a, b, 0), false},
		{"v4-unicast-ttl1", u4(a, b, 1), false},
		{"v4-unicast-ttl2", u4(a, b, 2), true},
		{"v4-all-hosts-ttl1", u4(a, "224.0.0.1", 1), true},
		{"v4-all-hosts-ttl0", u4(a, "224.0.0.1", 0), true},
		{"v4-all-routers", u4(a, "224.0.0.2", 64), false},
		{"v4-mdns", u4(a, "224.0.0.251", 64), false},
		{"v4-ssdp", u4(a, "239.255.255.250", 64), false},
		{"v4-igmpv3-reports", ip4(a, "224.0.0.22", 2, []byte{0x22, 0, 0, 0, 0, 0, 0, 0}), false},
		{"v4-igmp-query-all-hosts", ip4(a, "224.0.0.1", 2, []byte{0x11, 0, 0, 0, 0, 0, 0, 0}), true},
		{"v4-ping-mdns-group", ip4(a, "224.0.0.251", flow.ProtoICMP, icmpHdr(8, 0, 7, 1, []byte("x"))), false},
		{"v4-subnet-broadcast", u4(a, "10.2.0.255", 64), true},
		{"v4-limited-broadcast-ttl1", u4(a, "255.255.255.255", 1), true},
		{"v4-dhcp-discover", u4("0.0.0.0", "255.255.255.255", 64), true},
		{"v4-zero-to-zero", u4("0.0.0.0", "0.0.0.0", 64), true},
		{"v4-zero-source-unicast", u4("0.0.0.0", b, 64), false},
		{"v4-zero-source-all-hosts", u4("0.0.0.0", "224.0.0.1", 64), true},
		{"v4-zero-source-mdns", u4("0.0.0.0", "224.0.0.251", 64), false},
		{"v4-zeronet-source", u4("0.1.2.3", b, 64), true},
		{"v4-zeronet-destination", u4(a, "0.1.2.3", 64), true},
		{"v4-zero-destination", u4(a, "0.0.0.0", 64), false},
		{"v4-loopback-destination", u4(a, "127.0.0.1", 64), false},
		{"v4-loopback-source", u4("127.0.0.1", b, 64), false},
		{"v4-loopback-source-broadcast", u4("127.0.0.1", "255.255.255.255", 64), false},
		{"v4-multicast-source", u4("224.0.0.5", b, 64), false},
		{"v4-multicast-source-all-hosts", u4("224.0.0.5", "224.0.0.1", 64), false},
		{"v4-broadcast-source", u4("255.255.255.255", b, 64), false},
		{"v4-broadcast-both", u4("255.255.255.255", "255.255.255.255", 64), false},
		{"v4-class-e-destination", u4(a, "240.0.0.1", 64), true},
		{"v4-class-e-source", u4("240.0.0.1", b, 64), true},
		{"v4-link-local", u4("169.254.1.1", "169.254.2.2", 64), true},
		{"v4-255.255.255.254", u4(a, "255.255.255.254", 64), true},
		{"v6-unicast-hl0", u6(a6, b6, 0), false},
		{"v6-unicast-hl1", u6(a6, b6, 1), false},
		{"v6-unicast-hl2", u6(a6, b6, 2), true},
		{"v6-all-nodes-hl0", u6(a6, "ff02::1", 0), true},
		{"v6-all-routers-hl1", u6(a6, "ff02::2", 1), true},
		{"v6-site-all-routers", u6("fe80::1", "ff05::2", 64), true},
		{"v6-interface-local-all-nodes", u6(a6, "ff01::1", 64), false},
		{"v6-reserved-scope", u6(a6, "ff00::1", 64), false},
		{"v6-mdns", u6("fe80::1", "ff02::fb", 64), false},
		{"v6-ssdp-site", u6(a6, "ff05::c", 64), false},
		{"v6-dhcpv6-servers", u6(a6, "ff02::1:2", 64), false},
		{"v6-mldv2-reports", u6(a6, "ff02::16", 64), false},
		{"v6-global-multicast", u6(a6, "ff0e::1", 64), false},
		{"v6-link-local-both", u6("fe80::1", "fe80::2", 64), true},
		{"v6-link-local-both-hl1", u6("fe80::1", "fe80::2", 1), false},
		{"v6-link-local-destination", u6(a6, "fe80::2", 64), true},
		{"v6-link-local-outside-fe80-64", u6(a6, "fe90::1", 64), false},
		{"v6-link-local-source", u6("fe80::1", b6, 64), false},
		{"v6-link-local-source-all-nodes", u6("fe80::1", "ff02::1", 64), true},
		{"v6-unspecified-source", u6("::", b6, 64), false},
		{"v6-unspecified-source-link-local", u6("::", "fe80::2", 64), true},
		{"v6-unspecified-source-all-nodes", u6("::", "ff02::1", 64), true},
		{"v6-unspecified-destination", u6(a6, "::", 64), true},
		{"v6-loopback-source", u6("::1", b6, 64), false},
		{"v6-loopback-destination", u6(a6, "::1", 64), false},
		{"v6-v4-mapped", u6("::ffff:10.1.0.1", "::ffff:10.2.0.2", 64), true},
		{"v6-site-local", u6("fec0::1", "fec0::2", 64), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(routerConfig())
			v := tr.Handle(t0, &Packet{Data: tc.data})
			if got := tr.Len() == 1; got != tc.entry {
				t.Fatalf("entry = %v, want %v (verdict %+v)", got, tc.entry, v)
			}
			if v.Dropped == tc.entry {
				t.Fatalf("verdict %+v: Dropped should be %v", v, !tc.entry)
			}
			if !tc.entry && v.Reason == "" {
				t.Fatalf("verdict %+v: a dropped packet needs a reason", v)
			}
			if evs := tr.AppendEvents(nil); len(evs) != tr.Len() {
				t.Fatalf("%d events for %d entries", len(evs), tr.Len())
			}
			if st := tr.Stats(); st.Invalid != 0 || st.Error != 0 {
				t.Fatalf("stats %+v: routing drops are not invalid", st)
			}
			// The host model keeps an entry for every one of them that
			// reaches conntrack.
			host := New(DefaultConfig())
			host.Handle(t0, &Packet{Data: tc.data})
			if host.Len() != 1 {
				t.Fatalf("host model: %d entries, want 1", host.Len())
			}
		})
	}
}

// TestRouterModelExistingFlow: conntrack runs at PRE_ROUTING, before
// routing, so a packet of an existing entry that routing drops still counts
// and moves the state (the kernel: route-v4-reply-ttl1,
// route-tcp-synack-ttl1, route-v4-orig-ttl1-then-64), but the FTP helper,
// run at confirmation, never sees it (route-ftp-port-ttl1).
func TestRouterModelExistingFlow(t *testing.T) {
	t.Run("udp-reply-ttl1", func(t *testing.T) {
		tr := New(routerConfig())
		tr.Handle(t0, &Packet{Data: ip4(cli, srv, flow.ProtoUDP, udpHdr(5353, 53, []byte("q")))})
		v := tr.Handle(t0, &Packet{Data: ttl(ip4(srv, cli, flow.ProtoUDP, udpHdr(53, 5353, []byte("answer"))), 1)})
		if v.CtInfo != CtEstablished || !v.Reply || !v.Dropped {
			t.Fatalf("verdict %+v, want ESTABLISHED reply, dropped", v)
		}
		f := only(t, tr, t0)
		if f.Status&flow.StatusSeenReply == 0 || f.Counters.ReplyPackets != 1 || f.Counters.ReplyBytes != 34 {
			t.Fatalf("flow %+v: the reply should count and set SEEN_REPLY", f)
		}
	})
	t.Run("udp-orig-ttl1-then-64", func(t *testing.T) {
		tr := New(routerConfig())
		d := ip4(cli, srv, flow.ProtoUDP, udpHdr(5353, 53, []byte("q")))
		tr.Handle(t0, &Packet{Data: ttl(append([]byte(nil), d...), 1)})
		tr.Handle(t0, &Packet{Data: d})
		tr.Handle(t0, &Packet{Data: ttl(append([]byte(nil), d...), 1)})
		if f := only(t, tr, t0); f.Counters.OrigPackets != 2 {
			t.Fatalf("orig packets %d, want 2 (the first packet left no entry)", f.Counters.OrigPackets)
		}
	})
	t.Run("tcp-synack-ttl1", func(t *testing.T) {
		tr := New(routerConfig())
		tr.Handle(t0, &Packet{Data: c2s(1000, 0, thSYN, "")})
		tr.Handle(t0, &Packet{Data: ttl(s2c(5000, 1001, thSYN|thACK, ""), 1)})
		tr.Handle(t0, &Packet{Data: c2s(1001, 5001, thACK, "")})
		if f := only(t, tr, t0); f.TCPState != flow.TCPEstablished || f.Status&flow.StatusAssured == 0 {
			t.Fatalf("flow %+v, want ESTABLISHED, ASSURED", f)
		}
	})
	t.Run("ftp-pasv-reply-ttl1", func(t *testing.T) {
		for _, hl := range []uint8{64, 1} {
			tr := New(routerConfig())
			steps := ftpSession("227 Entering Passive Mode (10,0,0,2,4,1).\r\n")
			for i, st := range steps {
				d := st.data
				if i == len(steps)-1 {
					d = ttl(append([]byte(nil), d...), hl)
				}
				tr.Handle(t0, &Packet{Data: d})
			}
			v := tr.Handle(t0, &Packet{Data: ip4(cli, srv, flow.ProtoTCP, tcpHdr(40001, 1025, 1, 0, fSYN, 1000, nil, nil))})
			if want := map[uint8]CtInfo{64: CtRelated, 1: CtNew}[hl]; v.CtInfo != want {
				t.Fatalf("TTL %d: data connection %v, want %v", hl, v.CtInfo, want)
			}
		}
	})
}
