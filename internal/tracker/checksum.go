package tracker

import (
	"github.com/conntop/conntop/internal/csum"
	"github.com/conntop/conntop/internal/flow"
)

// pseudoSum is the running ones'-complement sum of the TCP/UDP/ICMPv6
// pseudo header: addrs is the source and destination addresses as they
// stand, adjacent, in the IP header (8 bytes for IPv4, 32 for IPv6).
func pseudoSum(addrs []byte, proto uint8, length int) uint64 {
	return csum.Add16(csum.Add16(csum.Partial(addrs, 0), uint16(proto)), uint16(length))
}

// l4ChecksumOK verifies the checksum of the L4 segment (the whole payload of
// the IP datagram p) with the pseudo header when pseudo is set (TCP, UDP,
// ICMPv6) or without (ICMP).
func l4ChecksumOK(p *pkt, pseudo bool) bool {
	seg := p.data[p.l4:]
	var acc uint64
	if pseudo {
		addrs := p.data[12:20]
		if p.family == flow.FamilyIPv6 {
			addrs = p.data[8:40]
		}
		acc = pseudoSum(addrs, p.proto, len(seg))
	}
	return csum.Valid(seg, acc)
}

// partialChecksumOK verifies a checksum over the first cov bytes of the L4
// segment with a pseudo header of protocol proto and the segment's whole
// length (nf_checksum_partial).
func partialChecksumOK(p *pkt, proto uint8, cov int) bool {
	seg := p.data[p.l4:]
	addrs := p.data[12:20]
	if p.family == flow.FamilyIPv6 {
		addrs = p.data[8:40]
	}
	return csum.Valid(seg[:cov], pseudoSum(addrs, proto, len(seg)))
}
