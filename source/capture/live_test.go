//go:build linux

package capture

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
)

// entry is what the live oracle compares of one conntrack entry.
type entry struct {
	Proto                        string
	Orig, Reply                  string
	TCPState                     string
	Assured, SeenReply, Expected bool
	OrigPackets, ReplyPackets    uint64
	OrigBytes, ReplyBytes        uint64
	Helper                       string
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

func flowEntry(f *flow.Flow) entry {
	ts := ""
	if f.Proto == flow.ProtoTCP {
		ts = f.TCPState.String()
	}
	return entry{
		Proto: flow.ProtoName(f.Proto), Orig: tupleString(f.Proto, f.Orig), Reply: tupleString(f.Proto, f.Reply),
		TCPState: ts, Assured: f.Assured(), SeenReply: f.Replied(), Expected: f.Status&flow.StatusExpected != 0,
		OrigPackets: f.Counters.OrigPackets, ReplyPackets: f.Counters.ReplyPackets,
		OrigBytes: f.Counters.OrigBytes, ReplyBytes: f.Counters.ReplyBytes, Helper: f.Helper,
	}
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

// parseConntrackL parses `conntrack -L -o extended` lines.
func parseConntrackL(t *testing.T, out string) []entry {
	t.Helper()
	var es []entry
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || (f[0] != "ipv4" && f[0] != "ipv6") {
			continue
		}
		e := entry{Proto: f[2], SeenReply: true}
		var tup [2]struct {
			src, dst                    string
			sport, dport, typ, code, id string
			packets, bytes              uint64
		}
		n := -1
		for _, tok := range f[5:] {
			switch {
			case tok == "[ASSURED]":
				e.Assured = true
			case tok == "[UNREPLIED]":
				e.SeenReply = false
			case strings.HasPrefix(tok, "["):
			case !strings.Contains(tok, "="):
				e.TCPState = tok
			default:
				k, v, _ := strings.Cut(tok, "=")
				if k == "src" {
					n++
				}
				if n < 0 || n > 1 {
					continue
				}
				tp := &tup[n]
				switch k {
				case "src":
					tp.src = v
				case "dst":
					tp.dst = v
				case "sport":
					tp.sport = v
				case "dport":
					tp.dport = v
				case "type":
					tp.typ = v
				case "code":
					tp.code = v
				case "id":
					tp.id = v
				case "packets":
					tp.packets, _ = strconv.ParseUint(v, 10, 64)
				case "bytes":
					tp.bytes, _ = strconv.ParseUint(v, 10, 64)
				case "helper":
					e.Helper = v
				}
			}
			if strings.HasPrefix(tok, "helper=") {
				e.Helper = strings.TrimPrefix(tok, "helper=")
			}
		}
		str := func(i int) string {
			tp := tup[i]
			s := tp.src + ">" + tp.dst
			if tp.sport != "" {
				s += " " + tp.sport + ">" + tp.dport
			}
			if tp.typ != "" {
				s += " type=" + tp.typ + " code=" + tp.code + " id=" + tp.id
			}
			return s
		}
		e.Orig, e.Reply = str(0), str(1)
		e.OrigPackets, e.OrigBytes = tup[0].packets, tup[0].bytes
		e.ReplyPackets, e.ReplyBytes = tup[1].packets, tup[1].bytes
		es = append(es, e)
	}
	return es
}

// kernelTable reads the kernel's table in ns, marking the entries created
// from an expectation.
func kernelTable(t *testing.T, ns *labtest.NS) []entry {
	t.Helper()
	var all []entry
	for _, fam := range []string{"ipv4", "ipv6"} {
		out, err := ns.Output(10*time.Second, "conntrack", "-L", "-f", fam, "-o", "extended")
		if err != nil {
			t.Fatalf("conntrack -L in %s: %v", ns.Name, err)
		}
		es := parseConntrackL(t, string(out))
		exp, err := ns.Output(10*time.Second, "conntrack", "-L", "-f", fam, "-u", "EXPECTED", "-o", "extended")
		if err != nil {
			t.Fatalf("conntrack -L -u EXPECTED in %s: %v", ns.Name, err)
		}
		expected := map[string]bool{}
		for _, e := range parseConntrackL(t, string(exp)) {
			expected[e.Proto+" "+e.Orig] = true
		}
		for i := range es {
			es[i].Expected = expected[es[i].Proto+" "+es[i].Orig]
		}
		all = append(all, es...)
	}
	return sortEntries(all)
}

// liveCapture runs a capture Source and keeps the table its events describe.
type liveCapture struct {
	mu     sync.Mutex
	table  map[flow.Key]flow.Flow
	stats  *flow.TableStats
	nstats int
	synced chan struct{}
	done   chan error
	cancel context.CancelFunc
}

func startCapture(t *testing.T, cfg Config) *liveCapture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lc := &liveCapture{table: map[flow.Key]flow.Flow{}, synced: make(chan struct{}), done: make(chan error, 1), cancel: cancel}
	out := make(chan flow.Event, 4096)
	go func() { lc.done <- New(cfg).Run(ctx, out) }()
	go func() {
		for ev := range out {
			lc.mu.Lock()
			switch ev.Type {
			case flow.EventSynced:
				close(lc.synced)
			case flow.EventNew, flow.EventUpdate, flow.EventCounters:
				lc.table[ev.Flow.Key()] = ev.Flow
			case flow.EventDestroy:
				delete(lc.table, ev.Flow.Key())
			case flow.EventStats:
				lc.stats = ev.Stats
				lc.nstats++
			}
			lc.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-lc.done:
			if err != nil {
				t.Errorf("capture Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("capture Run did not stop")
		}
	})
	select {
	case <-lc.synced:
	case err := <-lc.done:
		t.Fatalf("capture did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("capture did not start in 10 s")
	}
	return lc
}

// settle waits for two more statistics events (the counters are sent with
// them) and returns the table and the last statistics.
func (lc *liveCapture) settle(t *testing.T) ([]entry, flow.TableStats) {
	t.Helper()
	lc.mu.Lock()
	n := lc.nstats
	lc.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lc.mu.Lock()
		if lc.nstats >= n+2 {
			var es []entry
			for _, f := range lc.table {
				es = append(es, flowEntry(&f))
			}
			st := *lc.stats
			lc.mu.Unlock()
			return sortEntries(es), st
		}
		lc.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("no statistics from the capture in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// matchKernel reads the kernel's table in ns and the capture's settled
// table until they agree, so that the last FINs and ACKs still in flight on
// a loaded machine do not fail the comparison; after a bounded number of
// tries it returns the last pair, and the caller's comparison reports the
// difference.
func (lc *liveCapture) matchKernel(t *testing.T, ns *labtest.NS) (want, got []entry, st flow.TableStats) {
	t.Helper()
	for try := 0; ; try++ {
		time.Sleep(500 * time.Millisecond) // let the last FINs and ACKs land
		want = kernelTable(t, ns)
		got, st = lc.settle(t)
		if try == 5 || cmp.Equal(want, got) {
			return want, got, st
		}
	}
}

// serveUDP answers (echo) or swallows datagrams on addr inside ns until
// cleanup.
func serveUDP(t *testing.T, ns *labtest.NS, network, addr string, echo bool) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if echo {
				_, _ = pc.WriteTo(buf[:n], from)
			}
		}
	}()
}

// udpRoundTrips sends count datagrams from ns to addr and, when reply,
// waits for each echo.
func udpRoundTrips(t *testing.T, ns *labtest.NS, network, addr string, count int, reply bool) {
	t.Helper()
	c, err := ns.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for i := 0; i < count; i++ {
		if _, err := c.Write([]byte("datagram " + strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if reply {
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := c.Read(buf); err != nil {
				t.Fatalf("udp echo from %s: %v", addr, err)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tcpSession connects from ns to addr (an echo server), does rounds echo
// round trips, and closes: gracefully or with a RST (abort).
func tcpSession(t *testing.T, ns *labtest.NS, network, addr string, rounds int, abort bool) {
	t.Helper()
	c, err := ns.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < rounds; i++ {
		if err := labtest.Echo(c, "hello "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if abort {
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
		return
	}
	c.Close()
}

// TestLiveKernelOracle: real traffic between two fresh namespaces while
// conntop captures on the veth of the one whose kernel tracks connections;
// the tracker's table must equal the kernel's, flow by flow.
func TestLiveKernelOracle(t *testing.T) {
	labtest.RequireRoot(t)
	srv, cli := labtest.NewNS(t, "capsrv"), labtest.NewNS(t, "capcli")
	link := labtest.Connect(t, srv, cli, 7)
	srv.EnableConntrack(t, labtest.Conntrack{FTPHelper: true})
	srv.Sysctl(t, "net.netfilter.nf_conntrack_acct", "1")

	lc := startCapture(t, Config{Interfaces: []string{link.IfA}, NetNS: srv.Name, StatsEvery: 150 * time.Millisecond})
	// A second capture on the same interface, filtered to one UDP port.
	filtered := startCapture(t, Config{Interfaces: []string{link.IfA}, NetNS: srv.Path, Filter: "udp port 5353", StatsEvery: 150 * time.Millisecond})

	srv.ServeEcho(t, "tcp4", link.A4+":8080")
	srv.ServeEcho(t, "tcp6", "["+link.A6+"]:8080")
	serveUDP(t, srv, "udp4", link.A4+":5353", true)
	serveUDP(t, srv, "udp4", link.A4+":5354", false)
	serveUDP(t, srv, "udp6", "["+link.A6+"]:5353", true)
	ftp := serveFTP(t, srv, link.A4)

	// TCP: a full life cycle, an abort (RST), a refused connection.
	tcpSession(t, cli, "tcp4", link.A4+":8080", 3, false)
	tcpSession(t, cli, "tcp4", link.A4+":8080", 1, true)
	if c, err := cli.Dial("tcp4", link.A4+":8081"); err == nil {
		c.Close()
		t.Fatal("connection to a closed port succeeded")
	}
	// UDP with replies, without, and to a closed port (ICMP port
	// unreachable back, RELATED to the UDP flow).
	udpRoundTrips(t, cli, "udp4", link.A4+":5353", 3, true)
	udpRoundTrips(t, cli, "udp4", link.A4+":5354", 2, false)
	udpRoundTrips(t, cli, "udp4", link.A4+":5355", 1, false)
	// ICMP echo, IPv4 and IPv6.
	if err := cli.Ping(link.A4, 0x4242, 3); err != nil {
		t.Fatal(err)
	}
	if err := cli.Ping(link.A6, 0x4343, 2); err != nil {
		t.Fatal(err)
	}
	// IPv6 TCP and UDP.
	tcpSession(t, cli, "tcp6", "["+link.A6+"]:8080", 2, false)
	udpRoundTrips(t, cli, "udp6", "["+link.A6+"]:5353", 2, true)
	// FTP, passive then active, through the ftp helper.
	ftpSession(t, cli, link.A4, link.B4, ftp)

	want, got, st := lc.matchKernel(t, srv)
	t.Logf("kernel table: %d flows; conntop: %d", len(want), len(got))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("capture table differs from the kernel's (-kernel +conntop):\n%s", diff)
	}
	if st.RingDrops != 0 {
		t.Errorf("ring drops %d", st.RingDrops)
	}
	related := 0
	for _, e := range want {
		if e.Expected {
			related++
		}
	}
	if related != 2 || len(want) < 12 {
		t.Errorf("the lab made %d flows, %d RELATED; want >= 12 and 2 (the FTP data connections)", len(want), related)
	}

	// The filtered capture saw only the two UDP port 5353 flows (IPv4 and
	// IPv6), with the same counters as the kernel.
	fgot, _ := filtered.settle(t)
	var fwant []entry
	for _, e := range want {
		if e.Proto == "udp" && strings.HasSuffix(e.Orig, ">5353") {
			fwant = append(fwant, e)
		}
	}
	if diff := cmp.Diff(fwant, fgot); diff != "" || len(fgot) != 2 {
		t.Errorf("filtered capture (udp port 5353) differs (-kernel +conntop):\n%s", diff)
	}
}

// ftpServer is a minimal FTP server for the lab: USER, PASS, PASV, PORT,
// RETR, QUIT.
type ftpServer struct{ addr string }

func serveFTP(t *testing.T, ns *labtest.NS, ip string) *ftpServer {
	t.Helper()
	ln := ns.Listen(t, "tcp4", ip+":21")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handleFTP(ns, ip, c)
		}
	}()
	return &ftpServer{addr: ip + ":21"}
}

func handleFTP(ns *labtest.NS, ip string, c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	say := func(s string) { _, _ = io.WriteString(c, s+"\r\n") }
	say("220 conntop lab")
	var pasv net.Listener
	var port string
	defer func() {
		if pasv != nil {
			pasv.Close()
		}
	}()
	for i := 0; i < 20; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch strings.ToUpper(cmd) {
		case "USER":
			say("331 password please")
		case "PASS":
			say("230 logged in")
		case "PASV":
			if err := ns.Do(func() error {
				var err error
				pasv, err = net.Listen("tcp4", ip+":0")
				return err
			}); err != nil {
				say("425 " + err.Error())
				continue
			}
			p := pasv.Addr().(*net.TCPAddr).Port
			say(fmt.Sprintf("227 Entering Passive Mode (%s,%d,%d)", strings.ReplaceAll(ip, ".", ","), p>>8, p&255))
		case "PORT":
			f := strings.Split(arg, ",")
			if len(f) != 6 {
				say("501 bad PORT")
				continue
			}
			hi, _ := strconv.Atoi(f[4])
			lo, _ := strconv.Atoi(f[5])
			port = strings.Join(f[:4], ".") + ":" + strconv.Itoa(hi<<8|lo)
			say("200 PORT ok")
		case "RETR":
			say("150 sending")
			var dc net.Conn
			var err error
			if pasv != nil {
				_ = pasv.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
				dc, err = pasv.Accept()
				pasv.Close()
				pasv = nil
			} else {
				dc, err = ns.Dial("tcp4", port)
			}
			if err != nil {
				say("425 " + err.Error())
				continue
			}
			_, _ = io.WriteString(dc, strings.Repeat("conntop ", 200))
			dc.Close()
			say("226 done")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// ftpSession logs in from ns and retrieves a file in passive and then in
// active mode (the client listening on clientIP).
func ftpSession(t *testing.T, ns *labtest.NS, serverIP, clientIP string, srv *ftpServer) {
	t.Helper()
	c, err := ns.Dial("tcp4", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	expect := func(code string) string {
		t.Helper()
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, code) {
			t.Fatalf("ftp: want %s, got %q (%v)", code, line, err)
		}
		return line
	}
	send := func(s string) {
		if _, err := io.WriteString(c, s+"\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	expect("220")
	send("USER anonymous")
	expect("331")
	send("PASS lab@")
	expect("230")
	// Passive.
	send("PASV")
	line := expect("227")
	open, close := strings.Index(line, "("), strings.Index(line, ")")
	f := strings.Split(line[open+1:close], ",")
	hi, _ := strconv.Atoi(f[4])
	lo, _ := strconv.Atoi(f[5])
	send("RETR file")
	dc, err := ns.Dial("tcp4", fmt.Sprintf("%s:%d", serverIP, hi<<8|lo))
	if err != nil {
		t.Fatal(err)
	}
	expect("150")
	_ = dc.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.Copy(io.Discard, dc); err != nil || n != 1600 {
		t.Fatalf("passive data: %d bytes, %v", n, err)
	}
	dc.Close()
	expect("226")
	// Active.
	ln := ns.Listen(t, "tcp4", clientIP+":0")
	p := ln.Addr().(*net.TCPAddr).Port
	send(fmt.Sprintf("PORT %s,%d,%d", strings.ReplaceAll(clientIP, ".", ","), p>>8, p&255))
	expect("200")
	send("RETR file")
	expect("150")
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	ac, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	_ = ac.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.Copy(io.Discard, ac); err != nil || n != 1600 {
		t.Fatalf("active data: %d bytes, %v", n, err)
	}
	ac.Close()
	expect("226")
	send("QUIT")
	expect("221")
}
