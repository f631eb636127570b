package tracker

import (
	"encoding/binary"

	"github.com/conntop/conntop/internal/flow"
)

// Timeout slots beyond the TCP states (TCP_CONNTRACK_RETRANS, _UNACK).
const (
	tcpSlotRetrans  = int(flow.NumTCPStates)
	tcpSlotUnack    = tcpSlotRetrans + 1
	tcpTimeoutSlots = tcpSlotUnack + 1
)

// Table values beyond the states: sIV (invalid) and sIG (ignore).
const (
	sNO = flow.TCPNone
	sSS = flow.TCPSynSent
	sSR = flow.TCPSynRecv
	sES = flow.TCPEstablished
	sFW = flow.TCPFinWait
	sCW = flow.TCPCloseWait
	sLA = flow.TCPLastAck
	sTW = flow.TCPTimeWait
	sCL = flow.TCPClose
	sS2 = flow.TCPSynSent2
	sIV = flow.NumTCPStates
	sIG = flow.NumTCPStates + 1
)

// Packet classes (enum tcp_bit_set).
const (
	idxSyn = iota
	idxSynAck
	idxFin
	idxAck
	idxRst
	idxNone
)

// tcpTable is tcp_conntracks[dir][class][state] of nf_conntrack_proto_tcp.c.
var tcpTable = [2][6][flow.NumTCPStates]flow.TCPState{
	{ // ORIGINAL
		/* syn    */ {sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2},
		/* synack */ {sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR},
		/* fin    */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
		/* ack    */ {sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV},
		/* rst    */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
		/* none   */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
	},
	{ // REPLY
		/* syn    */ {sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2},
		/* synack */ {sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR},
		/* fin    */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
		/* ack    */ {sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG},
		/* rst    */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
		/* none   */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
	},
}

// Per-direction flags (IP_CT_TCP_FLAG_*) and connection flags.
const (
	tfWindowScale  = 0x01
	tfSackPerm     = 0x02
	tfCloseInit    = 0x04
	tfBeLiberal    = 0x08
	tfDataUnacked  = 0x10
	tfMaxAckSet    = 0x20
	tfChallengeAck = 0x40 // IP_CT_EXP_CHALLENGE_ACK (last_flags)
	tfSimOpen      = 0x80 // IP_CT_TCP_SIMULTANEOUS_OPEN (last_flags)
)

// TCP header flag bits.
const (
	thFIN = 0x01
	thSYN = 0x02
	thRST = 0x04
	thPSH = 0x08
	thACK = 0x10
	thURG = 0x20
	thECE = 0x40
	thCWR = 0x80
)

// tcpValidFlags is tcp_valid_flags: the flag combinations (PSH, ECE and CWR
// ignored) the kernel accepts.
var tcpValidFlags = [64]bool{
	thSYN:                 true,
	thSYN | thURG:         true,
	thSYN | thACK:         true,
	thRST:                 true,
	thRST | thACK:         true,
	thFIN | thACK:         true,
	thFIN | thACK | thURG: true,
	thACK:                 true,
	thACK | thURG:         true,
}

// tcpPeer is struct ip_ct_tcp_state: what is known of one direction.
type tcpPeer struct {
	end, maxend, maxwin, maxack uint32
	scale                       uint8
	flags                       uint8
}

// tcpConn is struct ip_ct_tcp.
type tcpConn struct {
	seen       [2]tcpPeer
	state      flow.TCPState
	lastDir    uint8
	retrans    uint8
	lastIndex  uint8
	lastSeq    uint32
	lastAck    uint32
	lastEnd    uint32
	lastWin    uint16
	lastWscale uint8
	lastFlags  uint8
}

// tcpSeg is a parsed TCP header.
type tcpSeg struct {
	seq, ack uint32
	win      uint16
	flags    uint8
	opts     []byte
	seglen   int // payload length on the wire
	payload  []byte
}

func (s *tcpSeg) has(f uint8) bool { return s.flags&f != 0 }

// index is get_conntrack_index.
func (s *tcpSeg) index() uint8 {
	switch {
	case s.has(thRST):
		return idxRst
	case s.has(thSYN):
		if s.has(thACK) {
			return idxSynAck
		}
		return idxSyn
	case s.has(thFIN):
		return idxFin
	case s.has(thACK):
		return idxAck
	}
	return idxNone
}

// end is segment_seq_plus_len.
func (s *tcpSeg) end() uint32 {
	e := s.seq + uint32(s.seglen)
	if s.has(thSYN) {
		e++
	}
	if s.has(thFIN) {
		e++
	}
	return e
}

