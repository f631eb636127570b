//go:build linux

package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/conntop/conntop/internal/flow"
)

// ctnetlink attribute types (linux/netfilter/nfnetlink_conntrack.h).
const (
	nlaNested   = 0x8000
	nlaByteOrd  = 0x4000
	nlaTypeMask = 0x3fff

	ctaTupleOrig     = 1
	ctaTupleReply    = 2
	ctaStatus        = 3
	ctaProtoInfo     = 4
	ctaHelp          = 5
	ctaTimeout       = 7
	ctaMark          = 8
	ctaCountersOrig  = 9
	ctaCountersReply = 10
	ctaUse           = 11
	ctaID            = 12
	ctaTupleMaster   = 14
	ctaZone          = 18

	ctaTupleIP    = 1
	ctaTupleProto = 2
	ctaTupleZone  = 3

	ctaIPv4Src = 1
	ctaIPv4Dst = 2
	ctaIPv6Src = 3
	ctaIPv6Dst = 4

	ctaProtoNum        = 1
	ctaProtoSrcPort    = 2
	ctaProtoDstPort    = 3
	ctaProtoICMPID     = 4
	ctaProtoICMPType   = 5
	ctaProtoICMPCode   = 6
	ctaProtoICMPv6ID   = 7
	ctaProtoICMPv6Type = 8
	ctaProtoICMPv6Code = 9

	ctaProtoInfoTCP       = 1
	ctaProtoInfoTCPState  = 1
	ctaProtoInfoSCTP      = 3
	ctaProtoInfoSCTPState = 1

	ctaHelpName = 1

	ctaCountersPackets   = 1
	ctaCountersBytes     = 2
	ctaCounters32Packets = 3
	ctaCounters32Bytes   = 4

	ctaStatsFound         = 2
	ctaStatsInvalid       = 4
	ctaStatsIgnore        = 5
	ctaStatsInsert        = 8
	ctaStatsInsertFailed  = 9
	ctaStatsDrop          = 10
	ctaStatsEarlyDrop     = 11
	ctaStatsError         = 12
	ctaStatsSearchRestart = 13
	ctaStatsClashResolve  = 14
	ctaStatsChainTooLong  = 15

	ctaStatsGlobalEntries    = 1
	ctaStatsGlobalMaxEntries = 2
)

// have records which optional parts a decoded message carried: update and
// destroy events omit some, and the source fills them in.
type have uint8

const (
	haveProtoInfo have = 1 << iota
	haveHelper
	haveMaster
	haveCounters
	haveStatus
	haveTimeout
	haveUse
)

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("malformed ctnetlink message")

// attrs iterates over the netlink attributes in b.
type attrs struct {
	b   []byte
	typ uint16
	val []byte
	err error
}

// next advances to the next attribute; it returns false at the end or on a
// malformed attribute (then a.err is set).
func (a *attrs) next() bool {
	if len(a.b) < 4 {
		if len(a.b) != 0 {
			a.err = fmt.Errorf("%w: %d trailing bytes", errMalformed, len(a.b))
		}
		return false
	}
	l := int(binary.NativeEndian.Uint16(a.b))
	if l < 4 || l > len(a.b) {
		a.err = fmt.Errorf("%w: attribute length %d (have %d)", errMalformed, l, len(a.b))
		return false
	}
	a.typ = binary.NativeEndian.Uint16(a.b[2:]) & nlaTypeMask
	a.val = a.b[4:l]
	if al := align4(l); al < len(a.b) {
		a.b = a.b[al:]
	} else {
		a.b = nil
	}
	return true
}

func be16(v []byte) (uint16, error) {
	if len(v) < 2 {
		return 0, fmt.Errorf("%w: short u16", errMalformed)
	}
	return binary.BigEndian.Uint16(v), nil
}

func be32(v []byte) (uint32, error) {
	if len(v) < 4 {
		return 0, fmt.Errorf("%w: short u32", errMalformed)
	}
	return binary.BigEndian.Uint32(v), nil
}

func be64(v []byte) (uint64, error) {
	if len(v) < 8 {
		return 0, fmt.Errorf("%w: short u64", errMalformed)
	}
	return binary.BigEndian.Uint64(v), nil
}

func u8(v []byte) (uint8, error) {
	if len(v) < 1 {
		return 0, fmt.Errorf("%w: short u8", errMalformed)
	}
	return v[0], nil
}

