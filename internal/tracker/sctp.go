package tracker

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/conntop/conntop/internal/flow"
)

// SCTP tracking as this kernel does it (nf_conntrack_proto_sctp.c): CRC32c
// validation, chunk sanity checks, a per-association state machine driven
// by chunk types and direction, verification-tag checks (RFC 9260 8.5) and a
// timeout per state.

// SCTP conntrack states (enum sctp_conntrack). sctpMax marks an invalid
// transition (sIV).
const (
	sctpNone uint8 = iota
	sctpClosed
	sctpCookieWait
	sctpCookieEchoed
	sctpEstablished
	sctpShutdownSent
	sctpShutdownRecd
	sctpShutdownAckSent
	sctpHeartbeatSent
	sctpMax
)

// SCTP chunk types the tracker looks at.
const (
	chunkData             = 0
	chunkInit             = 1
	chunkInitAck          = 2
	chunkHeartbeat        = 4
	chunkHeartbeatAck     = 5
	chunkAbort            = 6
	chunkShutdown         = 7
	chunkShutdownAck      = 8
	chunkError            = 9
	chunkCookieEcho       = 10
	chunkCookieAck        = 11
	chunkShutdownComplete = 14
)

// chunkFlagT is the T bit of ABORT and SHUTDOWN_COMPLETE: the sender used
// its peer's verification tag.
const chunkFlagT = 0x01

const (
	sctpCommonHeader = 12 // ports, verification tag, checksum
	sctpChunkHeader  = 4  // type, flags, length
	sctpInitHeader   = 16 // initiate tag, a_rwnd, streams, initial TSN
)

// Reasons for SCTP INVALID verdicts.
const (
	reasonSCTPShort    = "sctp: short packet"
	reasonSCTPChecksum = "sctp: bad CRC32c checksum"
	reasonSCTPChunks   = "sctp: malformed chunks"
	reasonSCTPNew      = "sctp: invalid packet for a new association"
	reasonSCTPVtag     = "sctp: verification tag mismatch"
	reasonSCTPState    = "sctp: chunk invalid in this state"
	reasonSCTPInit     = "sctp: truncated INIT or INIT_ACK"
)

// sctpTransitions is sctp_conntracks: the next state by direction (0
// original, 1 reply), chunk row (sctpChunkRow) and current state.
var sctpTransitions = [2][11][sctpMax]uint8{
	{ // original direction
		//   NONE, CLOSED, COOKIE_WAIT, COOKIE_ECHOED, ESTABLISHED, SHUTDOWN_SENT, SHUTDOWN_RECD, SHUTDOWN_ACK_SENT, HEARTBEAT_SENT
		{sctpClosed, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpEstablished, sctpClosed, sctpClosed, sctpShutdownAckSent, sctpCookieWait},                                 // INIT
		{sctpClosed, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpClosed},                         // INIT_ACK
		{sctpClosed, sctpClosed, sctpClosed, sctpClosed, sctpClosed, sctpClosed, sctpClosed, sctpClosed, sctpClosed},                                                             // ABORT
		{sctpClosed, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpShutdownSent, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpClosed},                        // SHUTDOWN
		{sctpShutdownAckSent, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpEstablished, sctpShutdownAckSent, sctpShutdownAckSent, sctpShutdownAckSent, sctpShutdownAckSent}, // SHUTDOWN_ACK
		{sctpClosed, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpClosed},                         // ERROR
		{sctpClosed, sctpClosed, sctpCookieEchoed, sctpCookieEchoed, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpClosed},                       // COOKIE_ECHO
		{sctpClosed, sctpClosed, sctpCookieWait, sctpEstablished, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpClosed},                          // COOKIE_ACK
		{sctpClosed, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpClosed, sctpClosed},                                  // SHUTDOWN_COMPLETE
		{sctpHeartbeatSent, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpHeartbeatSent},           // HEARTBEAT
		{sctpClosed, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpHeartbeatSent},                  // HEARTBEAT_ACK
	},
	{ // reply direction
		{sctpMax, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpMax},           // INIT
		{sctpMax, sctpCookieWait, sctpCookieWait, sctpCookieEchoed, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpMax},       // INIT_ACK
		{sctpMax, sctpClosed, sctpClosed, sctpClosed, sctpClosed, sctpClosed, sctpClosed, sctpClosed, sctpMax},                                               // ABORT
		{sctpMax, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpShutdownRecd, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpMax},          // SHUTDOWN
		{sctpMax, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpEstablished, sctpShutdownAckSent, sctpShutdownAckSent, sctpShutdownAckSent, sctpMax},     // SHUTDOWN_ACK
		{sctpMax, sctpClosed, sctpCookieWait, sctpClosed, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpMax},                 // ERROR
		{sctpMax, sctpClosed, sctpCookieEchoed, sctpCookieEchoed, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpMax},         // COOKIE_ECHO
		{sctpMax, sctpClosed, sctpCookieWait, sctpEstablished, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpMax},            // COOKIE_ACK
		{sctpMax, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpClosed, sctpMax},                    // SHUTDOWN_COMPLETE
		{sctpMax, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpHeartbeatSent}, // HEARTBEAT
		{sctpMax, sctpClosed, sctpCookieWait, sctpCookieEchoed, sctpEstablished, sctpShutdownSent, sctpShutdownRecd, sctpShutdownAckSent, sctpEstablished},   // HEARTBEAT_ACK
	},
}

