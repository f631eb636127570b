//go:build linux

package tracker

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/csum"
	"github.com/conntop/conntop/internal/flow"
)

// Scenario builders for the kernel-oracle harness: whole Ethernet frames
// addressed to the router, built from IP datagrams of build_test.go.

// eth wraps an IP datagram in an Ethernet header addressed to the router.
func eth(dg []byte) []byte {
	b := make([]byte, 14+len(dg))
	copy(b[0:], routerMAC[:])
	copy(b[6:], injMAC[:])
	et := uint16(0x0800)
	if len(dg) > 0 && dg[0]>>4 == 6 {
		et = 0x86DD
	}
	binary.BigEndian.PutUint16(b[12:], et)
	copy(b[14:], dg)
	return b
}

// withProto changes the protocol of a datagram built without an L4
// checksum (for headers too short to hold one).
func withProto(d []byte, proto uint8) []byte {
	if d[0]>>4 == 6 {
		d[6] = proto
		return d
	}
	d[9] = proto
	d[10], d[11] = 0, 0
	binary.BigEndian.PutUint16(d[10:], csum.Checksum(d[:20]))
	return d
}

// scenario is a named list of frames.
type scenario struct {
	name   string
	frames []kframe
}

// scen collects frames 1 ms apart.
type scen struct {
	name   string
	frames []kframe
}

func (s *scen) add(dgs ...[]byte) {
	for _, d := range dgs {
		s.frames = append(s.frames, kframe{at: time.Duration(len(s.frames)) * time.Millisecond, data: eth(d)})
	}
}

func (s *scen) done() scenario { return scenario{name: s.name, frames: s.frames} }

// seg is one TCP segment of a conversation, before building.
type seg struct {
	fromCli  bool
	flags    uint8
	seq, ack uint32
	win      uint16
	opts     []byte
	payload  []byte
	badSum   bool
}

// tcpConv builds a TCP conversation with automatic sequence numbers.
type tcpConv struct {
	v6           bool
	cli, srv     string
	cport, sport uint16
	cnext, snext uint32
	cwin, swin   uint16
	segs         []seg
}

func newConv(v6 bool, sport uint16) *tcpConv {
	c := &tcpConv{v6: v6, cli: "10.1.0.1", srv: "10.2.0.2", cport: 40000, sport: sport,
		cnext: 1000, snext: 900000, cwin: 29200, swin: 28960}
	if v6 {
		c.cli, c.srv = "fd00:1::1", "fd00:2::2"
	}
	return c
}

// seqLen is how much sequence space a segment uses.
func seqLen(flags uint8, payload []byte) uint32 {
	n := uint32(len(payload))
	if flags&thSYN != 0 {
		n++
	}
	if flags&thFIN != 0 {
		n++
	}
	return n
}

// c sends from the client with the conversation's current seq/ack.
func (c *tcpConv) c(flags uint8, payload string, opts ...byte) {
	ack := uint32(0)
	if flags&thACK != 0 {
		ack = c.snext
	}
	c.segs = append(c.segs, seg{fromCli: true, flags: flags, seq: c.cnext, ack: ack, win: c.cwin, opts: opts, payload: []byte(payload)})
	c.cnext += seqLen(flags, []byte(payload))
}

// s sends from the server.
func (c *tcpConv) s(flags uint8, payload string, opts ...byte) {
	ack := uint32(0)
	if flags&thACK != 0 {
		ack = c.cnext
	}
	c.segs = append(c.segs, seg{flags: flags, seq: c.snext, ack: ack, win: c.swin, opts: opts, payload: []byte(payload)})
	c.snext += seqLen(flags, []byte(payload))
}

// raw appends a segment as given.
func (c *tcpConv) raw(sg seg) { c.segs = append(c.segs, sg) }

// again repeats the segment i positions from the end (1 = last).
func (c *tcpConv) again(i int) { c.segs = append(c.segs, c.segs[len(c.segs)-i]) }

// build turns a segment into an IP datagram.
func (c *tcpConv) build(sg seg) []byte {
	src, dst, sp, dp := c.srv, c.cli, c.sport, c.cport
	if sg.fromCli {
		src, dst, sp, dp = c.cli, c.srv, c.cport, c.sport
	}
	opts := sg.opts
	for len(opts)%4 != 0 {
		opts = append(opts[:len(opts):len(opts)], 1) // NOP padding
	}
	h := tcpHdr(sp, dp, sg.seq, sg.ack, sg.flags, sg.win, opts, sg.payload)
	var d []byte
	if c.v6 {
		d = ip6(src, dst, flow.ProtoTCP, 64, h)
	} else {
		d = ip4(src, dst, flow.ProtoTCP, h)
	}
	if sg.badSum {
		d = corrupt(d)
	}
	return d
}

