package export

import (
	"io"
	"net/netip"
	"strconv"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/termsafe"
)

// lineKind selects between the table line (`conntrack -L`) and the event
// lines (`conntrack -E`), which differ in a few fields.
type lineKind uint8

const (
	lineDump lineKind = iota
	lineNew
	lineUpdate
	lineDestroy
)

// eventTags are the event-type prefixes of `conntrack -E`, right-aligned in
// nine columns as libnetfilter_conntrack prints them ("%9s ").
var eventTags = [...]string{
	lineNew:     "    [NEW] ",
	lineUpdate:  " [UPDATE] ",
	lineDestroy: "[DESTROY] ",
}

// textProtoNames are the protocol names of libnetfilter_conntrack; other
// protocols print as "unknown".
var textProtoNames = [256]string{
	flow.ProtoTCP: "tcp", flow.ProtoUDP: "udp", flow.ProtoUDPLite: "udplite",
	flow.ProtoICMP: "icmp", flow.ProtoICMPv6: "icmpv6", flow.ProtoSCTP: "sctp",
	flow.ProtoGRE: "gre", flow.ProtoDCCP: "dccp",
}

// WriteText writes one line per flow in the format of `conntrack -L`
// (conntrack-tools' default output, without the `-o extended` layer-3
// prefix), e.g.
//
//	tcp      6 117 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=47494 dport=8080 packets=6 bytes=398 src=10.0.0.2 dst=10.0.0.1 sport=8080 dport=47494 packets=4 bytes=292 [ASSURED] mark=0 use=1
//
// Helper names are escaped with termsafe.Escape. SCTP flows show their state
// after the timeout, as TCP flows do. The use count is the kernel's
// reference count (CTA_USE: 1, plus one per pending expectation), or the
// tracker's own; use=1 when unknown. What the flow model does not hold is
// not printed: the DCCP state name, secctx=, labels and the directional
// zone-orig=/zone-reply=.
func WriteText(w io.Writer, flows []flow.Flow) error {
	return writeAll(NewSnapshotWriter(w, FormatText, &Snapshot{}), flows)
}

// AppendText appends the `conntrack -L` line of f, without a newline.
func AppendText(dst []byte, f *flow.Flow) []byte {
	return appendTextLine(dst, f, lineDump)
}

// TextLine returns the `conntrack -L` line of f, without a newline.
func TextLine(f *flow.Flow) string {
	return string(appendTextLine(make([]byte, 0, 256), f, lineDump))
}

// appendTextLine renders f as libnetfilter_conntrack's default output does
// (snprintf_default.c), given which attributes the kernel sends: in a table
// dump the timeout, mark and use count are always present; in an event the
// use count never is, the mark only when set, and a destroy event's timeout
// only while it has not run out. The zone is sent only when it is not the
// default zone, the helper only when one is attached.
func appendTextLine(b []byte, f *flow.Flow, kind lineKind) []byte {
	if kind != lineDump {
		b = append(b, eventTags[kind]...)
	}
	name := textProtoNames[f.Proto]
	if name == "" {
		name = "unknown"
	}
	start := len(b)
	b = append(b, name...)
	for len(b)-start < 8 { // "%-8s "
		b = append(b, ' ')
	}
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(f.Proto), 10)
	b = append(b, ' ')
	if kind != lineDestroy || f.Timeout > 0 {
		b = strconv.AppendUint(b, uint64(f.Timeout), 10)
		b = append(b, ' ')
	}
	switch f.Proto {
	case flow.ProtoTCP:
		if f.TCPState < flow.NumTCPStates {
			b = append(b, f.TCPState.String()...)
		} else {
			b = append(b, "NONE"...)
		}
		b = append(b, ' ')
	case flow.ProtoSCTP:
		b = append(b, f.SCTPState.String()...)
		b = append(b, ' ')
	}
	b = appendTupleText(b, &f.Orig, f.Proto)
	if f.HasCounters {
		b = appendCountersText(b, f.Counters.OrigPackets, f.Counters.OrigBytes)
	}
	if f.Status&flow.StatusSeenReply == 0 {
		b = append(b, "[UNREPLIED] "...)
	}
	b = appendTupleText(b, &f.Reply, f.Proto)
	if f.HasCounters {
		b = appendCountersText(b, f.Counters.ReplyPackets, f.Counters.ReplyBytes)
	}
	switch {
	case f.Status&flow.StatusHWOffload != 0:
		b = append(b, "[HW_OFFLOAD] "...)
	case f.Status&flow.StatusOffload != 0:
		b = append(b, "[OFFLOAD] "...)
	case f.Status&flow.StatusAssured != 0:
		b = append(b, "[ASSURED] "...)
	}
	if kind == lineDump || f.Mark != 0 {
		b = append(b, "mark="...)
		b = strconv.AppendUint(b, uint64(f.Mark), 10)
		b = append(b, ' ')
	}
	if f.Zone != 0 {
		b = append(b, "zone="...)
		b = strconv.AppendUint(b, uint64(f.Zone), 10)
		b = append(b, ' ')
	}
	if f.Helper != "" {
		b = append(b, "helper="...)
		b = termsafe.AppendEscape(b, f.Helper)
		b = append(b, ' ')
	}
	if kind == lineDump {
		b = append(b, "use="...)
		b = strconv.AppendUint(b, uint64(max(f.Use, 1)), 10)
		b = append(b, ' ')
	}
	return b[:len(b)-1] // drop the last blank, as the library does
}