// sctpChunkRow is the row of sctpTransitions for a chunk type; -1 for chunks
// that do not change the state (DATA, SACK, ...).
func sctpChunkRow(typ uint8) int {
	switch typ {
	case chunkInit:
		return 0
	case chunkInitAck:
		return 1
	case chunkAbort:
		return 2
	case chunkShutdown:
		return 3
	case chunkShutdownAck:
		return 4
	case chunkError:
		return 5
	case chunkCookieEcho:
		return 6
	case chunkCookieAck:
		return 7
	case chunkShutdownComplete:
		return 8
	case chunkHeartbeat:
		return 9
	case chunkHeartbeatAck:
		return 10
	}
	return -1
}

// sctpNextState is sctp_new_state.
func sctpNextState(dir int, cur, typ uint8) uint8 {
	row := sctpChunkRow(typ)
	if row < 0 {
		return cur
	}
	return sctpTransitions[dir][row][cur]
}

// sctpConn is the SCTP part of an entry (struct ip_ct_sctp).
type sctpConn struct {
	state uint8
	// vtag is the verification tag expected from each direction
	// (host order of the wire bytes; only compared).
	vtag [2]uint32
	// init says an INIT was seen from the direction (collision checks).
	init [2]bool
	// hbFailed: a HEARTBEAT had an unexpected tag (a possible restart
	// on a new path); lastDir is the direction it came from.
	hbFailed bool
	lastDir  int
}

// sctpChunkSet is the set of chunk types present in a packet.
type sctpChunkSet [4]uint64

func (s *sctpChunkSet) add(typ uint8)      { s[typ>>6] |= 1 << (typ & 63) }
func (s *sctpChunkSet) has(typ uint8) bool { return s[typ>>6]&(1<<(typ&63)) != 0 }

// sctpChunks walks the chunk headers of an SCTP packet like the kernel's
// for_each_sctp_chunk: from after the common header while a whole chunk
// header lies inside the datagram, stepping by the chunk length rounded up
// to 4. Headers the capture does not hold end the walk (sctpCut refuses
// such packets before they reach the handler).
type sctpChunks struct {
	data []byte
	off  int // offset of the next chunk header in data
	end  int // the datagram's real length
}

func newSCTPChunks(p *pkt) sctpChunks {
	return sctpChunks{data: p.data, off: p.l4 + sctpCommonHeader, end: p.length}
}

// next returns the next chunk's type, flags, length field and offset.
func (it *sctpChunks) next() (typ, flags uint8, length int, off int, ok bool) {
	off = it.off
	if off >= it.end || off+sctpChunkHeader > it.end || off+sctpChunkHeader > len(it.data) {
		return 0, 0, 0, 0, false
	}
	h := it.data[off:]
	length = int(binary.BigEndian.Uint16(h[2:]))
	it.off = off + (length+3)&^3
	return h[0], h[1], length, off, true
}

// initTag reads the initiate tag of the INIT or INIT_ACK chunk at off; ok
// is false when the datagram does not hold the whole INIT header.
func (it *sctpChunks) initTag(off int) (uint32, bool) {
	o := off + sctpChunkHeader
	if o+sctpInitHeader > it.end || o+sctpInitHeader > len(it.data) {
		return 0, false
	}
	return binary.BigEndian.Uint32(it.data[o:]), true
}

// sctpCut reports whether the capture ends inside SCTP headers the tracker
// would read (the common header, a chunk header, an INIT header) although
// the datagram holds them on the wire.
func sctpCut(p *pkt) bool {
	if ok, cut := p.have(sctpCommonHeader); !ok {
		return cut
	}
	off := p.l4 + sctpCommonHeader
	for off < p.length && off+sctpChunkHeader <= p.length {
		if off+sctpChunkHeader > len(p.data) {
			return true
		}
		typ := p.data[off]
		length := int(binary.BigEndian.Uint16(p.data[off+2:]))
		if length == 0 {
			return false // the chunk checks stop here
		}
		if typ == chunkInit || typ == chunkInitAck {
			if n := off + sctpChunkHeader + sctpInitHeader; n <= p.length && n > len(p.data) {
				return true
			}
		}
		off += (length + 3) &^ 3
	}
	return false
}

