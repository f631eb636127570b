//go:build linux

package labtest

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// ping sends count echo requests with identifier id to addr over a raw
// socket and waits (2 s each) for the matching replies.
func ping(addr string, id uint16, count int) error {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	network, reqType, repType := "ip4:icmp", byte(8), byte(0)
	if ip.Is6() && !ip.Is4In6() {
		network, reqType, repType = "ip6:ipv6-icmp", 128, 129
	}
	c, err := net.ListenPacket(network, "")
	if err != nil {
		return fmt.Errorf("ping %s: %w", addr, err)
	}
	defer func() { _ = c.Close() }()
	dst := &net.IPAddr{IP: ip.AsSlice()}
	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		msg := []byte{reqType, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq), 'c', 't', 'o', 'p'}
		if reqType == 8 {
			binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
		}
		if _, err := c.WriteTo(msg, dst); err != nil {
			return fmt.Errorf("ping %s: %w", addr, err)
		}
		deadline := time.Now().Add(2 * time.Second)
		if err := c.SetReadDeadline(deadline); err != nil {
			return fmt.Errorf("ping %s: %w", addr, err)
		}
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return fmt.Errorf("ping %s seq %d: no reply: %w", addr, seq, err)
			}
			b := buf[:n]
			if reqType == 8 && n >= 20 && b[0]>>4 == 4 { // raw IPv4 sockets see the IP header
				b = b[int(b[0]&0x0f)*4:]
			}
			if len(b) >= 8 && b[0] == repType && binary.BigEndian.Uint16(b[4:]) == id &&
				binary.BigEndian.Uint16(b[6:]) == uint16(seq) {
				break
			}
		}
	}
	return nil
}

// icmpChecksum is the Internet checksum of b (RFC 1071).
func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
