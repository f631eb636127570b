package tracker

import (
	"encoding/binary"

	"github.com/conntop/conntop/internal/flow"
)

// headerCut reports whether the capture ends inside the L4 header the
// protocol handler needs although the datagram holds it on the wire.
func headerCut(p *pkt) bool {
	need := 0
	switch p.proto {
	case flow.ProtoTCP:
		if ok, cut := p.have(13); !ok {
			return cut
		}
		need = int(p.l4Data()[12]>>4) * 4
		if need < 20 {
			need = 20
		}
	case flow.ProtoUDP, flow.ProtoUDPLite, flow.ProtoICMP, flow.ProtoICMPv6:
		need = 8
	case flow.ProtoSCTP:
		return sctpCut(p)
	default:
		return false
	}
	_, cut := p.have(need)
	return cut
}

// l4Packet runs the protocol handler for a packet of entry c.
func (t *Tracker) l4Packet(c *conn, p *pkt, reply bool) l4Result {
	switch c.key.Proto {
	case flow.ProtoTCP:
		return t.tcpPacket(c, p, reply)
	case flow.ProtoUDP, flow.ProtoUDPLite:
		return t.udpPacket(c, p, reply)
	case flow.ProtoSCTP:
		return t.sctpPacket(c, p, reply)
	case flow.ProtoICMP:
		if p.family != flow.FamilyIPv4 {
			return l4Result{kind: resInvalid, reason: reasonICMPNew}
		}
		switch c.key.Orig.Type {
		case 8, 13, 15, 17: // echo, timestamp, info, address mask requests
		default:
			return l4Result{kind: resInvalid, reason: reasonICMPNew}
		}
		t.refresh(c, p, reply, int64(t.to.ICMP))
		return l4Result{kind: resAccept}
	case flow.ProtoICMPv6:
		if p.family != flow.FamilyIPv6 {
			return l4Result{kind: resInvalid, reason: reasonICMPv6New}
		}
		if !c.confirmed && c.key.Orig.Type != 128 && c.key.Orig.Type != 139 {
			return l4Result{kind: resInvalid, reason: reasonICMPv6New}
		}
		t.refresh(c, p, reply, int64(t.to.ICMPv6))
		return l4Result{kind: resAccept}
	case flow.ProtoGRE:
		if c.status&flow.StatusSeenReply != 0 {
			t.refresh(c, p, reply, int64(t.to.GREStream))
			if c.status&flow.StatusAssured == 0 {
				t.setAssured(c)
				return l4Result{kind: resAccept, changed: true}
			}
			return l4Result{kind: resAccept}
		}
		t.refresh(c, p, reply, int64(t.to.GRE))
		return l4Result{kind: resAccept}
	}
	t.refresh(c, p, reply, int64(t.to.Generic))
	return l4Result{kind: resAccept}
}

// udpPacket is nf_conntrack_udp_packet (with udp_error).
func (t *Tracker) udpPacket(c *conn, p *pkt, reply bool) l4Result {
	if ok, _ := p.have(8); !ok {
		return l4Result{kind: resInvalid, reason: reasonUDPShort}
	}
	b := p.l4Data()
	ulen := int(binary.BigEndian.Uint16(b[4:]))
	if p.proto == flow.ProtoUDP {
		if ulen > p.l4Len() || ulen < 8 {
			return l4Result{kind: resInvalid, reason: reasonUDPLength}
		}
		if binary.BigEndian.Uint16(b[6:]) != 0 && !p.csumOK && !l4ChecksumOK(p, true) {
			return l4Result{kind: resInvalid, reason: reasonUDPChecksum}
		}
	} else if r := udpliteError(p, ulen); r != "" {
		return l4Result{kind: resInvalid, reason: r}
	}
	if !c.confirmed {
		c.udpStreamTS = t.nowNS + 2e9
	}
	if c.status&flow.StatusSeenReply != 0 {
		extra := int64(t.to.UDP)
		stream := false
		if t.nowNS-c.udpStreamTS > 0 {
			extra = int64(t.to.UDPStream)
			stream = c.status&flow.StatusAssured == 0
		}
		t.refresh(c, p, reply, extra)
		if stream {
			t.setAssured(c)
			return l4Result{kind: resAccept, changed: true}
		}
		return l4Result{kind: resAccept}
	}
	t.refresh(c, p, reply, int64(t.to.UDP))
	return l4Result{kind: resAccept}
}

// icmpError runs the ICMP/ICMPv6 error handler
// (nf_conntrack_icmpv4_error, nf_conntrack_icmpv6_error). done says the
// packet is fully handled (RELATED, UNTRACKED or rejected); otherwise it is
// a query message tracked like any other packet.
func (t *Tracker) icmpError(p *pkt) (Verdict, bool) {
	if ok, cut := p.have(8); !ok {
		if cut {
			return t.dropped(reasonTruncatedCapture), true
		}
		return t.icmpFailure(nil, reasonICMPShort), true
	}
	b := p.l4Data()
	typ := b[0]
	if p.family == flow.FamilyIPv4 {
		if !p.csumOK && !l4ChecksumOK(p, false) {
			return t.icmpFailure(nil, reasonICMPChecksum), true
		}
		if typ > 18 {
			return t.icmpFailure(nil, reasonICMPType), true
		}
		switch typ {
		case 3, 4, 5, 11, 12: // icmp_is_err
		default:
			return Verdict{}, false
		}
		return t.inetError(p, p.l4+8), true
	}
	if !p.csumOK && !l4ChecksumOK(p, true) {
		return t.icmpFailure(nil, reasonICMPv6Checksum), true
	}
	switch typ {
	case 130, 131, 132, 133, 134, 135, 136, 143, 151: // MLD, ND, MLDv2, MRD
		return Verdict{CtInfo: CtUntracked}, true
	case 137: // redirect
		return t.icmpv6Redirect(p)
	}
	if typ >= 128 {
		return Verdict{}, false
	}
	return t.inetError(p, p.l4+8), true
}

