package decode

import (
	"encoding/binary"
	"time"

	"github.com/conntop/conntop/internal/csum"
)

// Status says what became of a frame given to the Decoder.
type Status uint8

// Outcomes of decoding one frame.
const (
	// StatusDatagram: the Datagram holds a whole IP datagram for the
	// tracker (or an IPv6 fragment passed on as it is: Datagram.Fragment).
	StatusDatagram Status = iota
	// StatusFragment: a fragment was kept for reassembly; nothing to track yet.
	StatusFragment
	// StatusNotIP: the frame is not IPv4 or IPv6 (ARP, LLDP, …); conntrack
	// never sees it.
	StatusNotIP
	// StatusDropped: the kernel's IP input or defragmentation would drop the
	// frame before conntrack, or it cannot be decoded; Datagram.Drop says why.
	StatusDropped
)

var statusNames = [...]string{"datagram", "fragment", "not-ip", "dropped"}

// String names the status.
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// DropReason says why a frame was dropped before tracking.
type DropReason uint8

// Reasons for StatusDropped.
const (
	DropNone              DropReason = iota
	DropTruncatedLink                // the frame ends inside its link-layer header
	DropTooManyVLANs                 // more VLAN tags than MaxVLANTags
	DropTruncatedIP                  // the capture ends inside the IP header (cut by snaplen)
	DropBadVersion                   // IP version does not match the link's protocol
	DropBadHeader                    // IPv4 header length < 20, IPv6 jumbogram, …
	DropBadIPChecksum                // IPv4 header checksum wrong (ip_rcv drops it)
	DropBadLength                    // IP total length beyond the frame, or below the header
	DropMulticastSource              // IPv6 packet from a multicast source (ipv6_rcv drops it)
	DropTruncatedFragment            // a fragment cut short by the snaplen cannot be reassembled
	DropFragmentOverlap              // overlapping fragments: the whole train is discarded (RFC 5722)
	DropFragmentDuplicate            // a fragment wholly inside data already received
	DropFragmentCorrupt              // inconsistent lengths or an empty fragment
	DropFragmentTooLarge             // reassembled datagram over 65535 bytes
	DropFragmentLimit                // fragment memory or queue limit reached
	DropFragmentTimeout              // (counted per fragment train) train incomplete when it timed out
	numDropReasons
)

var dropNames = [...]string{"", "truncated link header", "too many VLAN tags", "truncated IP header",
	"bad IP version", "bad IP header", "bad IPv4 header checksum", "bad IP length", "IPv6 multicast source",
	"truncated fragment", "overlapping fragments", "duplicate fragment", "corrupt fragment",
	"reassembled datagram too large", "fragment memory limit", "fragment reassembly timeout"}

// String describes the reason.
func (r DropReason) String() string {
	if int(r) < len(dropNames) {
		return dropNames[r]
	}
	return "unknown"
}

// MaxVLANTags is the most stacked 802.1Q/802.1ad tags the decoder strips.
const MaxVLANTags = 8

// Datagram is the result of decoding one frame.
type Datagram struct {
	// Data is the IP datagram from its IP header on: at most Length bytes,
	// fewer when the capture cut the packet short. It points into the frame
	// or into the Decoder's buffer and is valid until the next Decode call.
	Data []byte
	// Length is the datagram's real length: the IPv4 total length or the
	// IPv6 header plus payload length (of the reassembled datagram).
	Length int
	// Version is 4 or 6.
	Version uint8
	// Reassembled says the datagram was put together from fragments.
	Reassembled bool
	// Fragment says Data is an IPv6 fragment that defragmentation passed
	// on unreassembled: a non-last fragment whose payload is not a
	// multiple of 8 bytes makes nf_ct_frag6_gather discard its train and
	// accept the fragment as it is, so conntrack sees it as it stands
	// (tracker.Packet.Fragment).
	Fragment bool
	// VLANTags is the number of VLAN tags stripped; VLAN is the outermost
	// tag's VLAN ID.
	VLANTags uint8
	VLAN     uint16
	// Drop says why the frame was dropped (StatusDropped).
	Drop DropReason
}

