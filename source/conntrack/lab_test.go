//go:build linux

package conntrack

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
)

// entry is the comparable part of a conntrack entry: what both
// /proc/net/nf_conntrack and the source report (timeouts move, so they are
// left out).
type entry struct {
	Proto              uint8
	Orig, Reply        flow.Tuple
	TCP                string
	Unreplied, Assured bool
	Mark               uint32
	Zone               uint16
	Helper             string
	Counters           string
}

func entryOf(f *flow.Flow, counters bool) entry {
	// /proc/net/nf_conntrack does not show the helper: it is checked apart.
	e := entry{Proto: f.Proto, Orig: f.Orig, Reply: f.Reply, Unreplied: !f.Replied(), Assured: f.Assured(),
		Mark: f.Mark, Zone: f.Zone}
	if f.Proto == flow.ProtoTCP {
		e.TCP = f.TCPState.String()
	}
	if counters && f.HasCounters {
		c := f.Counters
		e.Counters = fmt.Sprintf("%d/%d %d/%d", c.OrigPackets, c.OrigBytes, c.ReplyPackets, c.ReplyBytes)
	}
	return e
}

func (e entry) String() string {
	return fmt.Sprintf("%s %s %v -> %v reply %v unreplied=%v assured=%v mark=%d zone=%d helper=%q ctr=%s",
		flow.ProtoName(e.Proto), e.TCP, e.Orig, e.Orig.Dst, e.Reply, e.Unreplied, e.Assured, e.Mark, e.Zone, e.Helper, e.Counters)
}

// parseProcLine parses one /proc/net/nf_conntrack line.
func parseProcLine(line string) (entry, error) {
	fs := strings.Fields(line)
	if len(fs) < 6 {
		return entry{}, fmt.Errorf("short line %q", line)
	}
	var e entry
	p, err := strconv.Atoi(fs[3])
	if err != nil {
		return e, fmt.Errorf("proto in %q: %w", line, err)
	}
	e.Proto = uint8(p)
	rest := fs[5:]
	if e.Proto == flow.ProtoTCP {
		e.TCP, rest = rest[0], rest[1:]
	}
	tuple := 0
	var pk, by []string
	for _, f := range rest {
		t := &e.Orig
		if tuple == 2 {
			t = &e.Reply
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			switch f {
			case "[UNREPLIED]":
				e.Unreplied = true
			case "[ASSURED]":
				e.Assured = true
			}
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 32)
		switch k {
		case "src":
			tuple++
			t = &e.Orig
			if tuple == 2 {
				t = &e.Reply
			}
			t.Src = netip.MustParseAddr(v)
		case "dst":
			t.Dst = netip.MustParseAddr(v)
		case "sport":
			t.SrcPort = uint16(n)
		case "dport":
			t.DstPort = uint16(n)
		case "type":
			t.Type = uint8(n)
		case "code":
			t.Code = uint8(n)
		case "id":
			t.ID = uint16(n)
		case "mark":
			e.Mark = uint32(n)
		case "zone":
			e.Zone = uint16(n)
		case "helper":
			e.Helper = v
		case "packets":
			pk = append(pk, v)
		case "bytes":
			by = append(by, v)
		}
	}
	if len(pk) == 2 && len(by) == 2 {
		e.Counters = pk[0] + "/" + by[0] + " " + pk[1] + "/" + by[1]
	}
	return e, nil
}

// kernelTable reads the namespace's /proc/net/nf_conntrack.
func kernelTable(t testing.TB, ns *labtest.NS) []entry {
	t.Helper()
	out, err := ns.Output(60*time.Second, "cat", "/proc/net/nf_conntrack")
	if err != nil {
		t.Fatal(err)
	}
	var es []entry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		e, err := parseProcLine(sc.Text())
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	return es
}

// sortedStrings renders entries sorted, for diffs.
func sortedStrings(es []entry) []string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.String()
	}
	sort.Strings(s)
	return s
}

// table is a consumer of source events that keeps the current table.
type table struct {
	flows   map[flow.Key]flow.Flow
	synced  int
	resyncs int
	lost    uint64
	stats   *flow.TableStats
	// listed collects keys listed since the last resync.
	listing bool
	listed  map[flow.Key]bool
	history map[flow.Key][]flow.Event
	keepLog bool
}

