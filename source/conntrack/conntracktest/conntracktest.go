// Package conntracktest supports tests of conntop's kernel source: it
// converts flows decoded by github.com/ti-mo/conntrack, the independent
// decoder the tests use as an oracle, into conntop's model. Only tests
// import it, so that library stays a test dependency.
package conntracktest

import (
	"github.com/conntop/conntop/internal/flow"
	ct "github.com/ti-mo/conntrack"
)

// FromLib converts a github.com/ti-mo/conntrack Flow to conntop's flow.Flow.
// Counters are marked known when either direction's counter is non-zero
// (the library does not say whether the attributes were present).
func FromLib(in *ct.Flow) flow.Flow {
	out := flow.Flow{
		ID:      in.ID,
		Proto:   in.TupleOrig.Proto.Protocol,
		Status:  flow.Status(in.Status),
		Orig:    tupleFromLib(in.TupleOrig),
		Reply:   tupleFromLib(in.TupleReply),
		Timeout: in.Timeout,
		Mark:    in.Mark,
		Zone:    in.Zone,
		Helper:  in.Helper.Name,
	}
	out.Family = flow.FamilyIPv6
	if in.TupleOrig.IP.SourceAddress.Is4() {
		out.Family = flow.FamilyIPv4
	}
	if in.ProtoInfo.TCP != nil {
		out.TCPState = flow.TCPState(in.ProtoInfo.TCP.State) // the kernel numbers them as flow does
	}
	if in.ProtoInfo.SCTP != nil {
		out.SCTPState = flow.SCTPState(in.ProtoInfo.SCTP.State)
	}
	out.Use = in.Use
	if in.CountersOrig.Packets|in.CountersOrig.Bytes|in.CountersReply.Packets|in.CountersReply.Bytes != 0 {
		out.HasCounters = true
		out.Counters = flow.Counters{
			OrigPackets: in.CountersOrig.Packets, OrigBytes: in.CountersOrig.Bytes,
			ReplyPackets: in.CountersReply.Packets, ReplyBytes: in.CountersReply.Bytes,
		}
	}
	if in.TupleMaster.IP.SourceAddress.IsValid() {
		m := tupleFromLib(in.TupleMaster)
		out.Master = &m
	}
	return out
}

// tupleFromLib converts one library tuple.
func tupleFromLib(t ct.Tuple) flow.Tuple {
	out := flow.Tuple{Src: t.IP.SourceAddress, Dst: t.IP.DestinationAddress}
	if flow.IsICMP(t.Proto.Protocol) {
		out.Type, out.Code, out.ID = t.Proto.ICMPType, t.Proto.ICMPCode, t.Proto.ICMPID
	} else {
		out.SrcPort, out.DstPort = t.Proto.SourcePort, t.Proto.DestinationPort
	}
	return out
}

// ExpectFromLib converts a github.com/ti-mo/conntrack Expect to conntop's
// flow.Expectation.
func ExpectFromLib(in *ct.Expect) flow.Expectation {
	out := flow.Expectation{
		ID:          in.ID,
		Proto:       in.Tuple.Proto.Protocol,
		Timeout:     in.Timeout,
		Tuple:       tupleFromLib(in.Tuple),
		Mask:        tupleFromLib(in.Mask),
		MasterProto: in.TupleMaster.Proto.Protocol,
		Master:      tupleFromLib(in.TupleMaster),
		Zone:        in.Zone,
		Class:       in.Class,
		Flags:       in.Flags,
		Helper:      in.HelpName,
	}
	out.Family = flow.FamilyIPv6
	if in.Tuple.IP.SourceAddress.Is4() {
		out.Family = flow.FamilyIPv4
	}
	return out
}