// Truncated reports whether the capture holds fewer bytes than the datagram.
func (dg *Datagram) Truncated() bool { return len(dg.Data) < dg.Length }

// Config sets the limits of fragment reassembly. Zero fields take the
// kernel's defaults.
type Config struct {
	// FragTimeout4 is how long an IPv4 fragment train may take to complete
	// (net.ipv4.ipfrag_time, 30 s); FragTimeout6 the same for IPv6
	// (net.netfilter.nf_conntrack_frag6_timeout, 60 s).
	FragTimeout4, FragTimeout6 time.Duration
	// FragMemory bounds the bytes held for reassembly (ipfrag_high_thresh,
	// 4 MiB); fragments beyond it are dropped.
	FragMemory int
	// FragQueues bounds the number of trains being reassembled (1024).
	FragQueues int
}

// Stats counts what the Decoder did.
type Stats struct {
	Frames      uint64 // frames given to Decode
	Datagrams   uint64 // whole datagrams returned (StatusDatagram)
	Truncated   uint64 // of which cut short by the capture's snaplen
	Reassembled uint64 // of which reassembled from fragments
	// Unreassembled counts the datagrams that are IPv6 fragments passed on
	// as they are (Datagram.Fragment); their trains were discarded.
	Unreassembled uint64
	Fragments     uint64 // fragments kept for reassembly (StatusFragment)
	NotIP         uint64 // frames that are not IP
	// Dropped counts dropped frames by reason (index DropReason);
	// Dropped[DropFragmentTimeout] counts trains that timed out.
	Dropped [numDropReasons]uint64
	// FragQueues and FragBytes are the trains and bytes held right now.
	FragQueues, FragBytes int
}

// DroppedTotal returns the number of frames dropped for any reason
// (timed-out trains not included).
func (s *Stats) DroppedTotal() uint64 {
	var n uint64
	for r, c := range s.Dropped {
		if DropReason(r) != DropFragmentTimeout {
			n += c
		}
	}
	return n
}

// Decoder decodes frames into datagrams and reassembles fragments. Create it
// with New; it is not safe for concurrent use.
type Decoder struct {
	cfg   Config
	frag  reassembler
	stats Stats
}

// New returns a Decoder with the given reassembly limits.
func New(cfg Config) *Decoder {
	if cfg.FragTimeout4 <= 0 {
		cfg.FragTimeout4 = 30 * time.Second
	}
	if cfg.FragTimeout6 <= 0 {
		cfg.FragTimeout6 = 60 * time.Second
	}
	if cfg.FragMemory <= 0 {
		cfg.FragMemory = 4 << 20
	}
	if cfg.FragQueues <= 0 {
		cfg.FragQueues = 1024
	}
	d := &Decoder{cfg: cfg}
	d.frag.init(&d.cfg, &d.stats)
	return d
}

// Stats returns the decoder's counters.
func (d *Decoder) Stats() Stats {
	s := d.stats
	s.FragQueues = len(d.frag.queues)
	s.FragBytes = d.frag.mem
	return s
}

// Expire discards fragment trains older than their timeout as of now.
// Decode also does this about once a second of packet time.
func (d *Decoder) Expire(now time.Time) { d.frag.expire(now) }

// Ethernet types.
const (
	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86DD
	etherTypeVLAN   = 0x8100
	etherTypeQinQ   = 0x88A8
	etherTypeQinQ91 = 0x9100
	etherTypeQinQ92 = 0x9200
)

