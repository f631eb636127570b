package export

import (
	"fmt"
	"io"

	"github.com/conntop/conntop/internal/flow"
)

// SnapshotWriter writes a snapshot one flow at a time, so that a table of
// any size is written without holding it in memory: the kernel's dump can be
// printed as it is read. The header (JSON document start, CSV header row) is
// written with the first flow or at Close. It is not safe for concurrent
// use.
type SnapshotWriter struct {
	c      *chunkWriter
	e      encoder
	f      Format
	head   *Snapshot
	n      int
	closed bool
}

// NewSnapshotWriter returns a writer of format f; head supplies the JSON
// document's time, source and table statistics (its Flows are ignored).
func NewSnapshotWriter(w io.Writer, f Format, head *Snapshot) *SnapshotWriter {
	return &SnapshotWriter{c: newChunkWriter(w), f: f, head: head}
}

func (sw *SnapshotWriter) start() {
	switch sw.f {
	case FormatJSON:
		sw.c.buf = appendJSONHeader(sw.c.buf, sw.head)
	case FormatCSV:
		sw.c.buf = append(sw.c.buf, CSVHeader...)
		sw.c.buf = append(sw.c.buf, '\n')
	}
}

// Write writes one flow. It returns the first write error, after which
// nothing more is written.
func (sw *SnapshotWriter) Write(fl *flow.Flow) error {
	if sw.closed {
		return fmt.Errorf("write %v snapshot: writer closed", sw.f)
	}
	if sw.n == 0 {
		sw.start()
	}
	b := sw.c.buf
	switch sw.f {
	case FormatJSON:
		if sw.n > 0 {
			b = append(b, ',')
		}
		b = append(b, '\n')
		b = sw.e.appendFlow(b, fl)
	case FormatNDJSON:
		b = sw.e.appendFlow(b, fl)
		b = append(b, '\n')
	case FormatCSV:
		b = sw.e.appendCSVRow(b, fl)
	case FormatText:
		b = appendTextLine(b, fl, lineDump)
		b = append(b, '\n')
	default:
		return fmt.Errorf("write snapshot as %v: %w", sw.f, ErrFormat)
	}
	sw.c.buf = b
	sw.n++
	sw.c.maybeFlush()
	if sw.c.err != nil {
		return fmt.Errorf("write %v snapshot: %w", sw.f, sw.c.err)
	}
	return nil
}

// Close ends the document and flushes it.
func (sw *SnapshotWriter) Close() error {
	if sw.closed {
		return nil
	}
	switch sw.f {
	case FormatJSON, FormatNDJSON, FormatCSV, FormatText:
	default:
		return fmt.Errorf("write snapshot as %v: %w", sw.f, ErrFormat)
	}
	if sw.n == 0 {
		sw.start()
	}
	sw.closed = true
	if sw.f == FormatJSON {
		if sw.n > 0 {
			sw.c.buf = append(sw.c.buf, '\n')
		}
		sw.c.buf = append(sw.c.buf, "]}\n"...)
	}
	if err := sw.c.flush(); err != nil {
		return fmt.Errorf("write %v snapshot: %w", sw.f, err)
	}
	return nil
}

// writeAll writes flows and closes sw.
func writeAll(sw *SnapshotWriter, flows []flow.Flow) error {
	for i := range flows {
		if err := sw.Write(&flows[i]); err != nil {
			return err
		}
	}
	return sw.Close()
}