func newTable() *table {
	return &table{flows: map[flow.Key]flow.Flow{}, listed: map[flow.Key]bool{}, history: map[flow.Key][]flow.Event{}}
}

func (tb *table) apply(ev flow.Event) {
	k := ev.Flow.Key()
	if tb.keepLog && ev.Type <= flow.EventDestroy {
		tb.history[k] = append(tb.history[k], ev)
	}
	switch ev.Type {
	case flow.EventNew, flow.EventUpdate:
		tb.flows[k] = ev.Flow
		if tb.listing {
			tb.listed[k] = true
		}
	case flow.EventCounters:
		if f, ok := tb.flows[k]; ok {
			f.HasCounters, f.Counters = true, ev.Flow.Counters
			tb.flows[k] = f
		}
	case flow.EventDestroy:
		delete(tb.flows, k)
	case flow.EventResync:
		tb.resyncs++
		tb.lost += ev.Lost
		tb.listing = true
		clear(tb.listed)
	case flow.EventSynced:
		tb.synced++
		if tb.listing {
			for k := range tb.flows {
				if !tb.listed[k] {
					delete(tb.flows, k)
				}
			}
			tb.listing = false
		}
	case flow.EventStats:
		tb.stats = ev.Stats
	}
}

func (tb *table) entries(counters bool) []entry {
	es := make([]entry, 0, len(tb.flows))
	for _, f := range tb.flows {
		es = append(es, entryOf(&f, counters))
	}
	return es
}

// runner runs a Source in the background and feeds a table.
type runner struct {
	t      testing.TB
	events chan flow.Event
	done   chan error
	cancel context.CancelFunc
	tb     *table
}