// Decode decodes one frame of link type link (as CheckLinkType accepts).
// wireLen is the frame's original length on the wire (the pcap record's
// original length); a smaller value is taken as len(frame). now is the
// packet's time, the clock of fragment reassembly. The result is stored in
// dg.
func (d *Decoder) Decode(now time.Time, link LinkType, frame []byte, wireLen int, dg *Datagram) Status {
	d.stats.Frames++
	*dg = Datagram{}
	if wireLen < len(frame) {
		wireLen = len(frame)
	}
	switch link {
	case LinkEthernet:
		if len(frame) < 14 {
			return d.drop(dg, DropTruncatedLink)
		}
		return d.etherType(now, binary.BigEndian.Uint16(frame[12:]), frame[14:], wireLen-14, dg)
	case LinkLinuxSLL:
		if len(frame) < 16 {
			return d.drop(dg, DropTruncatedLink)
		}
		return d.etherType(now, binary.BigEndian.Uint16(frame[14:]), frame[16:], wireLen-16, dg)
	case LinkLinuxSLL2:
		if len(frame) < 20 {
			return d.drop(dg, DropTruncatedLink)
		}
		return d.etherType(now, binary.BigEndian.Uint16(frame), frame[20:], wireLen-20, dg)
	case LinkRaw:
		if len(frame) < 1 {
			return d.drop(dg, DropTruncatedIP)
		}
		switch frame[0] >> 4 {
		case 4:
			return d.ipv4(now, frame, wireLen, dg)
		case 6:
			return d.ipv6(now, frame, wireLen, dg)
		}
		return d.drop(dg, DropBadVersion)
	case LinkIPv4:
		return d.ipv4(now, frame, wireLen, dg)
	case LinkIPv6:
		return d.ipv6(now, frame, wireLen, dg)
	case LinkNull, LinkLoop:
		if len(frame) < 4 {
			return d.drop(dg, DropTruncatedLink)
		}
		var af uint32
		if link == LinkLoop {
			af = binary.BigEndian.Uint32(frame)
		} else {
			// Host byte order of the machine that captured: a family
			// number is small, so the order that gives a small value wins.
			af = binary.LittleEndian.Uint32(frame)
			if af > 0xFFFF {
				af = binary.BigEndian.Uint32(frame)
			}
		}
		switch af {
		case 2:
			return d.ipv4(now, frame[4:], wireLen-4, dg)
		case 10, 24, 28, 30: // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, Darwin
			return d.ipv6(now, frame[4:], wireLen-4, dg)
		}
		d.stats.NotIP++
		return StatusNotIP
	}
	d.stats.NotIP++
	return StatusNotIP
}

// DecodeEtherType decodes a packet whose link-layer header was already
// removed (an AF_PACKET SOCK_DGRAM socket): etherType is its protocol
// (sll_protocol), data starts at the network header (or at a VLAN tag when
// etherType is a VLAN type) and wireLen is the packet's original length from
// there.
func (d *Decoder) DecodeEtherType(now time.Time, etherType uint16, data []byte, wireLen int, dg *Datagram) Status {
	d.stats.Frames++
	*dg = Datagram{}
	if wireLen < len(data) {
		wireLen = len(data)
	}
	return d.etherType(now, etherType, data, wireLen, dg)
}

func (d *Decoder) etherType(now time.Time, et uint16, data []byte, wireLen int, dg *Datagram) Status {
	for et == etherTypeVLAN || et == etherTypeQinQ || et == etherTypeQinQ91 || et == etherTypeQinQ92 {
		if dg.VLANTags == MaxVLANTags {
			return d.drop(dg, DropTooManyVLANs)
		}
		if len(data) < 4 {
			return d.drop(dg, DropTruncatedLink)
		}
		if dg.VLANTags == 0 {
			dg.VLAN = binary.BigEndian.Uint16(data) & 0x0FFF
		}
		dg.VLANTags++
		et = binary.BigEndian.Uint16(data[2:])
		data = data[4:]
		wireLen -= 4
	}
	switch et {
	case etherTypeIPv4:
		return d.ipv4(now, data, wireLen, dg)
	case etherTypeIPv6:
		return d.ipv6(now, data, wireLen, dg)
	}
	d.stats.NotIP++
	return StatusNotIP
}

func (d *Decoder) drop(dg *Datagram, r DropReason) Status {
	dg.Drop = r
	d.stats.Dropped[r]++
	return StatusDropped
}

func (d *Decoder) done(dg *Datagram, data []byte, length int) Status {
	dg.Data = data
	dg.Length = length
	d.stats.Datagrams++
	if len(data) < length {
		d.stats.Truncated++
	}
	return StatusDatagram
}

