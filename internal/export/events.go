package export

import (
	"fmt"
	"io"
	"strconv"

	"github.com/conntop/conntop/internal/flow"
)

// EventWriter writes a stream of source events, one line each, as NDJSON
// (DESIGN.md §4) or in the text form of `conntrack -E`. Counter refreshes,
// end-of-listing markers and statistics are not flow events and are not
// written. Each event is written with a single Write call on the underlying
// writer, so a reader sees whole lines as they happen. An EventWriter is not
// safe for concurrent use.
type EventWriter struct {
	w   io.Writer
	f   Format
	e   encoder
	buf []byte
}

// NewEventWriter returns a writer of events to w in format f: FormatNDJSON
// (FormatJSON is taken to mean the same: one JSON document a line) or
// FormatText. With another format, Write returns an error wrapping
// ErrFormat.
func NewEventWriter(w io.Writer, f Format) *EventWriter {
	return &EventWriter{w: w, f: f, buf: make([]byte, 0, 1024)}
}

// Write writes ev. NDJSON lines are
//
//	{"time":"…","type":"new"|"update"|"destroy","flow":{…}}
//	{"time":"…","type":"resync","lost":N}
//
// and text lines are those of `conntrack -E` ("    [NEW] tcp      6 120
// SYN_SENT src=…"), with a resync written as " [RESYNC] lost=N".
func (ew *EventWriter) Write(ev flow.Event) error {
	switch ev.Type {
	case flow.EventNew, flow.EventUpdate, flow.EventDestroy, flow.EventResync:
	default:
		return nil
	}
	b := ew.buf[:0]
	switch ew.f {
	case FormatNDJSON, FormatJSON:
		b = append(b, `{"time":"`...)
		b = appendTime(b, ev.Time)
		b = append(b, `","type":"`...)
		b = append(b, ev.Type.String()...)
		if ev.Type == flow.EventResync {
			b = append(b, `","lost":`...)
			b = strconv.AppendUint(b, ev.Lost, 10)
		} else {
			b = append(b, `","flow":`...)
			b = ew.e.appendFlow(b, &ev.Flow)
		}
		b = append(b, "}\n"...)
	case FormatText:
		switch ev.Type {
		case flow.EventNew:
			b = appendTextLine(b, &ev.Flow, lineNew)
		case flow.EventUpdate:
			b = appendTextLine(b, &ev.Flow, lineUpdate)
		case flow.EventDestroy:
			b = appendTextLine(b, &ev.Flow, lineDestroy)
		case flow.EventResync:
			b = append(b, " [RESYNC] lost="...)
			b = strconv.AppendUint(b, ev.Lost, 10)
		}
		b = append(b, '\n')
	default:
		return fmt.Errorf("write event as %v: %w", ew.f, ErrFormat)
	}
	ew.buf = b
	if _, err := ew.w.Write(b); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	return nil
}
