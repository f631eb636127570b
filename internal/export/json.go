package export

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/termsafe"
)

// chunkSize is how much encoded output is gathered before it is written.
const chunkSize = 64 << 10

// chunkWriter gathers encoded output in one reused buffer and writes it in
// chunks. After a write error it stops writing and keeps the error.
type chunkWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func newChunkWriter(w io.Writer) *chunkWriter {
	return &chunkWriter{w: w, buf: make([]byte, 0, chunkSize+4096)}
}

// maybeFlush writes the buffer once it holds a chunk. A write error is
// kept in c.err (the callers check it after each flow).
func (c *chunkWriter) maybeFlush() {
	if len(c.buf) >= chunkSize {
		_ = c.flush()
	}
}

// flush writes what is buffered and returns the first write error.
func (c *chunkWriter) flush() error {
	if c.err == nil && len(c.buf) > 0 {
		if _, err := c.w.Write(c.buf); err != nil {
			c.err = err
		}
	}
	c.buf = c.buf[:0]
	return c.err
}

// protoNames caches flow.ProtoName for every protocol number (a read-only
// table; flow.ProtoName looks names up in a map).
var protoNames = func() (t [256]string) {
	for i := range t {
		t[i] = flow.ProtoName(uint8(i))
	}
	return t
}()

// maxCachedStatus bounds the per-writer cache of rendered status lists.
const maxCachedStatus = 256

// encoder renders flows. It caches the rendering of status-name lists, the
// only part of a flow whose names come from a function that allocates
// (flow.Status.Names), so that encoding a flow does not allocate. Each
// writer has its own encoder; it is not safe for concurrent use.
type encoder struct {
	statusJSON map[flow.Status]string // `["CONFIRMED","SEEN_REPLY"]`
	statusCSV  map[flow.Status]string // `CONFIRMED|SEEN_REPLY`
}

func (e *encoder) jsonStatus(s flow.Status) string {
	if v, ok := e.statusJSON[s]; ok {
		return v
	}
	var b []byte
	b = append(b, '[')
	for i, n := range s.Names() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, n)
	}
	b = append(b, ']')
	v := string(b)
	if e.statusJSON == nil {
		e.statusJSON = make(map[flow.Status]string)
	}
	if len(e.statusJSON) < maxCachedStatus {
		e.statusJSON[s] = v
	}
	return v
}

func (e *encoder) csvStatus(s flow.Status) string {
	if v, ok := e.statusCSV[s]; ok {
		return v
	}
	var b []byte
	for i, n := range s.Names() {
		if i > 0 {
			b = append(b, '|')
		}
		b = append(b, n...)
	}
	v := string(appendCSVField(nil, string(b)))
	if e.statusCSV == nil {
		e.statusCSV = make(map[flow.Status]string)
	}
	if len(e.statusCSV) < maxCachedStatus {
		e.statusCSV[s] = v
	}
	return v
}

// WriteJSON writes s as the snapshot JSON document, version 1 (DESIGN.md
// §4): the header, then one flow object a line. It streams: memory use does
// not grow with the number of flows.
func WriteJSON(w io.Writer, s *Snapshot) error {
	if s == nil {
		return fmt.Errorf("write json: nil snapshot")
	}
	return writeAll(NewSnapshotWriter(w, FormatJSON, s), s.Flows)
}

// appendJSONHeader appends the snapshot document up to the opening of its
// "flows" array.
func appendJSONHeader(b []byte, s *Snapshot) []byte {
	b = append(b, `{"version":1,"time":"`...)
	b = appendTime(b, s.Time)
	b = append(b, `","source":`...)
	b = appendJSONString(b, s.Source)
	t := &s.Table
	b = append(b, `,"table":{"count":`...)
	b = strconv.AppendUint(b, t.Count, 10)
	b = append(b, `,"max":`...)
	b = strconv.AppendUint(b, t.Max, 10)
	b = append(b, `,"stats":{"found":`...)
	b = strconv.AppendUint(b, t.Found, 10)
	b = append(b, `,"invalid":`...)
	b = strconv.AppendUint(b, t.Invalid, 10)
	b = append(b, `,"ignore":`...)
	b = strconv.AppendUint(b, t.Ignore, 10)
	b = append(b, `,"insert":`...)
	b = strconv.AppendUint(b, t.Insert, 10)
	b = append(b, `,"insert_failed":`...)
	b = strconv.AppendUint(b, t.InsertFailed, 10)
	b = append(b, `,"drop":`...)
	b = strconv.AppendUint(b, t.Drop, 10)
	b = append(b, `,"early_drop":`...)
	b = strconv.AppendUint(b, t.EarlyDrop, 10)
	b = append(b, `,"error":`...)
	b = strconv.AppendUint(b, t.Error, 10)
	b = append(b, `,"search_restart":`...)
	b = strconv.AppendUint(b, t.SearchRestart, 10)
	b = append(b, `},"events_lost":`...)
	b = strconv.AppendUint(b, t.EventsLost, 10)
	if d := s.Degraded; d != nil {
		// Present only when the store gave something up (a new field:
		// the document stays version 1).
		b = append(b, `,"degraded":{"history":`...)
		b = strconv.AppendBool(b, d.History)
		b = append(b, `,"linger":`...)
		b = strconv.AppendBool(b, d.Linger)
		b = append(b, `,"limit_bytes":`...)
		b = strconv.AppendInt(b, d.LimitBytes, 10)
		b = append(b, `,"used_bytes":`...)
		b = strconv.AppendInt(b, d.UsedBytes, 10)
		b = append(b, '}')
	}
	b = append(b, '}')
	if t.HasVerdicts {
		b = appendVerdictsJSON(b, &t.Verdicts)
	}
	if t.HasExpectations {
		b = append(b, `,"expectations":[`...)
		for i := range t.Expectations {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendExpectationJSON(b, &t.Expectations[i])
		}
		b = append(b, ']')
	}
	b = append(b, `,"flows":[`...)
	return b
}

