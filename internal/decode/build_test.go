package decode

import (
	"encoding/binary"
	"net/netip"
)

// ipv4Packet builds an IPv4 datagram with a correct header checksum.
func ipv4Packet(proto uint8, src, dst string, id uint16, payload []byte) []byte {
	b := make([]byte, 20+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], id)
	b[8] = 64
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], Checksum(b[:20], 0))
	copy(b[20:], payload)
	return b
}

// ipv4Fragment cuts [off, end) of the payload of datagram p into a fragment.
func ipv4Fragment(p []byte, off, end int, mf bool) []byte {
	payload := p[20:]
	b := make([]byte, 20+end-off)
	copy(b, p[:20])
	copy(b[20:], payload[off:end])
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	fo := uint16(off / 8)
	if mf {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], fo)
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], Checksum(b[:20], 0))
	return b
}

// ipv6Packet builds an IPv6 datagram; ext is inserted between the header
// and payload (its first byte must already name the next header).
func ipv6Packet(next uint8, src, dst string, ext, payload []byte) []byte {
	b := make([]byte, 40+len(ext)+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(ext)+len(payload)))
	b[6] = next
	b[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	copy(b[40:], ext)
	copy(b[40+len(ext):], payload)
	return b
}

// ipv6Fragment builds a fragment of payload [off, end) with upper protocol
// proto; destOpts adds an 8-byte destination-options header before the
// fragment header.
func ipv6Fragment(proto uint8, src, dst string, id uint32, payload []byte, off, end int, mf, destOpts bool) []byte {
	fh := make([]byte, 8)
	fh[0] = proto
	fo := uint16(off)
	if mf {
		fo |= 1
	}
	binary.BigEndian.PutUint16(fh[2:], fo)
	binary.BigEndian.PutUint32(fh[4:], id)
	if destOpts {
		do := make([]byte, 8)
		do[0] = 44
		do[2], do[3] = 1, 4 // PadN option
		return ipv6Packet(60, src, dst, append(do, fh...), payload[off:end])
	}
	return ipv6Packet(44, src, dst, fh, payload[off:end])
}

// ether wraps p in an Ethernet header of type et, after the given VLAN tags
// (each a TPID and a TCI).
func ether(et uint16, p []byte, tags ...[2]uint16) []byte {
	b := make([]byte, 12, 14+4*len(tags)+len(p))
	b[0], b[6] = 0x02, 0x02
	for _, t := range tags {
		b = binary.BigEndian.AppendUint16(b, t[0])
		b = binary.BigEndian.AppendUint16(b, t[1])
	}
	b = binary.BigEndian.AppendUint16(b, et)
	return append(b, p...)
}

func udp(sport, dport uint16, data []byte) []byte {
	b := make([]byte, 8+len(data))
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], data)
	return b
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}
