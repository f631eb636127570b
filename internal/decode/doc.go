// Package decode turns captured link-layer frames into the whole IP datagrams
// the kernel's connection tracking would see: it strips the link header
// (Ethernet, Linux cooked SLL/SLL2, raw IP, BSD loopback), decapsulates
// 802.1Q/802.1ad VLAN tags, applies the kernel's IP input checks (the ones
// ip_rcv and ipv6_rcv make before PRE_ROUTING, where conntrack runs) and
// reassembles IPv4 and IPv6 fragments as nf_defrag does, so incomplete
// fragment trains never reach the tracker. Like nf_defrag, it passes a
// misaligned non-last IPv6 fragment on as it is (Datagram.Fragment) and
// discards its train.
//
// A Decoder is not safe for concurrent use. It allocates nothing per packet
// in steady state: the datagram it returns points into the frame or into the
// decoder's own buffer and is valid until the next call.
package decode