// decodeFlow decodes a ctnetlink conntrack message payload (after the
// nlmsghdr: nfgenmsg then attributes) into f, which is reset first. It does
// not allocate except for an uncommon helper name and a master tuple.
func decodeFlow(data []byte, f *flow.Flow) (have, error) {
	*f = flow.Flow{}
	if len(data) < nfgenHdrLen {
		return 0, fmt.Errorf("%w: short nfgenmsg", errMalformed)
	}
	f.Family = flow.Family(data[0])
	var h have
	var err error
	var proto uint8
	a := attrs{b: data[nfgenHdrLen:]}
	for err == nil && a.next() {
		v := a.val
		switch a.typ {
		case ctaTupleOrig:
			proto, err = decodeTuple(v, &f.Orig)
		case ctaTupleReply:
			_, err = decodeTuple(v, &f.Reply)
		case ctaTupleMaster:
			m := new(flow.Tuple)
			if _, err = decodeTuple(v, m); err == nil {
				f.Master = m
				h |= haveMaster
			}
		case ctaStatus:
			var s uint32
			s, err = be32(v)
			f.Status = flow.Status(s)
			h |= haveStatus
		case ctaTimeout:
			f.Timeout, err = be32(v)
			h |= haveTimeout
		case ctaMark:
			f.Mark, err = be32(v)
		case ctaID:
			f.ID, err = be32(v)
		case ctaUse:
			f.Use, err = be32(v)
			h |= haveUse
		case ctaZone:
			f.Zone, err = be16(v)
		case ctaProtoInfo:
			err = decodeProtoInfo(v, f)
			h |= haveProtoInfo
		case ctaHelp:
			err = decodeHelp(v, f)
			h |= haveHelper
		case ctaCountersOrig:
			err = decodeCounters(v, &f.Counters.OrigPackets, &f.Counters.OrigBytes)
			f.HasCounters = true
			h |= haveCounters
		case ctaCountersReply:
			err = decodeCounters(v, &f.Counters.ReplyPackets, &f.Counters.ReplyBytes)
			f.HasCounters = true
			h |= haveCounters
		}
	}
	if err == nil {
		err = a.err
	}
	if err != nil {
		return h, fmt.Errorf("decode conntrack entry: %w", err)
	}
	f.Proto = proto
	if f.Family != flow.FamilyIPv4 && f.Family != flow.FamilyIPv6 {
		return h, fmt.Errorf("decode conntrack entry: %w: family %d", errMalformed, f.Family)
	}
	if !f.Orig.Src.IsValid() || !f.Orig.Dst.IsValid() {
		return h, fmt.Errorf("decode conntrack entry: %w: no original tuple", errMalformed)
	}
	return h, nil
}

// decodeTuple decodes a CTA_TUPLE_* nest into t and returns the protocol.
func decodeTuple(b []byte, t *flow.Tuple) (uint8, error) {
	var proto uint8
	a := attrs{b: b}
	for a.next() {
		var err error
		switch a.typ {
		case ctaTupleIP:
			err = decodeIP(a.val, t)
		case ctaTupleProto:
			proto, err = decodeProto(a.val, t)
		}
		if err != nil {
			return 0, err
		}
	}
	return proto, a.err
}

func decodeIP(b []byte, t *flow.Tuple) error {
	a := attrs{b: b}
	for a.next() {
		v := a.val
		switch a.typ {
		case ctaIPv4Src, ctaIPv4Dst:
			if len(v) < 4 {
				return fmt.Errorf("%w: short IPv4 address", errMalformed)
			}
			ip := netip.AddrFrom4([4]byte(v[:4]))
			if a.typ == ctaIPv4Src {
				t.Src = ip
			} else {
				t.Dst = ip
			}
		case ctaIPv6Src, ctaIPv6Dst:
			if len(v) < 16 {
				return fmt.Errorf("%w: short IPv6 address", errMalformed)
			}
			ip := netip.AddrFrom16([16]byte(v[:16]))
			if a.typ == ctaIPv6Src {
				t.Src = ip
			} else {
				t.Dst = ip
			}
		}
	}
	return a.err
}

func decodeProto(b []byte, t *flow.Tuple) (uint8, error) {
	var proto uint8
	a := attrs{b: b}
	for a.next() {
		var err error
		v := a.val
		switch a.typ {
		case ctaProtoNum:
			proto, err = u8(v)
		case ctaProtoSrcPort:
			t.SrcPort, err = be16(v)
		case ctaProtoDstPort:
			t.DstPort, err = be16(v)
		case ctaProtoICMPID, ctaProtoICMPv6ID:
			t.ID, err = be16(v)
		case ctaProtoICMPType, ctaProtoICMPv6Type:
			t.Type, err = u8(v)
		case ctaProtoICMPCode, ctaProtoICMPv6Code:
			t.Code, err = u8(v)
		}
		if err != nil {
			return 0, err
		}
	}
	return proto, a.err
}

