package export

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/conntop/conntop/internal/flow"
	"github.com/google/go-cmp/cmp"
)

func TestTextLine(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			if got := TextLine(&s.flow); got != s.text {
				t.Errorf("TextLine:\n got %s\nwant %s", got, s.text)
			}
		})
	}
}

func TestFlowJSON(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			got := FlowJSON(&s.flow)
			if got != s.json {
				t.Errorf("FlowJSON:\n got %s\nwant %s", got, s.json)
			}
			var v struct{ Helper string }
			if err := json.Unmarshal([]byte(got), &v); err != nil {
				t.Fatalf("FlowJSON output is not JSON: %v", err)
			}
			if want := perByteValid(s.flow.Helper); v.Helper != want {
				t.Errorf("helper decodes to %q, want %q", v.Helper, want)
			}
		})
	}
}

func TestCSVRow(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			var e encoder
			if got := string(e.appendCSVRow(nil, &s.flow)); got != s.csv {
				t.Errorf("CSV row:\n got %s\nwant %s", got, s.csv)
			}
		})
	}
}

func sampleFlows() []flow.Flow {
	var fs []flow.Flow
	for _, s := range samples() {
		fs = append(fs, s.flow)
	}
	return fs
}

func TestWriteText(t *testing.T) {
	var want strings.Builder
	for _, s := range samples() {
		want.WriteString(s.text + "\n")
	}
	var got bytes.Buffer
	if err := WriteText(&got, sampleFlows()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.String(), got.String()); diff != "" {
		t.Errorf("WriteText (-want +got):\n%s", diff)
	}
	got.Reset()
	if err := WriteText(&got, nil); err != nil || got.Len() != 0 {
		t.Errorf("WriteText(nil) = %q, %v; want nothing", got.String(), err)
	}
}

func TestWriteCSV(t *testing.T) {
	want := CSVHeader + "\n"
	for _, s := range samples() {
		want += s.csv
	}
	var got bytes.Buffer
	if err := WriteCSV(&got, sampleFlows()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got.String()); diff != "" {
		t.Errorf("WriteCSV (-want +got):\n%s", diff)
	}
	recs, err := csv.NewReader(&got).ReadAll()
	if err != nil {
		t.Fatalf("encoding/csv cannot read the output: %v", err)
	}
	if len(recs) != len(samples())+1 {
		t.Fatalf("got %d records, want %d", len(recs), len(samples())+1)
	}
	if strings.Join(recs[0], ",") != "family,proto,state,tcp_state,src,sport,dst,dport,reply_src,reply_sport,reply_dst,reply_dport,status,timeout,mark,zone,orig_packets,orig_bytes,reply_packets,reply_bytes,icmp_type,icmp_code,icmp_id,sctp_state,use" {
		t.Errorf("header = %q", recs[0])
	}
}

func TestAppendCSVField(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"tcp", "tcp"},
		{"a,b", `"a,b"`},
		{`say "hi"`, `"say ""hi"""`},
		{"two\nlines", "\"two\nlines\""},
		{" lead", `" lead"`},
		{"trail ", `"trail "`},
		{"a|b", "a|b"},
	}
	for _, tt := range tests {
		if got := string(appendCSVField(nil, tt.in)); got != tt.want {
			t.Errorf("appendCSVField(%q) = %s, want %s", tt.in, got, tt.want)
		}
		rec, err := csv.NewReader(strings.NewReader(string(appendCSVField(nil, tt.in)) + ",x\n")).Read()
		if err != nil || rec[0] != tt.in {
			t.Errorf("encoding/csv reads %q back as %q, %v", tt.in, rec, err)
		}
	}
}

// designJSON is the snapshot example of DESIGN.md §4, verbatim.
const designJSON = `{
  "version": 1,
  "time": "2026-11-25T12:00:00.123456789Z",
  "source": "conntrack",
  "table": {"count": 2, "max": 262144,
            "stats": {"found": 0, "invalid": 0, "ignore": 0, "insert": 0, "insert_failed": 0,
                      "drop": 0, "early_drop": 0, "error": 0, "search_restart": 0},
            "events_lost": 0},
  "flows": [
    {"id": 3735928559, "family": "ipv4", "proto": "tcp",
     "state": "ESTABLISHED", "tcp_state": "TIME_WAIT",
     "status": ["CONFIRMED", "SEEN_REPLY", "ASSURED"],
     "orig":  {"src": "10.0.0.1", "dst": "10.0.0.2", "sport": 47494, "dport": 8080},
     "reply": {"src": "10.0.0.2", "dst": "10.0.0.1", "sport": 8080, "dport": 47494},
     "timeout": 117, "mark": 0, "zone": 0,
     "counters": {"orig_packets": 6, "orig_bytes": 398, "reply_packets": 4, "reply_bytes": 292},
     "helper": "", "master": null}
  ]
}`