// icmpv6Redirect treats a valid NDISC redirect as an error quoting the
// packet in its redirected-header option.
func (t *Tracker) icmpv6Redirect(p *pkt) (Verdict, bool) {
	const rdMsg = 40 // icmp6hdr, target, destination
	if ok, cut := p.have(rdMsg); !ok {
		if cut {
			return t.dropped(reasonTruncatedCapture), true
		}
		return t.icmpFailure(nil, reasonRedirect), true
	}
	if p.l4Data()[1] != 0 {
		return Verdict{}, false
	}
	if p.hopLimit != 255 || !p.src.IsLinkLocalUnicast() {
		return t.icmpFailure(nil, reasonRedirect), true
	}
	if ok, cut := p.have(rdMsg + 2); !ok {
		if cut {
			return t.dropped(reasonTruncatedCapture), true
		}
		return t.icmpFailure(nil, reasonRedirect), true
	}
	opt := p.l4Data()[rdMsg:]
	if opt[1] == 0 {
		return t.icmpFailure(nil, reasonRedirect), true
	}
	if opt[0] != 4 { // ND_OPT_REDIRECT_HDR
		return Verdict{}, false
	}
	return t.inetError(p, p.l4+rdMsg+8), true
}

// inetError is nf_conntrack_inet_error: the quoted header at off must belong
// to a tracked flow, whose direction's destination must be the outer
// destination; the packet is then RELATED to that flow.
func (t *Tracker) inetError(p *pkt, off int) Verdict {
	var inner pkt
	inner.family = p.family
	inner.length = p.length
	inner.data = p.data
	if p.family == flow.FamilyIPv4 {
		if off+20 > len(p.data) {
			if off+20 <= p.length {
				return t.dropped(reasonTruncatedCapture)
			}
			return t.icmpFailure(nil, reasonICMPBadInner)
		}
		h := p.data[off:]
		if binary.BigEndian.Uint16(h[6:])&0x1FFF != 0 {
			return t.icmpFailure(nil, reasonICMPBadInner)
		}
		inner.l4 = off + int(h[0]&0x0F)*4
		if inner.l4 > p.length {
			return t.icmpFailure(nil, reasonICMPBadInner)
		}
		inner.proto = h[9]
		inner.src = addr4(h[12:16])
		inner.dst = addr4(h[16:20])
	} else {
		if off+40 > len(p.data) {
			if off+40 <= p.length {
				return t.dropped(reasonTruncatedCapture)
			}
			return t.icmpFailure(nil, reasonICMPBadInner)
		}
		h := p.data[off:]
		inner.src = addr16(h[8:24])
		inner.dst = addr16(h[24:40])
		nh := h[6]
		o := off + 40
		for done := false; !done; {
			switch nh {
			case 0, 43, 44, 51, 60:
			case 59:
				return t.icmpFailure(nil, reasonICMPBadInner)
			default:
				done = true
				continue
			}
			if o+8 > len(p.data) {
				if o+8 <= p.length {
					return t.dropped(reasonTruncatedCapture)
				}
				return t.icmpFailure(nil, reasonICMPBadInner)
			}
			var hl int
			switch nh {
			case 44:
				if binary.BigEndian.Uint16(p.data[o+2:])&0xFFF8 != 0 {
					return t.icmpFailure(nil, reasonICMPBadInner)
				}
				hl = 8
			case 51:
				hl = (int(p.data[o+1]) + 2) << 2
			default:
				hl = (int(p.data[o+1]) + 1) << 3
			}
			nh = p.data[o]
			o += hl
		}
		inner.proto = nh
		inner.l4 = o
	}
	var tu flow.Tuple
	switch ok, cut := l4Tuple(&inner, inner.data, inner.l4, &tu); {
	case cut:
		return t.dropped(reasonTruncatedCapture)
	case !ok:
		return t.icmpFailure(nil, reasonICMPBadInner)
	}
	tu.Src, tu.Dst = inner.src, inner.dst
	if !invertible(inner.proto, tu) {
		return t.icmpFailure(nil, reasonICMPBadInner)
	}
	key := flow.Key{Proto: inner.proto, Zone: p.zone, Orig: tu.Reverse(inner.proto)}
	c, reply := t.lookup(&key)
	if c == nil {
		return t.icmpFailure(nil, reasonICMPNoFlow)
	}
	dst := c.key.Orig.Dst
	if reply {
		dst = c.reply.Dst
	}
	if dst != p.dst {
		return t.icmpFailure(c, reasonICMPOuterDst)
	}
	t.cur = c
	return Verdict{CtInfo: CtRelated, Reply: reply, Key: c.key}
}

// udpliteError is udplite_error: the length field is the checksum coverage
// (0: the whole datagram; below the header or past the datagram: invalid),
// the checksum is mandatory, and it is verified over the covered bytes.
// Like this kernel (nf_checksum_partial with IPPROTO_UDP), the pseudo
// header names protocol 17, not 136, and holds the whole length.
func udpliteError(p *pkt, cov int) string {
	l := p.l4Len()
	if cov == 0 {
		cov = l
	} else if cov < 8 || cov > l {
		return reasonUDPLiteCoverage
	}
	if binary.BigEndian.Uint16(p.l4Data()[6:]) == 0 {
		return reasonUDPLiteNoChecksum
	}
	if !p.csumOK && !partialChecksumOK(p, flow.ProtoUDP, cov) {
		return reasonUDPLiteChecksum
	}
	return ""
}