func (c *tcpConv) scenario(name string) scenario {
	s := scen{name: name}
	for _, sg := range c.segs {
		s.add(c.build(sg))
	}
	return s.done()
}

// TCP option bytes.
var (
	optMSS     = []byte{2, 4, 0x05, 0xb4}
	optSACKOK  = []byte{4, 2}
	optWS7     = []byte{3, 3, 7}
	optSynFull = append(append(append([]byte{}, optMSS...), optSACKOK...), append([]byte{1}, optWS7...)...)
)

func sackBlock(l, r uint32) []byte {
	b := []byte{1, 1, 5, 10, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], l)
	binary.BigEndian.PutUint32(b[8:], r)
	return b
}

// lifecycle is a complete connection with data both ways and a FIN close.
func lifecycle(v6 bool, opts bool) *tcpConv {
	c := newConv(v6, 80)
	if opts {
		c.c(thSYN, "", optSynFull...)
		c.s(thSYN|thACK, "", optSynFull...)
	} else {
		c.c(thSYN, "")
		c.s(thSYN|thACK, "")
	}
	c.c(thACK, "")
	c.c(thPSH|thACK, "GET / HTTP/1.0\r\n\r\n")
	c.s(thACK, "")
	c.s(thPSH|thACK, "HTTP/1.0 200 OK\r\n\r\nhello")
	c.c(thACK, "")
	c.c(thFIN|thACK, "")
	c.s(thACK, "")
	c.s(thFIN|thACK, "")
	c.c(thACK, "")
	return c
}

// established is a connection after its handshake.
func established(v6 bool) *tcpConv {
	c := newConv(v6, 80)
	c.c(thSYN, "", optSynFull...)
	c.s(thSYN|thACK, "", optSynFull...)
	c.c(thACK, "")
	return c
}

