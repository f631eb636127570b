//go:build linux

package conntrack

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/conntop/conntop/source/conntrack/conntracktest"

	"github.com/conntop/conntop/internal/flow"
	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
)

// buildMessage builds the payload (nfgenmsg + attributes) of a ctnetlink
// entry message carrying every field decodeFlow reads.
func buildMessage(f *flow.Flow) []byte {
	b := []byte{uint8(f.Family), nfnlV0, 0, 0}
	b = appendTuple(b, ctaTupleOrig, f.Orig, f.Proto, 0)
	b = appendTuple(b, ctaTupleReply, f.Reply, f.Proto, 0)
	if f.Master != nil {
		b = appendTuple(b, ctaTupleMaster, *f.Master, f.Proto, 0)
	}
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	b = appendAttr(b, ctaStatus, be32(uint32(f.Status)))
	b = appendAttr(b, ctaTimeout, be32(f.Timeout))
	b = appendAttr(b, ctaMark, be32(f.Mark))
	b = appendAttr(b, ctaID, be32(f.ID))
	b = appendAttr(b, ctaZone, binary.BigEndian.AppendUint16(nil, f.Zone))
	if f.Proto == flow.ProtoTCP {
		var pi, tcp int
		b, pi = beginNested(b, ctaProtoInfo)
		b, tcp = beginNested(b, ctaProtoInfoTCP)
		b = appendAttr(b, ctaProtoInfoTCPState, []byte{uint8(f.TCPState)})
		b = appendAttr(b, 2, []byte{7}) // window scale: ignored
		b = endNested(b, tcp)
		b = endNested(b, pi)
	}
	if f.Helper != "" {
		var h int
		b, h = beginNested(b, ctaHelp)
		b = appendAttr(b, ctaHelpName, append([]byte(f.Helper), 0))
		b = endNested(b, h)
	}
	if f.HasCounters {
		for i, c := range [][2]uint64{{f.Counters.OrigPackets, f.Counters.OrigBytes}, {f.Counters.ReplyPackets, f.Counters.ReplyBytes}} {
			var n int
			b, n = beginNested(b, uint16(ctaCountersOrig+i))
			b = appendAttr(b, ctaCountersPackets, binary.BigEndian.AppendUint64(nil, c[0]))
			b = appendAttr(b, ctaCountersBytes, binary.BigEndian.AppendUint64(nil, c[1]))
			b = endNested(b, n)
		}
	}
	return b
}

// corpus are entries covering every field of flow.Flow the kernel reports.
func corpus() []flow.Flow {
	a4, b4 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a6, b6 := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	tcp := flow.Tuple{Src: a4, Dst: b4, SrcPort: 47494, DstPort: 8080}
	ftpCtl := flow.Tuple{Src: a4, Dst: b4, SrcPort: 40000, DstPort: 21}
	echo := flow.Tuple{Src: a4, Dst: b4, Type: 8, ID: 0x1234}
	echo6 := flow.Tuple{Src: a6, Dst: b6, Type: 128, ID: 7}
	return []flow.Flow{
		{ID: 3735928559, Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: flow.TCPTimeWait,
			Status: flow.StatusConfirmed | flow.StatusSeenReply | flow.StatusAssured, Orig: tcp, Reply: tcp.Reverse(6),
			Timeout: 117, Mark: 0x10, Zone: 3, HasCounters: true,
			Counters: flow.Counters{OrigPackets: 6, OrigBytes: 398, ReplyPackets: 4, ReplyBytes: 292}},
		{ID: 1, Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: flow.TCPEstablished,
			Status: flow.StatusConfirmed | flow.StatusSeenReply | flow.StatusAssured | flow.StatusHelper,
			Orig:   ftpCtl, Reply: ftpCtl.Reverse(6), Timeout: 431999, Helper: "ftp"},
		{ID: 2, Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: flow.TCPSynSent2,
			Status: flow.StatusConfirmed | flow.StatusExpected, Orig: flow.Tuple{Src: a4, Dst: b4, SrcPort: 40001, DstPort: 30000},
			Reply: flow.Tuple{Src: b4, Dst: a4, SrcPort: 30000, DstPort: 40001}, Timeout: 120, Master: &ftpCtl},
		{ID: 3, Family: flow.FamilyIPv4, Proto: flow.ProtoICMP, Status: flow.StatusConfirmed,
			Orig: echo, Reply: echo.Reverse(1), Timeout: 29},
		{ID: 4, Family: flow.FamilyIPv6, Proto: flow.ProtoICMPv6, Status: flow.StatusConfirmed | flow.StatusSeenReply,
			Orig: echo6, Reply: echo6.Reverse(58), Timeout: 29},
		{ID: 5, Family: flow.FamilyIPv6, Proto: flow.ProtoUDP, Status: flow.StatusConfirmed | flow.StatusSrcNAT,
			Orig:  flow.Tuple{Src: a6, Dst: b6, SrcPort: 5353, DstPort: 53},
			Reply: flow.Tuple{Src: b6, Dst: netip.MustParseAddr("fd00::99"), SrcPort: 53, DstPort: 6000}, Timeout: 30,
			Helper: "some-helper"},
		{ID: 6, Family: flow.FamilyIPv4, Proto: flow.ProtoGRE, Status: flow.StatusConfirmed,
			Orig: flow.Tuple{Src: a4, Dst: b4}, Reply: flow.Tuple{Src: b4, Dst: a4}, Timeout: 600},
	}
}

