//go:build linux

package conntrack

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/source/conntrack/conntracktest"
	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
)

// expectCase is an expectation message to build: the expectation, and
// the attributes conntop reads for shape only.
type expectCase struct {
	name string
	e    flow.Expectation
	nat  bool   // add CTA_EXPECT_NAT
	fn   string // CTA_EXPECT_FN
}

// buildExpectMessage builds the payload (nfgenmsg + attributes) of a
// ctnetlink expectation message, laid out as ctnetlink_exp_dump_expect
// lays it out.
func buildExpectMessage(c *expectCase) []byte {
	e := &c.e
	b := []byte{uint8(e.Family), nfnlV0, 0, 0}
	b = appendTuple(b, ctaExpectTuple, e.Tuple, e.Proto, 0)
	b = appendTuple(b, ctaExpectMask, e.Mask, e.Proto, 0)
	b = appendTuple(b, ctaExpectMaster, e.Master, e.MasterProto, 0)
	if c.nat {
		var n int
		b, n = beginNested(b, ctaExpectNAT)
		b = appendAttr(b, ctaExpectNATDir, binary.BigEndian.AppendUint32(nil, 1))
		b = appendTuple(b, ctaExpectNATTuple, flow.Tuple{Src: e.Master.Dst, Dst: netip.IPv4Unspecified(), SrcPort: 2121}, e.Proto, 0)
		b = endNested(b, n)
	}
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	b = appendAttr(b, ctaExpectTimeout, be32(e.Timeout))
	b = appendAttr(b, ctaExpectID, be32(e.ID))
	b = appendAttr(b, ctaExpectFlags, be32(e.Flags))
	b = appendAttr(b, ctaExpectClass, be32(e.Class))
	if e.Zone != 0 {
		b = appendAttr(b, ctaExpectZone, binary.BigEndian.AppendUint16(nil, e.Zone))
	}
	if e.Helper != "" {
		b = appendAttr(b, ctaExpectHelpName, append([]byte(e.Helper), 0))
	}
	if c.fn != "" {
		b = appendAttr(b, ctaExpectFn, append([]byte(c.fn), 0))
	}
	return b
}

// expectCorpus covers every field of flow.Expectation the kernel reports.
func expectCorpus() []expectCase {
	a4, b4 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a6, b6 := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	all4 := netip.MustParseAddr("255.255.255.255")
	all6 := netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	return []expectCase{
		{name: "ftp-pasv-v4", e: flow.Expectation{ID: 0xdeadbeef, Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, Timeout: 299,
			Tuple:       flow.Tuple{Src: b4, Dst: a4, DstPort: 40000},
			Mask:        flow.Tuple{Src: all4, Dst: all4, DstPort: 0xffff},
			MasterProto: flow.ProtoTCP, Master: flow.Tuple{Src: b4, Dst: a4, SrcPort: 51000, DstPort: 21}, Helper: "ftp"}},
		{name: "ftp-epsv-v6", e: flow.Expectation{ID: 7, Family: flow.FamilyIPv6, Proto: flow.ProtoTCP, Timeout: 1,
			Tuple:       flow.Tuple{Src: b6, Dst: a6, DstPort: 50000},
			Mask:        flow.Tuple{Src: all6, Dst: all6, DstPort: 0xffff},
			MasterProto: flow.ProtoTCP, Master: flow.Tuple{Src: b6, Dst: a6, SrcPort: 51001, DstPort: 21}, Helper: "ftp"}},
		{name: "nat-zone-flags", e: flow.Expectation{ID: 1, Family: flow.FamilyIPv4, Proto: flow.ProtoUDP, Timeout: 0,
			Tuple:       flow.Tuple{Src: a4, Dst: b4, SrcPort: 5060, DstPort: 6000},
			Mask:        flow.Tuple{Src: all4, Dst: all4, SrcPort: 0xffff, DstPort: 0xffff},
			MasterProto: flow.ProtoUDP, Master: flow.Tuple{Src: a4, Dst: b4, SrcPort: 5060, DstPort: 5060},
			Zone: 9, Class: 1, Flags: flow.ExpectPermanent | flow.ExpectUserspace, Helper: "a helper of someone's"},
			nat: true, fn: "nat-follow-master"},
		{name: "no-helper", e: flow.Expectation{ID: 2, Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, Timeout: 30,
			Tuple:       flow.Tuple{Src: a4, Dst: b4, DstPort: 20},
			Mask:        flow.Tuple{Src: netip.MustParseAddr("255.255.255.0"), Dst: all4, DstPort: 0xffff},
			MasterProto: flow.ProtoTCP, Master: flow.Tuple{Src: a4, Dst: b4, SrcPort: 1, DstPort: 2}, Flags: flow.ExpectInactive}},
	}
}