func startSource(t testing.TB, opts Options) *runner {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{t: t, events: make(chan flow.Event, 4096), done: make(chan error, 1), cancel: cancel, tb: newTable()}
	src := New(opts)
	go func() { r.done <- src.Run(ctx, r.events) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return r
}

// until applies events until cond holds (checked after each event and every
// 100 ms) or the timeout expires.
func (r *runner) until(timeout time.Duration, what string, cond func(*table) bool) {
	r.t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond(r.tb) {
		select {
		case ev := <-r.events:
			r.tb.apply(ev)
		case err := <-r.done:
			r.done <- err
			r.t.Fatalf("waiting for %s: source stopped: %v", what, err)
		case <-tick.C:
		case <-deadline:
			r.t.Fatalf("timed out after %v waiting for %s (table: %d flows, %d syncs, %d resyncs, %d lost, listing %v)",
				timeout, what, len(r.tb.flows), r.tb.synced, r.tb.resyncs, r.tb.lost, r.tb.listing)
		}
	}
}

// drain applies all events already queued, waiting quiet for a moment.
func (r *runner) drain(quiet time.Duration) {
	for {
		select {
		case ev := <-r.events:
			r.tb.apply(ev)
		case <-time.After(quiet):
			return
		}
	}
}

// lab is a two-namespace lab: srv tracks connections (with the FTP helper),
// cli has no rules.
type lab struct {
	srv, cli *labtest.NS
	link     labtest.Link
}

func newLab(t testing.TB) *lab {
	labtest.RequireRoot(t)
	l := &lab{srv: labtest.NewNS(t, "ctsrc"), cli: labtest.NewNS(t, "ctsrc")}
	l.link = labtest.Connect(t, l.srv, l.cli, 1)
	l.srv.EnableConntrack(t, labtest.Conntrack{FTPHelper: true})
	return l
}

// traffic makes TCP (v4 and v6), UDP, ICMP, ICMPv6 and FTP (control and a
// RELATED passive data connection) flows in srv's table. It returns the
// FTP control connection's original tuple.
func (l *lab) traffic(t testing.TB) flow.Tuple {
	t.Helper()
	ln := l.srv.ServeEcho(t, "tcp", l.link.A4+":8080")
	c := l.cli.DialTCP(t, ln.Addr().String())
	if err := labtest.Echo(c, "ping"); err != nil {
		t.Fatal(err)
	}
	ln6 := l.srv.ServeEcho(t, "tcp", "["+l.link.A6+"]:8081")
	c6 := l.cli.DialTCP(t, ln6.Addr().String())
	if err := labtest.Echo(c6, "ping6"); err != nil {
		t.Fatal(err)
	}
	if err := l.cli.SendUDP(l.link.B4+":5353", l.link.A4+":53", 2, []byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := l.cli.Ping(l.link.A4, 0x1234, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.cli.Ping(l.link.A6, 0x4321, 1); err != nil {
		t.Fatal(err)
	}
	ctl := l.ftp(t)
	// Let the closing handshakes finish so that the table holds still.
	time.Sleep(300 * time.Millisecond)
	return ctl
}

// ftp runs a minimal passive-mode FTP exchange: a server in srv on port 21
// answers PASV with a data port, the client in cli connects to it, which the
// kernel's ftp helper (attached by the nft rule) turns into a RELATED flow.
func (l *lab) ftp(t testing.TB) flow.Tuple {
	t.Helper()
	ctl := l.srv.Listen(t, "tcp4", l.link.A4+":21")
	data := l.srv.Listen(t, "tcp4", l.link.A4+":0")
	dport := data.Addr().(*net.TCPAddr).Port
	srvDone := make(chan error, 1)
	go func() {
		srvDone <- func() error {
			c, err := ctl.Accept()
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			rd := bufio.NewReader(c)
			fmt.Fprintf(c, "220 conntop test\r\n")
			for {
				line, err := rd.ReadString('\n')
				if err != nil {
					return err
				}
				cmd := strings.ToUpper(strings.Fields(line + " x")[0])
				switch cmd {
				case "USER":
					fmt.Fprintf(c, "331 ok\r\n")
				case "PASS":
					fmt.Fprintf(c, "230 ok\r\n")
				case "PASV":
					ip := strings.ReplaceAll(l.link.A4, ".", ",")
					fmt.Fprintf(c, "227 Entering Passive Mode (%s,%d,%d).\r\n", ip, dport>>8, dport&0xff)
				case "LIST":
					d, err := data.Accept()
					if err != nil {
						return err
					}
					fmt.Fprintf(c, "150 here\r\n")
					fmt.Fprintf(d, "file\r\n")
					d.Close()
					fmt.Fprintf(c, "226 done\r\n")
				case "QUIT":
					fmt.Fprintf(c, "221 bye\r\n")
					return nil
				default:
					fmt.Fprintf(c, "502 no\r\n")
				}
			}
		}()
	}()
	c := l.cli.DialTCP(t, l.link.A4+":21")
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(c)
	expect := func(code string) string {
		t.Helper()
		line, err := rd.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, code) {
			t.Fatalf("ftp: got %q, %v; want %s", line, err, code)
		}
		return line
	}
	expect("220")
	fmt.Fprintf(c, "USER anonymous\r\n")
	expect("331")
	fmt.Fprintf(c, "PASS x\r\n")
	expect("230")
	fmt.Fprintf(c, "PASV\r\n")
	expect("227")
	fmt.Fprintf(c, "LIST\r\n")
	d, err := l.cli.Dial("tcp4", fmt.Sprintf("%s:%d", l.link.A4, dport))
	if err != nil {
		t.Fatal(err)
	}
	expect("150")
	buf := make([]byte, 16)
	_ = d.SetDeadline(time.Now().Add(5 * time.Second))
	if n, _ := d.Read(buf); n == 0 {
		t.Fatal("ftp: no data on the data connection")
	}
	d.Close()
	expect("226")
	fmt.Fprintf(c, "QUIT\r\n")
	expect("221")
	if err := <-srvDone; err != nil {
		t.Fatalf("ftp server: %v", err)
	}
	c.Close()
	la := c.LocalAddr().(*net.TCPAddr)
	return flow.Tuple{Src: netip.MustParseAddr(l.link.B4), Dst: netip.MustParseAddr(l.link.A4),
		SrcPort: uint16(la.Port), DstPort: 21}
}