// tokens returns the JSON token stream of doc: same tokens in the same
// order means same keys, same key order and same values.
func tokens(t *testing.T, doc string) []string {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(doc))
	d.UseNumber()
	var out []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("bad JSON: %v\n%s", err, doc)
		}
		out = append(out, fmt.Sprintf("%T:%v", tok, tok))
	}
}

func TestWriteJSONMatchesDesign(t *testing.T) {
	s := &Snapshot{
		Time:   time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC),
		Source: "conntrack",
		Table:  flow.TableStats{Count: 2, Max: 262144},
		Flows:  []flow.Flow{designExample()},
	}
	var got bytes.Buffer
	if err := WriteJSON(&got, s); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tokens(t, designJSON), tokens(t, got.String())); diff != "" {
		t.Errorf("snapshot differs from DESIGN.md (-want +got):\n%s\n%s", diff, got.String())
	}
}

func TestWriteJSON(t *testing.T) {
	loc := time.FixedZone("CET", 3600)
	stats := flow.TableStats{Count: 3, Max: 65536, Found: 1, Invalid: 2, Ignore: 3, Insert: 4, InsertFailed: 5,
		Drop: 6, EarlyDrop: 7, Error: 8, SearchRestart: 9, EventsLost: 10}
	head := `{"version":1,"time":"2026-11-25T12:00:00.5Z","source":"pcap","table":{"count":3,"max":65536,` +
		`"stats":{"found":1,"invalid":2,"ignore":3,"insert":4,"insert_failed":5,"drop":6,"early_drop":7,"error":8,"search_restart":9},` +
		`"events_lost":10},"flows":[`
	ss := samples()
	tests := []struct {
		name  string
		flows []flow.Flow
		want  string
	}{
		{"empty", nil, head + "]}\n"},
		{"two", []flow.Flow{ss[0].flow, ss[3].flow}, head + "\n" + ss[0].json + ",\n" + ss[3].json + "\n]}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Snapshot{Time: time.Date(2026, 11, 25, 13, 0, 0, 5e8, loc), Source: "pcap", Table: stats, Flows: tt.flows}
			var got bytes.Buffer
			if err := WriteJSON(&got, s); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.String()); diff != "" {
				t.Errorf("WriteJSON (-want +got):\n%s", diff)
			}
			if !json.Valid(got.Bytes()) {
				t.Errorf("output is not valid JSON")
			}
		})
	}
	if err := WriteJSON(io.Discard, nil); err == nil {
		t.Error("WriteJSON(nil snapshot) succeeded")
	}
}

func TestWriteJSONAllSamples(t *testing.T) {
	var got bytes.Buffer
	if err := WriteJSON(&got, &Snapshot{Flows: sampleFlows()}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version int
		Flows   []json.RawMessage
	}
	if err := json.Unmarshal(got.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if doc.Version != 1 || len(doc.Flows) != len(samples()) {
		t.Fatalf("version %d, %d flows; want 1, %d", doc.Version, len(doc.Flows), len(samples()))
	}
	for i, s := range samples() {
		if string(doc.Flows[i]) != s.json {
			t.Errorf("flow %d = %s, want %s", i, doc.Flows[i], s.json)
		}
	}
}

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    Format
		wantErr bool
	}{
		{"json", FormatJSON, false},
		{"NDJSON", FormatNDJSON, false},
		{"csv", FormatCSV, false},
		{" text ", FormatText, false},
		{"xml", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseFormat(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Errorf("ParseFormat(%q) error %v does not wrap ErrFormat", tt.in, err)
		}
		if err == nil && got.String() != strings.ToLower(strings.TrimSpace(tt.in)) {
			t.Errorf("Format(%d).String() = %q", got, got.String())
		}
	}
	if s := Format(9).String(); s != "Format(9)" {
		t.Errorf("Format(9).String() = %q", s)
	}
}

