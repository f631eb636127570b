package tracker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/conntop/conntop/internal/decode"
	"github.com/conntop/conntop/internal/flow"
)

const oracleDir = "../../testdata/kernel-oracle"

// oracleFlow is one entry of NAME.kernel.json.
type oracleFlow struct {
	Family   string      `json:"family"`
	Proto    string      `json:"proto"`
	Protonum uint8       `json:"protonum"`
	TCPState string      `json:"tcp_state"`
	Status   []string    `json:"status"`
	Orig     oracleTuple `json:"orig"`
	Reply    oracleTuple `json:"reply"`
	Zone     uint16      `json:"zone"`
	Helper   string      `json:"helper"`
	Related  bool        `json:"related"`
}

type oracleTuple struct {
	Src     string `json:"src"`
	Dst     string `json:"dst"`
	Sport   uint16 `json:"sport"`
	Dport   uint16 `json:"dport"`
	Type    uint8  `json:"type"`
	Code    uint8  `json:"code"`
	ID      uint16 `json:"id"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

type oracleStats struct {
	Stats map[string]uint64 `json:"conntrack_stats"`
	// NFT holds the nft counters of the oracle's ruleset: pre_new,
	// pre_established, pre_related, pre_invalid and pre_untracked count
	// packets by `ct state` at prerouting.
	NFT map[string]struct {
		Packets uint64 `json:"packets"`
		Bytes   uint64 `json:"bytes"`
	} `json:"nft_counters"`
	Expectations []json.RawMessage `json:"expectations"`
}

// verdicts returns the kernel's packet counts by ct state at prerouting.
func (s *oracleStats) verdicts() flow.Verdicts {
	var v flow.Verdicts
	for i := range flow.NumVerdicts {
		v[i] = s.NFT["pre_"+i.String()].Packets
	}
	return v
}

// diffLines compares two tables of described entries as multisets: an
// entry held twice by one side and once by the other differs. It returns
// "" when they are equal.
func diffLines(what string, kern, ours []string) string {
	count := map[string]int{}
	for _, l := range kern {
		count[l]++
	}
	for _, l := range ours {
		count[l]--
	}
	keys := make([]string, 0, len(count))
	for l, n := range count {
		if n != 0 {
			keys = append(keys, l)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, l := range keys {
		switch n := count[l]; {
		case n > 0:
			fmt.Fprintf(&b, "  kernel has %d more of %s: %s\n", n, what, l)
		default:
			fmt.Fprintf(&b, "  tracker has %d more of %s: %s\n", -n, what, l)
		}
	}
	return b.String()
}

// diffTimeouts compares the remaining timeouts of the entries both sides
// hold (by line, in order), allowing one second either way.
func diffTimeouts(kern, ours map[string][]uint32) string {
	keys := make([]string, 0, len(kern))
	for l := range kern {
		keys = append(keys, l)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, l := range keys {
		k, o := slices.Clone(kern[l]), slices.Clone(ours[l])
		slices.Sort(k)
		slices.Sort(o)
		for i := range min(len(k), len(o)) {
			if k[i] > o[i]+1 || o[i] > k[i]+1 {
				fmt.Fprintf(&b, "  timeout: kernel %d s, tracker %d s: %s\n", k[i], o[i], l)
			}
		}
	}
	return b.String()
}

// diffVerdicts describes how the tracker's verdict counts differ from the
// kernel's ("" when equal).
func diffVerdicts(kern, ours flow.Verdicts) string {
	var b strings.Builder
	for i := range flow.NumVerdicts {
		if kern[i] != ours[i] {
			fmt.Fprintf(&b, "  %s packets: kernel %d, tracker %d\n", i, kern[i], ours[i])
		}
	}
	return b.String()
}

// comparedStatus are the status bits the oracle records and we compare.
var comparedStatus = []string{"ASSURED", "CONFIRMED", "EXPECTED", "SEEN_REPLY"}

// describeOracle renders a kernel entry in a canonical one-line form.
func describeOracle(f oracleFlow) string {
	var st []string
	for _, s := range f.Status {
		if slices.Contains(comparedStatus, s) {
			st = append(st, s)
		}
	}
	sort.Strings(st)
	return fmt.Sprintf("%s %d %s orig[%s] reply[%s] status=%s helper=%q related=%v",
		f.Family, f.Protonum, f.TCPState, oracleTupleString(f.Orig), oracleTupleString(f.Reply),
		strings.Join(st, ","), f.Helper, f.Related)
}

func oracleTupleString(t oracleTuple) string {
	return fmt.Sprintf("%s>%s sport=%d dport=%d type=%d code=%d id=%d packets=%d bytes=%d",
		netip.MustParseAddr(t.Src), netip.MustParseAddr(t.Dst), t.Sport, t.Dport, t.Type, t.Code, t.ID, t.Packets, t.Bytes)
}

// describeFlow renders one of our flows in the same form.
func describeFlow(f flow.Flow) string {
	var st []string
	for _, s := range f.Status.Names() {
		if slices.Contains(comparedStatus, s) {
			st = append(st, s)
		}
	}
	sort.Strings(st)
	tcp := ""
	switch f.Proto {
	case flow.ProtoTCP:
		tcp = f.TCPState.String()
	case flow.ProtoSCTP:
		tcp = "sctp:" + f.SCTPState.String()
	}
	tu := func(t flow.Tuple, pk, by uint64) oracleTuple {
		return oracleTuple{Src: t.Src.String(), Dst: t.Dst.String(), Sport: t.SrcPort, Dport: t.DstPort,
			Type: t.Type, Code: t.Code, ID: t.ID, Packets: pk, Bytes: by}
	}
	return fmt.Sprintf("%s %d %s orig[%s] reply[%s] status=%s helper=%q related=%v",
		f.Family, f.Proto, tcp,
		oracleTupleString(tu(f.Orig, f.Counters.OrigPackets, f.Counters.OrigBytes)),
		oracleTupleString(tu(f.Reply, f.Counters.ReplyPackets, f.Counters.ReplyBytes)),
		strings.Join(st, ","), f.Helper, f.Master != nil)
}

// readPcap calls fn with every packet of the Ethernet capture at path, in
// order; data is valid only during the call.
func readPcap(tb testing.TB, path string, fn func(data []byte, ci gopacket.CaptureInfo)) {
	tb.Helper()
	fh, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer fh.Close()
	r, err := pcapgo.NewReader(fh)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	if r.LinkType() != 1 {
		tb.Fatalf("%s: link type %v, want Ethernet", path, r.LinkType())
	}
	for n := 1; ; n++ {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			tb.Fatalf("%s: packet %d: %v", path, n, err)
		}
		fn(data, ci)
	}
}

// replay feeds a pcap file through decode and the tracker with packet
// timestamps as the clock; it returns the tracker and the last packet time.
func replay(tb testing.TB, path string) (*Tracker, time.Time) {
	tb.Helper()
	dec := decode.New(decode.Config{})
	tr := New(routerConfig())
	var last time.Time
	var dg decode.Datagram
	readPcap(tb, path, func(data []byte, ci gopacket.CaptureInfo) {
		last = ci.Timestamp
		if dec.Decode(ci.Timestamp, decode.LinkEthernet, data, ci.Length, &dg) != decode.StatusDatagram {
			return
		}
		tr.Handle(ci.Timestamp, &Packet{Data: dg.Data, Length: dg.Length, Fragment: dg.Fragment})
		tr.AppendEvents(nil)
	})
	return tr, last
}

// TestOracle replays every capture the kernel saw and compares the table
// right after the last packet, and the invalid/error statistics, with the
// kernel's.
func TestOracle(t *testing.T) {
	names, err := filepath.Glob(filepath.Join(oracleDir, "*.replay.pcap"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no oracle captures in %s: %v", oracleDir, err)
	}
	for _, pcapPath := range names {
		name := strings.TrimSuffix(filepath.Base(pcapPath), ".replay.pcap")
		t.Run(name, func(t *testing.T) {
			var want []oracleFlow
			readJSON(t, filepath.Join(oracleDir, name+".kernel.json"), &want)
			var ws oracleStats
			readJSON(t, filepath.Join(oracleDir, name+".kernel.stats.json"), &ws)

			tr, end := replay(t, pcapPath)
			got := tr.AppendFlows(nil, end)

			var wantLines, gotLines []string
			for _, f := range want {
				wantLines = append(wantLines, describeOracle(f))
			}
			for _, f := range got {
				gotLines = append(gotLines, describeFlow(f))
			}
			if d := diffLines("entry", wantLines, gotLines); d != "" {
				t.Errorf("tracker differs from the kernel:\n%s", d)
			}
			t.Logf("%d kernel entries, %d tracker entries", len(want), len(got))
			st := tr.Stats()
			if d := diffVerdicts(ws.verdicts(), st.Verdicts); d != "" {
				t.Errorf("per-packet verdicts differ from the kernel's nft counters:\n%s", d)
			}
			if _, ok := ws.NFT["pre_new"]; !ok {
				t.Errorf("%s: no nft_counters.pre_new", name)
			}
			if len(ws.Expectations) != len(st.Expectations) {
				t.Errorf("expectations: kernel %d, tracker %d", len(ws.Expectations), len(st.Expectations))
			}
			for _, c := range []struct {
				name string
				got  uint64
			}{
				{"invalid", st.Invalid}, {"error", st.Error}, {"drop", st.Drop},
				{"early_drop", st.EarlyDrop}, {"insert_failed", st.InsertFailed},
			} {
				if w := ws.Stats[c.name]; w != c.got {
					t.Errorf("stat %s = %d, kernel %d (reasons %v)", c.name, c.got, w, st.InvalidReasons)
				}
			}
		})
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