func tcpScenarios() []scenario {
	var out []scenario
	for _, v6 := range []bool{false, true} {
		fam := "v4"
		if v6 {
			fam = "v6"
		}
		add := func(name string, c *tcpConv) { out = append(out, c.scenario("tcp-"+fam+"-"+name)) }

		add("lifecycle", lifecycle(v6, true))
		add("lifecycle-noopts", lifecycle(v6, false))

		c := established(v6)
		c.c(thPSH|thACK, "data")
		for range 5 {
			c.again(1)
		}
		add("retransmit-data", c)

		c = established(v6)
		c.c(thPSH|thACK, "first")
		c.c(thPSH|thACK, "second")
		c.segs[len(c.segs)-1], c.segs[len(c.segs)-2] = c.segs[len(c.segs)-2], c.segs[len(c.segs)-1]
		c.s(thACK, "")
		add("out-of-order", c)

		c = established(v6)
		c.swin = 0
		c.s(thACK, "")
		c.c(thPSH|thACK, "x")
		c.cnext-- // probe retransmitted
		c.c(thPSH|thACK, "x")
		c.swin = 1000
		c.s(thACK, "")
		add("zero-window", c)

		c = established(v6)
		big := string(make([]byte, 1400))
		for range 40 {
			c.c(thACK, big)
		}
		c.s(thACK, "")
		add("window-scaling", c)

		c = newConv(v6, 80) // no scaling offered by the server: windows unscaled
		c.c(thSYN, "", optSynFull...)
		c.s(thSYN|thACK, "", optMSS...)
		c.c(thACK, "")
		for range 40 {
			c.c(thACK, big)
		}
		add("window-no-scaling", c)

		c = established(v6)
		c.c(thPSH|thACK, "aaaa")
		c.c(thPSH|thACK, "bbbb")
		c.raw(seg{flags: thACK, seq: c.snext, ack: c.cnext - 8, win: c.swin, opts: sackBlock(c.cnext-4, c.cnext)})
		c.s(thACK, "")
		add("sack", c)

		c = established(v6)
		c.c(thPSH|thACK, "hi")
		c.s(thRST, "")
		add("rst-in-window", c)

		c = established(v6)
		c.raw(seg{flags: thRST, seq: c.snext + 10_000_000, win: 0})
		c.c(thPSH|thACK, "after")
		add("rst-out-of-window", c)

		c = established(v6)
		c.raw(seg{flags: thRST, seq: c.snext + 100, win: 0})
		add("rst-inexact", c)

		c = newConv(v6, 80)
		c.c(thSYN, "")
		c.raw(seg{flags: thRST | thACK, seq: 0, ack: 0})
		add("rstack-ack0-after-syn", c)

		c = newConv(v6, 80)
		c.c(thSYN, "")
		c.raw(seg{flags: thRST | thACK, seq: 0, ack: c.cnext})
		add("rstack-after-syn", c)

		c = established(v6)
		c.c(thPSH|thACK, "abc")
		c.s(thACK, "")
		c.raw(seg{fromCli: true, flags: thRST, seq: c.cnext - 3})
		add("rst-below-maxack", c)

		c = newConv(v6, 80)
		c.c(thSYN, "")
		c.again(1)
		c.again(1)
		c.s(thSYN|thACK, "")
		c.c(thACK, "")
		add("syn-retransmit", c)

		c = lifecycle(v6, false)
		c.cnext += 100000
		c.c(thSYN, "")
		c.s(thSYN|thACK, "")
		c.c(thACK, "")
		add("syn-to-time-wait", c)

		c = lifecycle(v6, false)
		c.cnext -= 100000
		c.c(thSYN, "")
		add("syn-to-time-wait-lower-seq", c)

		c = newConv(v6, 80)
		c.c(thSYN, "")
		c.s(thSYN, "")
		c.c(thSYN|thACK, "")
		c.s(thSYN|thACK, "")
		c.c(thACK, "")
		add("simultaneous-open", c)

		c = newConv(v6, 80)
		c.c(thACK, "mid-stream")
		c.s(thACK, "")
		c.c(thPSH|thACK, "more")
		c.s(thPSH|thACK, "reply")
		add("pickup", c)

		c = newConv(v6, 80)
		c.s(thPSH|thACK, "server-first")
		c.c(thACK, "")
		add("pickup-reply-first", c)

		c = established(v6)
		c.c(thFIN|thACK, "")
		c.cnext--
		c.c(thFIN|thACK, "")
		c.s(thFIN|thACK, "")
		c.c(thACK, "")
		add("fin-retransmit", c)

		c = established(v6)
		c.raw(seg{fromCli: true, flags: thSYN, seq: c.cnext + 5000, win: 1000})
		c.raw(seg{flags: thACK, seq: c.snext, ack: c.cnext, win: c.swin})
		c.c(thRST, "")
		c.raw(seg{fromCli: true, flags: thSYN, seq: c.cnext + 7000, win: 1000})
		add("challenge-ack", c)

		for _, fl := range []struct {
			name  string
			flags uint8
		}{
			{"syn-fin", thSYN | thFIN}, {"syn-rst", thSYN | thRST}, {"null", 0}, {"fin-only", thFIN},
			{"xmas", 0xFF}, {"fin-psh-urg", thFIN | thPSH | thURG}, {"syn-ece-cwr", thSYN | thECE | thCWR},
			{"psh-only", thPSH}, {"urg-ack", thURG | thACK},
		} {
			c = newConv(v6, 80)
			c.c(fl.flags, "")
			add("new-flags-"+fl.name, c)
			c = established(v6)
			c.c(fl.flags, "")
			add("est-flags-"+fl.name, c)
		}

		c = established(v6)
		c.raw(seg{fromCli: true, flags: thPSH | thACK, seq: c.cnext, ack: c.snext, win: 100, payload: []byte("x"), badSum: true})
		add("bad-checksum", c)

		c = newConv(v6, 80)
		c.raw(seg{fromCli: true, flags: thSYN, seq: 1, win: 100, badSum: true})
		add("bad-checksum-syn", c)

		c = established(v6)
		c.c(thPSH|thACK, "a")
		c.raw(seg{fromCli: true, flags: thPSH | thACK, seq: c.cnext + 3_000_000_000, ack: c.snext, win: 100, payload: []byte("far")})
		c.raw(seg{fromCli: true, flags: thACK, seq: c.cnext, ack: c.snext + 3_000_000, win: 100})
		c.raw(seg{fromCli: true, flags: thACK, seq: c.cnext, ack: c.snext - 3_000_000, win: 100})
		add("far-out-of-window", c)
	}
	return out
}

