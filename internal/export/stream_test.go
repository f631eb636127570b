package export

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

func TestSnapshotWriterStreamsTheSameDocument(t *testing.T) {
	flows := sampleFlows()
	head := &Snapshot{Time: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Source: "conntrack",
		Table: flow.TableStats{Count: uint64(len(flows)), Max: 262144, Drop: 3}}
	for _, f := range []Format{FormatJSON, FormatNDJSON, FormatCSV, FormatText} {
		for _, n := range []int{0, 1, len(flows)} {
			whole := *head
			whole.Flows = flows[:n]
			var want, got bytes.Buffer
			if err := WriteSnapshot(&want, f, &whole); err != nil {
				t.Fatal(err)
			}
			sw := NewSnapshotWriter(&got, f, head)
			for i := 0; i < n; i++ {
				if err := sw.Write(&flows[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := sw.Close(); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("%v with %d flows:\nstream %q\nwhole  %q", f, n, got.String(), want.String())
			}
			if err := sw.Write(&flows[0]); err == nil {
				t.Errorf("%v: Write after Close succeeded", f)
			}
		}
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestSnapshotWriterReportsWriteErrors(t *testing.T) {
	boom := errors.New("no space left on device")
	sw := NewSnapshotWriter(errWriter{boom}, FormatText, &Snapshot{})
	flows := sampleFlows()
	var err error
	// The first error may only show when a chunk is flushed.
	for i := 0; i < 100000 && err == nil; i++ {
		err = sw.Write(&flows[i%len(flows)])
	}
	if err == nil {
		err = sw.Close()
	}
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want it to wrap %v", err, boom)
	}
	if err := NewSnapshotWriter(&bytes.Buffer{}, Format(99), &Snapshot{}).Close(); !errors.Is(err, ErrFormat) {
		t.Errorf("unknown format: %v", err)
	}
}