func decodeProtoInfo(b []byte, f *flow.Flow) error {
	a := attrs{b: b}
	for a.next() {
		if a.typ != ctaProtoInfoTCP && a.typ != ctaProtoInfoSCTP {
			continue
		}
		t := attrs{b: a.val}
		for t.next() {
			// CTA_PROTOINFO_TCP_STATE and CTA_PROTOINFO_SCTP_STATE are both 1.
			if t.typ == ctaProtoInfoTCPState {
				s, err := u8(t.val)
				if err != nil {
					return err
				}
				if a.typ == ctaProtoInfoSCTP {
					f.SCTPState = flow.SCTPState(s)
				} else {
					f.TCPState = tcpStateFromKernel(s)
				}
			}
		}
		if t.err != nil {
			return t.err
		}
	}
	return a.err
}

// tcpStateFromKernel maps enum tcp_conntrack (NONE=0, SYN_SENT=1, …,
// SYN_SENT2=9) to flow.TCPState, which uses the same numbering.
func tcpStateFromKernel(s uint8) flow.TCPState { return flow.TCPState(s) }

func decodeHelp(b []byte, f *flow.Flow) error {
	a := attrs{b: b}
	for a.next() {
		if a.typ == ctaHelpName {
			f.Helper = internHelper(cString(a.val))
		}
	}
	return a.err
}

// internHelper returns the helper name, without allocating for the kernel's
// own helpers.
func internHelper(b []byte) string {
	switch string(b) {
	case "":
		return ""
	case "ftp":
		return "ftp"
	case "tftp":
		return "tftp"
	case "irc":
		return "irc"
	case "sip":
		return "sip"
	case "pptp":
		return "pptp"
	case "amanda":
		return "amanda"
	case "snmp":
		return "snmp"
	case "snmp_trap":
		return "snmp_trap"
	case "netbios-ns":
		return "netbios-ns"
	case "sane":
		return "sane"
	case "RAS":
		return "RAS"
	case "Q.931":
		return "Q.931"
	case "H.245":
		return "H.245"
	}
	return string(b)
}

func decodeCounters(b []byte, packets, bytes *uint64) error {
	a := attrs{b: b}
	for a.next() {
		var err error
		switch a.typ {
		case ctaCountersPackets:
			*packets, err = be64(a.val)
		case ctaCountersBytes:
			*bytes, err = be64(a.val)
		case ctaCounters32Packets:
			var v uint32
			v, err = be32(a.val)
			*packets = uint64(v)
		case ctaCounters32Bytes:
			var v uint32
			v, err = be32(a.val)
			*bytes = uint64(v)
		}
		if err != nil {
			return err
		}
	}
	return a.err
}

// addCPUStats adds the per-CPU statistics of one IPCTNL_MSG_CT_GET_STATS_CPU
// reply into s.
func addCPUStats(data []byte, s *statsSum) error {
	if len(data) < nfgenHdrLen {
		return fmt.Errorf("%w: short nfgenmsg", errMalformed)
	}
	a := attrs{b: data[nfgenHdrLen:]}
	for a.next() {
		v, err := be32(a.val)
		if err != nil {
			return err
		}
		x := uint64(v)
		switch a.typ {
		case ctaStatsFound:
			s.Found += x
		case ctaStatsInvalid:
			s.Invalid += x
		case ctaStatsIgnore:
			s.Ignore += x
		case ctaStatsInsert:
			s.Insert += x
		case ctaStatsInsertFailed:
			s.InsertFailed += x
		case ctaStatsDrop:
			s.Drop += x
		case ctaStatsEarlyDrop:
			s.EarlyDrop += x
		case ctaStatsError:
			s.Error += x
		case ctaStatsSearchRestart:
			s.SearchRestart += x
		case ctaStatsClashResolve:
			s.ClashResolve += x
			s.HasClashResolve = true
		case ctaStatsChainTooLong:
			s.ChainTooLong += x
		}
	}
	return a.err
}

// statsSum accumulates the table statistics fields of flow.TableStats.
type statsSum struct {
	Found, Invalid, Ignore, Insert, InsertFailed uint64
	Drop, EarlyDrop, Error, SearchRestart        uint64
	ClashResolve, ChainTooLong                   uint64
	HasClashResolve                              bool
}

// decodeGlobalStats decodes an IPCTNL_MSG_CT_GET_STATS reply.
func decodeGlobalStats(data []byte) (count, max uint64, err error) {
	if len(data) < nfgenHdrLen {
		return 0, 0, fmt.Errorf("%w: short nfgenmsg", errMalformed)
	}
	a := attrs{b: data[nfgenHdrLen:]}
	for a.next() {
		v, err := be32(a.val)
		if err != nil {
			return 0, 0, err
		}
		switch a.typ {
		case ctaStatsGlobalEntries:
			count = uint64(v)
		case ctaStatsGlobalMaxEntries:
			max = uint64(v)
		}
	}
	return count, max, a.err
}