// appendVerdictsJSON appends `,"verdicts":{"new":N,…,"untracked":N}`:
// packets by the ct state the kernel's `ct state` match gave them.
func appendVerdictsJSON(b []byte, v *flow.Verdicts) []byte {
	b = append(b, `,"verdicts":{`...)
	for i := range flow.NumVerdicts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, i.String()...)
		b = append(b, `":`...)
		b = strconv.AppendUint(b, v[i], 10)
	}
	return append(b, '}')
}

// AppendExpectationJSON appends the JSON object of a pending expectation
// (an element of the snapshot's "expectations"): its expected tuple (a
// source port of 0 with mask sport 0 means any), the mask, the master's
// original tuple, timeout, zone, class, flags and helper.
func AppendExpectationJSON(b []byte, e *flow.Expectation) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, uint64(e.ID), 10)
	b = append(b, `,"family":"`...)
	b = append(b, e.Family.String()...)
	b = append(b, `","proto":"`...)
	b = append(b, protoNames[e.Proto]...)
	b = append(b, `","timeout":`...)
	b = strconv.AppendUint(b, uint64(e.Timeout), 10)
	b = append(b, `,"tuple":`...)
	b = appendTupleJSON(b, &e.Tuple, e.Proto, false)
	b = append(b, `,"mask":`...)
	b = appendTupleJSON(b, &e.Mask, e.Proto, false)
	b = append(b, `,"master":`...)
	b = appendTupleJSON(b, &e.Master, e.MasterProto, false)
	b = append(b, `,"zone":`...)
	b = strconv.AppendUint(b, uint64(e.Zone), 10)
	b = append(b, `,"class":`...)
	b = strconv.AppendUint(b, uint64(e.Class), 10)
	b = append(b, `,"flags":[`...)
	for i, n := range flow.ExpectFlagNames(e.Flags) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, n)
	}
	b = append(b, `],"helper":`...)
	b = appendJSONString(b, e.Helper)
	return append(b, '}')
}

// WriteNDJSON writes one flow object (as in the snapshot's "flows") a line.
func WriteNDJSON(w io.Writer, flows []flow.Flow) error {
	return writeAll(NewSnapshotWriter(w, FormatNDJSON, &Snapshot{}), flows)
}

// AppendFlowJSON appends the JSON object of one flow, exactly as it appears
// in the snapshot's "flows" array and in NDJSON events, to dst.
func AppendFlowJSON(dst []byte, f *flow.Flow) []byte {
	var e encoder
	return e.appendFlow(dst, f)
}

// FlowJSON returns the JSON object of one flow (see [AppendFlowJSON]).
func FlowJSON(f *flow.Flow) string {
	return string(AppendFlowJSON(make([]byte, 0, 512), f))
}

// appendFlow appends the snapshot-v1 JSON object of f.
func (e *encoder) appendFlow(b []byte, f *flow.Flow) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, uint64(f.ID), 10)
	b = append(b, `,"family":"`...)
	b = append(b, f.Family.String()...)
	b = append(b, `","proto":"`...)
	b = append(b, protoNames[f.Proto]...)
	b = append(b, `","state":"`...)
	b = append(b, f.State().String()...)
	b = append(b, `","tcp_state":"`...)
	if f.Proto == flow.ProtoTCP {
		b = append(b, f.TCPState.String()...)
	}
	b = append(b, `","status":`...)
	b = append(b, e.jsonStatus(f.Status)...)
	b = append(b, `,"orig":`...)
	b = appendTupleJSON(b, &f.Orig, f.Proto, false)
	b = append(b, `,"reply":`...)
	b = appendTupleJSON(b, &f.Reply, f.Proto, false)
	b = append(b, `,"timeout":`...)
	b = strconv.AppendUint(b, uint64(f.Timeout), 10)
	b = append(b, `,"mark":`...)
	b = strconv.AppendUint(b, uint64(f.Mark), 10)
	b = append(b, `,"zone":`...)
	b = strconv.AppendUint(b, uint64(f.Zone), 10)
	if f.HasCounters {
		b = append(b, `,"counters":{"orig_packets":`...)
		b = strconv.AppendUint(b, f.Counters.OrigPackets, 10)
		b = append(b, `,"orig_bytes":`...)
		b = strconv.AppendUint(b, f.Counters.OrigBytes, 10)
		b = append(b, `,"reply_packets":`...)
		b = strconv.AppendUint(b, f.Counters.ReplyPackets, 10)
		b = append(b, `,"reply_bytes":`...)
		b = strconv.AppendUint(b, f.Counters.ReplyBytes, 10)
		b = append(b, '}')
	}
	b = append(b, `,"helper":`...)
	b = appendJSONString(b, f.Helper)
	b = append(b, `,"master":`...)
	if f.Master != nil {
		b = appendTupleJSON(b, f.Master, f.Proto, true)
	} else {
		b = append(b, "null"...)
	}
	if f.Proto == flow.ProtoSCTP {
		b = append(b, `,"sctp_state":"`...)
		b = append(b, f.SCTPState.String()...)
		b = append(b, '"')
	}
	if f.Use != 0 {
		b = append(b, `,"use":`...)
		b = strconv.AppendUint(b, uint64(f.Use), 10)
	}
	if f.Compare.Seen != 0 {
		b = appendCompareJSON(b, f)
	}
	return append(b, '}')
}