func TestWriteSnapshot(t *testing.T) {
	ss := samples()
	s := &Snapshot{Time: time.Unix(0, 0), Source: "conntrack", Flows: []flow.Flow{ss[1].flow, ss[2].flow}}
	tests := []struct {
		f    Format
		want string
	}{
		{FormatNDJSON, ss[1].json + "\n" + ss[2].json + "\n"},
		{FormatCSV, CSVHeader + "\n" + ss[1].csv + ss[2].csv},
		{FormatText, ss[1].text + "\n" + ss[2].text + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.f.String(), func(t *testing.T) {
			var got bytes.Buffer
			if err := WriteSnapshot(&got, tt.f, s); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	var got, want bytes.Buffer
	if err := WriteSnapshot(&got, FormatJSON, s); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&want, s); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("WriteSnapshot(json) differs from WriteJSON")
	}
	if err := WriteSnapshot(io.Discard, Format(9), s); !errors.Is(err, ErrFormat) {
		t.Errorf("WriteSnapshot(bad format) = %v, want ErrFormat", err)
	}
	if err := WriteSnapshot(io.Discard, FormatText, nil); err == nil {
		t.Errorf("WriteSnapshot(nil) succeeded")
	}
}

func TestEventWriter(t *testing.T) {
	when := time.Date(2026, 11, 26, 18, 47, 29, 123000000, time.UTC)
	syn := fwd(flow.ProtoTCP, tuple("10.99.0.1", 42436, "10.99.0.1", 8080))
	syn.TCPState, syn.Timeout = flow.TCPSynSent, 120
	est := syn
	est.TCPState, est.Timeout, est.Status = flow.TCPEstablished, 432000, stAssured
	udp := fwd(flow.ProtoUDP, tuple("10.99.0.1", 48940, "10.99.0.1", 9999))
	udp.Timeout, udp.HasCounters = 29, true
	udp.Counters = flow.Counters{OrigPackets: 1, OrigBytes: 31}
	marked := samples()[0].flow
	marked.Zone = 3
	expired := est
	expired.Timeout = 0

	// Lines printed by `conntrack -E` on Linux 6.18 for the same entries
	// (the [USERSPACE] suffix of user-space deletions left out).
	evs := []struct {
		ev         flow.Event
		text, json string
	}{
		{flow.Event{Type: flow.EventNew, Time: when, Flow: syn},
			"    [NEW] tcp      6 120 SYN_SENT src=10.99.0.1 dst=10.99.0.1 sport=42436 dport=8080 [UNREPLIED] src=10.99.0.1 dst=10.99.0.1 sport=8080 dport=42436",
			`{"time":"2026-11-26T18:47:29.123Z","type":"new","flow":` + FlowJSON(&syn) + `}`},
		{flow.Event{Type: flow.EventUpdate, Time: when, Flow: est},
			" [UPDATE] tcp      6 432000 ESTABLISHED src=10.99.0.1 dst=10.99.0.1 sport=42436 dport=8080 src=10.99.0.1 dst=10.99.0.1 sport=8080 dport=42436 [ASSURED]",
			`{"time":"2026-11-26T18:47:29.123Z","type":"update","flow":` + FlowJSON(&est) + `}`},
		{flow.Event{Type: flow.EventCounters, Time: when, Flow: est}, "", ""},
		{flow.Event{Type: flow.EventDestroy, Time: when, Flow: udp},
			"[DESTROY] udp      17 29 src=10.99.0.1 dst=10.99.0.1 sport=48940 dport=9999 packets=1 bytes=31 [UNREPLIED] src=10.99.0.1 dst=10.99.0.1 sport=9999 dport=48940 packets=0 bytes=0",
			`{"time":"2026-11-26T18:47:29.123Z","type":"destroy","flow":` + FlowJSON(&udp) + `}`},
		{flow.Event{Type: flow.EventDestroy, Time: when, Flow: marked},
			"[DESTROY] tcp      6 116 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=47494 dport=8080 src=10.0.0.2 dst=10.0.0.1 sport=8080 dport=47494 [ASSURED] mark=5 zone=3",
			`{"time":"2026-11-26T18:47:29.123Z","type":"destroy","flow":` + FlowJSON(&marked) + `}`},
		{flow.Event{Type: flow.EventDestroy, Time: when, Flow: expired},
			"[DESTROY] tcp      6 ESTABLISHED src=10.99.0.1 dst=10.99.0.1 sport=42436 dport=8080 src=10.99.0.1 dst=10.99.0.1 sport=8080 dport=42436 [ASSURED]",
			`{"time":"2026-11-26T18:47:29.123Z","type":"destroy","flow":` + FlowJSON(&expired) + `}`},
		{flow.Event{Type: flow.EventResync, Time: when, Lost: 4242},
			" [RESYNC] lost=4242",
			`{"time":"2026-11-26T18:47:29.123Z","type":"resync","lost":4242}`},
		{flow.Event{Type: flow.EventSynced, Time: when}, "", ""},
		{flow.Event{Type: flow.EventStats, Time: when, Stats: &flow.TableStats{}}, "", ""},
	}
	for _, f := range []Format{FormatText, FormatNDJSON, FormatJSON} {
		t.Run(f.String(), func(t *testing.T) {
			var got bytes.Buffer
			var want strings.Builder
			ew := NewEventWriter(&got, f)
			for _, e := range evs {
				if err := ew.Write(e.ev); err != nil {
					t.Fatal(err)
				}
				line := e.json
				if f == FormatText {
					line = e.text
				}
				if line != "" {
					want.WriteString(line + "\n")
				}
			}
			if diff := cmp.Diff(want.String(), got.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if f != FormatText {
				for _, l := range strings.Split(strings.TrimSuffix(got.String(), "\n"), "\n") {
					if !json.Valid([]byte(l)) {
						t.Errorf("line is not JSON: %s", l)
					}
				}
			}
		})
	}
	ew := NewEventWriter(io.Discard, FormatCSV)
	if err := ew.Write(evs[0].ev); !errors.Is(err, ErrFormat) {
		t.Errorf("CSV event writer: Write = %v, want ErrFormat", err)
	}
}

// failWriter fails every write after the first n bytes.
type failWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteErrors(t *testing.T) {
	flows := make([]flow.Flow, 5000) // several chunks
	for i := range flows {
		flows[i] = samples()[i%len(samples())].flow
	}
	s := &Snapshot{Flows: flows}
	for _, f := range []Format{FormatJSON, FormatNDJSON, FormatCSV, FormatText} {
		for _, n := range []int{0, 100, chunkSize + 10} {
			if err := WriteSnapshot(&failWriter{n: n}, f, s); !errors.Is(err, errDiskFull) {
				t.Errorf("%v after %d bytes: error %v, want errDiskFull", f, n, err)
			} else if !strings.HasPrefix(err.Error(), "write "+f.String()) {
				t.Errorf("%v: error %q lacks context", f, err)
			}
		}
	}
	ew := NewEventWriter(&failWriter{}, FormatNDJSON)
	if err := ew.Write(flow.Event{Type: flow.EventNew}); !errors.Is(err, errDiskFull) {
		t.Errorf("event write error = %v", err)
	}
}

func TestEncodeFlowNoAlloc(t *testing.T) {
	var e encoder
	buf := make([]byte, 0, 4096)
	ss := samples()
	for i := range ss { // warm the status caches
		buf = e.appendFlow(buf[:0], &ss[i].flow)
		buf = e.appendCSVRow(buf[:0], &ss[i].flow)
	}
	f := &ss[6].flow
	checks := map[string]func(){
		"json": func() { buf = e.appendFlow(buf[:0], f) },
		"csv":  func() { buf = e.appendCSVRow(buf[:0], f) },
		"text": func() { buf = appendTextLine(buf[:0], f, lineDump) },
	}
	for name, fn := range checks {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocations per flow, want 0", name, n)
		}
	}
}

func FuzzFlowEncoding(f *testing.F) {
	f.Add(uint8(6), "ftp", uint32(0xe), uint16(1), uint16(2), []byte{10, 0, 0, 1}, uint8(8), true)
	f.Add(uint8(1), "", uint32(0), uint16(0), uint16(0), []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(0), false)
	f.Add(uint8(47), "\x1b]0;x\x07\u202e\xff", uint32(0xffffffff), uint16(65535), uint16(9), []byte{}, uint8(200), true)
	f.Fuzz(func(t *testing.T, proto uint8, helper string, status uint32, sport, dport uint16, ip []byte, typ uint8, counters bool) {
		a, _ := netip.AddrFromSlice(ip)
		fl := flow.Flow{Proto: proto, Helper: helper, Status: flow.Status(status), HasCounters: counters,
			TCPState: flow.TCPState(typ), Timeout: uint32(sport) << 8, Mark: status, Zone: dport,
			Orig:  flow.Tuple{Src: a, Dst: a, SrcPort: sport, DstPort: dport, Type: typ, Code: typ, ID: sport},
			Reply: flow.Tuple{Src: a, Dst: a, SrcPort: dport, DstPort: sport}}
		if typ%2 == 0 {
			m := fl.Orig
			fl.Master = &m
		}
		js := FlowJSON(&fl)
		var v struct {
			Proto  string
			Status []string
			Helper string
		}
		if err := json.Unmarshal([]byte(js), &v); err != nil {
			t.Fatalf("FlowJSON is not JSON: %v\n%s", err, js)
		}
		if want := perByteValid(helper); v.Helper != want {
			t.Fatalf("helper %q decodes as %q", helper, v.Helper)
		}
		if v.Proto != flow.ProtoName(proto) || len(v.Status) != len(fl.Status.Names()) {
			t.Fatalf("proto %q status %q for %d %#x", v.Proto, v.Status, proto, status)
		}
		for _, line := range []string{js, TextLine(&fl)} {
			for _, r := range line {
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x202e {
					t.Fatalf("output holds %U: %q", r, line)
				}
			}
		}
		var e encoder
		row := e.appendCSVRow(nil, &fl)
		rec, err := csv.NewReader(bytes.NewReader(row)).Read()
		if err != nil || len(rec) != 25 {
			t.Fatalf("CSV row %q: %d fields, %v", row, len(rec), err)
		}
	})
}

// perByteValid replaces every byte of s that is not valid UTF-8 with U+FFFD,
// as encoding/json and the JSON writer do.
func perByteValid(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") {
			b.WriteString("\uFFFD")
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TestFidelityFields: the snapshot header carries the tracker's verdict
// totals and the pending expectations; a flow's use count and SCTP state
// reach JSON, CSV and text; the expectation line is `conntrack -L expect`'s.
func TestFidelityFields(t *testing.T) {
	e := flow.Expectation{ID: 3, Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, Timeout: 297,
		Tuple:       flow.Tuple{Src: addr("10.0.0.2"), Dst: addr("10.0.0.1"), DstPort: 40001},
		Mask:        flow.Tuple{Src: addr("255.255.255.255"), Dst: addr("255.255.255.255"), DstPort: 65535},
		MasterProto: flow.ProtoTCP,
		Master:      flow.Tuple{Src: addr("10.0.0.1"), Dst: addr("10.0.0.2"), SrcPort: 40000, DstPort: 21},
		Helper:      "ftp"}
	if got, want := string(AppendExpectText(nil, &e)), "297 proto=6 src=10.0.0.2 dst=10.0.0.1 sport=0 dport=40001 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 master-src=10.0.0.1 master-dst=10.0.0.2 sport=40000 dport=21 class=0 helper=ftp"; got != want {
		t.Errorf("expect line:\n got %s\nwant %s", got, want)
	}
	s := &Snapshot{Time: time.Unix(0, 0), Source: "capture"}
	s.Table.HasVerdicts = true
	s.Table.Verdicts = flow.Verdicts{5, 34, 3, 1, 2}
	s.Table.HasExpectations = true
	s.Table.Expectations = []flow.Expectation{e}
	f := fwd(flow.ProtoSCTP, tuple("10.0.0.1", 5000, "10.0.0.2", 6000))
	f.SCTPState, f.Use, f.Timeout = flow.SCTPEstablished, 2, 210
	s.Flows = []flow.Flow{f}
	var b bytes.Buffer
	if err := WriteJSON(&b, s); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Verdicts     map[string]uint64 `json:"verdicts"`
		Expectations []struct {
			Tuple  struct{ Dport uint16 }
			Master struct{ Sport, Dport uint16 }
			Helper string
		}
		Flows []struct {
			SCTPState string `json:"sctp_state"`
			Use       uint32
		}
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if want := map[string]uint64{"new": 5, "established": 34, "related": 3, "invalid": 1, "untracked": 2}; !cmp.Equal(doc.Verdicts, want) {
		t.Errorf("verdicts %v, want %v", doc.Verdicts, want)
	}
	if len(doc.Expectations) != 1 || doc.Expectations[0].Tuple.Dport != 40001 || doc.Expectations[0].Master.Dport != 21 || doc.Expectations[0].Helper != "ftp" {
		t.Errorf("expectations %+v", doc.Expectations)
	}
	if len(doc.Flows) != 1 || doc.Flows[0].SCTPState != "ESTABLISHED" || doc.Flows[0].Use != 2 {
		t.Errorf("flows %+v", doc.Flows)
	}
	if got := TextLine(&f); !strings.Contains(got, " 210 ESTABLISHED src=") || !strings.HasSuffix(got, "use=2") {
		t.Errorf("text line %s", got)
	}
	var e2 encoder
	if got := string(e2.appendCSVRow(nil, &f)); !strings.HasSuffix(got, ",,,,ESTABLISHED,2\n") {
		t.Errorf("csv row %q", got)
	}
	// A snapshot without them (the kernel source before it lists
	// expectations) has neither key.
	b.Reset()
	if err := WriteJSON(&b, &Snapshot{Source: "conntrack"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "verdicts") || strings.Contains(b.String(), "expectations") {
		t.Errorf("kernel snapshot: %s", b.String())
	}
}
