package export

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/conntop/conntop/internal/flow"
)

// oracleEntry is one entry of testdata/kernel-oracle/*.kernel.json: what
// Linux 6.18 kept after a capture, with the `conntrack -L -o extended` line.
type oracleEntry struct {
	Family   string
	Protonum uint8
	TCPState string `json:"tcp_state"`
	Status   []string
	Orig     oracleTuple
	Reply    oracleTuple
	Mark     uint32
	Zone     uint16
	Helper   string
	Line     string
}

type oracleTuple struct {
	Src, Dst       string
	Sport, Dport   uint16
	Type, Code     uint8
	ID             uint16
	Packets, Bytes uint64
}

func (o oracleTuple) tuple() flow.Tuple {
	return flow.Tuple{Src: netip.MustParseAddr(o.Src), Dst: netip.MustParseAddr(o.Dst),
		SrcPort: o.Sport, DstPort: o.Dport, Type: o.Type, Code: o.Code, ID: o.ID}
}

var useField = regexp.MustCompile(` use=\d+$`)

// TestTextMatchesKernelOracle renders every entry of the kernel oracle and
// compares it with the line conntrack-tools printed for it. The oracle's
// lines are `-o extended` (a layer-3 prefix) with the timeout replaced by T;
// the use count (a kernel reference count, 5 for an FTP control connection
// with pending expectations) is not in the flow model and is compared as 1.
func TestTextMatchesKernelOracle(t *testing.T) {
	files, err := filepath.Glob("../../testdata/kernel-oracle/*.kernel.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no oracle files: %v", err)
	}
	n := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var entries []oracleEntry
		if err := json.Unmarshal(b, &entries); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, e := range entries {
			f := flow.Flow{Proto: e.Protonum, Orig: e.Orig.tuple(), Reply: e.Reply.tuple(),
				Mark: e.Mark, Zone: e.Zone, Helper: e.Helper, Timeout: 4242, HasCounters: true,
				Counters: flow.Counters{OrigPackets: e.Orig.Packets, OrigBytes: e.Orig.Bytes,
					ReplyPackets: e.Reply.Packets, ReplyBytes: e.Reply.Bytes}}
			prefix := "ipv4     2 "
			f.Family = flow.FamilyIPv4
			if e.Family == "ipv6" {
				prefix, f.Family = "ipv6     10 ", flow.FamilyIPv6
			}
			if e.TCPState != "" {
				st, ok := flow.ParseTCPState(e.TCPState)
				if !ok {
					t.Fatalf("%s: TCP state %q", file, e.TCPState)
				}
				f.TCPState = st
			}
			for _, name := range e.Status {
				bit, ok := flow.ParseStatusName(name)
				if !ok {
					t.Fatalf("%s: status %q", file, name)
				}
				f.Status |= bit
			}
			want, ok := strings.CutPrefix(e.Line, prefix)
			if !ok {
				t.Fatalf("%s: line %q lacks %q", file, e.Line, prefix)
			}
			want = strings.Replace(want, " T ", " 4242 ", 1)
			want = useField.ReplaceAllString(want, " use=1")
			if got := TextLine(&f); got != want {
				t.Errorf("%s:\n got %s\nwant %s", filepath.Base(file), got, want)
			}
			n++
		}
	}
	if n < 20 {
		t.Errorf("only %d oracle entries checked", n)
	}
}