// appendCompareJSON appends the kernel-versus-wire fields that only the
// compare source (`--source conntrack,capture`) sets: `,"seen":["kernel",
// "wire"],"disagree":"…"` where disagree is "" when the sides agree, else
// flow.Flow.DisagreeReason's text. Every other source leaves the snapshot
// v1 object unchanged.
func appendCompareJSON(b []byte, f *flow.Flow) []byte {
	b = append(b, `,"seen":[`...)
	if f.Compare.Seen&flow.SeenKernel != 0 {
		b = append(b, `"kernel"`...)
		if f.Compare.Seen&flow.SeenWire != 0 {
			b = append(b, ',')
		}
	}
	if f.Compare.Seen&flow.SeenWire != 0 {
		b = append(b, `"wire"`...)
	}
	b = append(b, `],"disagree":"`...)
	if f.Compare.Disagree == flow.DisagreeState {
		// DisagreeReason's text, built without allocating.
		b = append(b, "state differs: kernel "...)
		b = append(b, f.State().String()...)
		if f.Proto == flow.ProtoTCP {
			b = append(b, '/')
			b = append(b, f.TCPState.String()...)
		}
		b = append(b, ", wire "...)
		b = append(b, f.Compare.WireState.String()...)
		if f.Proto == flow.ProtoTCP {
			b = append(b, '/')
			b = append(b, f.Compare.WireTCPState.String()...)
		}
	} else {
		b = append(b, f.Compare.Disagree.String()...)
	}
	return append(b, '"')
}

// appendTupleJSON appends a tuple object: ports for protocols with ports,
// type/code/id for ICMP and ICMPv6, addresses only otherwise. A master tuple
// (whose protocol may differ from the flow's, e.g. a GRE flow of a PPTP
// control connection) also shows ports when it has any.
func appendTupleJSON(b []byte, t *flow.Tuple, proto uint8, master bool) []byte {
	b = append(b, `{"src":"`...)
	b = appendAddr(b, t.Src)
	b = append(b, `","dst":"`...)
	b = appendAddr(b, t.Dst)
	b = append(b, '"')
	switch {
	case flow.IsICMP(proto):
		b = append(b, `,"type":`...)
		b = strconv.AppendUint(b, uint64(t.Type), 10)
		b = append(b, `,"code":`...)
		b = strconv.AppendUint(b, uint64(t.Code), 10)
		b = append(b, `,"id":`...)
		b = strconv.AppendUint(b, uint64(t.ID), 10)
	case flow.HasPorts(proto) || master && (t.SrcPort != 0 || t.DstPort != 0):
		b = append(b, `,"sport":`...)
		b = strconv.AppendUint(b, uint64(t.SrcPort), 10)
		b = append(b, `,"dport":`...)
		b = strconv.AppendUint(b, uint64(t.DstPort), 10)
	}
	return append(b, '}')
}

// appendAddr appends an address in its standard text form, without any IPv6
// zone (sources never set one; a zone is free text). The zero Addr appends
// nothing.
func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Zone() != "" {
		a = a.WithZone("")
	}
	return a.AppendTo(b)
}

// appendTime appends t in UTC as RFC 3339 with nanoseconds
// ("2026-11-25T12:00:00.123456789Z").
func appendTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, time.RFC3339Nano)
}

// appendJSONString appends s as a JSON string. Besides what JSON requires,
// it escapes DEL, C1 controls and bidi/line-separator controls (so the
// output is also safe on a terminal) and replaces invalid UTF-8 with U+FFFD,
// as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = appendUnicodeEscape(b, rune(c))
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if termsafe.UnsafeRune(r) {
			b = append(b, s[start:i]...)
			b = appendUnicodeEscape(b, r)
			i += n
			start = i
			continue
		}
		i += n
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendUnicodeEscape appends \uXXXX for a rune of the basic plane.
func appendUnicodeEscape(b []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}
