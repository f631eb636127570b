//go:build linux

package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	ct "github.com/ti-mo/conntrack"

	"github.com/conntop/conntop/internal/labtest"
	"github.com/conntop/conntop/tui/widget"
)

// The end-to-end test drives the built binary in a real terminal: a
// detached tmux session of fixed size on a private tmux server, keys typed
// with send-keys, the screen read with capture-pane. Every wait polls the
// screen until the expected text appears, with a bound.

const (
	e2eWidth, e2eHeight = 160, 40
	// The TUI test runs in the terminal people open over SSH.
	tuiWidth, tuiHeight = 80, 24
	screenWait          = 15 * time.Second
	tmuxTimeout         = 10 * time.Second
)

// requireTmux fails the test under CI=true when tmux is missing, and skips
// it otherwise.
func requireTmux(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err == nil {
		return
	}
	if labtest.InCI() {
		t.Fatal("this test needs tmux (apt-get install tmux); CI=true so it fails instead of skipping")
	}
	t.Skip("skipping: this test needs tmux (apt-get install tmux)")
}

// tmuxSession is one detached session on its own tmux server (socket
// "-S path" in a private directory), so parallel tests never share a
// server. The server is killed and its socket removed at cleanup.
type tmuxSession struct {
	t    testing.TB
	sock string // socket path
	name string
}