// tcpMalformed builds TCP segments with broken headers.
func tcpMalformed() []scenario {
	var out []scenario
	mk := func(name string, mut func(h []byte) []byte) {
		s := scen{name: "tcp-malformed-" + name}
		h := tcpHdr(40000, 80, 1, 0, thSYN, 1000, nil, []byte("payload!"))
		h = mut(h)
		d := ip4("10.1.0.1", "10.2.0.2", flow.ProtoTCP, h)
		s.add(d)
		out = append(out, s.done())
	}
	s := scen{name: "tcp-malformed-short-header"}
	s.add(withProto(ip4("10.1.0.1", "10.2.0.2", 253, tcpHdr(40000, 80, 1, 0, thSYN, 1000, nil, nil)[:12]), flow.ProtoTCP))
	out = append(out, s.done())
	mk("doff-small", func(h []byte) []byte { h[12] = 4 << 4; return h })
	mk("doff-beyond", func(h []byte) []byte { h[12] = 15 << 4; return h })
	mk("doff-6-bad-option", func(h []byte) []byte { h[12] = 6 << 4; h[20] = 2; h[21] = 40; return h })
	return out
}

func udpScenarios() []scenario {
	var out []scenario
	for _, v6 := range []bool{false, true} {
		a, b := "10.1.0.1", "10.2.0.2"
		ip := func(src, dst string, proto uint8, l4 []byte) []byte { return ip4(src, dst, proto, l4) }
		fam := "v4"
		if v6 {
			a, b, fam = "fd00:1::1", "fd00:2::2", "v6"
			ip = func(src, dst string, proto uint8, l4 []byte) []byte { return ip6(src, dst, proto, 64, l4) }
		}
		s := scen{name: "udp-" + fam + "-oneway"}
		s.add(ip(a, b, flow.ProtoUDP, udpHdr(5353, 53, []byte("q"))), ip(a, b, flow.ProtoUDP, udpHdr(5353, 53, []byte("q2"))))
		out = append(out, s.done())
		s = scen{name: "udp-" + fam + "-reply"}
		s.add(ip(a, b, flow.ProtoUDP, udpHdr(5353, 53, []byte("q"))), ip(b, a, flow.ProtoUDP, udpHdr(53, 5353, []byte("answer"))),
			ip(a, b, flow.ProtoUDP, udpHdr(5353, 53, []byte("q"))))
		out = append(out, s.done())
		s = scen{name: "udp-" + fam + "-zero-checksum"}
		d := ip(a, b, flow.ProtoUDP, udpHdr(1000, 2000, []byte("zero")))
		l4 := 20
		if v6 {
			l4 = 40
		}
		d[l4+6], d[l4+7] = 0, 0
		s.add(d)
		out = append(out, s.done())
		s = scen{name: "udp-" + fam + "-bad-checksum"}
		s.add(corrupt(ip(a, b, flow.ProtoUDP, udpHdr(1000, 2001, []byte("bad")))))
		out = append(out, s.done())
		for _, ln := range []uint16{4, 7, 9, 200} {
			s = scen{name: fmt.Sprintf("udp-%s-length-%d", fam, ln)}
			h := udpHdr(1000, 2002, []byte("0123456789"))
			binary.BigEndian.PutUint16(h[4:], ln)
			s.add(ip(a, b, flow.ProtoUDP, h))
			out = append(out, s.done())
		}
		s = scen{name: "udp-" + fam + "-short-header"}
		s.add(withProto(ip(a, b, 253, []byte{1, 2, 3, 4, 5}), flow.ProtoUDP))
		out = append(out, s.done())
	}
	return out
}

// icmpErr builds an ICMP (v4) error of type/code quoting q (at most 28+
// bytes of it).
func icmpErr(typ, code uint8, q []byte, max int) []byte {
	if len(q) > max {
		q = q[:max]
	}
	return icmpHdr(typ, code, 0, 0, q)
}

