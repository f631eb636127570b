package tracker

import (
	"encoding/binary"
	"net/netip"

	"github.com/conntop/conntop/internal/csum"
	"github.com/conntop/conntop/internal/flow"
)

// Packet is one whole IP datagram given to the tracker.
type Packet struct {
	// Data is the datagram from its IPv4/IPv6 header on, as captured
	// (fragments already reassembled, link-layer header and VLAN tags
	// removed). The tracker does not keep it after Handle returns.
	Data []byte
	// Length is the datagram's real length on the wire; larger than
	// len(Data) when the capture cut it short (snaplen). 0 means len(Data).
	// A cut datagram is tracked from its headers and counted at its real
	// length; its checksum cannot be verified and is not.
	Length int
	// ChecksumOK says the L4 checksum is already known to be good (live
	// capture: TP_STATUS_CSUM_VALID, or TP_STATUS_CSUMNOTREADY for a locally
	// sent packet whose checksum is offloaded); the check is skipped as the
	// kernel skips it for such packets.
	ChecksumOK bool
	// IPHeaderOK says the IPv4 header checksum is already verified
	// (internal/decode checks it for every datagram it returns); the
	// tracker then does not sum the header again.
	IPHeaderOK bool
	// Fragment says Data is an IPv6 fragment that defragmentation passed
	// on unreassembled (decode.Datagram.Fragment): conntrack parses it as
	// it stands, a first fragment past its fragment header, while a later
	// one has no L4 header to find and is invalid. Without it a fragment
	// is taken to be held by defragmentation and is not tracked.
	Fragment bool
	// Zone is the conntrack zone of the packet (0 normally).
	Zone uint16
}

// pkt is a parsed datagram. It lives on the stack of Handle.
type pkt struct {
	family    flow.Family
	src, dst  netip.Addr
	proto     uint8
	hopLimit  uint8
	length    int    // real L3 length (what the kernel accounts)
	data      []byte // captured bytes, at most length
	l4        int    // offset of the L4 header
	truncated bool   // the capture holds fewer than length bytes
	csumOK    bool   // skip checksum validation
	zone      uint16
}

// l4Len is the real length of the L4 segment.
func (p *pkt) l4Len() int { return p.length - p.l4 }

// l4Data returns the captured L4 bytes.
func (p *pkt) l4Data() []byte { return p.data[p.l4:] }

// have reports whether n bytes of L4 header are captured; when they are not
// but exist on the wire, ok is false and cut is true.
func (p *pkt) have(n int) (ok, cut bool) {
	if p.l4+n <= len(p.data) {
		return true, false
	}
	return false, p.l4+n <= p.length
}

// parseStatus is the outcome of parsing the IP layer.
type parseStatus uint8

const (
	parseOK parseStatus = iota
	// parseDropped: the kernel's IP input would drop the datagram before
	// conntrack sees it (not counted in the conntrack statistics).
	parseDropped
	// parseInvalid: conntrack sees it but cannot find its L4 protocol
	// (stat invalid).
	parseInvalid
)

// parseIP parses the IP header(s) of d into p, applying the checks of
// ip_rcv/ipv6_rcv and conntrack's get_l4proto.
func parseIP(d *Packet, p *pkt) (parseStatus, string) {
	data := d.Data
	wire := d.Length
	if wire < len(data) {
		wire = len(data)
	}
	if len(data) < 1 {
		return parseDropped, reasonShortIP
	}
	switch data[0] >> 4 {
	case 4:
		return parseIPv4(data, wire, d.IPHeaderOK, p)
	case 6:
		return parseIPv6(data, wire, d.Fragment, p)
	}
	return parseDropped, reasonIPVersion
}

func parseIPv4(data []byte, wire int, headerOK bool, p *pkt) (parseStatus, string) {
	if len(data) < 20 {
		if wire < 20 {
			return parseDropped, reasonShortIP
		}
		return parseDropped, reasonTruncatedCapture
	}
	ihl := int(data[0]&0x0F) * 4
	if ihl < 20 {
		return parseDropped, reasonIPHeader
	}
	if len(data) < ihl {
		return parseDropped, reasonTruncatedCapture
	}
	if !headerOK && !csum.Valid(data[:ihl], 0) {
		return parseDropped, reasonIPChecksum
	}
	total := int(binary.BigEndian.Uint16(data[2:]))
	if total < ihl || total > wire {
		return parseDropped, reasonIPLength
	}
	if len(data) > total {
		data = data[:total]
	}
	if binary.BigEndian.Uint16(data[6:])&0x3FFF != 0 {
		return parseDropped, reasonFragment
	}
	p.family = flow.FamilyIPv4
	p.src = netip.AddrFrom4([4]byte(data[12:16]))
	p.dst = netip.AddrFrom4([4]byte(data[16:20]))
	p.proto = data[9]
	p.hopLimit = data[8]
	p.length = total
	p.data = data
	p.l4 = ihl
	p.truncated = len(data) < total
	return parseOK, ""
}

func parseIPv6(data []byte, wire int, fragment bool, p *pkt) (parseStatus, string) {
	if len(data) < 40 {
		if wire < 40 {
			return parseDropped, reasonShortIP
		}
		return parseDropped, reasonTruncatedCapture
	}
	plen := int(binary.BigEndian.Uint16(data[4:]))
	if plen == 0 && data[6] == 0 {
		// A jumbogram (ipv6_rcv then parses the hop-by-hop jumbo option);
		// a zero payload length with any other next header is simply an
		// empty datagram.
		return parseDropped, reasonIPHeader
	}
	total := 40 + plen
	if total > wire {
		return parseDropped, reasonIPLength
	}
	if data[8] == 0xFF {
		return parseDropped, reasonMulticastSource
	}
	if len(data) > total {
		data = data[:total]
	}
	p.family = flow.FamilyIPv6
	p.src = netip.AddrFrom16([16]byte(data[8:24]))
	p.dst = netip.AddrFrom16([16]byte(data[24:40]))
	p.hopLimit = data[7]
	p.length = total
	p.data = data
	p.truncated = len(data) < total
	// ipv6_skip_exthdr
	nh := data[6]
	off := 40
	for {
		switch nh {
		case 0, 43, 44, 51, 60: // hop-by-hop, routing, fragment, AH, destination options
		case 59: // no next header
			return parseInvalid, reasonNoUpperLayer
		default:
			p.proto = nh
			p.l4 = off
			return parseOK, ""
		}
		if off+8 > len(data) {
			if off+8 <= total {
				return parseDropped, reasonTruncatedCapture
			}
			return parseInvalid, reasonIPHeader
		}
		var hl int
		switch nh {
		case 44:
			fo := binary.BigEndian.Uint16(data[off+2:])
			switch {
			case fo&0xFFF9 != 0 && !fragment:
				// A fragment (not an atomic one): defragmentation holds
				// it until the train is whole.
				return parseDropped, reasonFragment
			case fo&0xFFF8 != 0:
				// Passed on unreassembled: ipv6_skip_exthdr stops at a
				// later fragment's header and get_l4proto fails.
				return parseInvalid, reasonLaterFragment
			}
			hl = 8
		case 51:
			hl = (int(data[off+1]) + 2) << 2
		default:
			hl = (int(data[off+1]) + 1) << 3
		}
		nh = data[off]
		off += hl
		if off > total {
			return parseInvalid, reasonIPHeader
		}
	}
}