// startTmux starts cmdline (run by sh -c) in a detached w x h session whose
// working directory is dir.
func startTmux(t testing.TB, w, h int, dir, cmdline string) *tmuxSession {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("conntop-e2e-%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
	// A short directory of its own: socket paths are limited to 107 bytes,
	// which a t.TempDir under a long test name can exceed.
	sockDir, err := os.MkdirTemp("", "ct-tmux-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	s := &tmuxSession{t: t, sock: filepath.Join(sockDir, "s"), name: name}
	// -f /dev/null: no user configuration; a fixed size that no client
	// changes (none attaches).
	if out, err := s.tmux("-f", "/dev/null", "new-session", "-d", "-s", name,
		"-x", strconv.Itoa(w), "-y", strconv.Itoa(h), "-c", dir, "sh", "-c", cmdline); err != nil {
		t.Fatalf("start tmux: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = s.tmux("kill-server") })
	return s
}

// tmux runs one tmux command against this session's server.
func (s *tmuxSession) tmux(args ...string) (string, error) {
	return labtest.Run(tmuxTimeout, nil, "tmux", append([]string{"-S", s.sock}, args...)...)
}

// keys sends named keys (tmux key names: Enter, Escape, Home, …).
func (s *tmuxSession) keys(keys ...string) {
	s.t.Helper()
	if out, err := s.tmux(append([]string{"send-keys", "-t", s.name}, keys...)...); err != nil {
		s.t.Fatalf("send-keys %q: %v: %s", keys, err, out)
	}
}

// typeText sends text literally.
func (s *tmuxSession) typeText(text string) {
	s.t.Helper()
	if out, err := s.tmux("send-keys", "-t", s.name, "-l", text); err != nil {
		s.t.Fatalf("send-keys -l %q: %v: %s", text, err, out)
	}
}

// screen returns the visible pane as text.
func (s *tmuxSession) screen() string {
	s.t.Helper()
	out, err := s.tmux("capture-pane", "-p", "-t", s.name)
	if err != nil {
		s.t.Fatalf("capture-pane: %v: %s", err, out)
	}
	return out
}

// display expands a tmux format for the pane (e.g. "#{pane_pid}").
func (s *tmuxSession) display(format string) string {
	s.t.Helper()
	out, err := s.tmux("display-message", "-p", "-t", s.name, format)
	if err != nil {
		s.t.Fatalf("display-message %q: %v: %s", format, err, out)
	}
	return strings.TrimSpace(out)
}

// waitFor polls the screen until cond holds, and fails the test with the
// last screen after timeout.
func (s *tmuxSession) waitFor(what string, timeout time.Duration, cond func(screen string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		scr := s.screen()
		if cond(scr) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("waited %v for %s; the screen is:\n%s", timeout, what, scr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitText waits until every one of texts is on the screen.
func (s *tmuxSession) waitText(texts ...string) string {
	s.t.Helper()
	return s.waitFor(fmt.Sprintf("%q", texts), screenWait, func(scr string) bool {
		for _, x := range texts {
			if !strings.Contains(scr, x) {
				return false
			}
		}
		return true
	})
}

// mouseClick sends a left click (press and release) at screen cell x, y
// (zero-based) as an SGR mouse sequence, as a terminal reports it.
func (s *tmuxSession) mouseClick(x, y int) {
	s.t.Helper()
	s.typeText(fmt.Sprintf("\x1b[<0;%d;%dM\x1b[<0;%d;%dm", x+1, y+1, x+1, y+1))
	time.Sleep(100 * time.Millisecond) // two clicks apart are two clicks, not a double click
}

// mouseWheel sends one wheel notch (up or down) at x, y.
func (s *tmuxSession) mouseWheel(x, y int, up bool) {
	s.t.Helper()
	b := 65
	if up {
		b = 64
	}
	s.typeText(fmt.Sprintf("\x1b[<%d;%d;%dM", b, x+1, y+1))
}

// screenPos returns the cell (x, y) where text first appears on scr.
func screenPos(scr, text string) (int, int) {
	for y, l := range strings.Split(scr, "\n") {
		if i := strings.Index(l, text); i >= 0 {
			return utf8.RuneCountInString(l[:i]), y // the screen's characters are one cell each
		}
	}
	return -1, -1
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// tableRows returns the flow-table lines of a screen that contain all of
// parts.
func tableRows(scr string, parts ...string) []string {
	var rows []string
	for _, l := range strings.Split(scr, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			rows = append(rows, l)
		}
	}
	return rows
}

// flowRows returns the non-empty lines between the table's column header
// and the footer.
func flowRows(scr string) []string {
	lines := strings.Split(scr, "\n")
	var rows []string
	in := false
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "STATE"):
			in = true
		case strings.HasPrefix(l, "? help"):
			in = false
		case in && strings.TrimSpace(l) != "":
			rows = append(rows, l)
		}
	}
	return rows
}

// rowSource returns the SOURCE column (the fourth field) of a table row.
func rowSource(row string) string {
	if f := strings.Fields(row); len(f) >= 4 {
		return f[3]
	}
	return ""
}

// sourcePort returns the port of an "addr:port" or "[v6]:port" column
// (an IPv6 address may be shortened in the middle: "[fd00…b::2]:55474";
// the port is always whole).
func sourcePort(col string) int {
	ap, err := netip.ParseAddrPort(col)
	if err == nil {
		return int(ap.Port())
	}
	i := strings.LastIndex(col, "]:")
	if i < 0 || !strings.HasPrefix(col, "[") {
		return -1
	}
	p, err := strconv.ParseUint(col[i+2:], 10, 16)
	if err != nil {
		return -1
	}
	return int(p)
}

// clientWithPort returns the client endpoint ("addr:port") with source
// port p.
func clientWithPort(clients []string, p int) string {
	for _, c := range clients {
		if ap, err := netip.ParseAddrPort(c); err == nil && int(ap.Port()) == p {
			return c
		}
	}
	return ""
}

// e2eLab is two namespaces with conntrack active in srv and tracked TCP
// (IPv4 and IPv6) echo connections to port 8080 that stay open, a UDP flow
// to a closed port and a ping. It returns srv and the client sides of the
// TCP connections ("addr:port" as conntop prints them).
func e2eLab(t *testing.T) (*labtest.NS, []string) {
	t.Helper()
	srv, cli := labtest.NewNS(t, "e2e"), labtest.NewNS(t, "e2e")
	link := labtest.Connect(t, srv, cli, 11)
	srv.EnableConntrack(t, labtest.Conntrack{})
	ln4 := srv.ServeEcho(t, "tcp4", link.A4+":8080")
	ln6 := srv.ServeEcho(t, "tcp6", "["+link.A6+"]:8080")
	var clients []string
	for _, addr := range []string{ln4.Addr().String(), ln4.Addr().String(), ln4.Addr().String(), ln6.Addr().String()} {
		c := cli.DialTCP(t, addr)
		if err := labtest.Echo(c, "hello conntop"); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c.LocalAddr().(*net.TCPAddr).AddrPort().String())
	}
	if err := cli.SendUDP("", link.A4+":5353", 2, []byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := cli.Ping(link.A4, 4242, 1); err != nil {
		t.Fatal(err)
	}
	return srv, clients
}

// TestE2ETUIInTmux runs `conntop --netns NS` in tmux against a namespace
// with live connections and uses it as a person would: filter, sort,
// reverse, detail, a bad filter, export, quit. It checks the screen after
// every step, the exported file, the exit status and that the terminal is
// left as it was found.
func TestE2ETUIInTmux(t *testing.T) {
	labtest.RequireRoot(t)
	requireTmux(t)
	bin := buildBinary(t)
	srv, clients := e2eLab(t)

	workDir := t.TempDir() // conntop's working directory: exports land here
	stateDir := t.TempDir()
	before, after := filepath.Join(stateDir, "stty.before"), filepath.Join(stateDir, "stty.after")
	// The shell records the terminal settings before and after conntop and
	// prints its exit status; it then waits (bounded) so the pane stays
	// readable.
	cmdline := fmt.Sprintf("stty -g > %s; %s --netns %s; echo conntop-exit=$?; stty -g > %s; exec sleep 300",
		shellQuote(before), shellQuote(bin), shellQuote(srv.Name), shellQuote(after))
	s := startTmux(t, tuiWidth, tuiHeight, workDir, cmdline)

	// 1. The table with every flow of the namespace, every port in full.
	scr := s.waitText("conntop conntrack live", "filter: none", "10.99.11.1:5353")
	for _, c := range clients {
		// IPv4 endpoints in full; IPv6 may be shortened in the middle, its
		// port whole.
		if ap := netip.MustParseAddrPort(c); ap.Addr().Is6() {
			c = "]:" + strconv.Itoa(int(ap.Port())) + " "
		}
		if !strings.Contains(scr, c) {
			t.Errorf("client %s not on the first screen:\n%s", c, scr)
		}
	}
	total := regexp.MustCompile(`shown (\d+) / (\d+)`).FindStringSubmatch(scr)
	if total == nil || total[1] != total[2] {
		t.Fatalf("no \"shown N / N\" on the unfiltered screen:\n%s", scr)
	}
	if n, _ := strconv.Atoi(total[2]); n < 6 {
		t.Fatalf("want at least 6 flows (4 tcp, udp, icmp), screen shows %s:\n%s", total[2], scr)
	}

	// 2. Filter: "/", an expression, Enter. Live preview while typing.
	s.typeText("/")
	s.waitText("/ ")
	s.typeText("tcp and dport 8080")
	// The total may shrink when the udp or icmp entry times out (30 s).
	s.waitText("/ tcp and dport 8080", "shown 4 / ")
	s.keys("Enter")
	scr = s.waitText("filter: tcp and dst port 8080", "shown 4 / ")
	if rows := flowRows(scr); len(rows) != 4 || len(tableRows(strings.Join(rows, "\n"), " tcp ", ":8080")) != 4 {
		t.Errorf("want exactly 4 rows, tcp to port 8080, got %d:\n%s", len(rows), scr)
	}

	// 3. Sort by source port (">" six times from age), then reverse.
	s.typeText(">>>>>>")
	scr = s.waitText("sort sport ▲")
	var ports []int
	for _, r := range tableRows(scr, " tcp ", ":8080") {
		ports = append(ports, sourcePort(rowSource(r)))
	}
	if len(ports) != 4 || !slices.IsSorted(ports) || ports[0] < 0 {
		t.Errorf("rows not in ascending source-port order: %v\n%s", ports, scr)
	}
	s.typeText("r")
	scr = s.waitText("sort sport ▼")
	var rev []int
	for _, r := range tableRows(scr, " tcp ", ":8080") {
		rev = append(rev, sourcePort(rowSource(r)))
	}
	slices.Reverse(rev)
	if !slices.Equal(rev, ports) {
		t.Errorf("reversed order %v is not the ascending order %v backwards\n%s", rev, ports, scr)
	}

	// 4. Detail of the first row (Home, Enter), then back with Esc.
	first := clientWithPort(clients, sourcePort(rowSource(tableRows(scr, " tcp ", ":8080")[0])))
	s.keys("Home")
	s.keys("Enter")
	scr = s.waitText("original   "+first+" → ", "status     CONFIRMED SEEN_REPLY ASSURED", "timeline")
	if !strings.Contains(scr, "reply      ") {
		t.Errorf("the detail lacks the reply tuple:\n%s", scr)
	}
	s.keys("Escape")
	s.waitFor("the table after Esc", screenWait, func(scr string) bool {
		return !strings.Contains(scr, "original   ") && strings.Contains(scr, "STATE") &&
			strings.Contains(scr, "sort sport ▼")
	})

	// 4b. The mouse, as the terminal reports it (SGR mouse sequences): the
	// program asked for mouse reporting; a click on a column title sorts,
	// a click selects a row and a second click opens it, the wheel scrolls,
	// a click on a view tab opens it.
	if got := s.display("#{mouse_button_flag}#{mouse_sgr_flag}"); got != "11" {
		t.Errorf("mouse reporting (button, sgr) = %q, want 11", got)
	}
	scr = s.screen()
	x, y := screenPos(scr, "DESTINATION")
	s.mouseClick(x+1, y)
	scr = s.waitText("sort destination ▲")
	x, y = screenPos(scr, ":8080 ")
	rowPort := sourcePort(rowSource(strings.Split(scr, "\n")[y]))
	s.mouseClick(x, y)
	s.mouseClick(x, y)
	s.waitText("original   "+clientWithPort(clients, rowPort)+" → ", "timeline")
	s.keys("Escape")
	scr = s.waitText("sort destination ▲", "DESTINATION")
	x, y = screenPos(scr, ":8080 ")
	s.keys("Home") // the first row
	s.mouseWheel(x, y, false)
	lastRow := tableRows(scr, " tcp ", ":8080")[3]
	s.keys("Enter")
	s.waitText("original   "+clientWithPort(clients, sourcePort(rowSource(lastRow)))+" → ", "timeline")
	s.keys("Escape")
	scr = s.waitText("DESTINATION")
	x, y = screenPos(scr, " groups ")
	s.mouseClick(x+2, y)
	scr = s.waitText("[groups]", "destination port", "GROUP")
	x, y = screenPos(scr, " flows ")
	s.mouseClick(x+2, y)
	s.waitText("[flows]", "DESTINATION")

	// 5. A bad filter shows the error position; Esc keeps the previous one.
	s.typeText("/")
	s.waitText("/ tcp and dport 8080")
	s.keys("C-u")
	s.typeText("tcp and state ESTABLISHD")
	s.keys("Enter")
	s.waitText(`unknown state "ESTABLISHD"`)
	s.keys("Escape")
	s.waitText("filter: tcp and dst port 8080", "shown 4 / ")

	// 6. Export: x opens the path line with a default name; Enter writes.
	s.typeText("x")
	scr = s.waitText("export json", "to: conntop-")
	name := regexp.MustCompile(`conntop-\d{8}-\d{6}\.json`).FindString(scr)
	if name == "" {
		t.Fatalf("no default export name on the screen:\n%s", scr)
	}
	s.keys("Enter")
	s.waitText("exported 4 flows to " + name)
	checkExport(t, filepath.Join(workDir, name), clients)
	if ents, err := os.ReadDir(workDir); err != nil || len(ents) != 1 {
		t.Errorf("the working directory should hold only the export: %v %v", ents, err)
	}

	// 7. Quit with q: exit status 0 and the terminal restored.
	s.typeText("q")
	scr = s.waitText("conntop-exit=")
	if !strings.Contains(scr, "conntop-exit=0") {
		t.Errorf("conntop did not exit 0:\n%s", scr)
	}
	if strings.Contains(scr, "shown ") || strings.Contains(scr, "STATE") {
		t.Errorf("the TUI is still on the screen after quitting:\n%s", scr)
	}
	// The pane's modes as tmux tracks them: main screen, cursor shown, no
	// mouse reporting, normal keypad.
	const flags = "alt=#{alternate_on} cursor=#{cursor_flag} mouse=#{mouse_any_flag}#{mouse_all_flag}" +
		"#{mouse_button_flag}#{mouse_standard_flag}#{mouse_sgr_flag}#{mouse_utf8_flag} keypad=#{keypad_cursor_flag}#{keypad_flag}" +
		" insert=#{insert_flag} origin=#{origin_flag} wrap=#{wrap_flag}"
	if got, want := s.display(flags), "alt=0 cursor=1 mouse=000000 keypad=00 insert=0 origin=0 wrap=1"; got != want {
		t.Errorf("terminal modes after quit:\n got %s\nwant %s", got, want)
	}
	var sttyAfter []byte
	deadline := time.Now().Add(screenWait)
	for len(sttyAfter) == 0 && time.Now().Before(deadline) {
		sttyAfter, _ = os.ReadFile(after)
		time.Sleep(50 * time.Millisecond)
	}
	sttyBefore, err := os.ReadFile(before)
	if err != nil || len(sttyAfter) == 0 {
		t.Fatalf("stty settings not recorded: %v", err)
	}
	if string(sttyBefore) != string(sttyAfter) {
		t.Errorf("terminal settings changed:\nbefore %s\nafter  %s", sttyBefore, sttyAfter)
	}
}

// checkExport checks an exported JSON snapshot: mode 0600, snapshot v1 from
// the kernel source, and exactly the filtered flows (tcp to port 8080 from
// the given clients).
func checkExport(t *testing.T, path string, clients []string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("export file: %v", err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("export file mode %v, want -rw-------", fi.Mode())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var snap struct {
		Version int    `json:"version"`
		Source  string `json:"source"`
		Table   struct {
			Count uint64 `json:"count"`
		} `json:"table"`
		Flows []struct {
			Family string `json:"family"`
			Proto  string `json:"proto"`
			State  string `json:"state"`
			Orig   struct {
				Src   string `json:"src"`
				Sport int    `json:"sport"`
				Dport int    `json:"dport"`
			} `json:"orig"`
		} `json:"flows"`
	}
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatalf("export is not JSON: %v\n%.2000s", err, b)
	}
	if snap.Version != 1 || snap.Source != "conntrack" || snap.Table.Count < 6 {
		t.Errorf("export header: version %d source %q count %d", snap.Version, snap.Source, snap.Table.Count)
	}
	var got []string
	for _, f := range snap.Flows {
		if f.Proto != "tcp" || f.Orig.Dport != 8080 || f.State != "ESTABLISHED" {
			t.Errorf("exported flow outside the filter: %+v", f)
		}
		src, err := netip.ParseAddr(f.Orig.Src)
		if err != nil {
			t.Errorf("exported src %q: %v", f.Orig.Src, err)
			continue
		}
		got = append(got, netip.AddrPortFrom(src, uint16(f.Orig.Sport)).String())
	}
	want := slices.Clone(clients)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("exported flows %v, want the clients %v", got, want)
	}
}

// measureTableSize is the idle kernel table the CPU target names.
const measureTableSize = 262_144

// fillKernelTable creates n assured UDP entries (10.200.x.y:port ->
// 10.201.0.1:53, timeout 3600 s so the table stays steady) in ns with
// ctnetlink creates from a few connections in parallel.
func fillKernelTable(t testing.TB, ns *labtest.NS, n int) {
	t.Helper()
	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *ct.Conn
			if err := ns.Do(func() error { var err error; c, err = ct.Dial(nil); return err }); err != nil {
				errs <- fmt.Errorf("dial ctnetlink in %s: %w", ns.Name, err)
				return
			}
			defer c.Close()
			dst := netip.MustParseAddr("10.201.0.1")
			for i := w; i < n; i += workers {
				src := netip.AddrFrom4([4]byte{10, 200, byte(i >> 14), byte(i >> 6)})
				f := ct.NewFlow(17, ct.StatusConfirmed|ct.StatusSeenReply|ct.StatusAssured, src, dst, uint16(1024+i&63), 53, 3600, 0)
				if err := c.Create(f); err != nil {
					errs <- fmt.Errorf("create entry %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if got := ns.ConntrackCount(t); got != n {
		t.Fatalf("the table holds %d entries after the fill, want %d", got, n)
	}
}

// cpuTicks returns utime+stime of pid in clock ticks.
func cpuTicks(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read stat of pid %d: %v", pid, err)
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the line.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("parse /proc/%d/stat: %q", pid, b)
	}
	return ut + st
}

// clockTicks is sysconf(_SC_CLK_TCK).
func clockTicks(t testing.TB) float64 {
	out, err := labtest.Run(tmuxTimeout, nil, "getconf", "CLK_TCK")
	if err != nil {
		t.Fatalf("getconf CLK_TCK: %v", err)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
	if err != nil || v <= 0 {
		t.Fatalf("getconf CLK_TCK: %q", out)
	}
	return v
}

// measurement is what one program cost while showing an idle table.
type measurement struct {
	LoadTime    time.Duration // start to fully loaded screen
	CPUPercent  float64       // of one core over the window
	BytesPerSec float64       // written to the terminal
	Window      time.Duration
	Updates     int    // times the screen changed during the window
	Slices      string // CPU % of each 5 s slice of the window
}

// measureInTmux runs cmdline in a 160x40 tmux session, waits until loaded
// says the program shows the whole table, lets it settle, then samples the
// pane process's CPU time and the bytes the pane received over window.
//
// label names the measurement; comm is the program's process name. When
// afterStart is not nil it runs once the session started (e.g. to fill the
// table while the program watches), and the load time counts from its end.
func measureInTmux(t *testing.T, label, comm, cmdline string, window time.Duration,
	afterStart func(*tmuxSession), loaded func(string) bool) measurement {
	t.Helper()
	s := startTmux(t, e2eWidth, e2eHeight, t.TempDir(), cmdline)
	if afterStart != nil {
		afterStart(s)
	}
	start := time.Now()
	s.waitFor(comm+" showing the whole table", 5*time.Minute, loaded)
	load := time.Since(start)
	pid, err := strconv.Atoi(s.display("#{pane_pid}"))
	if err != nil {
		t.Fatalf("pane pid: %v", err)
	}
	// `exec` in cmdline, and ip netns exec exec()s too: the pane's process
	// is the program itself.
	if c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(c)) != comm {
		t.Fatalf("pane process %d is %q, want %q", pid, strings.TrimSpace(string(c)), comm)
	}
	time.Sleep(5 * time.Second) // settle: the first full frames are not "idle"
	bytesFile := filepath.Join(t.TempDir(), "pane.bytes")
	if out, err := s.tmux("pipe-pane", "-o", "-t", s.name, "cat >> "+shellQuote(bytesFile)); err != nil {
		t.Fatalf("pipe-pane: %v: %s", err, out)
	}
	time.Sleep(500 * time.Millisecond) // the pipe's cat starts
	size := func() int64 {
		fi, err := os.Stat(bytesFile)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	hz := clockTicks(t)
	b0, c0, t0 := size(), cpuTicks(t, pid), time.Now()
	// The window itself: the screen is read four times a second to count
	// how often it changed (how fresh the picture is); tmux does that work,
	// not the measured process.
	changes, last := 0, s.screen()
	var perSlice []string // CPU % of each 5 s slice, to see whether it is steady
	sc, st := c0, t0
	for time.Since(t0) < window {
		time.Sleep(250 * time.Millisecond)
		if scr := s.screen(); scr != last {
			changes, last = changes+1, scr
		}
		if time.Since(st) >= 5*time.Second {
			c := cpuTicks(t, pid)
			perSlice = append(perSlice, fmt.Sprintf("%.1f", float64(c-sc)/hz/time.Since(st).Seconds()*100))
			sc, st = c, time.Now()
		}
	}
	b1, c1, t1 := size(), cpuTicks(t, pid), time.Now()
	el := t1.Sub(t0)
	if dir := os.Getenv("CONNTOP_MEASURE_KEEP"); dir != "" {
		// Keep what the pane received, for a look at what is redrawn.
		if b, err := os.ReadFile(bytesFile); err == nil {
			if err := os.WriteFile(filepath.Join(dir, label+".pane"), b, 0o600); err != nil {
				t.Errorf("keep pane output: %v", err)
			}
		}
	}
	return measurement{
		LoadTime:    load,
		CPUPercent:  float64(c1-c0) / hz / el.Seconds() * 100,
		BytesPerSec: float64(b1-b0) / el.Seconds(),
		Updates:     changes,
		Slices:      strings.Join(perSlice, " "),
		Window:      el,
	}
}

// TestMeasureTUIIdleTable measures CPU and terminal bytes per second of the
// TUI, and of iptstate when installed, on an idle 262,144-entry kernel table
// in a test namespace. It runs only with CONNTOP_MEASURE=1 (about two
// minutes; see scripts/measure-tui.sh) and prints "MEASURE" lines.
// CONNTOP_MEASURE_WINDOW sets the sampling window (default 30s);
// CONNTOP_MEASURE_KEEP=DIR keeps what each pane received during the window
// (DIR/conntop.pane, DIR/iptstate.pane).
func TestMeasureTUIIdleTable(t *testing.T) {
	if os.Getenv("CONNTOP_MEASURE") != "1" {
		t.Skip("measurement: set CONNTOP_MEASURE=1 (scripts/measure-tui.sh)")
	}
	labtest.RequireRoot(t)
	requireTmux(t)
	window := 30 * time.Second
	if v := os.Getenv("CONNTOP_MEASURE_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > 10*time.Minute {
			t.Fatalf("CONNTOP_MEASURE_WINDOW=%q: want a duration between 1s and 10m", v)
		}
		window = d
	}
	bin := buildBinary(t)
	all := widget.Count(measureTableSize)
	conntopLoaded := func(scr string) bool { return strings.Contains(scr, "shown "+all+" / "+all) }
	report := func(name string, m measurement) {
		t.Logf("MEASURE %s: cpu %.2f%% of one core, %.0f bytes/s to the terminal, screen changed %d times, loaded in %v (160x40, idle %d-entry table, %v window; cpu %% per 5 s: %s)",
			name, m.CPUPercent, m.BytesPerSec, m.Updates, m.LoadTime.Round(100*time.Millisecond), measureTableSize, m.Window.Round(time.Second), m.Slices)
	}

	// 1. The table is full before conntop starts: every entry comes from
	// the initial listing (a "silent" entry that the kernel source
	// reconciles with periodic dumps, see source/conntrack.Run).
	ns := labtest.NewNS(t, "measure")
	ns.EnableConntrack(t, labtest.Conntrack{})
	fillStart := time.Now()
	fillKernelTable(t, ns, measureTableSize)
	t.Logf("MEASURE fill: %d entries in %v", measureTableSize, time.Since(fillStart).Round(time.Millisecond))
	report("conntop (table full before start)", measureInTmux(t, "conntop-prefilled", "conntop",
		fmt.Sprintf("exec %s --netns %s --source conntrack", shellQuote(bin), shellQuote(ns.Name)), window,
		nil, conntopLoaded))

	// 2. The table fills while conntop watches: every entry was announced
	// by an event, so nothing needs reconciling; the steady state of a
	// long-running conntop.
	ns2 := labtest.NewNS(t, "measure")
	ns2.EnableConntrack(t, labtest.Conntrack{})
	report("conntop (table filled while watching)", measureInTmux(t, "conntop-watching", "conntop",
		fmt.Sprintf("exec %s --netns %s --source conntrack", shellQuote(bin), shellQuote(ns2.Name)), window,
		func(s *tmuxSession) {
			s.waitText("conntop conntrack live", "shown 0 / 0")
			fillKernelTable(t, ns2, measureTableSize)
		}, conntopLoaded))

	if _, err := exec.LookPath("iptstate"); err != nil {
		t.Logf("MEASURE iptstate: not installed (apt-get install iptstate), not measured")
		return
	}
	// iptstate --totals heads the screen with "Total States: N".
	report("iptstate", measureInTmux(t, "iptstate", "iptstate",
		fmt.Sprintf("exec ip netns exec %s iptstate --totals", shellQuote(ns.Name)), window, nil,
		func(scr string) bool {
			return regexp.MustCompile(`States: ?` + strconv.Itoa(measureTableSize)).MatchString(scr)
		}))
}