// castagnoli is the CRC32c table (read-only; the stdlib uses the CPU's
// CRC32 instruction for it where there is one).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// zeroSum stands in for the checksum field while summing (read-only).
var zeroSum [4]byte

// sctpChecksumOK verifies the CRC32c of the whole SCTP packet (computed
// with the checksum field as zero, stored little-endian as the kernel's
// sctp_compute_cksum returns it).
func sctpChecksumOK(p *pkt) bool {
	seg := p.data[p.l4:]
	crc := crc32.Update(0, castagnoli, seg[:8])
	crc = crc32.Update(crc, castagnoli, zeroSum[:])
	crc = crc32.Update(crc, castagnoli, seg[sctpCommonHeader:])
	return crc == binary.LittleEndian.Uint32(seg[8:])
}

// sctpBasicChecks is do_basic_checks: at least one chunk, no zero-length
// chunk, COOKIE_ECHO/COOKIE_ACK only first, INIT/INIT_ACK/SHUTDOWN_COMPLETE
// only alone. It returns the set of chunk types.
func sctpBasicChecks(p *pkt) (sctpChunkSet, bool) {
	var set sctpChunkSet
	it := newSCTPChunks(p)
	count := 0
	alone := false
	for {
		typ, _, length, _, ok := it.next()
		if !ok {
			break
		}
		if typ == chunkInit || typ == chunkInitAck || typ == chunkShutdownComplete {
			alone = true
		}
		if ((typ == chunkCookieAck || typ == chunkCookieEcho || alone) && count != 0) || length == 0 {
			return set, false
		}
		set.add(typ)
		count++
	}
	return set, count != 0
}

// sctpNew is sctp_new: a new entry must start with chunks that are valid
// from NONE in the original direction (not DATA, SACK, ...); it records the
// verification tags the packet implies.
func sctpNew(c *conn, p *pkt, vtag uint32) bool {
	s := &c.sctp
	*s = sctpConn{}
	it := newSCTPChunks(p)
	for {
		typ, _, _, off, ok := it.next()
		if !ok {
			return true
		}
		switch st := sctpNextState(0, sctpNone, typ); st {
		case sctpNone, sctpMax:
			return false
		}
		switch typ {
		case chunkInit:
			if vtag != 0 {
				return false
			}
			tag, ok := it.initTag(off)
			if !ok {
				return false
			}
			s.vtag[1] = tag
		case chunkHeartbeat:
			s.vtag[0] = vtag
		default:
			// An out-of-the-blue packet: the answer (SHUTDOWN_COMPLETE or
			// ABORT) reflects its tag.
			s.vtag[1] = vtag
		}
		s.state = sctpNone
	}
}

// sctpVtagExempt are the chunks whose packets skip the general
// verification tag check (RFC 9260 8.5.1 special cases).
var sctpVtagExempt = [...]uint8{chunkInit, chunkShutdownComplete, chunkCookieEcho, chunkAbort,
	chunkShutdownAck, chunkHeartbeat, chunkHeartbeatAck}

