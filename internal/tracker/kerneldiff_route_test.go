//go:build linux

package tracker

import (
	"encoding/binary"
	"fmt"

	"github.com/conntop/conntop/internal/csum"
	"github.com/conntop/conntop/internal/flow"
)

// withTTL sets the TTL (IPv4) or hop limit (IPv6) of a datagram, fixing
// the IPv4 header checksum.
func withTTL(d []byte, ttl uint8) []byte {
	if d[0]>>4 == 6 {
		d[7] = ttl
		return d
	}
	d[8] = ttl
	d[10], d[11] = 0, 0
	binary.BigEndian.PutUint16(d[10:], csum.Checksum(d[:20]))
	return d
}

// routeScenarios are packets whose fate depends on the router's routing
// decision (forward, deliver locally, or drop before conntrack confirms the
// entry), alone and as part of an existing flow.
func routeScenarios() []scenario {
	var out []scenario
	add := func(name string, dgs ...[]byte) {
		s := scen{name: "route-" + name}
		s.add(dgs...)
		out = append(out, s.done())
	}
	u4 := func(src, dst string, ttl uint8) []byte {
		return withTTL(ip4(src, dst, flow.ProtoUDP, udpHdr(5353, 5353, []byte("m"))), ttl)
	}
	u6 := func(src, dst string, hl uint8) []byte {
		return ip6(src, dst, flow.ProtoUDP, hl, udpHdr(5353, 5353, []byte("m")))
	}
	a, b := "10.1.0.1", "10.2.0.2"
	for _, c := range []struct {
		src, dst string
		ttl      uint8
	}{
		{a, b, 0}, {a, b, 1}, {a, b, 2},
		{a, "224.0.0.1", 1}, {a, "224.0.0.1", 0}, {a, "224.0.0.2", 64}, {a, "224.0.0.22", 64},
		{a, "224.0.1.1", 64}, {a, "239.1.2.3", 64},
		{a, "10.2.0.255", 64}, {a, "255.255.255.255", 1}, {a, "255.255.255.255", 0},
		{"0.0.0.0", "255.255.255.255", 64}, {"0.0.0.0", b, 64}, {"0.0.0.0", "224.0.0.1", 64},
		{"0.1.2.3", b, 64}, {a, "0.1.2.3", 64}, {a, "127.0.0.1", 64}, {"127.0.0.1", b, 64},
		{"224.0.0.5", b, 64}, {"255.255.255.255", b, 64}, {a, "240.0.0.1", 64}, {"240.0.0.1", b, 64},
		{"169.254.1.1", "169.254.2.2", 64}, {a, "255.255.255.254", 64},
		{"0.0.0.0", "0.0.0.0", 64}, {a, "0.0.0.0", 64},
		{"127.0.0.1", "255.255.255.255", 64}, {"127.0.0.1", "224.0.0.1", 64}, {"224.0.0.5", "224.0.0.1", 64},
		{"224.0.0.5", "255.255.255.255", 64}, {"255.255.255.255", "255.255.255.255", 64},
		{"0.0.0.0", "127.0.0.1", 64}, {"0.0.0.0", "224.0.0.251", 64},
	} {
		add(fmt.Sprintf("v4-%s-%s-ttl%d", c.src, c.dst, c.ttl), u4(c.src, c.dst, c.ttl))
	}
	for _, c := range []struct {
		src, dst string
		hl       uint8
	}{
		{"fd00:1::1", "fd00:2::2", 0}, {"fd00:1::1", "fd00:2::2", 1}, {"fd00:1::1", "fd00:2::2", 2},
		{"fd00:1::1", "ff02::1", 1}, {"fd00:1::1", "ff02::1", 0}, {"fd00:1::1", "ff02::2", 64},
		{"fd00:1::1", "ff05::2", 64}, {"fd00:1::1", "ff01::1", 64}, {"fd00:1::1", "ff01::2", 64},
		{"fd00:1::1", "ff02::1:2", 64}, {"fd00:1::1", "ff02::1:ff6b:6f01", 64}, {"fd00:1::1", "ff02::16", 64},
		{"fd00:1::1", "ff0e::1", 64}, {"fd00:1::1", "ff00::1", 64}, {"fd00:1::1", "ff12::1", 64},
		{"fe80::1", "fe80::2", 64}, {"fd00:1::1", "fe80::2", 64}, {"fe80::1", "ff02::1", 64},
		{"fe80::1", "ff02::fb", 64}, {"fe80::1", "fe80::ff:fe6b:6f01", 64}, {"fd00:1::1", "fe80::", 64},
		{"::", "fd00:2::2", 64}, {"::", "ff02::1", 64}, {"::1", "fd00:2::2", 64}, {"fd00:1::1", "::1", 64},
		{"fd00:1::1", "::", 64},
		{"fd00:1::1", "::ffff:10.2.0.2", 64}, {"::ffff:10.1.0.1", "fd00:2::2", 64},
		{"fec0::1", "fec0::2", 64}, {"2001:db8::1", "2001:db8::2", 64},
		{"fe80::1", "fe80::2", 1}, {"fe80::1", "fe90::1", 64}, {"fd00:1::1", "fe90::1", 64}, {"::", "fe80::2", 64},
		{"fe80::1", "ff05::2", 64}, {"fe80::1", "ff02::1", 0}, {"::", "::", 64}, {"::", "ff02::fb", 64},
		{"::1", "ff02::1", 64}, {"fd00:1::1", "ff02::2", 1},
	} {
		add(fmt.Sprintf("v6-%s-%s-hl%d", c.src, c.dst, c.hl), u6(c.src, c.dst, c.hl))
	}
	// An existing flow whose later packets routing drops: still tracked at
	// PRE_ROUTING?
	add("v4-reply-ttl1", u4(a, b, 64), withTTL(ip4(b, a, flow.ProtoUDP, udpHdr(5353, 5353, []byte("back"))), 1))
	add("v4-orig-ttl1-then-64", u4(a, b, 1), u4(a, b, 64), u4(a, b, 1))
	add("v6-reply-hl1", u6("fd00:1::1", "fd00:2::2", 64), ip6("fd00:2::2", "fd00:1::1", flow.ProtoUDP, 1, udpHdr(5353, 5353, []byte("back"))))
	c := newConv(false, 80)
	c.c(thSYN, "")
	c.s(thSYN|thACK, "")
	c.c(thACK, "")
	s := scen{name: "route-tcp-synack-ttl1"}
	for i, sg := range c.segs {
		d := c.build(sg)
		if i == 1 {
			d = withTTL(d, 1)
		}
		s.add(d)
	}
	out = append(out, s.done())
	s = scen{name: "route-tcp-syn-ttl1"}
	for i, sg := range c.segs {
		d := c.build(sg)
		if i == 0 {
			d = withTTL(d, 1)
		}
		s.add(d)
	}
	out = append(out, s.done())
	// The FTP helper runs when the entry is confirmed, after routing: a
	// command in a packet routing drops sets up no expectation, and a data
	// connection whose first packet routing drops uses up none.
	for _, v := range []struct {
		name            string
		cmdTTL, dataTTL uint8
	}{{"ftp-port-ttl1", 1, 64}, {"ftp-data-syn-ttl1", 64, 1}} {
		c := newConv(false, 21)
		c.cport = 50000
		c.c(thSYN, "", optSynFull...)
		c.s(thSYN|thACK, "", optSynFull...)
		c.c(thACK, "")
		c.s(thPSH|thACK, "220 ready\r\n")
		c.c(thPSH|thACK, "PORT 10,1,0,1,156,64\r\n")
		c.s(thPSH|thACK, "200 PORT ok\r\n")
		s := scen{name: "route-" + v.name}
		for i, sg := range c.segs {
			d := c.build(sg)
			if i == 4 {
				d = withTTL(d, v.cmdTTL)
			}
			s.add(d)
		}
		d := newConv(false, 0)
		d.cli, d.srv = c.srv, c.cli
		d.cport, d.sport = 20, 40000
		d.c(thSYN, "")
		d.s(thSYN|thACK, "")
		d.c(thACK, "")
		for i, sg := range d.segs {
			b := d.build(sg)
			if i == 0 {
				b = withTTL(b, v.dataTTL)
			}
			s.add(b)
		}
		s.add(withTTL(d.build(d.segs[0]), 64))
		out = append(out, s.done())
	}
	// ICMP echo to a multicast group and the ICMP error path.
	add("v4-ping-224.0.0.1", ip4(a, "224.0.0.1", flow.ProtoICMP, icmpHdr(8, 0, 7, 1, []byte("x"))))
	add("v4-ping-224.0.0.251", ip4(a, "224.0.0.251", flow.ProtoICMP, icmpHdr(8, 0, 7, 1, []byte("x"))))
	add("v4-igmp-224.0.0.1", ip4(a, "224.0.0.1", 2, []byte{0x11, 0, 0, 0, 0, 0, 0, 0}))
	return out
}