func icmpScenarios() []scenario {
	var out []scenario
	a, b, r := "10.1.0.1", "10.2.0.2", "10.3.0.3"
	add := func(name string, dgs ...[]byte) {
		s := scen{name: "icmp-" + name}
		s.add(dgs...)
		out = append(out, s.done())
	}
	echo := func(src, dst string, typ uint8, id uint16) []byte {
		return ip4(src, dst, flow.ProtoICMP, icmpHdr(typ, 0, id, 1, []byte("pingpong")))
	}
	add("echo", echo(a, b, 8, 7), echo(b, a, 0, 7), echo(a, b, 8, 7))
	add("echo-unreplied", echo(a, b, 8, 7))
	add("unsolicited-reply", echo(b, a, 0, 9))
	add("timestamp", ip4(a, b, flow.ProtoICMP, icmpHdr(13, 0, 3, 1, make([]byte, 12))), ip4(b, a, flow.ProtoICMP, icmpHdr(14, 0, 3, 1, make([]byte, 12))))
	add("info", ip4(a, b, flow.ProtoICMP, icmpHdr(15, 0, 4, 1, nil)), ip4(b, a, flow.ProtoICMP, icmpHdr(16, 0, 4, 1, nil)))
	add("addrmask", ip4(a, b, flow.ProtoICMP, icmpHdr(17, 0, 5, 1, make([]byte, 4))), ip4(b, a, flow.ProtoICMP, icmpHdr(18, 0, 5, 1, make([]byte, 4))))
	add("router-advert", ip4(a, b, flow.ProtoICMP, icmpHdr(9, 0, 0, 0, make([]byte, 8))))
	add("type-99", ip4(a, b, flow.ProtoICMP, icmpHdr(99, 0, 0, 0, nil)))
	add("echo-bad-checksum", corrupt(echo(a, b, 8, 7)))
	add("echo-short", ip4(a, b, flow.ProtoICMP, []byte{8, 0, 0, 0}))

	udpOut := ip4(a, b, flow.ProtoUDP, udpHdr(5000, 53, []byte("query")))
	udpBack := ip4(b, a, flow.ProtoUDP, udpHdr(53, 5000, []byte("answer")))
	tcpSyn := ip4(a, b, flow.ProtoTCP, tcpHdr(40000, 80, 1000, 0, thSYN, 1000, nil, nil))
	pingOut := echo(a, b, 8, 7)
	for _, e := range []struct {
		name      string
		first     [][]byte
		src, dst  string
		quote     []byte
		typ, code uint8
	}{
		{"udp-port-unreach", [][]byte{udpOut}, b, a, udpOut, 3, 3},
		{"udp-unreach-from-router", [][]byte{udpOut}, r, a, udpOut, 3, 1},
		{"udp-unreach-reply-dir", [][]byte{udpOut, udpBack}, a, b, udpBack, 3, 3},
		{"udp-unreach-wrong-dst", [][]byte{udpOut}, b, r, udpOut, 3, 3},
		{"udp-unreach-no-flow", nil, b, a, udpOut, 3, 3},
		{"tcp-unreach", [][]byte{tcpSyn}, r, a, tcpSyn, 3, 4},
		{"tcp-time-exceeded", [][]byte{tcpSyn}, r, a, tcpSyn, 11, 0},
		{"icmp-quoting-echo", [][]byte{pingOut}, r, a, pingOut, 3, 1},
		{"quote-nothing", [][]byte{udpOut}, b, a, nil, 3, 3},
		{"quote-short", [][]byte{udpOut}, b, a, udpOut[:22], 3, 3},
		{"param-problem", [][]byte{udpOut}, r, a, udpOut, 12, 0},
		{"redirect", [][]byte{udpOut}, r, a, udpOut, 5, 1},
		{"source-quench", [][]byte{udpOut}, r, a, udpOut, 4, 0},
	} {
		dgs := append([][]byte{}, e.first...)
		dgs = append(dgs, ip4(e.src, e.dst, flow.ProtoICMP, icmpErr(e.typ, e.code, e.quote, 28)))
		add("err-"+e.name, dgs...)
		if len(e.quote) > 28 {
			dgs = append([][]byte{}, e.first...)
			dgs = append(dgs, ip4(e.src, e.dst, flow.ProtoICMP, icmpErr(e.typ, e.code, e.quote, 1000)))
			add("err-full-"+e.name, dgs...)
		}
	}

	// ICMPv6.
	a6, b6, r6 := "fd00:1::1", "fd00:2::2", "fd00:3::3"
	echo6 := func(src, dst string, typ uint8, id uint16) []byte {
		return ip6(src, dst, flow.ProtoICMPv6, 64, icmpHdr(typ, 0, id, 1, []byte("pingpong")))
	}
	add("v6-echo", echo6(a6, b6, 128, 7), echo6(b6, a6, 129, 7))
	add("v6-unsolicited-reply", echo6(b6, a6, 129, 7))
	add("v6-echo-bad-checksum", corrupt(echo6(a6, b6, 128, 7)))
	add("v6-ns", ip6(a6, "ff02::1:ff00:2", flow.ProtoICMPv6, 255, icmpHdr(135, 0, 0, 0, make([]byte, 16))))
	add("v6-na", ip6(b6, a6, flow.ProtoICMPv6, 255, icmpHdr(136, 0, 0x6000, 0, make([]byte, 16))))
	add("v6-rs", ip6(a6, "ff02::2", flow.ProtoICMPv6, 255, icmpHdr(133, 0, 0, 0, nil)))
	add("v6-mld-report", ip6(a6, "ff02::16", flow.ProtoICMPv6, 1, icmpHdr(143, 0, 0, 1, make([]byte, 20))))
	add("v6-mld-query", ip6(a6, "ff02::1", flow.ProtoICMPv6, 1, icmpHdr(130, 0, 0, 0, make([]byte, 16))))
	add("v6-type-200", ip6(a6, b6, flow.ProtoICMPv6, 64, icmpHdr(200, 0, 0, 0, nil)))
	add("v6-node-info", ip6(a6, b6, flow.ProtoICMPv6, 64, icmpHdr(139, 0, 3, 0, make([]byte, 8))),
		ip6(b6, a6, flow.ProtoICMPv6, 64, icmpHdr(140, 0, 3, 0, make([]byte, 8))))
	udp6 := ip6(a6, b6, flow.ProtoUDP, 64, udpHdr(5000, 53, []byte("query")))
	for _, e := range []struct {
		name      string
		first     [][]byte
		src, dst  string
		quote     []byte
		typ, code uint8
	}{
		{"udp-unreach", [][]byte{udp6}, b6, a6, udp6, 1, 4},
		{"udp-unreach-router", [][]byte{udp6}, r6, a6, udp6, 1, 0},
		{"too-big", [][]byte{udp6}, r6, a6, udp6, 2, 0},
		{"time-exceeded", [][]byte{udp6}, r6, a6, udp6, 3, 0},
		{"no-flow", nil, b6, a6, udp6, 1, 4},
		{"wrong-dst", [][]byte{udp6}, b6, r6, udp6, 1, 4},
		{"quote-nothing", [][]byte{udp6}, b6, a6, nil, 1, 4},
	} {
		dgs := append([][]byte{}, e.first...)
		dgs = append(dgs, ip6(e.src, e.dst, flow.ProtoICMPv6, 64, icmpErr(e.typ, e.code, e.quote, 1000)))
		add("v6-err-"+e.name, dgs...)
	}
	return out
}

