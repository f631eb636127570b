//go:build linux

package conntrack

import (
	"encoding/binary"

	"github.com/conntop/conntop/internal/flow"
)

// appendTuple appends a CTA_TUPLE_* nest of type typ for tuple t of
// protocol proto (and zone, for the tuple zone attribute when non-zero).
func appendTuple(b []byte, typ uint16, t flow.Tuple, proto uint8, zone uint16) []byte {
	b, tup := beginNested(b, typ)
	b, ip := beginNested(b, ctaTupleIP)
	if t.Src.Is4() {
		s, d := t.Src.As4(), t.Dst.As4()
		b = appendAttr(b, ctaIPv4Src, s[:])
		b = appendAttr(b, ctaIPv4Dst, d[:])
	} else {
		s, d := t.Src.As16(), t.Dst.As16()
		b = appendAttr(b, ctaIPv6Src, s[:])
		b = appendAttr(b, ctaIPv6Dst, d[:])
	}
	b = endNested(b, ip)
	b, pr := beginNested(b, ctaTupleProto)
	b = appendAttr(b, ctaProtoNum, []byte{proto})
	switch {
	case flow.IsICMP(proto):
		idT, typT, codeT := uint16(ctaProtoICMPID), uint16(ctaProtoICMPType), uint16(ctaProtoICMPCode)
		if proto == flow.ProtoICMPv6 {
			idT, typT, codeT = ctaProtoICMPv6ID, ctaProtoICMPv6Type, ctaProtoICMPv6Code
		}
		b = appendAttr(b, idT, binary.BigEndian.AppendUint16(nil, t.ID))
		b = appendAttr(b, typT, []byte{t.Type})
		b = appendAttr(b, codeT, []byte{t.Code})
	case flow.HasPorts(proto):
		b = appendAttr(b, ctaProtoSrcPort, binary.BigEndian.AppendUint16(nil, t.SrcPort))
		b = appendAttr(b, ctaProtoDstPort, binary.BigEndian.AppendUint16(nil, t.DstPort))
	}
	b = endNested(b, pr)
	if zone != 0 {
		b = appendAttr(b, ctaTupleZone, binary.BigEndian.AppendUint16(nil, zone))
	}
	return endNested(b, tup)
}

// familyOf returns the nfgenmsg family of a tuple's addresses.
func familyOf(t flow.Tuple) uint8 {
	if t.Src.Is4() {
		return uint8(flow.FamilyIPv4)
	}
	return uint8(flow.FamilyIPv6)
}

// beginKeyRequest starts a request (get or delete) that names one entry by
// its original tuple and zone.
func (s *sock) beginKeyRequest(msg uint8, flags uint16, k flow.Key) {
	s.begin(subsysCT, msg, flags, familyOf(k.Orig))
	s.out = appendTuple(s.out, ctaTupleOrig, k.Orig, k.Proto, 0)
	if k.Zone != 0 {
		s.out = appendAttr(s.out, ctaZone, binary.BigEndian.AppendUint16(nil, k.Zone))
	}
}

// appendCreate appends one complete IPCTNL_MSG_CT_NEW request (create only,
// no ack) for f to b; used to fill tables quickly in benchmarks and tests.
func appendCreate(b []byte, seq uint32, f *flow.Flow) []byte {
	start := len(b)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = binary.NativeEndian.AppendUint16(b, uint16(subsysCT)<<8|msgCTNew)
	b = binary.NativeEndian.AppendUint16(b, flagRequest|flagCreate|flagExcl)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, uint8(f.Family), nfnlV0, 0, 0)
	b = appendTuple(b, ctaTupleOrig, f.Orig, f.Proto, 0)
	b = appendTuple(b, ctaTupleReply, f.Reply, f.Proto, 0)
	b = appendAttr(b, ctaStatus, binary.BigEndian.AppendUint32(nil, uint32(f.Status)))
	b = appendAttr(b, ctaTimeout, binary.BigEndian.AppendUint32(nil, f.Timeout))
	if f.Mark != 0 {
		b = appendAttr(b, ctaMark, binary.BigEndian.AppendUint32(nil, f.Mark))
	}
	if f.Zone != 0 {
		b = appendAttr(b, ctaZone, binary.BigEndian.AppendUint16(nil, f.Zone))
	}
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// appendDelete appends one complete IPCTNL_MSG_CT_DELETE request (no ack)
// for the entry with key k to b; used by the event benchmarks' churn.
func appendDelete(b []byte, seq uint32, k flow.Key) []byte {
	start := len(b)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = binary.NativeEndian.AppendUint16(b, uint16(subsysCT)<<8|msgCTDelete)
	b = binary.NativeEndian.AppendUint16(b, flagRequest)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, familyOf(k.Orig), nfnlV0, 0, 0)
	b = appendTuple(b, ctaTupleOrig, k.Orig, k.Proto, 0)
	if k.Zone != 0 {
		b = appendAttr(b, ctaZone, binary.BigEndian.AppendUint16(nil, k.Zone))
	}
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}
