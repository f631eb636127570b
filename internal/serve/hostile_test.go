//go:build linux

package serve

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// Each test below is one way a client (holding an authorized key, or none)
// tried to take `conntop serve` down; the server runs in a child process
// under a memory cgroup (see child_test.go). Each checks that the server
// stays up, that its peak RSS stays under a stated bound, that /metrics
// and a new login keep working, and that the log says what happened.

// hostileFlows is the table the child serves.
const hostileFlows = 2000

// openPty opens a TUI session with a w×h terminal that nobody reads.
func openPty(t *testing.T, c *gossh.Client, w, h int) *gossh.Session {
	t.Helper()
	s, _ := openPtyOut(t, c, w, h)
	return s
}

// openPtyOut opens a TUI session with a w×h terminal and returns what it
// shows.
func openPtyOut(t *testing.T, c *gossh.Client, w, h int) (*gossh.Session, *syncBuffer) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestPty("xterm-256color", h, w, gossh.TerminalModes{}); err != nil {
		t.Fatalf("pty %dx%d: %v", w, h, err)
	}
	out := &syncBuffer{}
	s.Stdout, s.Stderr = out, out
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	return s, out
}

// TestHostileTerminalSize: a PTY of 100000×100000, and an 80×24 one
// changed to 100000×100000, are clamped to MaxColumns×MaxRows (the user
// is told), instead of allocating frame buffers of 10^10 cells.
func TestHostileTerminalSize(t *testing.T) {
	c := startChild(t, childOpts{flows: hostileFlows, idle: time.Minute})
	cl, err := c.dial("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	big := openPty(t, cl, 100000, 100000)
	small := openPty(t, cl, 80, 24)
	time.Sleep(time.Second)
	if err := small.WindowChange(99999, 100000); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // a few frames at the clamped size
	c.healthy()
	c.checkRSS(200 << 20)
	_ = big.Close()
	_ = small.Close()
	if !waitUntil(5*time.Second, func() bool { return strings.Count(c.logs.String(), "terminal size clamped") >= 2 }) {
		t.Errorf("log does not record both clamps:\n%s", tail(c.logs.String(), 3000))
	}
	if !strings.Contains(c.logs.String(), "asked=100000×100000 clamped=1000×160") ||
		!strings.Contains(c.logs.String(), "asked=100000×99999 clamped=1000×160") {
		t.Errorf("log does not say the size asked:\n%s", tail(c.logs.String(), 3000))
	}
}

// TestHostileMaximalTerminals: 16 sessions (the DaemonSet's MaxSessions)
// ask for the largest terminal conntop draws and then change its shape
// (wide, tall, square, absurd), a frame apart each, so that Bubble Tea's
// buffers would keep every shape's lines. They share the server's cell
// budget (DefaultCellBudget): the first get what they ask, later ones what
// is left (at least 80×24), and are told; the whole server stays under
// maximalTerminalsRSS, in a cgroup of the DaemonSet's 512 MiB limit.
func TestHostileMaximalTerminals(t *testing.T) {
	const sessions = 16
	c := startChild(t, childOpts{flows: hostileFlows, idle: time.Minute, maxSessions: sessions + 1, memLimit: 512 << 20})
	var outs []*syncBuffer
	for i := range sessions / 4 {
		cl, err := c.dial("127.0.0.1")
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer cl.Close()
		for range 4 {
			s, out := openPtyOut(t, cl, MaxColumns, MaxCells/MaxColumns)
			defer s.Close()
			outs = append(outs, out)
			go func() {
				for _, sz := range [][2]int{{320, 500}, {500, 320}, {MaxColumns, MaxRows}, {100000, 100000}, {999, 161}, {400, 400}} {
					time.Sleep(2 * DefaultRefresh)
					if err := s.WindowChange(sz[1], sz[0]); err != nil {
						return
					}
				}
			}()
		}
	}
	time.Sleep(6 * time.Second) // every shape drawn for a few frames
	c.healthy()
	c.checkRSS(maximalTerminalsRSS)
	logs := c.logs.String()
	if !strings.Contains(logs, `why="cell budget"`) {
		t.Errorf("log does not record sessions held to the cell budget:\n%s", tail(logs, 3000))
	}
	told := 0
	for _, out := range outs {
		if strings.Contains(out.String(), "other sessions hold the rest") {
			told++
		}
	}
	if told == 0 || told == sessions {
		t.Errorf("%d of %d sessions were told that the cell budget clamped them; want the later ones", told, sessions)
	}
	re := regexp.MustCompile(`cells_in_use=(\d+)`)
	for _, m := range re.FindAllStringSubmatch(logs, -1) {
		if n, _ := strconv.Atoi(m[1]); n > DefaultCellBudget+sessions*MinColumns*MinRows {
			t.Errorf("%d cells in use; want at most the budget %d plus %d sessions of %d×%d", n, DefaultCellBudget, sessions, MinColumns, MinRows)
		}
	}
}

// maximalTerminalsRSS bounds the server's peak RSS in
// TestHostileMaximalTerminals: the child's engine, 16 sessions' models and
// the cell budget's renderer buffers (~75 MB), and their garbage: measured
// 167–178 MB; half the DaemonSet's 512 MiB limit.
const maximalTerminalsRSS = 256 << 20

// TestHostileResizeFlood: 20,000 window changes alternating 4096×256 and
// 80×24 cost at most one resize per frame of the session (5,000 under the
// race detector, where the server takes each several times slower).
func TestHostileResizeFlood(t *testing.T) {
	changes := 20000
	if raceEnabled {
		changes = 5000
	}
	c := startChild(t, childOpts{flows: hostileFlows, idle: time.Minute})
	cl, err := c.dial("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	s := openPty(t, cl, 80, 24)
	start := time.Now()
	for i := range changes {
		w, h := 4096, 256
		if i%2 == 1 {
			w, h = 80, 24
		}
		if err := s.WindowChange(h, w); err != nil {
			t.Fatalf("window change %d: %v", i, err)
		}
	}
	time.Sleep(time.Second)
	_ = s.Close()
	c.healthy()
	c.checkRSS(300 << 20)
	re := regexp.MustCompile(`session=1 .*duration=(\S+) .*resizes=(\d+) resizes_applied=(\d+)`)
	var m []string
	// The server takes the queued requests at its own pace (slower under
	// load and the race detector); the frame bound follows its duration.
	waitUntil(60*time.Second, func() bool { m = re.FindStringSubmatch(c.logs.String()); return m != nil })
	if m == nil {
		t.Fatalf("no logout line with the resize counts:\n%s", tail(c.logs.String(), 3000))
	}
	lasted, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	got, _ := strconv.Atoi(m[2])
	applied, _ := strconv.Atoi(m[3])
	// The session's frames: it ends once the server has taken every request.
	frames := int(lasted/DefaultRefresh) + 2
	t.Logf("%d window changes sent in %v; the session took them in %v, %d applied (at most %d frames)",
		got, time.Since(start).Round(time.Millisecond), lasted, applied, frames)
	if got < changes*95/100 || applied > frames {
		t.Errorf("%d window changes received, %d applied; want ~%d received and at most one per frame (%d)", got, applied, changes, frames)
	}
}

// TestHostileSnapshotsNeverRead: 4 `snapshot` sessions that never read,
// with MaxSessions 4 and a 3s idle timeout, are cut off once their writes
// have been stuck that long; then a 5th login is served. At most
// maxSnapshotCopies snapshots run at once, each holding keys and a page.
func TestHostileSnapshotsNeverRead(t *testing.T) {
	const flows = 40000 // a JSON snapshot of ~20 MB: more than the SSH window and socket buffers
	c := startChild(t, childOpts{flows: flows, idle: 3 * time.Second, maxSessions: 4})
	for range 4 {
		cl, err := c.dial("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		s, err := cl.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.StdoutPipe(); err != nil { // never read
			t.Fatal(err)
		}
		if err := s.Start("snapshot"); err != nil {
			t.Fatal(err)
		}
	}
	// Two run at once (maxSnapshotCopies); the other two start when a slot
	// frees, so the last is cut two stall periods after the first plus the
	// server's own pace (slow under load and the race detector).
	if !waitUntil(60*time.Second, func() bool { return strings.Count(c.logs.String(), "reason=stalled") >= 4 }) {
		t.Fatalf("the 4 sessions that never read were not cut off:\n%s", tail(c.logs.String(), 3000))
	}
	c.healthy() // the 5th login
	c.checkRSS(250 << 20)
}

// TestHostileEnvFlood: 10,000 env requests of 30 KB on one session are
// refused after the first few, instead of being kept.
func TestHostileEnvFlood(t *testing.T) {
	c := startChild(t, childOpts{flows: hostileFlows, idle: time.Minute})
	cl, err := c.dial("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ch, reqs, err := cl.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go gossh.DiscardRequests(reqs)
	value := strings.Repeat("x", 30<<10)
	for i := range 10000 {
		payload := gossh.Marshal(struct{ Name, Value string }{fmt.Sprintf("V%d", i), value})
		if _, err := ch.SendRequest("env", false, payload); err != nil {
			t.Fatalf("env request %d: %v", i, err)
		}
	}
	// A request with a reply: all the env requests before it were handled.
	if _, err := ch.SendRequest("env", true, gossh.Marshal(struct{ Name, Value string }{"LAST", "x"})); err != nil {
		t.Fatal(err)
	}
	c.healthy()
	c.checkRSS(150 << 20)
	if !strings.Contains(c.logs.String(), "session request refused") {
		t.Errorf("log does not record the refused requests:\n%s", tail(c.logs.String(), 3000))
	}
}

// TestHostileIdleConnections: 300 TCP connections that never speak, to a
// server limited to 256 file descriptors. The ones over the limits are
// refused at once (and logged); /metrics and a login from another
// address keep working.
func TestHostileIdleConnections(t *testing.T) {
	c := startChild(t, childOpts{flows: hostileFlows, idle: time.Minute, nofile: 256})
	var conns []net.Conn
	defer func() {
		for _, x := range conns {
			x.Close()
		}
	}()
	for i := range 300 {
		x, err := net.DialTimeout("tcp", c.ssh, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, x)
	}
	time.Sleep(500 * time.Millisecond)
	c.healthy()
	c.checkRSS(150 << 20)
	if !waitUntil(5*time.Second, func() bool { return strings.Contains(c.logs.String(), `outcome="refused for limits"`) }) {
		t.Errorf("log does not record the refused connections:\n%s", tail(c.logs.String(), 3000))
	}
}

// TestNoKeyOfferedLogged: a client that offers no public key at all is
// logged with its address and outcome.
func TestNoKeyOfferedLogged(t *testing.T) {
	ts := startServer(t, newTestEngine(t, 1), nil)
	if c, err := ts.dial("mallory"); err == nil {
		c.Close()
		t.Fatal("a client without a key got in")
	}
	// A bare TCP connection that says nothing either.
	raw, err := net.Dial("tcp", ts.SSHAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw.Close()
	ok := waitUntil(5*time.Second, func() bool {
		l := ts.logs.String()
		return strings.Contains(l, `outcome="no key offered"`) && strings.Contains(l, "user=mallory") &&
			strings.Contains(l, `outcome="no authentication attempted"`)
	})
	if !ok {
		t.Errorf("log lacks the connections' outcomes:\n%s", tail(ts.logs.String(), 2000))
	}
}

// TestAuthorizedKeysStrictModes: an authorized_keys file writable by
// others is refused at start and, when it becomes so, on re-read (no key
// is accepted then); the lines skipped at a re-read are logged with why.
func TestAuthorizedKeysStrictModes(t *testing.T) {
	eng := newTestEngine(t, 1)
	dir := t.TempDir()
	key := newClientKey(t)
	path := filepath.Join(dir, "authorized_keys")
	writeAuthorizedKeys(t, path, key.PublicKey())
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	_, err := New(eng, Config{SSHAddr: "127.0.0.1:0", AuthorizedKeys: path, HostKey: filepath.Join(dir, "hk"),
		NewModel: newTestModelFactory(time.Second), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "mode 0666") || !strings.Contains(err.Error(), "chmod go-w") {
		t.Fatalf("New with a 0666 authorized_keys: %v; want a refusal naming the mode and chmod go-w", err)
	}

	ts := startServer(t, eng, nil)
	akPath := filepath.Join(ts.dir, "authorized_keys")
	bump := func(d time.Duration) {
		later := time.Now().Add(d)
		if err := os.Chtimes(akPath, later, later); err != nil {
			t.Fatal(err)
		}
	}
	// A re-read that skips lines says which and why.
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(ts.key.PublicKey())))
	if err := os.WriteFile(akPath, []byte(line+"\ncommand=\"/bin/sh\" "+line+"\nssh-ed25519 garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bump(2 * time.Second)
	c := ts.mustDial(t, "alice")
	c.Close()
	logs := ts.logs.String()
	for _, want := range []string{`msg="authorized keys re-read"`, "keys=1 skipped=2", `line 2: option \"command=`, "line 3:"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, tail(logs, 3000))
		}
	}
	// Made writable by others: refused, and no key gets in.
	if err := os.Chmod(akPath, 0o666); err != nil {
		t.Fatal(err)
	}
	bump(4 * time.Second)
	if c, err := ts.dial("alice", gossh.PublicKeys(ts.key)); err == nil {
		c.Close()
		t.Fatal("a key from an authorized_keys file writable by others was accepted")
	}
	if logs := ts.logs.String(); !strings.Contains(logs, "authorized keys refused") || !strings.Contains(logs, "mode 0666") {
		t.Errorf("log does not say why the file was refused:\n%s", tail(logs, 3000))
	}
}