func ftpScenarios() []scenario {
	var out []scenario
	for _, mode := range []struct {
		name   string
		v6     bool
		cmd    string // client command
		reply  string // server reply
		active bool   // the data connection comes from the server
		port   uint16
	}{
		{"port", false, "PORT 10,1,0,1,156,64\r\n", "200 PORT ok\r\n", true, 40000},
		{"pasv", false, "PASV\r\n", "227 Entering Passive Mode (10,2,0,2,117,48).\r\n", false, 30000},
		{"eprt", false, "EPRT |1|10.1.0.1|40000|\r\n", "200 EPRT ok\r\n", true, 40000},
		{"epsv", false, "EPSV\r\n", "229 Entering Extended Passive Mode (|||30000|)\r\n", false, 30000},
		{"eprt-v6", true, "EPRT |2|fd00:1::1|40000|\r\n", "200 EPRT ok\r\n", true, 40000},
		{"epsv-v6", true, "EPSV\r\n", "229 Entering Extended Passive Mode (|||30000|)\r\n", false, 30000},
		{"port-other-addr", false, "PORT 10,9,9,9,156,64\r\n", "200 PORT ok\r\n", true, 40000},
	} {
		c := newConv(mode.v6, 21)
		c.cport = 50000
		c.c(thSYN, "", optSynFull...)
		c.s(thSYN|thACK, "", optSynFull...)
		c.c(thACK, "")
		c.s(thPSH|thACK, "220 ready\r\n")
		c.c(thPSH|thACK, "USER a\r\n")
		c.s(thPSH|thACK, "331 pw\r\n")
		c.c(thPSH|thACK, mode.cmd)
		c.s(thPSH|thACK, mode.reply)
		s := scen{name: "ftp-" + mode.name}
		for _, sg := range c.segs {
			s.add(c.build(sg))
		}
		d := newConv(mode.v6, 0)
		if mode.active {
			d.cli, d.srv = c.srv, c.cli
			d.cport, d.sport = 20, mode.port
		} else {
			d.cport, d.sport = 50001, mode.port
		}
		d.c(thSYN, "")
		d.s(thSYN|thACK, "")
		d.c(thACK, "")
		d.c(thPSH|thACK, "file data")
		for _, sg := range d.segs {
			s.add(d.build(sg))
		}
		out = append(out, s.done())
	}
	return out
}

