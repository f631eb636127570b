package export

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// TestWriteJSONDegraded checks the "degraded" object in "table": written
// only when the store gave something up, after the fields version 1 always
// had.
func TestWriteJSONDegraded(t *testing.T) {
	s := &Snapshot{Time: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Source: "conntrack",
		Table: flow.TableStats{Count: 1, Max: 4}, Flows: []flow.Flow{samples()[0].flow},
		Degraded: &Degraded{History: true, Linger: false, LimitBytes: 1 << 20, UsedBytes: 1 << 21}}
	var b bytes.Buffer
	if err := WriteJSON(&b, s); err != nil {
		t.Fatal(err)
	}
	want := `"events_lost":0,"degraded":{"history":true,"linger":false,"limit_bytes":1048576,"used_bytes":2097152}},"flows":[`
	if !strings.Contains(b.String(), want) {
		t.Errorf("JSON lacks %s:\n%s", want, b.String())
	}
	var doc struct {
		Version int
		Table   struct {
			Count    int
			Degraded *struct {
				History, Linger       bool
				LimitBytes, UsedBytes int64 `json:"-"`
			}
		}
		Flows []json.RawMessage
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != 1 || doc.Table.Count != 1 || doc.Table.Degraded == nil || !doc.Table.Degraded.History || len(doc.Flows) != 1 {
		t.Errorf("decoded %+v", doc)
	}

	s.Degraded = nil
	b.Reset()
	if err := WriteJSON(&b, s); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "degraded") {
		t.Errorf("a store that gave nothing up is reported degraded:\n%s", b.String())
	}
}