// sctpPacket is nf_conntrack_sctp_packet (with sctp_error).
func (t *Tracker) sctpPacket(c *conn, p *pkt, reply bool) l4Result {
	if p.l4Len() < sctpCommonHeader {
		return l4Result{kind: resInvalid, reason: reasonSCTPShort}
	}
	if !p.csumOK && !sctpChecksumOK(p) {
		return l4Result{kind: resInvalid, reason: reasonSCTPChecksum}
	}
	vtag := binary.BigEndian.Uint32(p.l4Data()[4:])
	set, ok := sctpBasicChecks(p)
	if !ok {
		return l4Result{kind: resInvalid, reason: reasonSCTPChunks}
	}
	if !c.confirmed {
		// Out-of-the-blue packets with these chunks are discarded (8.4).
		if set.has(chunkAbort) || set.has(chunkShutdownComplete) || set.has(chunkCookieAck) {
			return l4Result{kind: resInvalid, reason: reasonSCTPNew}
		}
		if !sctpNew(c, p, vtag) {
			return l4Result{kind: resInvalid, reason: reasonSCTPNew}
		}
	}
	dir := 0
	if reply {
		dir = 1
	}
	s := &c.sctp
	exempt := false
	for _, typ := range sctpVtagExempt {
		if set.has(typ) {
			exempt = true
			break
		}
	}
	if !exempt && vtag != s.vtag[dir] {
		return l4Result{kind: resInvalid, reason: reasonSCTPVtag}
	}

	var r l4Result
	newState := sctpNone
	ignore := false
	it := newSCTPChunks(p)
	for {
		typ, flags, _, off, ok := it.next()
		if !ok {
			break
		}
		switch typ {
		case chunkInit:
			if vtag != 0 { // (A)
				return l4Result{kind: resInvalid, reason: reasonSCTPVtag, changed: r.changed}
			}
		case chunkAbort, chunkShutdownComplete: // (B), (C)
			want := s.vtag[dir]
			if flags&chunkFlagT != 0 {
				want = s.vtag[1-dir]
			}
			if vtag != want {
				return l4Result{kind: resInvalid, reason: reasonSCTPVtag, changed: r.changed}
			}
		case chunkCookieEcho: // (D)
			if vtag != s.vtag[dir] {
				return l4Result{kind: resInvalid, reason: reasonSCTPVtag, changed: r.changed}
			}
		case chunkCookieAck:
			s.init = [2]bool{}
		case chunkHeartbeat:
			switch {
			case s.vtag[dir] == 0:
				s.vtag[dir] = vtag
			case vtag != s.vtag[dir]:
				if set.has(chunkData) || ignore {
					return l4Result{kind: resInvalid, reason: reasonSCTPVtag, changed: r.changed}
				}
				s.hbFailed = true
				s.lastDir = dir
				ignore = true
				continue
			default:
				s.hbFailed = false
			}
		case chunkHeartbeatAck:
			switch {
			case s.vtag[dir] == 0:
				s.vtag[dir] = vtag
			case vtag != s.vtag[dir]:
				if set.has(chunkData) || ignore || !s.hbFailed || s.lastDir == dir {
					return l4Result{kind: resInvalid, reason: reasonSCTPVtag, changed: r.changed}
				}
				s.hbFailed = false
				s.vtag[dir] = vtag
				s.vtag[1-dir] = 0
			default:
				s.hbFailed = false
			}
		}

		oldState := s.state
		newState = sctpNextState(dir, oldState, typ)
		if newState == sctpMax {
			return l4Result{kind: resInvalid, reason: reasonSCTPState, changed: r.changed}
		}
		switch typ {
		case chunkInit:
			tag, ok := it.initTag(off)
			if !ok {
				return l4Result{kind: resInvalid, reason: reasonSCTPInit, changed: r.changed}
			}
			// An INIT whose tag the entry already expects (stale or
			// retransmitted) is not recorded as a handshake in progress
			// (6.18 stable: "skip recording stale or retransmitted INIT").
			if oldState == sctpNone || s.vtag[1-dir] != tag {
				if s.init[dir] && s.init[1-dir] {
					s.init[1-dir] = false
				}
				s.init[dir] = true
			}
			s.vtag[1-dir] = tag
			// An INIT retransmitted in CLOSED does not refresh the entry
			// (port reuse must not keep it alive).
			if newState == sctpClosed && oldState == sctpClosed && c.confirmed {
				ignore = true
			}
		case chunkInitAck:
			tag, ok := it.initTag(off)
			if !ok {
				return l4Result{kind: resInvalid, reason: reasonSCTPInit, changed: r.changed}
			}
			old := s.vtag[1-dir]
			if !s.init[1-dir] && old != 0 && old != tag {
				return l4Result{kind: resInvalid, reason: reasonSCTPVtag, changed: r.changed}
			}
			if s.init[dir] && s.init[1-dir] && old != tag { // collision
				return l4Result{kind: resInvalid, reason: reasonSCTPVtag, changed: r.changed}
			}
			s.vtag[1-dir] = tag
		}
		s.state = newState
		if oldState != newState {
			r.changed = true
			if newState == sctpEstablished && c.status&flow.StatusAssured == 0 {
				t.setAssured(c)
			}
		}
	}
	r.kind = resAccept
	if !ignore {
		t.refresh(c, p, reply, t.sctpTimeout(newState))
	}
	return r
}

// sctpTimeout is the timeout of an entry in state st (NONE uses CLOSED's).
func (t *Tracker) sctpTimeout(st uint8) int64 {
	switch st {
	case sctpCookieWait:
		return int64(t.to.SCTPCookieWait)
	case sctpCookieEchoed:
		return int64(t.to.SCTPCookieEchoed)
	case sctpEstablished:
		return int64(t.to.SCTPEstablished)
	case sctpShutdownSent:
		return int64(t.to.SCTPShutdownSent)
	case sctpShutdownRecd:
		return int64(t.to.SCTPShutdownRecd)
	case sctpShutdownAckSent:
		return int64(t.to.SCTPShutdownAckSent)
	case sctpHeartbeatSent:
		return int64(t.to.SCTPHeartbeatSent)
	}
	return int64(t.to.SCTPClosed)
}