func genericScenarios() []scenario {
	var out []scenario
	a, b := "10.1.0.1", "10.2.0.2"
	add := func(name string, dgs ...[]byte) {
		s := scen{name: "proto-" + name}
		s.add(dgs...)
		out = append(out, s.done())
	}
	gre := []byte{0, 0, 0x08, 0x00, 0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}
	add("gre", ip4(a, b, 47, gre), ip4(b, a, 47, gre))
	grev1 := []byte{0x30, 0x01, 0x88, 0x0b, 0, 4, 0, 7, 0, 0, 0, 1, 1, 2, 3, 4}
	add("gre-v1", ip4(a, b, 47, grev1))
	add("gre-v1-not-ppp", ip4(a, b, 47, []byte{0x30, 0x01, 0x08, 0x00, 0, 4, 0, 7, 0, 0, 0, 1, 1, 2, 3, 4}))
	add("v6-empty-proto-253", ip6("fd00:1::1", "fd00:2::2", 253, 64, nil))
	sctpInit := make([]byte, 32)
	binary.BigEndian.PutUint16(sctpInit[0:], 5000)
	binary.BigEndian.PutUint16(sctpInit[2:], 38412)
	sctpInit[12] = 1 // INIT
	binary.BigEndian.PutUint16(sctpInit[14:], 20)
	add("sctp-init", ip4(a, b, 132, sctpInit))
	dccp := make([]byte, 24)
	binary.BigEndian.PutUint16(dccp[0:], 5000)
	binary.BigEndian.PutUint16(dccp[2:], 5001)
	dccp[4] = 6
	dccp[8] = 0<<1 | 1 // type REQUEST, X=1
	add("dccp-request", ip4(a, b, 33, dccp))
	ul := udpHdr(6000, 6001, []byte("lite"))
	add("udplite", ip4(a, b, 136, ul), ip4(b, a, 136, udpHdr(6001, 6000, []byte("back"))))
	add("proto-253", ip4(a, b, 253, []byte("experimental")), ip4(b, a, 253, []byte("x")))
	add("v6-proto-253", ip6("fd00:1::1", "fd00:2::2", 253, 64, []byte("experimental")))
	add("v6-no-next", ip6("fd00:1::1", "fd00:2::2", 59, 64, nil))
	// Destinations the router does not forward: whether the entry is
	// confirmed depends on routing, not conntrack.
	for _, d := range []string{"224.0.0.251", "239.255.255.250", "224.0.0.1", "255.255.255.255"} {
		add("route-udp-to-"+d, ip4(a, d, flow.ProtoUDP, udpHdr(5353, 5353, []byte("m"))))
	}
	for _, d := range []string{"ff02::fb", "ff02::1", "ff05::c"} {
		add("route-udp-to-"+d, ip6("fd00:1::1", d, flow.ProtoUDP, 64, udpHdr(5353, 5353, []byte("m"))))
	}
	add("route-udp-from-fe80", ip6("fe80::1", "fd00:2::2", flow.ProtoUDP, 64, udpHdr(546, 547, []byte("m"))))
	ttl1 := ip4(a, b, flow.ProtoUDP, udpHdr(33434, 33434, []byte("trace")))
	ttl1[8] = 1
	ttl1[10], ttl1[11] = 0, 0
	binary.BigEndian.PutUint16(ttl1[10:], csum.Checksum(ttl1[:20]))
	add("route-udp-ttl1", ttl1)
	add("route-udp-hoplimit1", ip6("fd00:1::1", "fd00:2::2", flow.ProtoUDP, 1, udpHdr(33434, 33434, []byte("trace"))))
	add("igmp", ip4(a, "224.0.0.22", 2, []byte{0x22, 0, 0, 0, 0, 0, 0, 0}))
	return out
}