// appendTupleText appends "src=A dst=B " and the protocol part of a tuple.
func appendTupleText(b []byte, t *flow.Tuple, proto uint8) []byte {
	b = append(b, "src="...)
	b = appendAddrC(b, t.Src)
	b = append(b, " dst="...)
	b = appendAddrC(b, t.Dst)
	b = append(b, ' ')
	return appendTupleL4(b, t, proto)
}

// appendTupleL4 appends the protocol part of a tuple ("sport=1 dport=2 ",
// GRE keys, or ICMP type, code and id).
func appendTupleL4(b []byte, t *flow.Tuple, proto uint8) []byte {
	switch {
	case flow.HasPorts(proto):
		b = append(b, "sport="...)
		b = strconv.AppendUint(b, uint64(t.SrcPort), 10)
		b = append(b, " dport="...)
		b = strconv.AppendUint(b, uint64(t.DstPort), 10)
		b = append(b, ' ')
	case proto == flow.ProtoGRE:
		// The kernel's GRE tuple keys (PPTP call ids) travel in the port fields.
		b = append(b, "srckey=0x"...)
		b = strconv.AppendUint(b, uint64(t.SrcPort), 16)
		b = append(b, " dstkey=0x"...)
		b = strconv.AppendUint(b, uint64(t.DstPort), 16)
		b = append(b, ' ')
	case flow.IsICMP(proto):
		b = append(b, "type="...)
		b = strconv.AppendUint(b, uint64(t.Type), 10)
		b = append(b, " code="...)
		b = strconv.AppendUint(b, uint64(t.Code), 10)
		b = append(b, " id="...)
		b = strconv.AppendUint(b, uint64(t.ID), 10)
		b = append(b, ' ')
	}
	return b
}

func appendCountersText(b []byte, packets, bytes uint64) []byte {
	b = append(b, "packets="...)
	b = strconv.AppendUint(b, packets, 10)
	b = append(b, " bytes="...)
	b = strconv.AppendUint(b, bytes, 10)
	return append(b, ' ')
}

// appendAddrC appends an address as the C library's inet_ntoa/inet_ntop
// print it. That is the RFC 5952 form Go uses, except that glibc writes an
// IPv6 address whose first 96 bits are zero (and that is not ::, ::1 or
// another with a zero seventh group) with a dotted IPv4 tail: "::1.2.3.4".
func appendAddrC(b []byte, a netip.Addr) []byte {
	if a.Is6() && !a.Is4In6() {
		x := a.As16()
		if x == [16]byte{12: x[12], 13: x[13], 14: x[14], 15: x[15]} && (x[12] != 0 || x[13] != 0) {
			b = append(b, "::"...)
			return netip.AddrFrom4([4]byte(x[12:])).AppendTo(b)
		}
	}
	return appendAddr(b, a)
}

// AppendExpectText appends the `conntrack -L expect` line of e, without a
// newline (libnetfilter_conntrack's default expectation output), e.g.
//
//	297 proto=6 src=10.0.0.2 dst=10.0.0.1 sport=0 dport=40001 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 master-src=10.0.0.1 master-dst=10.0.0.2 sport=40000 dport=21 class=0 helper=ftp
func AppendExpectText(b []byte, e *flow.Expectation) []byte {
	b = strconv.AppendUint(b, uint64(e.Timeout), 10)
	b = append(b, " proto="...)
	b = strconv.AppendUint(b, uint64(e.Proto), 10)
	b = append(b, ' ')
	b = appendTupleText(b, &e.Tuple, e.Proto)
	b = append(b, "mask-src="...)
	b = appendAddrC(b, e.Mask.Src)
	b = append(b, " mask-dst="...)
	b = appendAddrC(b, e.Mask.Dst)
	b = append(b, ' ')
	b = appendExpectMaskL4(b, &e.Mask, e.Proto)
	b = append(b, "master-src="...)
	b = appendAddrC(b, e.Master.Src)
	b = append(b, " master-dst="...)
	b = appendAddrC(b, e.Master.Dst)
	b = append(b, ' ')
	b = appendExpectMaskL4(b, &e.Master, e.MasterProto)
	for _, n := range flow.ExpectFlagNames(e.Flags) {
		b = append(b, n...)
		b = append(b, ' ')
	}
	b = append(b, "class="...)
	b = strconv.AppendUint(b, uint64(e.Class), 10)
	b = append(b, ' ')
	if e.Zone != 0 {
		b = append(b, "zone="...)
		b = strconv.AppendUint(b, uint64(e.Zone), 10)
		b = append(b, ' ')
	}
	if e.Helper != "" {
		b = append(b, "helper="...)
		b = termsafe.AppendEscape(b, e.Helper)
		b = append(b, ' ')
	}
	return b[:len(b)-1]
}

// appendExpectMaskL4 appends the protocol part of an expectation's mask or
// master tuple without its addresses ("sport=0 dport=65535 "); GRE keys
// are not printed there.
func appendExpectMaskL4(b []byte, t *flow.Tuple, proto uint8) []byte {
	if proto == flow.ProtoGRE {
		return b
	}
	return appendTupleL4(b, t, proto)
}
