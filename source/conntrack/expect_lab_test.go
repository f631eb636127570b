//go:build linux

package conntrack

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
	"github.com/conntop/conntop/source/conntrack/conntracktest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	ct "github.com/ti-mo/conntrack"
)

// libExpectations dumps the namespace's expectations with ti-mo/conntrack.
func libExpectations(t testing.TB, ns *labtest.NS) []flow.Expectation {
	t.Helper()
	var out []flow.Expectation
	err := ns.Do(func() error {
		c, err := ct.Dial(nil)
		if err != nil {
			return fmt.Errorf("conntrack netlink: %w", err)
		}
		defer c.Close()
		es, err := c.DumpExpect()
		if err != nil {
			return fmt.Errorf("dump expectations: %w", err)
		}
		for i := range es {
			out = append(out, conntracktest.ExpectFromLib(&es[i]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawExpectations dumps the namespace's expectations through this
// package's socket and decodes every message with both decoders.
func rawExpectations(t testing.TB, ns *labtest.NS) []flow.Expectation {
	t.Helper()
	var s *sock
	if err := ns.Do(func() error { var err error; s, err = openSock(0, 0, queryTimeout, 64<<10); return err }); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.begin(subsysCTExp, msgExpGet, flagRequest|flagDump, 0)
	var out []flow.Expectation
	err := s.transact(func(m message) error {
		var e flow.Expectation
		if err := decodeExpect(m.data, &e); err != nil {
			return err
		}
		if diff := cmp.Diff(libDecodeExpect(t, uint8(m.typ), m.data), e, cmpAddr); diff != "" {
			t.Errorf("decodeExpect differs from ti-mo on a kernel message (-lib +ours):\n%s", diff)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// useOf returns the use= of the entry with original tuple orig in
// `conntrack -L` of ns.
func useOf(t testing.TB, ns *labtest.NS, orig flow.Tuple) uint32 {
	t.Helper()
	out, err := ns.Output(10*time.Second, "conntrack", "-L", "-p", "tcp", "--orig-src", orig.Src.String(),
		"--orig-dst", orig.Dst.String(), "--sport", strconv.Itoa(int(orig.SrcPort)), "--dport", strconv.Itoa(int(orig.DstPort)))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if v, ok := strings.CutPrefix(f, "use="); ok {
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					t.Fatalf("use in %q: %v", sc.Text(), err)
				}
				return uint32(n)
			}
		}
	}
	t.Fatalf("conntrack -L lists no entry %v:\n%s", orig, out)
	return 0
}

// TestLabExpectations: an FTP session in a namespace with the ftp helper,
// watched by the source. After PASV, the pending expectation is in the
// source's table statistics (from the EXP_NEW event), equal to what
// ti-mo/conntrack dumps and to this package's decoding of the kernel's
// dump messages (checked against ti-mo message by message); after the data
// connection opened it is gone (EXP_DESTROY) and the data flow is RELATED
// to the control connection. The master's use count, 2 while its RELATED
// flow lives, survives the master's later events, which carry none.
func TestLabExpectations(t *testing.T) {
	l := newLab(t)
	l.srv.Sysctl(t, "net.netfilter.nf_conntrack_acct", "1")
	r := startSource(t, Options{NetNS: l.srv.Path, StatsInterval: 100 * time.Millisecond, CountersInterval: 200 * time.Millisecond})
	r.until(10*time.Second, "the initial listing", func(tb *table) bool { return tb.synced > 0 && tb.stats != nil })
	if !r.tb.stats.HasExpectations || len(r.tb.stats.Expectations) != 0 {
		t.Fatalf("fresh namespace: expectations %v (listed %v)", r.tb.stats.Expectations, r.tb.stats.HasExpectations)
	}

	fc := l.cli.DialFTP(t, l.srv.ServeFTP(t, l.link.A4))
	data, err := fc.Pasv()
	if err != nil {
		t.Fatal(err)
	}
	cli, srv := netip.MustParseAddr(l.link.B4), netip.MustParseAddr(l.link.A4)
	ctl := flow.Tuple{Src: cli, Dst: srv, SrcPort: fc.LocalAddr().Port(), DstPort: 21}
	all := netip.MustParseAddr("255.255.255.255")
	want := flow.Expectation{Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, Timeout: 300,
		Tuple: flow.Tuple{Src: cli, Dst: srv, DstPort: data.Port()}, Mask: flow.Tuple{Src: all, Dst: all, DstPort: 0xffff},
		MasterProto: flow.ProtoTCP, Master: ctl, Helper: "ftp"}
	r.until(5*time.Second, "the expectation in the statistics", func(tb *table) bool { return len(tb.stats.Expectations) == 1 })
	got := r.tb.stats.Expectations[0]
	ignore := cmpopts.IgnoreFields(flow.Expectation{}, "ID", "Timeout")
	if diff := cmp.Diff(want, got, cmpAddr, ignore); diff != "" {
		t.Errorf("source's expectation (-want +got):\n%s", diff)
	}
	lib := libExpectations(t, l.srv)
	raw := rawExpectations(t, l.srv)
	if len(lib) != 1 || len(raw) != 1 {
		t.Fatalf("kernel lists %d expectations (ti-mo), %d (raw); want 1", len(lib), len(raw))
	}
	if diff := cmp.Diff(lib[0], got, cmpAddr, cmpopts.IgnoreFields(flow.Expectation{}, "Timeout")); diff != "" {
		t.Errorf("source's expectation differs from ti-mo's dump (-lib +source):\n%s", diff)
	}
	if d := int(lib[0].Timeout) - int(got.Timeout); d < -1 || d > 1 || got.Timeout < 295 {
		t.Errorf("timeout: source %d s, kernel %d s", got.Timeout, lib[0].Timeout)
	}

	// The data connection consumes it.
	local, _, err := fc.Retr()
	if err != nil {
		t.Fatal(err)
	}
	dataKey := flow.Key{Proto: flow.ProtoTCP, Orig: flow.Tuple{Src: cli, Dst: srv, SrcPort: local.Port(), DstPort: data.Port()}}
	r.until(5*time.Second, "the expectation gone and the data flow RELATED", func(tb *table) bool {
		f, ok := tb.flows[dataKey]
		return len(tb.stats.Expectations) == 0 && ok && f.State() == flow.StateRelated && f.Master != nil && *f.Master == ctl
	})
	if n := len(libExpectations(t, l.srv)); n != 0 {
		t.Errorf("kernel still lists %d expectations", n)
	}

	// The master's use count: the kernel lists 2 (the RELATED flow holds
	// a reference to it). A source started now lists it so; the master's
	// later events (its close) carry no count and must keep it.
	ctlKey := flow.Key{Proto: flow.ProtoTCP, Orig: ctl}
	kuse := useOf(t, l.srv, ctl)
	if kuse != 2 {
		t.Errorf("kernel lists the master with use %d, want 2", kuse)
	}
	r2 := startSource(t, Options{NetNS: l.srv.Path, StatsInterval: 100 * time.Millisecond, CountersInterval: -1})
	r2.until(10*time.Second, "the second source's listing", func(tb *table) bool { return tb.synced > 0 })
	if f := r2.tb.flows[ctlKey]; f.Use != kuse {
		t.Errorf("listed control connection: use %d, kernel %d", f.Use, kuse)
	}
	fc.Close()
	r2.until(5*time.Second, "the control connection's close", func(tb *table) bool {
		f, ok := tb.flows[ctlKey]
		return ok && f.TCPState >= flow.TCPFinWait
	})
	if f := r2.tb.flows[ctlKey]; f.Use != kuse {
		t.Errorf("control connection after its close events: use %d; kernel listed %d", f.Use, kuse)
	}
	if f := r2.tb.flows[dataKey]; f.Use != 1 {
		t.Errorf("data connection: use %d, want 1", f.Use)
	}
}