// Sequence number comparisons (before/after of include/net/tcp.h).
func before(a, b uint32) bool { return int32(a-b) < 0 }
func after(a, b uint32) bool  { return int32(b-a) < 0 }

// result kinds of a protocol handler.
const (
	resAccept  = iota // accepted (accounted as the handler decided)
	resInvalid        // -NF_ACCEPT: INVALID
	resRepeat         // -NF_REPEAT: kill the entry and look up again
	resKill           // accepted, accounted, then the entry is killed
)

type l4Result struct {
	kind    uint8
	reason  string
	changed bool // state or status changed (an update event is due)
}

// tcpOptions is tcp_options: window scale and SACK permitted from the
// options of a SYN.
func tcpOptions(opts []byte, st *tcpPeer) {
	if len(opts) == 0 {
		return
	}
	st.scale = 0
	st.flags &= tfBeLiberal
	for len(opts) > 0 {
		op := opts[0]
		switch op {
		case 0: // EOL
			return
		case 1: // NOP
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 {
			return
		}
		size := int(opts[1])
		if size < 2 || size > len(opts) {
			return
		}
		if op == 4 && size == 2 {
			st.flags |= tfSackPerm
		} else if op == 3 && size == 3 {
			st.scale = min(opts[2], 14)
			st.flags |= tfWindowScale
		}
		opts = opts[size:]
	}
}

// tcpSack is tcp_sack: the highest right edge of the first SACK option.
func tcpSack(opts []byte, sack *uint32) {
	if len(opts) == 0 {
		return
	}
	if len(opts) == 12 && binary.BigEndian.Uint32(opts) == 0x0101080A {
		return // timestamp only
	}
	for len(opts) > 0 {
		op := opts[0]
		switch op {
		case 0:
			return
		case 1:
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 {
			return
		}
		size := int(opts[1])
		if size < 2 || size > len(opts) {
			return
		}
		if op == 5 && size >= 10 && (size-2)%8 == 0 {
			for i := 2; i+8 <= size; i += 8 {
				if tmp := binary.BigEndian.Uint32(opts[i+4:]); after(tmp, *sack) {
					*sack = tmp
				}
			}
			return
		}
		opts = opts[size:]
	}
}

// tcpInitSender is tcp_init_sender.
func tcpInitSender(sender, receiver *tcpPeer, s *tcpSeg, end, win uint32, dir int) {
	sender.end = end
	sender.maxend = end
	sender.maxwin = win
	if win == 0 {
		sender.maxwin = 1
	}
	tcpOptions(s.opts, sender)
	if dir == 1 && (sender.flags&tfWindowScale == 0 || receiver.flags&tfWindowScale == 0) {
		sender.scale = 0
		receiver.scale = 0
	}
}

// Window check outcomes (enum nf_ct_tcp_action).
const (
	winIgnore = iota
	winInvalid
	winAccept
)

// logInvalid is nf_tcp_log_invalid: be_liberal turns any outcome into accept.
func (t *Tracker) logInvalid(sender *tcpPeer, res int) int {
	if sender.flags&tfBeLiberal != 0 || t.cfg.BeLiberal {
		return winAccept
	}
	return res
}

func maxAckWindow(sender *tcpPeer) uint32 {
	if sender.maxwin > 66000 {
		return sender.maxwin
	}
	return 66000
}

// tcpInWindow is tcp_in_window.
func (t *Tracker) tcpInWindow(tc *tcpConn, dir int, index uint8, s *tcpSeg) (int, string) {
	sender := &tc.seen[dir]
	receiver := &tc.seen[1-dir]
	seq := s.seq
	ack := s.ack
	sack := ack
	win := uint32(s.win)
	end := s.end()
	if receiver.flags&tfSackPerm != 0 {
		tcpSack(s.opts, &sack)
	}
	if sender.maxwin == 0 {
		if s.has(thSYN) {
			tcpInitSender(sender, receiver, s, end, win, dir)
			if !s.has(thACK) {
				return winAccept, "" // simultaneous open
			}
		} else {
			// Mid-connection: the history is lost.
			sender.end = end
			swin := win << sender.scale
			sender.maxwin = swin
			if swin == 0 {
				sender.maxwin = 1
			}
			sender.maxend = end + sender.maxwin
			if receiver.maxwin == 0 {
				receiver.end = sack
				receiver.maxend = sack
			} else if sack == receiver.end+1 {
				receiver.end++ // reply to a keepalive
			}
		}
	} else if s.has(thSYN) && after(end, sender.end) &&
		(tc.state == flow.TCPSynSent || tc.state == flow.TCPSynRecv) {
		tcpInitSender(sender, receiver, s, end, win, dir)
		if dir == 1 && !s.has(thACK) {
			return winAccept, ""
		}
	}
	if !s.has(thACK) {
		ack = receiver.end
		sack = ack
	} else if s.flags&(thACK|thRST) == thACK|thRST && ack == 0 {
		ack = receiver.end
		sack = ack
	}
	if s.has(thRST) && seq == 0 && tc.state == flow.TCPSynSent {
		seq = sender.end
		end = sender.end
	}
	if !before(seq, sender.maxend+1) {
		overshot := end - sender.maxend + 1
		ackOK := after(sack, receiver.end-maxAckWindow(sender)-1)
		inRecvWin := receiver.maxwin != 0 && after(end, sender.end-receiver.maxwin-1)
		if inRecvWin && ackOK && overshot <= receiver.maxwin && before(sack, receiver.end+1) {
			sender.end = end
			sender.flags |= tfDataUnacked
			return t.logInvalid(sender, winIgnore), reasonTCPSeqOver
		}
		return t.logInvalid(sender, winInvalid), reasonTCPSeqOver
	}
	if !before(sack, receiver.end+1) {
		return t.logInvalid(sender, winInvalid), reasonTCPAckOver
	}
	inRecvWin := receiver.maxwin == 0 || after(end, sender.end-receiver.maxwin-1)
	if !inRecvWin {
		return t.logInvalid(sender, winIgnore), ""
	}
	if !after(sack, receiver.end-maxAckWindow(sender)-1) {
		return t.logInvalid(sender, winIgnore), ""
	}
	if !s.has(thSYN) {
		win <<= sender.scale
	}
	swin := win + (sack - ack)
	if sender.maxwin < swin {
		sender.maxwin = swin
	}
	if after(end, sender.end) {
		sender.end = end
		sender.flags |= tfDataUnacked
	}
	if s.has(thACK) {
		if sender.flags&tfMaxAckSet == 0 {
			sender.maxack = ack
			sender.flags |= tfMaxAckSet
		} else if after(ack, sender.maxack) {
			sender.maxack = ack
		}
	}
	if receiver.maxwin != 0 && after(end, sender.maxend) {
		receiver.maxwin += end - sender.maxend
	}
	if after(sack+win, receiver.maxend-1) {
		receiver.maxend = sack + win
		if win == 0 {
			receiver.maxend++
		}
	}
	if ack == receiver.end {
		receiver.flags &^= tfDataUnacked
	}
	if index == idxAck {
		if tc.lastDir == uint8(dir) && tc.lastSeq == seq && tc.lastAck == ack &&
			tc.lastEnd == end && tc.lastWin == s.win {
			if tc.retrans < 255 {
				tc.retrans++
			}
		} else {
			tc.lastDir = uint8(dir)
			tc.lastSeq = seq
			tc.lastAck = ack
			tc.lastEnd = end
			tc.lastWin = s.win
			tc.retrans = 0
		}
	}
	return winAccept, ""
}

// tcpHandleInvalid is nf_tcp_handle_invalid: an out-of-window FIN/RST answering
// a FIN/RST of the other side lowers an assured entry's timeout to UNACK.
func (t *Tracker) tcpHandleInvalid(c *conn, dir int, index uint8) {
	tc := &c.tcp
	if c.status&flow.StatusAssured == 0 {
		return
	}
	if index != idxRst && index != idxFin {
		return
	}
	if tc.lastDir != uint8(dir) && (tc.lastIndex == idxFin || tc.lastIndex == idxRst) {
		left := c.expires - t.nowNS
		if left < int64(120e9) {
			return
		}
		if left > t.tcpTO[tcpSlotUnack] {
			c.expires = t.nowNS + t.tcpTO[tcpSlotUnack]
		}
	} else {
		tc.lastIndex = index
		tc.lastDir = uint8(dir)
	}
}

// parseTCP parses the TCP header of p. It returns a reason when the
// packet is invalid (tcp_error), and cut when the capture ends inside it.
func parseTCP(p *pkt, s *tcpSeg) (reason string, cut bool) {
	ok, c := p.have(20)
	if !ok {
		if c {
			return "", true
		}
		return reasonTCPTruncated, false
	}
	b := p.l4Data()
	doff := int(b[12]>>4) * 4
	if doff < 20 || p.l4Len() < doff {
		return reasonTCPTruncated, false
	}
	if ok, c := p.have(doff); !ok {
		return "", c
	}
	s.seq = binary.BigEndian.Uint32(b[4:])
	s.ack = binary.BigEndian.Uint32(b[8:])
	s.flags = b[13]
	s.win = binary.BigEndian.Uint16(b[14:])
	s.opts = b[20:doff]
	s.seglen = p.l4Len() - doff
	s.payload = b[doff:]
	return "", false
}

// tcpPacket is nf_conntrack_tcp_packet.
func (t *Tracker) tcpPacket(c *conn, p *pkt, reply bool) l4Result {
	var s tcpSeg
	reason, cut := parseTCP(p, &s)
	if cut {
		// Cannot happen: l4Packet checks the capture covers the header.
		return l4Result{kind: resInvalid, reason: reasonTruncatedCapture}
	}
	if reason != "" {
		return l4Result{kind: resInvalid, reason: reason}
	}
	if !p.csumOK && !l4ChecksumOK(p, true) {
		return l4Result{kind: resInvalid, reason: reasonTCPChecksum}
	}
	if !tcpValidFlags[s.flags&^(thECE|thCWR|thPSH)] {
		return l4Result{kind: resInvalid, reason: reasonTCPFlags}
	}
	tc := &c.tcp
	if !c.confirmed && !t.tcpNew(c, &s) {
		return l4Result{kind: resInvalid, reason: reasonTCPNew}
	}
	dir := 0
	if reply {
		dir = 1
	}
	oldState := tc.state
	index := s.index()
	newState := tcpTable[dir][index][oldState]

	skipWindow := false
	switch newState {
	case flow.TCPSynSent:
		if oldState < flow.TCPTimeWait {
			break
		}
		if (tc.seen[dir].flags|tc.seen[1-dir].flags)&tfCloseInit != 0 ||
			(tc.lastDir == uint8(dir) && tc.lastIndex == idxRst) {
			return l4Result{kind: resRepeat}
		}
		fallthrough
	case sIG:
		if index == idxSynAck && tc.lastIndex == idxSyn && tc.lastDir != uint8(dir) && s.ack == tc.lastEnd {
			// A SYN/ACK answering a SYN we ignored: resynchronise.
			oldState = flow.TCPSynSent
			newState = flow.TCPSynRecv
			ld := &tc.seen[tc.lastDir]
			ld.end = tc.lastEnd
			ld.maxend = tc.lastEnd
			ld.maxwin = uint32(tc.lastWin)
			if tc.lastWin == 0 {
				ld.maxwin = 1
			}
			ld.scale = tc.lastWscale
			tc.lastFlags &^= tfChallengeAck
			ld.flags = tc.lastFlags
			rs := &tc.seen[dir]
			rs.end, rs.maxend, rs.maxwin, rs.maxack, rs.scale = 0, 0, 0, 0, 0
			rs.flags &= tfBeLiberal
			break
		}
		tc.lastIndex = index
		tc.lastDir = uint8(dir)
		tc.lastSeq = s.seq
		tc.lastEnd = s.end()
		tc.lastWin = s.win
		if index == idxSyn && dir == 0 {
			var seen tcpPeer
			tc.lastFlags = 0
			tc.lastWscale = 0
			tcpOptions(s.opts, &seen)
			if seen.flags&tfWindowScale != 0 {
				tc.lastFlags |= tfWindowScale
				tc.lastWscale = seen.scale
			}
			if seen.flags&tfSackPerm != 0 {
				tc.lastFlags |= tfSackPerm
			}
			if oldState == flow.TCPLastAck {
				tc.lastFlags |= tfChallengeAck
			}
		}
		if oldState == flow.TCPSynSent && index == idxAck && dir == 1 {
			tc.lastAck = s.ack
		}
		return l4Result{kind: resAccept} // ignored: no accounting, no refresh
	case sIV:
		return l4Result{kind: resInvalid, reason: reasonTCPState}
	case flow.TCPTimeWait:
		if oldState == flow.TCPLastAck && index == idxAck && tc.lastDir != uint8(dir) &&
			tc.lastIndex == idxSyn && tc.lastFlags&tfChallengeAck != 0 {
			tc.lastFlags &^= tfChallengeAck
			return l4Result{kind: resAccept} // challenge ACK: no state change
		}
	case flow.TCPSynSent2:
		tc.lastFlags |= tfSimOpen
	case flow.TCPSynRecv:
		if dir == 1 && index == idxAck && tc.lastFlags&tfSimOpen != 0 {
			newState = flow.TCPEstablished
		}
	case flow.TCPClose:
		if index != idxRst {
			break
		}
		if tcpCanEarlyDrop(tc.state) {
			skipWindow = true
			break
		}
		if tc.seen[1-dir].flags&tfMaxAckSet != 0 && tc.lastIndex != idxSyn {
			seq := s.seq
			established := tc.state == flow.TCPEstablished && c.status&flow.StatusAssured != 0
			if seq == 0 && !established {
				break
			}
			if before(seq, tc.seen[1-dir].maxack) && !t.cfg.IgnoreInvalidRST {
				return l4Result{kind: resInvalid, reason: reasonTCPRST}
			}
			if !established || seq == tc.seen[1-dir].maxack {
				break
			}
			if tc.lastIndex == idxAck && tc.lastDir == uint8(dir) && seq == tc.lastEnd {
				break
			}
			newState = oldState // keep the state to allow a challenge ACK
		}
		if ((c.status&flow.StatusSeenReply != 0 && tc.lastIndex == idxSyn) ||
			(c.status&flow.StatusAssured == 0 && tc.lastIndex == idxAck)) &&
			s.ack == tc.lastEnd {
			skipWindow = true
			break
		}
		if oldState == flow.TCPSynSent && tc.lastIndex == idxAck && tc.lastDir == 1 && s.seq == tc.lastAck {
			skipWindow = true
		}
	}

	if !skipWindow {
		res, why := t.tcpInWindow(tc, dir, index, &s)
		switch res {
		case winIgnore:
			return l4Result{kind: resAccept}
		case winInvalid:
			t.tcpHandleInvalid(c, dir, index)
			return l4Result{kind: resInvalid, reason: why}
		}
	}

	// In-window packet.
	tc.lastIndex = index
	tc.lastDir = uint8(dir)
	tc.state = newState
	if oldState != newState && newState == flow.TCPFinWait {
		tc.seen[dir].flags |= tfCloseInit
	}
	timeout := t.tcpTO[newState]
	switch {
	case int(tc.retrans) >= t.cfg.MaxRetrans && timeout > t.tcpTO[tcpSlotRetrans]:
		timeout = t.tcpTO[tcpSlotRetrans]
	case index == idxRst:
		timeout = t.tcpTO[flow.TCPClose]
	case (tc.seen[0].flags|tc.seen[1].flags)&tfDataUnacked != 0 && timeout > t.tcpTO[tcpSlotUnack]:
		timeout = t.tcpTO[tcpSlotUnack]
	case tc.lastWin == 0 && timeout > t.tcpTO[tcpSlotRetrans]:
		timeout = t.tcpTO[tcpSlotRetrans]
	}
	r := l4Result{kind: resAccept, changed: newState != oldState && c.confirmed}
	if c.status&flow.StatusSeenReply == 0 {
		if s.has(thRST) {
			t.account(c, p, reply)
			return l4Result{kind: resKill}
		}
		if index == idxSyn && oldState == flow.TCPSynSent {
			return r // a retransmitted SYN does not renew the timeout
		}
		if newState == flow.TCPEstablished && timeout > t.tcpTO[tcpSlotUnack] {
			timeout = t.tcpTO[tcpSlotUnack]
		}
	} else if c.status&flow.StatusAssured == 0 &&
		(oldState == flow.TCPSynRecv || oldState == flow.TCPEstablished) &&
		newState == flow.TCPEstablished {
		t.setAssured(c)
		r.changed = true
	}
	t.refresh(c, p, reply, timeout)
	return r
}

// tcpCanEarlyDrop is tcp_can_early_drop.
func tcpCanEarlyDrop(s flow.TCPState) bool {
	switch s {
	case flow.TCPFinWait, flow.TCPLastAck, flow.TCPTimeWait, flow.TCPClose, flow.TCPCloseWait:
		return true
	}
	return false
}

// tcpNew is tcp_new: set up a new entry from its first packet.
func (t *Tracker) tcpNew(c *conn, s *tcpSeg) bool {
	newState := tcpTable[0][s.index()][sNO]
	if newState >= sIV {
		return false
	}
	tc := &c.tcp
	if newState == flow.TCPSynSent {
		*tc = tcpConn{}
		o := &tc.seen[0]
		o.end = s.end()
		o.maxwin = uint32(s.win)
		if o.maxwin == 0 {
			o.maxwin = 1
		}
		o.maxend = o.end
		tcpOptions(s.opts, o)
	} else if !t.cfg.Loose {
		return false
	} else {
		*tc = tcpConn{}
		o := &tc.seen[0]
		o.end = s.end()
		o.maxwin = uint32(s.win)
		if o.maxwin == 0 {
			o.maxwin = 1
		}
		o.maxend = o.end + o.maxwin
		tc.seen[0].flags = tfSackPerm | tfBeLiberal
		tc.seen[1].flags = tfSackPerm | tfBeLiberal
	}
	tc.lastIndex = idxNone
	return true
}
