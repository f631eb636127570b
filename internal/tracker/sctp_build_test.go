package tracker

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/conntop/conntop/internal/flow"
)

// SCTP packet builders for tests.

// sChunk builds one chunk: type, flags, body, padded to 4 bytes (the
// length field counts the header and body, not the padding).
func sChunk(typ, flags uint8, body []byte) []byte {
	b := make([]byte, 4+len(body), 4+len(body)+3)
	b[0], b[1] = typ, flags
	binary.BigEndian.PutUint16(b[2:], uint16(4+len(body)))
	copy(b[4:], body)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// sInit builds an INIT or INIT_ACK chunk with initiate tag tag (and a
// state cookie parameter for INIT_ACK).
func sInit(typ uint8, tag uint32) []byte {
	body := make([]byte, 16)
	binary.BigEndian.PutUint32(body[0:], tag)
	binary.BigEndian.PutUint32(body[4:], 106496) // a_rwnd
	binary.BigEndian.PutUint16(body[8:], 10)     // outbound streams
	binary.BigEndian.PutUint16(body[10:], 65535) // inbound streams
	binary.BigEndian.PutUint32(body[12:], tag^0x5a5a5a5a)
	if typ == chunkInitAck {
		body = append(body, 0, 7, 0, 12, 'c', 'o', 'o', 'k', 'i', 'e', 0, 0) // state cookie
	}
	return sChunk(typ, 0, body)
}

// sData builds a DATA chunk carrying payload.
func sData(tsn uint32, payload string) []byte {
	body := make([]byte, 12+len(payload))
	binary.BigEndian.PutUint32(body[0:], tsn)
	binary.BigEndian.PutUint32(body[8:], 46) // PPID
	copy(body[12:], payload)
	return sChunk(chunkData, 0x03, body)
}

// sSack builds a SACK chunk acknowledging tsn.
func sSack(tsn uint32) []byte {
	body := make([]byte, 12)
	binary.BigEndian.PutUint32(body[0:], tsn)
	binary.BigEndian.PutUint32(body[4:], 106496)
	return sChunk(3, 0, body)
}

// sHeartbeat builds a HEARTBEAT or HEARTBEAT_ACK chunk with an info
// parameter.
func sHeartbeat(typ uint8) []byte {
	return sChunk(typ, 0, []byte{0, 1, 0, 8, 1, 2, 3, 4})
}

// sctpSeg builds an SCTP packet (common header with vtag, the chunks, a
// correct CRC32c).
func sctpSeg(sport, dport uint16, vtag uint32, chunks ...[]byte) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], vtag)
	for _, c := range chunks {
		b = append(b, c...)
	}
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// badCRC flips a bit of an SCTP packet's checksum (the datagram's IP
// header is fixed, the L4 segment starts at l4).
func badCRC(dg []byte) []byte {
	c := append([]byte(nil), dg...)
	l4 := 20
	if c[0]>>4 == 6 {
		l4 = 40
	}
	c[l4+8] ^= 1
	return c
}

// sctpPeers builds datagrams between a client and a server for one
// association.
type sctpPeers struct {
	v6           bool
	cli, srv     string
	cport, sport uint16
}

func newSCTPPeers(v6 bool) sctpPeers {
	p := sctpPeers{cli: "10.1.0.1", srv: "10.2.0.2", cport: 40001, sport: 38412}
	if v6 {
		p.v6, p.cli, p.srv = true, "fd00:1::1", "fd00:2::2"
	}
	return p
}

func (p sctpPeers) dg(fromCli bool, vtag uint32, chunks ...[]byte) []byte {
	src, dst, sp, dp := p.cli, p.srv, p.cport, p.sport
	if !fromCli {
		src, dst, sp, dp = p.srv, p.cli, p.sport, p.cport
	}
	seg := sctpSeg(sp, dp, vtag, chunks...)
	if p.v6 {
		return ip6(src, dst, flow.ProtoSCTP, 64, seg)
	}
	return ip4(src, dst, flow.ProtoSCTP, seg)
}

// raw wraps an L4 segment from the client as it is.
func (p sctpPeers) raw(l4 []byte) []byte {
	if p.v6 {
		return ip6(p.cli, p.srv, flow.ProtoSCTP, 64, l4)
	}
	return ip4(p.cli, p.srv, flow.ProtoSCTP, l4)
}

// c sends from the client, s from the server.
func (p sctpPeers) c(vtag uint32, chunks ...[]byte) []byte { return p.dg(true, vtag, chunks...) }
func (p sctpPeers) s(vtag uint32, chunks ...[]byte) []byte { return p.dg(false, vtag, chunks...) }

// Verification tags of the test associations: the client's (in INIT,
// expected on packets to the client) and the server's.
const (
	tagC uint32 = 0x11223344
	tagS uint32 = 0xa1b2c3d4
)

// sctpHandshake is INIT, INIT_ACK, COOKIE_ECHO, COOKIE_ACK.
func (p sctpPeers) handshake() [][]byte {
	return [][]byte{
		p.c(0, sInit(chunkInit, tagC)),
		p.s(tagC, sInit(chunkInitAck, tagS)),
		p.c(tagS, sChunk(chunkCookieEcho, 0, []byte("cookie"))),
		p.s(tagC, sChunk(chunkCookieAck, 0, nil)),
	}
}
