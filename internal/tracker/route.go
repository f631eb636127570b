package tracker

import (
	"net/netip"

	"github.com/conntop/conntop/internal/flow"
)

// The forwarding-router model (Config.Router): the routing decision of a
// Linux router with no addresses of its own and IPv4/IPv6 forwarding on,
// which receives every packet on one interface and routes everything else
// out of another (the kernel oracle's topology, testdata/kernel-oracle).
// Conntrack runs at PRE_ROUTING, before this decision; a new entry is only
// confirmed when its packet reaches POST_ROUTING (forwarded) or LOCAL_IN
// (delivered to the router), so a packet routing drops leaves no entry, but
// still counts towards an existing one. Every rule was checked against
// Linux 6.18 with the kernel-diff harness (kerneldiff_route_test.go).

// routeFate is what the router does with a packet.
type routeFate uint8

const (
	// routeKeep: forwarded or delivered locally; the entry is confirmed.
	routeKeep routeFate = iota
	// routeDrop: dropped by routing after conntrack has seen it.
	routeDrop
	// routeDropEarly: dropped by ipv6_rcv before conntrack sees it.
	routeDropEarly
)

// Reasons for the router model's drops (Verdict.Reason; only the early
// drops are counted in TableStats.InvalidReasons, as the IP layer's other
// drops before conntrack are).
const (
	reasonIPv6Loopback      = "ip: IPv6 loopback address on the wire"
	reasonIPv6MCastScope    = "ip: IPv6 interface-local or reserved-scope multicast destination"
	reasonRouteMulticast    = "route: multicast group the router has not joined"
	reasonRouteMartian      = "route: martian source or destination"
	reasonRouteTTL          = "route: TTL or hop limit exceeded"
	reasonRouteLinkLocal    = "route: link-local or unspecified IPv6 source not forwardable"
	reasonRouteLinkLocalDst = "route: link-local destination outside fe80::/64"
)

// routeOf applies the router's routing decision to p.
func routeOf(p *pkt) (routeFate, string) {
	if p.family == flow.FamilyIPv4 {
		return route4(p)
	}
	return route6(p)
}

// route4 is ip_route_input (route.c) and ip_forward for an address-less
// interface: its only multicast group is 224.0.0.1 (ip_mc_up), the limited
// broadcast is delivered locally (brd_input, from any source, even
// 0.0.0.0), there are no subnet broadcasts, and forwarded packets need a
// TTL above 1.
func route4(p *pkt) (routeFate, string) {
	s, d := p.src.As4(), p.dst.As4()
	// Multicast, limited broadcast (martian_source) and loopback sources
	// (route_localnet off) are never accepted; 240/4 is unicast to Linux.
	if s[0] == 127 || (s[0] >= 224 && s[0] < 240) || s == [4]byte{255, 255, 255, 255} {
		return routeDrop, reasonRouteMartian
	}
	if d == [4]byte{255, 255, 255, 255} || (s == [4]byte{} && d == [4]byte{}) {
		return routeKeep, "" // brd_input: local delivery
	}
	if d[0] >= 224 && d[0] < 240 {
		if d == [4]byte{224, 0, 0, 1} {
			return routeKeep, "" // joined: local delivery
		}
		return routeDrop, reasonRouteMulticast
	}
	if s == [4]byte{} || d == [4]byte{} || d[0] == 127 {
		return routeDrop, reasonRouteMartian
	}
	if p.hopLimit <= 1 {
		return routeDrop, reasonRouteTTL
	}
	return routeKeep, ""
}

// route6 is ipv6_rcv's address checks, ip6_route_input and ip6_forward for
// an interface with only its link-local address: it has joined ff02::1,
// and, forwarding being on, ff02::2 and ff05::2 (ff01::/16 never arrives
// from the wire); link-local destinations in fe80::/64 are routed back out
// of the receiving interface, other link-local ones nowhere; a packet
// forwarded to the other interface needs a global source; forwarded
// packets need a hop limit above 1.
func route6(p *pkt) (routeFate, string) {
	s, d := p.src.As16(), p.dst.As16()
	if p.src == netip.IPv6Loopback() || p.dst == netip.IPv6Loopback() {
		return routeDropEarly, reasonIPv6Loopback
	}
	if d[0] == 0xFF {
		if sc := d[1] & 0x0F; sc == 0 || sc == 1 {
			return routeDropEarly, reasonIPv6MCastScope
		}
		if p.dst == netip.IPv6LinkLocalAllNodes() || p.dst == netip.IPv6LinkLocalAllRouters() ||
			d == [16]byte{0xFF, 0x05, 15: 2} {
			return routeKeep, "" // joined: local delivery
		}
		return routeDrop, reasonRouteMulticast
	}
	sameLink := false
	if d[0] == 0xFE && d[1]&0xC0 == 0x80 { // fe80::/10
		if d[1] != 0x80 || [6]byte(d[2:8]) != [6]byte{} {
			return routeDrop, reasonRouteLinkLocalDst
		}
		sameLink = true
	}
	if p.hopLimit <= 1 {
		return routeDrop, reasonRouteTTL
	}
	if !sameLink && (p.src.IsUnspecified() || (s[0] == 0xFE && s[1]&0xC0 == 0x80)) {
		return routeDrop, reasonRouteLinkLocal
	}
	return routeKeep, ""
}