// TestDecodeCorpus decodes each corpus entry with this package and with
// ti-mo/conntrack (through FromLib): both must give the entry back.
func TestDecodeCorpus(t *testing.T) {
	for _, want := range corpus() {
		t.Run(flow.ProtoName(want.Proto)+"/"+want.Orig.Src.String(), func(t *testing.T) {
			data := buildMessage(&want)
			var got flow.Flow
			h, err := decodeFlow(data, &got)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
				t.Errorf("decodeFlow (-want +got):\n%s", diff)
			}
			if (h&haveProtoInfo != 0) != (want.Proto == flow.ProtoTCP) || (h&haveMaster != 0) != (want.Master != nil) {
				t.Errorf("have = %b", h)
			}
			lib := libDecode(t, data)
			if diff := cmp.Diff(want, lib, cmpAddr); diff != "" {
				t.Errorf("FromLib(ti-mo decode) (-want +got):\n%s", diff)
			}
		})
	}
}

// libDecode decodes a message payload with ti-mo/conntrack and converts it.
func libDecode(t testing.TB, data []byte) flow.Flow {
	t.Helper()
	var ev ct.Event
	m := netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(subsysCT<<8 | msgCTNew), Flags: netlink.Create}, Data: data}
	if err := ev.Unmarshal(m); err != nil {
		t.Fatalf("ti-mo decode: %v", err)
	}
	return conntracktest.FromLib(ev.Flow)
}

// TestDecodeKernelMessages checks this package's decoder against
// ti-mo/conntrack's on real dump messages from the kernel (TCP v4/v6, UDP,
// ICMP, ICMPv6, FTP with helper and RELATED master, counters on).
func TestDecodeKernelMessages(t *testing.T) {
	l := newLab(t)
	l.srv.Sysctl(t, "net.netfilter.nf_conntrack_acct", "1")
	l.traffic(t)
	var s *sock
	if err := l.srv.Do(func() error { var err error; s, err = openSock(0, 0, queryTimeout, 64<<10); return err }); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.begin(subsysCT, msgCTGet, flagRequest|flagDump, 0)
	n, masters := 0, 0
	err := s.transact(func(m message) error {
		var got flow.Flow
		if _, err := decodeFlow(m.data, &got); err != nil {
			return err
		}
		want := libDecode(t, m.data)
		if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
			t.Errorf("decodeFlow differs from ti-mo (-lib +ours):\n%s", diff)
		}
		if got.Master != nil {
			masters++
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 7 || masters != 1 {
		t.Fatalf("decoded %d entries with %d masters; want >= 7 and 1", n, masters)
	}
}

// TestDecodeErrors: malformed input is an error, never a panic.
func TestDecodeErrors(t *testing.T) {
	good := buildMessage(&corpus()[0])
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"no attributes", []byte{2, 0, 0, 0}},
		{"bad family", append([]byte{7, 0, 0, 0}, good[4:]...)},
		{"truncated", good[:len(good)-3]},
		{"attr too long", append(append([]byte{}, good[:4]...), 0xff, 0x00, 0x01, 0x80)},
		{"short status", append(append([]byte{}, good...), 5, 0, ctaStatus, 0, 1, 0, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f flow.Flow
			if _, err := decodeFlow(tt.data, &f); err == nil {
				t.Errorf("decodeFlow(%x) = nil error", tt.data)
			}
		})
	}
}

func FuzzDecodeFlow(f *testing.F) {
	for _, c := range corpus() {
		f.Add(buildMessage(&c))
	}
	f.Add([]byte{2, 0, 0, 0, 4, 0, 1, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		var fl flow.Flow
		if _, err := decodeFlow(data, &fl); err != nil {
			return
		}
		if !fl.Orig.Src.IsValid() || (fl.Family != flow.FamilyIPv4 && fl.Family != flow.FamilyIPv6) {
			t.Fatalf("accepted an entry without tuple or family: %+v", fl)
		}
	})
}

func TestParseProcStat(t *testing.T) {
	in := "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n" +
		"00000005  00000002 00000000 00000000 00000001 00000000 00000000 00000003 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000\n" +
		"00000005  0000000a 00000000 00000000 00000000 00000000 00000000 00000001 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000\n"
	got := parseProcStat([]byte(in))
	want := procStat{clashResolve: 12, chainTooLong: 4, hasClash: true, hasChain: true}
	if got != want {
		t.Errorf("parseProcStat = %+v, want %+v", got, want)
	}
	if got := parseProcStat([]byte("entries found\n1 2\n")); got.hasClash || got.hasChain {
		t.Errorf("old format: %+v", got)
	}
}

func BenchmarkDecodeFlow(b *testing.B) {
	data := buildMessage(&corpus()[0])
	var f flow.Flow
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeFlow(data, &f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFlowLib(b *testing.B) {
	data := buildMessage(&corpus()[0])
	m := netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(subsysCT<<8 | msgCTNew), Flags: netlink.Create}, Data: data}
	b.ReportAllocs()
	for b.Loop() {
		var ev ct.Event
		if err := ev.Unmarshal(m); err != nil {
			b.Fatal(err)
		}
	}
}

// cmpAddr compares netip.Addr values (unexported fields) by value.
var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