// ipv4 applies ip_rcv_core's checks, then hands fragments to the
// reassembler. wire is the number of bytes the datagram had on the wire
// from its first byte on (frame padding included).
func (d *Decoder) ipv4(now time.Time, data []byte, wire int, dg *Datagram) Status {
	dg.Version = 4
	if len(data) < 20 {
		if wire < 20 {
			return d.drop(dg, DropBadLength)
		}
		return d.drop(dg, DropTruncatedIP)
	}
	if data[0]>>4 != 4 {
		return d.drop(dg, DropBadVersion)
	}
	ihl := int(data[0]&0x0F) * 4
	if ihl < 20 {
		return d.drop(dg, DropBadHeader)
	}
	if len(data) < ihl {
		return d.drop(dg, DropTruncatedIP)
	}
	if Checksum(data[:ihl], 0) != 0 {
		return d.drop(dg, DropBadIPChecksum)
	}
	total := int(binary.BigEndian.Uint16(data[2:]))
	if total < ihl || total > wire {
		return d.drop(dg, DropBadLength)
	}
	if len(data) > total {
		data = data[:total] // link-layer padding
	}
	fl := binary.BigEndian.Uint16(data[6:])
	if fl&0x3FFF != 0 { // MF or a fragment offset
		if len(data) < total {
			return d.drop(dg, DropTruncatedFragment)
		}
		return d.frag.add4(now, data, ihl, int(fl&0x1FFF)*8, fl&0x2000 != 0, d, dg)
	}
	return d.done(dg, data, total)
}

// ipv6 applies ipv6_rcv's checks, then finds a fragment header (walking the
// extension headers as nf_ct_frag6_gather does) and hands fragments to the
// reassembler.
func (d *Decoder) ipv6(now time.Time, data []byte, wire int, dg *Datagram) Status {
	dg.Version = 6
	if len(data) < 40 {
		if wire < 40 {
			return d.drop(dg, DropBadLength)
		}
		return d.drop(dg, DropTruncatedIP)
	}
	if data[0]>>4 != 6 {
		return d.drop(dg, DropBadVersion)
	}
	plen := int(binary.BigEndian.Uint16(data[4:]))
	if plen == 0 && data[6] == 0 {
		// A jumbogram (not on any link conntop captures); a zero payload
		// length with another next header is an empty datagram (ipv6_rcv).
		return d.drop(dg, DropBadHeader)
	}
	total := 40 + plen
	if total > wire {
		return d.drop(dg, DropBadLength)
	}
	if data[8] == 0xFF {
		return d.drop(dg, DropMulticastSource)
	}
	if len(data) > total {
		data = data[:total]
	}
	nh := data[6]
	nhOff := 6
	off := 40
walk:
	for i := 0; i < 16; i++ {
		switch nh {
		case 0, 43, 60, 51: // hop-by-hop, routing, destination options, AH
			if off+2 > len(data) {
				return d.done(dg, data, total)
			}
			l := (int(data[off+1]) + 1) * 8
			if nh == 51 {
				l = (int(data[off+1]) + 2) * 4
			}
			nhOff = off
			nh = data[off]
			off += l
			continue
		case 44:
			if len(data) < total {
				return d.drop(dg, DropTruncatedFragment)
			}
			if off+8 > total {
				return d.drop(dg, DropBadHeader)
			}
			fo := binary.BigEndian.Uint16(data[off+2:])
			return d.frag.add6(now, data, off, nhOff, int(fo&^7), fo&1 != 0, d, dg)
		}
		break walk
	}
	return d.done(dg, data, total)
}

// Checksum returns the Internet checksum (RFC 1071) of b added to the
// partial sum initial, folded and complemented. Over a header that carries
// its checksum the result is 0 when the checksum is right.
func Checksum(b []byte, initial uint32) uint16 {
	i := initial>>16 + initial&0xFFFF
	i = i>>16 + i&0xFFFF
	return ^csum.Fold(csum.Partial(b, csum.Add16(0, uint16(i))))
}
