package decode

import (
	"errors"
	"fmt"
	"strconv"
)

// LinkType is a pcap LINKTYPE_* value: the kind of link-layer header a frame
// starts with.
type LinkType uint16

// Link types the decoder understands (pcap LINKTYPE_* numbers).
const (
	LinkNull      LinkType = 0   // BSD loopback, address family in host byte order
	LinkEthernet  LinkType = 1   // Ethernet (EN10MB)
	LinkRaw       LinkType = 101 // raw IPv4 or IPv6
	LinkLoop      LinkType = 108 // OpenBSD loopback, address family in network byte order
	LinkLinuxSLL  LinkType = 113 // Linux cooked capture v1 (tcpdump -i any)
	LinkIPv4      LinkType = 228 // raw IPv4
	LinkIPv6      LinkType = 229 // raw IPv6
	LinkLinuxSLL2 LinkType = 276 // Linux cooked capture v2 (tcpdump -i any, newer)
)

// ErrUnsupportedLinkType is returned (wrapped, naming the type) by
// CheckLinkType for link types the decoder cannot read.
var ErrUnsupportedLinkType = errors.New("unsupported link type")

var linkNames = map[LinkType]string{
	LinkNull: "NULL", LinkEthernet: "EN10MB", LinkRaw: "RAW", LinkLoop: "LOOP",
	LinkLinuxSLL: "LINUX_SLL", LinkIPv4: "IPV4", LinkIPv6: "IPV6", LinkLinuxSLL2: "LINUX_SLL2",
}

// Some other common link types, named in error messages only.
var otherLinkNames = map[LinkType]string{
	6: "IEEE802_5", 9: "PPP", 10: "FDDI", 50: "PPP_HDLC", 51: "PPP_ETHER", 104: "C_HDLC",
	105: "IEEE802_11", 119: "PRISM_HEADER", 127: "IEEE802_11_RADIOTAP", 147: "USER0",
	195: "IEEE802_15_4_WITHFCS", 201: "BLUETOOTH_HCI_H4_WITH_PHDR", 220: "USB_LINUX_MMAPPED",
	239: "NFLOG", 249: "USBPCAP", 252: "WIRESHARK_UPPER_PDU", 253: "NETLINK",
}

// String returns the pcap name of the link type (EN10MB, LINUX_SLL2, …) or
// LINKTYPE_<n> when it has none.
func (l LinkType) String() string {
	if n, ok := linkNames[l]; ok {
		return n
	}
	if n, ok := otherLinkNames[l]; ok {
		return n
	}
	return "LINKTYPE_" + strconv.Itoa(int(l))
}

// CheckLinkType returns nil when frames of link type l can be decoded, else
// an error wrapping ErrUnsupportedLinkType that names the type.
func CheckLinkType(l LinkType) error {
	if _, ok := linkNames[l]; ok {
		return nil
	}
	return fmt.Errorf("%w %s (%d): conntop reads Ethernet, Linux cooked (SLL, SLL2), raw IP and BSD loopback captures",
		ErrUnsupportedLinkType, l, uint16(l))
}
