package pcap

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/conntop/conntop/internal/flow"
)

// oracleDir holds the kernel's verdict on the test captures (see its README).
const oracleDir = "../../testdata/kernel-oracle"

// entry is what the oracle compares of one conntrack entry.
type entry struct {
	Family, Proto                string
	Orig, Reply                  string
	TCPState                     string
	Assured, SeenReply, Expected bool
	OrigPackets, OrigBytes       uint64
	ReplyPackets, ReplyBytes     uint64
	Helper                       string
}

type kernelTuple struct {
	Src, Dst       string
	Sport, Dport   *uint16
	Type, Code     *uint8
	ID             *uint16
	Packets, Bytes uint64
}

type kernelEntry struct {
	Family, Proto string
	TCPState      string `json:"tcp_state"`
	Assured       bool
	SeenReply     bool `json:"seen_reply"`
	Related       bool
	Status        []string
	Orig, Reply   kernelTuple
	Helper        string
}

func (k kernelTuple) String() string {
	s := k.Src + ">" + k.Dst
	if k.Sport != nil {
		s += fmt.Sprintf(" %d>%d", *k.Sport, *k.Dport)
	}
	if k.Type != nil {
		s += fmt.Sprintf(" type=%d code=%d id=%d", *k.Type, *k.Code, *k.ID)
	}
	return s
}

func tupleString(proto uint8, t flow.Tuple) string {
	s := t.Src.String() + ">" + t.Dst.String()
	switch {
	case flow.HasPorts(proto):
		s += fmt.Sprintf(" %d>%d", t.SrcPort, t.DstPort)
	case flow.IsICMP(proto):
		s += fmt.Sprintf(" type=%d code=%d id=%d", t.Type, t.Code, t.ID)
	}
	return s
}

// kernelEntries reads NAME.kernel.json.
func kernelEntries(t *testing.T, path string) []entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ks []kernelEntry
	if err := json.Unmarshal(b, &ks); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []entry
	for _, k := range ks {
		expected := k.Related
		for _, s := range k.Status {
			if s == "EXPECTED" {
				expected = true
			}
		}
		out = append(out, entry{
			Family: k.Family, Proto: k.Proto, Orig: k.Orig.String(), Reply: k.Reply.String(),
			TCPState: k.TCPState, Assured: k.Assured, SeenReply: k.SeenReply, Expected: expected,
			OrigPackets: k.Orig.Packets, OrigBytes: k.Orig.Bytes,
			ReplyPackets: k.Reply.Packets, ReplyBytes: k.Reply.Bytes, Helper: k.Helper,
		})
	}
	return sortEntries(out)
}

// flowEntries converts the tracker's flows.
func flowEntries(fs []flow.Flow) []entry {
	var out []entry
	for _, f := range fs {
		ts := ""
		if f.Proto == flow.ProtoTCP {
			ts = f.TCPState.String()
		}
		out = append(out, entry{
			Family: f.Family.String(), Proto: flow.ProtoName(f.Proto),
			Orig: tupleString(f.Proto, f.Orig), Reply: tupleString(f.Proto, f.Reply),
			TCPState: ts, Assured: f.Assured(), SeenReply: f.Replied(), Expected: f.Status&flow.StatusExpected != 0,
			OrigPackets: f.Counters.OrigPackets, OrigBytes: f.Counters.OrigBytes,
			ReplyPackets: f.Counters.ReplyPackets, ReplyBytes: f.Counters.ReplyBytes, Helper: f.Helper,
		})
	}
	return sortEntries(out)
}

func sortEntries(es []entry) []entry {
	sort.Slice(es, func(i, j int) bool {
		if es[i].Proto != es[j].Proto {
			return es[i].Proto < es[j].Proto
		}
		return es[i].Orig < es[j].Orig
	})
	return es
}

func kernelInvalid(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		ConntrackStats struct{ Invalid uint64 } `json:"conntrack_stats"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return st.ConntrackStats.Invalid
}

// TestKernelOracle replays every NAME.replay.pcap through the pcap source's
// Replay and compares the table right after the last packet, and the
// invalid count, with what the kernel kept on the same packets.
func TestKernelOracle(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(oracleDir, "*.replay.pcap"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no oracle captures in %s (%v)", oracleDir, err)
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".replay.pcap")
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			res, err := Replay(context.Background(), f, name, Config{})
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			want := kernelEntries(t, filepath.Join(oracleDir, name+".kernel.json"))
			got := flowEntries(res.Flows)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("table differs from the kernel's (-kernel +conntop):\n%s", diff)
			}
			if w := kernelInvalid(t, filepath.Join(oracleDir, name+".kernel.stats.json")); res.Stats.Invalid != w {
				t.Errorf("invalid = %d, kernel %d (reasons %v)", res.Stats.Invalid, w, res.Stats.InvalidReasons)
			}
		})
	}
}

// TestQinQ tracks the inner packets of the doubly tagged zeek-q-in-q capture
// (the kernel oracle has no verdict for it: see the oracle README). Its SAP
// announcements go to 224.2.127.254, a group a router in the path has not
// joined: the default (router) replay keeps no entry for them, a host
// replay does.
func TestQinQ(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want int // UDP flows
	}{{"router", Config{}, 1}, {"host", Config{Host: true}, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open("../../testdata/pcap/zeek-q-in-q.pcap")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			res, err := Replay(context.Background(), f, "zeek-q-in-q", tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Packets != 5 || res.Decode.NotIP != 1 {
				t.Errorf("packets %d, not-IP %d; want 5 and 1 (the ARP)", res.Packets, res.Decode.NotIP)
			}
			var udp []flow.Flow
			for _, f := range res.Flows {
				if f.Proto == flow.ProtoUDP {
					udp = append(udp, f)
				}
			}
			if len(udp) != tc.want || len(res.Flows) != tc.want {
				t.Fatalf("flows %+v, want %d UDP flows", res.Flows, tc.want)
			}
			for _, f := range udp {
				if f.Replied() || f.Assured() || f.Counters.OrigPackets != 2 || f.Counters.ReplyPackets != 0 {
					t.Errorf("flow %s: status %v counters %+v; want unreplied with 2 packets", tupleString(f.Proto, f.Orig), f.Status, f.Counters)
				}
				if !f.Orig.Src.Is4() || f.Orig.Src == (netip.Addr{}) {
					t.Errorf("bad source address %v", f.Orig.Src)
				}
			}
		})
	}
}
