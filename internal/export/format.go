package export

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// Format is an output format.
type Format uint8

// Output formats, as the --format flag names them.
const (
	FormatJSON   Format = iota // snapshot JSON, version 1
	FormatNDJSON               // one JSON object a line
	FormatCSV                  // header row, then one row per flow
	FormatText                 // conntrack-tools line format
)

var formatNames = [...]string{"json", "ndjson", "csv", "text"}

// String returns the flag name of the format ("json", "ndjson", "csv",
// "text").
func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// ParseFormat parses a format name (any case). An unknown name gives an
// error wrapping ErrFormat.
func ParseFormat(s string) (Format, error) {
	for i, n := range formatNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Format(i), nil
		}
	}
	return 0, fmt.Errorf("format %q: %w (want json, ndjson, csv or text)", s, ErrFormat)
}

// Snapshot is one complete table, as `conntop snapshot` prints it.
type Snapshot struct {
	// Time is when the table was read.
	Time time.Time
	// Source names the source: "conntrack", "capture" or "pcap".
	Source string
	// Table holds the table statistics (count, max, kernel counters,
	// events lost).
	Table flow.TableStats
	// Flows are the entries, in the order they are written.
	Flows []flow.Flow
	// Degraded, when not nil, says what the table's store gave up to stay
	// within its memory limit (JSON: "table": {"degraded": {…}}). The
	// flows and counts are complete either way.
	Degraded *Degraded
}

// Degraded says what a store gave up to stay within its memory limit.
type Degraded struct {
	// History: per-flow transition history is no longer kept; Linger:
	// destroyed flows leave at once instead of lingering.
	History, Linger bool
	// LimitBytes is the store's memory budget, UsedBytes its estimate of
	// what it holds.
	LimitBytes, UsedBytes int64
}

// WriteSnapshot writes s to w in format f: JSON writes the snapshot
// document ([WriteJSON]); NDJSON one flow object a line; CSV and text the
// flows only ([WriteCSV], [WriteText]).
func WriteSnapshot(w io.Writer, f Format, s *Snapshot) error {
	if s == nil {
		return fmt.Errorf("write snapshot: nil snapshot")
	}
	switch f {
	case FormatJSON, FormatNDJSON, FormatCSV, FormatText:
		return writeAll(NewSnapshotWriter(w, f, s), s.Flows)
	}
	return fmt.Errorf("write snapshot as %v: %w", f, ErrFormat)
}