// libDecodeExpect decodes an expectation payload with ti-mo/conntrack and
// converts it.
func libDecodeExpect(t testing.TB, typ uint8, data []byte) flow.Expectation {
	t.Helper()
	var ev ct.Event
	m := netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(subsysCTExp<<8 | uint16(typ)), Flags: netlink.Create}, Data: data}
	if err := ev.Unmarshal(m); err != nil {
		t.Fatalf("ti-mo decode: %v", err)
	}
	if ev.Expect == nil {
		t.Fatalf("ti-mo decoded no expectation (event %v)", ev.Type)
	}
	return conntracktest.ExpectFromLib(ev.Expect)
}

// TestDecodeExpectCorpus decodes each corpus message with this package
// and with ti-mo/conntrack: both must give the expectation back.
func TestDecodeExpectCorpus(t *testing.T) {
	for _, c := range expectCorpus() {
		t.Run(c.name, func(t *testing.T) {
			data := buildExpectMessage(&c)
			var got flow.Expectation
			if err := decodeExpect(data, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.e, got, cmpAddr); diff != "" {
				t.Errorf("decodeExpect (-want +got):\n%s", diff)
			}
			lib := libDecodeExpect(t, msgExpNew, data)
			if diff := cmp.Diff(c.e, lib, cmpAddr); diff != "" {
				t.Errorf("ExpectFromLib(ti-mo decode) (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeExpectErrors: malformed input is an error, never a panic.
func TestDecodeExpectErrors(t *testing.T) {
	c := expectCorpus()[0]
	good := buildExpectMessage(&c)
	noMaster := c
	noMaster.e.Master = flow.Tuple{}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"no attributes", []byte{2, 0, 0, 0}},
		{"bad family", append([]byte{7, 0, 0, 0}, good[4:]...)},
		{"truncated", good[:len(good)-3]},
		{"attr too long", append(append([]byte{}, good[:4]...), 0xff, 0x00, 0x01, 0x80)},
		{"short timeout", append(append([]byte{}, good...), 5, 0, ctaExpectTimeout, 0, 1, 0, 0, 0)},
		{"short zone", append(append([]byte{}, good...), 5, 0, ctaExpectZone, 0, 1, 0, 0, 0)},
		{"no tuple", append([]byte{2, 0, 0, 0}, appendTuple(nil, ctaExpectMaster, c.e.Master, 6, 0)...)},
		{"empty master", buildExpectMessage(&noMaster)},
		{"bad nat", append(append([]byte{}, good...), 12, 0, ctaExpectNAT, 0x80, 6, 0, ctaExpectNATDir, 0, 1, 0, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e flow.Expectation
			if err := decodeExpect(tt.data, &e); err == nil {
				t.Errorf("decodeExpect(%x) = nil error: %+v", tt.data, e)
			}
		})
	}
}

func FuzzDecodeExpect(f *testing.F) {
	for _, c := range expectCorpus() {
		f.Add(buildExpectMessage(&c))
	}
	f.Add([]byte{2, 0, 0, 0, 4, 0, 2, 0x80})
	f.Add([]byte{10, 0, 0, 0, 8, 0, 10, 0x80, 4, 0, 2, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var e flow.Expectation
		if err := decodeExpect(data, &e); err != nil {
			return
		}
		v4 := e.Family == flow.FamilyIPv4
		if !e.Tuple.Src.IsValid() || !e.Master.Dst.IsValid() || (!v4 && e.Family != flow.FamilyIPv6) ||
			e.Tuple.Dst.Is4() != v4 || e.Master.Src.Is4() != v4 {
			t.Fatalf("accepted an expectation without tuples or family: %+v", e)
		}
	})
}

func BenchmarkDecodeExpect(b *testing.B) {
	c := expectCorpus()[0]
	data := buildExpectMessage(&c)
	var e flow.Expectation
	b.ReportAllocs()
	for b.Loop() {
		if err := decodeExpect(data, &e); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeExpectNoAlloc: the decoder allocates nothing for the kernel's
// own helpers.
func TestDecodeExpectNoAlloc(t *testing.T) {
	c := expectCorpus()[1]
	data := buildExpectMessage(&c)
	var e flow.Expectation
	if n := testing.AllocsPerRun(100, func() {
		if err := decodeExpect(data, &e); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("decodeExpect allocates %v times per message", n)
	}
}

// TestExpectationsSet: events keep the set, a listing replaces it without
// undoing the events that arrived while it ran, timeouts count down from
// the time each expectation was heard of, and expired ones are dropped.
func TestExpectationsSet(t *testing.T) {
	cs := expectCorpus()
	e0, e1, e2 := cs[0].e, cs[1].e, cs[3].e
	t0 := time.Unix(1000, 0)
	var x expectations
	x.apply(false, &e0, t0)
	x.apply(false, &e1, t0)
	x.apply(true, &e1, t0.Add(time.Second))
	got := x.snapshot(t0.Add(10 * time.Second))
	if len(got) != 1 || got[0].ID != e0.ID || got[0].Timeout != e0.Timeout-10 {
		t.Fatalf("after events: %+v", got)
	}
	// A listing that ran while e2 arrived and e0 left: it lists e0 (seen
	// before the DESTROY) and not e2 (made after the listing read it).
	err := x.list(func() time.Time { return t0.Add(20 * time.Second) }, func(add func(*flow.Expectation)) error {
		x.apply(false, &e2, t0.Add(20*time.Second))
		x.apply(true, &e0, t0.Add(20*time.Second))
		add(&e0)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got = x.snapshot(t0.Add(20 * time.Second))
	if len(got) != 1 || got[0].ID != e2.ID || got[0].Timeout != e2.Timeout {
		t.Fatalf("after the listing: %+v", got)
	}
	// e2 (30 s) has expired 31 s later and is forgotten.
	if got := x.snapshot(t0.Add(51 * time.Second)); len(got) != 0 {
		t.Fatalf("expired expectation listed: %+v", got)
	}
	if len(x.m) != 0 {
		t.Errorf("expired expectation kept: %v", x.m)
	}
	// Sorted soonest first; each snapshot is a new slice.
	x.apply(false, &e0, t0) // 299 s
	x.apply(false, &e1, t0) // 1 s
	x.apply(false, &e2, t0) // 30 s
	a := x.snapshot(t0)
	if len(a) != 3 || a[0].ID != e1.ID || a[1].ID != e2.ID || a[2].ID != e0.ID {
		t.Fatalf("order: %+v", a)
	}
	b := x.snapshot(t0)
	b[0].ID = 12345
	if a[0].ID == 12345 {
		t.Error("snapshots share their slice")
	}
}

// TestFillUse: events carry no use count; they get the last listed one
// above 1, else 1, and a DESTROY ends the record.
func TestFillUse(t *testing.T) {
	r := &run{}
	master := corpus()[1]
	other := corpus()[0]
	master.Use = 2
	r.recordUse(&master)
	other.Use = 1
	r.recordUse(&other)
	ev := master
	ev.Use = 0
	r.fillUse(flow.EventUpdate, 0, &ev)
	if ev.Use != 2 {
		t.Errorf("update of a master listed with use 2: use %d", ev.Use)
	}
	ev = other
	ev.Use = 0
	r.fillUse(flow.EventUpdate, 0, &ev)
	if ev.Use != 1 {
		t.Errorf("update of a flow listed with use 1: use %d", ev.Use)
	}
	ev = master
	ev.Use = 3
	r.fillUse(flow.EventUpdate, haveUse, &ev) // a fetched entry carries it
	ev.Use = 0
	r.fillUse(flow.EventDestroy, 0, &ev)
	if ev.Use != 3 {
		t.Errorf("destroy after a get with use 3: use %d", ev.Use)
	}
	if r.uses.len() != 0 || r.nuses.Load() != 0 {
		t.Errorf("records left after destroy: %v", r.uses)
	}
	master.Use = 1
	r.recordUse(&master)
	if r.uses.len() != 0 {
		t.Errorf("a count back at 1 is still recorded: %v", r.uses)
	}
	// IPv6 and odd keys are kept too.
	for _, f := range []flow.Flow{master, other} {
		f.Family, f.Use = flow.FamilyIPv6, 4
		f.Orig.Src, f.Orig.Dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2%eth0")
		r.recordUse(&f)
		ev := f
		ev.Use = 0
		r.fillUse(flow.EventUpdate, 0, &ev)
		if ev.Use != 4 {
			t.Errorf("update of %v listed with use 4: use %d", f.Orig, ev.Use)
		}
	}
	if r.uses.len() != 2 {
		t.Errorf("%d counts recorded, want 2", r.uses.len())
	}
}
