package export

import (
	"io"
	"strconv"

	"github.com/conntop/conntop/internal/flow"
)

// CSVHeader is the header row of the CSV export, version 2, without the
// line end: the 20 columns of DESIGN.md §4 (version 1) followed by
// icmp_type, icmp_code, icmp_id (ICMP and ICMPv6 flows, original
// direction; empty otherwise), sctp_state (SCTP flows) and use (the
// entry's reference count, empty when unknown). A script that reads
// columns by position keeps working.
const CSVHeader = CSVHeaderV1 + ",icmp_type,icmp_code,icmp_id,sctp_state,use"

// CSVHeaderV1 is the header of the first CSV version (DESIGN.md §4).
const CSVHeaderV1 = "family,proto,state,tcp_state,src,sport,dst,dport,reply_src,reply_sport," +
	"reply_dst,reply_dport,status,timeout,mark,zone,orig_packets,orig_bytes,reply_packets,reply_bytes"

// WriteCSV writes the header row, then one row per flow (RFC 4180 quoting,
// "\n" line ends), in CSV version 2 (see CSVHeader). Ports are empty for
// protocols without ports (ICMP has icmp_type/icmp_code/icmp_id); tcp_state is empty for non-TCP flows;
// status lists the status-bit names joined by "|"; the four counters are
// empty when they are not known.
func WriteCSV(w io.Writer, flows []flow.Flow) error {
	return writeAll(NewSnapshotWriter(w, FormatCSV, &Snapshot{}), flows)
}

// appendCSVRow appends the CSV row of f, with its line end.
func (e *encoder) appendCSVRow(b []byte, f *flow.Flow) []byte {
	// Family, protocol and state names come from fixed tables and never
	// need quoting; the status list is quoted (if ever needed) when cached.
	b = append(b, f.Family.String()...)
	b = append(b, ',')
	b = append(b, protoNames[f.Proto]...)
	b = append(b, ',')
	b = append(b, f.State().String()...)
	b = append(b, ',')
	if f.Proto == flow.ProtoTCP {
		b = append(b, f.TCPState.String()...)
	}
	ports := flow.HasPorts(f.Proto)
	for _, t := range [2]*flow.Tuple{&f.Orig, &f.Reply} {
		b = append(b, ',')
		b = appendAddr(b, t.Src)
		b = append(b, ',')
		if ports {
			b = strconv.AppendUint(b, uint64(t.SrcPort), 10)
		}
		b = append(b, ',')
		b = appendAddr(b, t.Dst)
		b = append(b, ',')
		if ports {
			b = strconv.AppendUint(b, uint64(t.DstPort), 10)
		}
	}
	b = append(b, ',')
	b = append(b, e.csvStatus(f.Status)...)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(f.Timeout), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(f.Mark), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(f.Zone), 10)
	if f.HasCounters {
		for _, v := range [4]uint64{f.Counters.OrigPackets, f.Counters.OrigBytes, f.Counters.ReplyPackets, f.Counters.ReplyBytes} {
			b = append(b, ',')
			b = strconv.AppendUint(b, v, 10)
		}
	} else {
		b = append(b, ",,,,"...)
	}
	b = append(b, ',')
	if flow.IsICMP(f.Proto) {
		b = strconv.AppendUint(b, uint64(f.Orig.Type), 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(f.Orig.Code), 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(f.Orig.ID), 10)
	} else {
		b = append(b, ",,"...)
	}
	b = append(b, ',')
	if f.Proto == flow.ProtoSCTP {
		b = append(b, f.SCTPState.String()...)
	}
	b = append(b, ',')
	if f.Use != 0 {
		b = strconv.AppendUint(b, uint64(f.Use), 10)
	}
	return append(b, '\n')
}

func csvNeedsQuotes(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return true
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ',', '"', '\r', '\n':
			return true
		}
	}
	return false
}

// appendCSVField appends s, quoted (RFC 4180) when it holds a comma, a
// quote, a line break or leading/trailing space.
func appendCSVField(b []byte, s string) []byte {
	if !csvNeedsQuotes(s) {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}