// randomScenarios mutates valid conversations with a seeded RNG.
func randomScenarios(seed uint64, n int) []scenario {
	rng := rand.New(rand.NewPCG(seed, 0x6b64))
	var out []scenario
	for i := range n {
		v6 := rng.IntN(4) == 0
		c := lifecycle(v6, rng.IntN(2) == 0)
		var segs []seg
		for _, sg := range c.segs {
			switch rng.IntN(12) {
			case 0: // drop
				continue
			case 1: // duplicate
				segs = append(segs, sg)
			case 2:
				sg.flags = uint8(rng.Uint32())
			case 3:
				sg.seq += uint32(rng.IntN(200000)) - 100000
			case 4:
				sg.ack += uint32(rng.IntN(200000)) - 100000
			case 5:
				sg.win = uint16(rng.Uint32())
			case 6:
				sg.flags ^= 1 << rng.IntN(8)
			case 7:
				sg.seq = rng.Uint32()
			case 8: // swap with the previous
				if len(segs) > 0 {
					segs[len(segs)-1], sg = sg, segs[len(segs)-1]
				}
			}
			segs = append(segs, sg)
		}
		c.segs = segs
		out = append(out, c.scenario(fmt.Sprintf("random-%d-%d", seed, i)))
	}
	return out
}

// allScenarios is the fixed representative set.
func allScenarios() []scenario {
	var out []scenario
	out = append(out, tcpScenarios()...)
	out = append(out, tcpMalformed()...)
	out = append(out, udpScenarios()...)
	out = append(out, icmpScenarios()...)
	out = append(out, fragScenarios()...)
	out = append(out, ftpScenarios()...)
	out = append(out, genericScenarios()...)
	out = append(out, routeScenarios()...)
	out = append(out, sctpScenarios()...)
	out = append(out, udpliteScenarios()...)
	return out
}

// knownDivergence lists scenarios where the tracker is known to differ from
// this kernel, and why; they still run and their differences are logged.
var knownDivergence = map[string]string{
	// The router's link-local address comes from its MAC, which the
	// tracker does not know.
	"route-v6-fd00:1::1-ff02::1:ff6b:6f01-hl64": "the router model does not know the router's own solicited-node group",
}

// TestKernelDiffScenarios replays generated scenarios into the kernel and
// the tracker and compares. CONNTOP_KERNELDIFF_N sets the number of random
// conversations (default 40); CONNTOP_KERNELDIFF_SEED their seed;
// CONNTOP_KERNELDIFF_ONLY runs only the scenarios whose name contains it
// and logs the kernel's verdict on each.
func TestKernelDiffScenarios(t *testing.T) {
	lab := newKernelLab(t)
	n := 40
	if v := os.Getenv("CONNTOP_KERNELDIFF_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			t.Fatalf("CONNTOP_KERNELDIFF_N=%q: want a count", v)
		}
	}
	seed := uint64(1)
	if v := os.Getenv("CONNTOP_KERNELDIFF_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("CONNTOP_KERNELDIFF_SEED=%q: want a number", v)
		}
	}
	scens := append(allScenarios(), randomScenarios(seed, n)...)
	only := os.Getenv("CONNTOP_KERNELDIFF_ONLY")
	failed := 0
	for _, sc := range scens {
		if only != "" && !strings.Contains(sc.name, only) {
			continue
		}
		diff, kern, err := lab.compare(sc.frames, 0)
		if err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		if only != "" {
			t.Logf("%s: kernel invalid %d, entries %q", sc.name, kern.invalid, kern.lines)
		}
		if diff != "" && knownDivergence[sc.name] != "" {
			t.Logf("%s: known divergence (%s):\n%s", sc.name, knownDivergence[sc.name], diff)
			continue
		}
		if diff != "" {
			failed++
			if failed <= 30 {
				t.Errorf("%s: tracker differs from the kernel:\n%s", sc.name, diff)
			}
		}
	}
	t.Logf("%d scenarios (%d random, seed %d), %d differ", len(scens), n, seed, failed)
}
