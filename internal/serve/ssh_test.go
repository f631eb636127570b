package serve

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
	gossh "golang.org/x/crypto/ssh"
)

func TestAuthRefusesUnknownKeysAndPasswords(t *testing.T) {
	eng := newTestEngine(t, 3)
	ts := startServer(t, eng, nil)

	other := newClientKey(t)
	tests := []struct {
		name string
		auth []gossh.AuthMethod
	}{
		{"unknown key", []gossh.AuthMethod{gossh.PublicKeys(other)}},
		{"password", []gossh.AuthMethod{gossh.Password("hunter2")}},
		{"keyboard-interactive", []gossh.AuthMethod{gossh.KeyboardInteractive(
			func(string, string, []string, []bool) ([]string, error) { return []string{"hunter2"}, nil })}},
		{"no auth", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ts.dial("alice", tt.auth...)
			if err == nil {
				c.Close()
				t.Fatal("connected; want authentication refused")
			}
			if !strings.Contains(err.Error(), "unable to authenticate") {
				t.Errorf("error %q; want it to say unable to authenticate", err)
			}
		})
	}
	c := ts.mustDial(t, "alice")
	out, err := runCommand(c, "snapshot --format csv")
	if err != nil {
		t.Fatalf("authorized key: snapshot: %v (output %q)", err, tail(out, 300))
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, `outcome="unknown key"`) || !strings.Contains(logs, gossh.FingerprintSHA256(other.PublicKey())) {
		t.Errorf("log does not record the refused key with its fingerprint:\n%s", tail(logs, 2000))
	}
}

// runCommand runs cmd in a new session on c and returns its stdout+stderr.
func runCommand(c *gossh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	var out syncBuffer
	s.Stdout, s.Stderr = &out, &out
	err = s.Run(cmd)
	return out.String(), err
}

func TestAuthorizedKeysReloaded(t *testing.T) {
	eng := newTestEngine(t, 1)
	ts := startServer(t, eng, nil)
	newKey := newClientKey(t)
	if c, err := ts.dial("bob", gossh.PublicKeys(newKey)); err == nil {
		c.Close()
		t.Fatal("key not yet authorized was accepted")
	}
	path := filepath.Join(ts.dir, "authorized_keys")
	writeAuthorizedKeys(t, path, ts.key.PublicKey(), newKey.PublicKey())
	// Make sure the change is seen even within the mtime granularity.
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	c, err := ts.dial("bob", gossh.PublicKeys(newKey))
	if err != nil {
		t.Fatalf("key added to authorized_keys refused: %v", err)
	}
	c.Close()
	writeAuthorizedKeys(t, path, newKey.PublicKey())
	evenLater := later.Add(2 * time.Second)
	if err := os.Chtimes(path, evenLater, evenLater); err != nil {
		t.Fatal(err)
	}
	if c, err := ts.dial("alice", gossh.PublicKeys(ts.key)); err == nil {
		c.Close()
		t.Fatal("key removed from authorized_keys still accepted")
	}
}

func TestViewerSeesFlows(t *testing.T) {
	eng := newTestEngine(t, 5)
	ts := startServer(t, eng, nil)
	c := ts.mustDial(t, "alice")
	v := openViewer(t, c, 100, 30, true)
	if !v.waitFor("10.9.0.3:40003 > 10.8.0.1:1003", 5*time.Second) {
		t.Fatalf("screen does not show the flows:\n%s", v.scr.String())
	}
	// A new flow appears on the screen at the next refresh.
	eng.Apply([]flow.Event{{Type: flow.EventNew, Time: time.Now(), Flow: testFlow(7)}})
	if !v.waitFor("10.9.0.7:40007 > 10.8.0.1:1007", 5*time.Second) {
		t.Fatalf("screen does not show the new flow:\n%s", v.scr.String())
	}
	infos := ts.Sessions()
	if len(infos) != 1 || infos[0].User != "alice" || infos[0].Width != 100 || infos[0].Height != 30 ||
		infos[0].Fingerprint != gossh.FingerprintSHA256(ts.key.PublicKey()) || infos[0].BytesOut == 0 {
		t.Errorf("Sessions() = %+v", infos)
	}
	// Window size changes reach the session.
	if err := v.sess.WindowChange(40, 120); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(5*time.Second, func() bool {
		in := ts.Sessions()
		return len(in) == 1 && in[0].Width == 120 && in[0].Height == 40
	}) {
		t.Errorf("window change not seen: %+v", ts.Sessions())
	}
	if !v.waitFor("size 120x40", 5*time.Second) {
		t.Errorf("the program did not get the window change:\n%s", v.scr.String())
	}
	// q quits the program and ends the session with status 0.
	if _, err := v.in.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-v.exit:
		if err != nil {
			t.Errorf("session ended with %v; want exit status 0", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end after q")
	}
	waitUntil(5*time.Second, func() bool { return strings.Contains(ts.logs.String(), "ssh logout") })
	logs := ts.logs.String()
	fp := gossh.FingerprintSHA256(ts.key.PublicKey())
	for _, want := range []string{"msg=\"ssh login\"", "msg=\"ssh logout\"", "user=alice", "fingerprint=" + fp, "remote=127.0.0.1:"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, tail(logs, 2000))
		}
	}
}

// TestTerminalRequests: conntop takes window changes itself (charm.land/ssh
// writes the session's Pty unlocked on one): it refuses them on a session
// without a terminal and a second pty-req, and hands a burst of window
// changes to the program as its latest size, while Sessions() and the
// session read theirs (the race detector watches this test).
func TestTerminalRequests(t *testing.T) {
	eng := newTestEngine(t, 3)
	ts := startServer(t, eng, nil)
	c := ts.mustDial(t, "alice")
	window := func(w, h uint32) []byte {
		return gossh.Marshal(struct{ W, H, WPx, HPx uint32 }{w, h, 0, 0})
	}
	ptyReq := gossh.Marshal(struct {
		Term           string
		W, H, WPx, HPx uint32
		Modes          string
	}{"xterm", 80, 24, 0, 0, "\x00"})

	plain, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if ok, err := plain.SendRequest("window-change", true, window(100, 30)); ok || err != nil {
		t.Errorf("window-change without a pty: %v, %v; want refused", ok, err)
	}

	// The burst starts as the session does.
	v := openViewer(t, c, 100, 30, true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			_ = ts.Sessions()
		}
	}()
	for i := range 200 {
		if ok, err := v.sess.SendRequest("window-change", true, window(uint32(60+i%40), 20)); !ok || err != nil {
			t.Fatalf("window-change %d: %v, %v; want accepted", i, ok, err)
		}
	}
	if ok, err := v.sess.SendRequest("window-change", true, window(90, 25)); !ok || err != nil {
		t.Fatalf("last window-change: %v, %v", ok, err)
	}
	<-done
	if ok, err := v.sess.SendRequest("pty-req", true, ptyReq); ok || err != nil {
		t.Errorf("second pty-req: %v, %v; want refused", ok, err)
	}
	if !v.waitFor("size 90x25", 5*time.Second) {
		t.Errorf("the program did not get the last window change:\n%s", v.scr.String())
	}
	if _, err := v.in.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`resizes=(\d+) resizes_applied=(\d+)`)
	var m []string
	waitUntil(5*time.Second, func() bool { m = re.FindStringSubmatch(ts.logs.String()); return m != nil })
	if m == nil || m[1] != "201" {
		t.Errorf("logout line %q; want resizes=201", m)
	} else if applied, _ := strconv.Atoi(m[2]); applied < 1 || applied > 200 {
		t.Errorf("%d resizes applied; want between 1 and 200", applied)
	}
}

func TestSessionsOwnViewsAndLimit(t *testing.T) {
	const n = DefaultMaxSessions
	eng := newTestEngine(t, 40)
	ts := startServer(t, eng, nil)
	viewers := make([]*viewer, n)
	for i := range n {
		c := ts.mustDial(t, fmt.Sprintf("port-%d", 1000+i))
		viewers[i] = openViewer(t, c, 80, 24, true)
	}
	for i, v := range viewers {
		own := fmt.Sprintf("10.9.0.%d:%d > 10.8.0.1:%d", i, 40000+i, 1000+i)
		if !v.waitFor(own, 10*time.Second) {
			t.Fatalf("session %d does not show its flow %q:\n%s", i, own, v.scr.String())
		}
		if !v.waitFor(fmt.Sprintf("view port-%d matched 1 ", 1000+i), 5*time.Second) {
			t.Errorf("session %d header:\n%s", i, v.scr.String())
		}
		for j := range n {
			if j != i && strings.Contains(v.scr.String(), fmt.Sprintf(" > 10.8.0.1:%d\n", 1000+j)) {
				t.Errorf("session %d shows session %d's flow", i, j)
			}
		}
	}
	if got := len(ts.Sessions()); got != n {
		t.Fatalf("%d sessions live; want %d", got, n)
	}

	// The 17th is turned away with a clear message and exit status 1.
	c := ts.mustDial(t, "one-too-many")
	v := openViewer(t, c, 80, 24, true)
	select {
	case err := <-v.exit:
		var exit *gossh.ExitError
		if !errors.As(err, &exit) || exit.ExitStatus() != 1 {
			t.Errorf("17th session ended with %v; want exit status 1", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("17th session was not turned away")
	}
	if want := "too many sessions (16 of 16 in use)"; !strings.Contains(v.text(), want) {
		t.Errorf("17th session got %q; want a message containing %q", v.text(), want)
	}
	// The others still run.
	if got := len(ts.Sessions()); got != n {
		t.Errorf("%d sessions live after the 17th was refused; want %d", got, n)
	}
}

func TestSlowReaderDoesNotStallOthers(t *testing.T) {
	eng := newTestEngine(t, 10)
	ts := startServer(t, eng, func(c *Config) { c.Refresh = 10 * time.Millisecond })
	// The slow viewer redraws a 300×120 screen every 10ms and never reads:
	// about 36 kB a frame, so its channel window (2 MiB in x/crypto/ssh) fills
	// up within a second.
	slow := openViewer(t, ts.mustDial(t, "churn"), 300, 120, false)
	_ = slow
	fast := openViewer(t, ts.mustDial(t, "port-1003"), 80, 24, true)
	if !fast.waitFor("view port-1003 matched 1 ", 5*time.Second) {
		t.Fatalf("the other viewer shows nothing:\n%s", fast.scr.String())
	}

	var slowInfo SessionInfo
	// Rendering 300×120 frames is slow under the race detector on a busy
	// machine: allow a minute to fill the window.
	blocked := waitUntil(60*time.Second, func() bool {
		for _, in := range ts.Sessions() {
			if in.User == "churn" {
				slowInfo = in
			}
		}
		// x/crypto/ssh clients open a 2 MiB window; nothing is read, so
		// the server's writes block once about that much is sent.
		before := slowInfo.BytesOut
		if before < 3<<19 {
			return false
		}
		time.Sleep(time.Second)
		for _, in := range ts.Sessions() {
			if in.User == "churn" && in.BytesOut == before {
				return true
			}
		}
		return false
	})
	if !blocked {
		t.Fatalf("the slow viewer's output never stalled (%d bytes sent)", slowInfo.BytesOut)
	}
	t.Logf("slow viewer stalled after %d bytes", slowInfo.BytesOut)

	// While the slow session is stuck writing, the engine takes events and
	// the other viewer keeps refreshing.
	applied := make(chan struct{})
	second := testFlow(3) // dport 1003, another source port
	second.Orig.SrcPort = 50003
	second.Reply = second.Orig.Reverse(second.Proto)
	go func() {
		eng.Apply([]flow.Event{{Type: flow.EventNew, Time: time.Now(), Flow: second}})
		close(applied)
	}()
	select {
	case <-applied:
	case <-time.After(5 * time.Second):
		t.Fatal("engine.Apply blocked while a viewer stalls")
	}
	if !fast.waitFor("view port-1003 matched 2 ", 5*time.Second) {
		t.Fatalf("the other viewer stopped refreshing:\n%s", fast.scr.String())
	}
	before := fast.out.Len()
	if !waitUntil(5*time.Second, func() bool { return fast.out.Len() > before }) {
		t.Fatal("the other viewer receives nothing while the slow one stalls")
	}
}

func TestIdleTimeout(t *testing.T) {
	eng := newTestEngine(t, 2)
	ts := startServer(t, eng, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	v := openViewer(t, ts.mustDial(t, "alice"), 80, 24, true)
	select {
	case <-v.exit:
	case <-time.After(10 * time.Second):
		t.Fatal("idle session not disconnected")
	}
	if want := "no input for 300ms; disconnected"; !strings.Contains(v.text(), want) {
		t.Errorf("idle session output lacks %q:\n%s", want, tail(v.text(), 1000))
	}
	// The client can see its session end before the server has logged it.
	waitUntil(5*time.Second, func() bool { return strings.Contains(ts.logs.String(), "reason=idle") })
	if !strings.Contains(ts.logs.String(), "reason=idle") {
		t.Errorf("logout not logged with reason idle:\n%s", tail(ts.logs.String(), 2000))
	}
}

func TestShutdownTellsSessionsAndLeavesNoGoroutine(t *testing.T) {
	eng := newTestEngine(t, 20)
	ts := startServer(t, eng, func(c *Config) { c.MetricsAddr = "127.0.0.1:0" })
	var viewers []*viewer
	var clients []*gossh.Client
	for i := range 3 {
		c, err := ts.dial(fmt.Sprintf("port-%d", 1000+i), gossh.PublicKeys(ts.key))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		viewers = append(viewers, openViewer(t, c, 80, 24, true))
	}
	// And one that stopped reading.
	c, err := ts.dial("churn", gossh.PublicKeys(ts.key))
	if err != nil {
		t.Fatal(err)
	}
	clients = append(clients, c)
	openViewer(t, c, 200, 100, false)
	for i, v := range viewers {
		if !v.waitFor(fmt.Sprintf("view port-%d", 1000+i), 5*time.Second) {
			t.Fatalf("viewer %d shows nothing", i)
		}
	}
	if err := ts.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i, v := range viewers {
		select {
		case <-v.exit:
		case <-time.After(5 * time.Second):
			t.Fatalf("viewer %d not disconnected", i)
		}
		if !strings.Contains(v.text(), "the server is shutting down") {
			t.Errorf("viewer %d was not told: %q", i, tail(v.text(), 300))
		}
	}
	for _, c := range clients {
		c.Close()
	}
	var left []string
	if !waitUntil(5*time.Second, func() bool { left = serverGoroutines(); return len(left) == 0 }) {
		t.Fatalf("%d goroutines of the server left after shutdown:\n%s", len(left), tail(strings.Join(left, "\n\n"), 16000))
	}
}

func TestSnapshotCommand(t *testing.T) {
	eng := newTestEngine(t, 4)
	ts := startServer(t, eng, nil)
	c := ts.mustDial(t, "alice")
	tests := []struct {
		name, cmd  string
		wantStatus int
		want, not  []string
	}{
		{"csv filtered", "snapshot --format csv --filter 'dport 1002'", 0,
			[]string{"10.9.0.2", "1002"}, []string{"10.9.0.1,", "10.9.0.3"}},
		{"json", "snapshot", 0, []string{`"version":1`, `"source"`, `"10.9.0.3"`}, nil},
		{"bad filter", "snapshot --filter 'port nope'", 2, []string{"filter: position"}, nil},
		{"bad format", "snapshot --format xml", 2, []string{`unknown format "xml"`, "json, ndjson, csv or text"}, nil},
		{"bad format escaped once", "snapshot --format 'x\x1b[2J'", 2, []string{`"x\x1b[2J"`}, []string{"\x1b", `\\x1b`}},
		{"ndjson", "snapshot --format ndjson", 0, []string{`"10.9.0.3"`}, nil},
		{"usage names ndjson", "snapshot --nope", 2, []string{"json|ndjson|csv|text"}, nil},
		{"unknown command", "rm -rf /", 2, []string{`unknown command "rm"`}, nil},
		{"stray argument", "snapshot tcp", 2, []string{`unexpected argument "tcp"`}, nil},
		{"flag name escaped", "snapshot --x\x1b[2J\u202e", 2, []string{`-x\x1b[2J\u202e`, "usage: snapshot"}, []string{"\x1b", "\u202e"}},
		{"filter escaped", "snapshot --filter 'proto \x1b[2J'", 2, []string{"filter: position"}, []string{"\x1b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCommand(c, tt.cmd)
			status := 0
			var exit *gossh.ExitError
			if errors.As(err, &exit) {
				status = exit.ExitStatus()
			} else if err != nil {
				t.Fatalf("run: %v", err)
			}
			if status != tt.wantStatus {
				t.Errorf("exit status %d; want %d (output %q)", status, tt.wantStatus, tail(out, 500))
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, tail(out, 1000))
				}
			}
			for _, w := range tt.not {
				if strings.Contains(out, w) {
					t.Errorf("output contains %q:\n%s", w, tail(out, 1000))
				}
			}
		})
	}
}

func TestHostKeyCreatedOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "host_key")
	_, s1, created, err := loadOrCreateHostKey(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("host key mode %04o; want 0600", fi.Mode().Perm())
	}
	_, s2, created, err := loadOrCreateHostKey(path)
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v", created, err)
	}
	if !bytes.Equal(s1.PublicKey().Marshal(), s2.PublicKey().Marshal()) {
		t.Error("host key changed between runs")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := loadOrCreateHostKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable host key: err = %v; want a refusal naming chmod 600", err)
	}
	if err := os.Chmod(path, 0o620); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := loadOrCreateHostKey(path); err == nil {
		t.Error("group-writable host key accepted")
	}
	// A Kubernetes Secret volume: mode 0440 (fsGroup) behind symlinks.
	if err := os.Chmod(path, 0o440); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, s3, created, err := loadOrCreateHostKey(link); err != nil || created ||
		!bytes.Equal(s1.PublicKey().Marshal(), s3.PublicKey().Marshal()) {
		t.Errorf("host key behind a symlink, mode 0440: created=%v err=%v", created, err)
	}
}

func TestParseAuthorizedKeys(t *testing.T) {
	k1, k2 := newClientKey(t).PublicKey(), newClientKey(t).PublicKey()
	line := func(opts string, k gossh.PublicKey) string {
		s := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k)))
		if opts != "" {
			s = opts + " " + s
		}
		return s + " comment\n"
	}
	tests := []struct {
		name        string
		file        string
		want        []gossh.PublicKey
		skippedWant int
	}{
		{"plain", line("", k1) + line("", k2), []gossh.PublicKey{k1, k2}, 0},
		{"comments and blanks", "# hi\n\n   \n" + line("", k1), []gossh.PublicKey{k1}, 0},
		{"harmless options", line("restrict,no-port-forwarding,No-X11-Forwarding", k1), []gossh.PublicKey{k1}, 0},
		{"from= skipped", line(`from="10.0.0.0/8"`, k1) + line("", k2), []gossh.PublicKey{k2}, 1},
		{"command= skipped", line(`command="/bin/true"`, k1), nil, 1},
		{"garbage", "ssh-ed25519 notbase64\n" + line("", k2), []gossh.PublicKey{k2}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, skipped := parseAuthorizedKeys([]byte(tt.file))
			if len(keys) != len(tt.want) {
				t.Errorf("%d keys; want %d", len(keys), len(tt.want))
			}
			for _, k := range tt.want {
				if !keys[string(k.Marshal())] {
					t.Errorf("key %s missing", gossh.FingerprintSHA256(k))
				}
			}
			if len(skipped) != tt.skippedWant {
				t.Errorf("skipped %q; want %d lines", skipped, tt.skippedWant)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	eng := newTestEngine(t, 0)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("# nobody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing", Config{}, "nothing to serve"},
		{"no model", Config{SSHAddr: "127.0.0.1:0", AuthorizedKeys: empty}, "no TUI model factory"},
		{"missing keys", Config{SSHAddr: "127.0.0.1:0", AuthorizedKeys: filepath.Join(dir, "nope"),
			NewModel: newTestModelFactory(time.Second)}, "no such file"},
		{"no usable key", Config{SSHAddr: "127.0.0.1:0", AuthorizedKeys: empty,
			NewModel: newTestModelFactory(time.Second)}, "no usable public key"},
		{"bad metrics addr", Config{MetricsAddr: "127.0.0.1:notaport"}, "metrics listener"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(eng, tt.cfg)
			if err == nil {
				if s.sshLn != nil {
					_ = s.sshLn.Close()
				}
				if s.httpLn != nil {
					_ = s.httpLn.Close()
				}
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q; want it to contain %q", err, tt.want)
			}
		})
	}
}

// serverGoroutines returns the stacks of goroutines started by the server
// or the libraries it runs (SSH, Bubble Tea, HTTP), leaving out the test's
// own (its SSH clients' readers and terminal emulators).
func serverGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var left []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "openViewer") || strings.Contains(g, "serverGoroutines") || strings.Contains(g, "testing.(*M).Run") {
			continue
		}
		for _, mark := range []string{"charm.land/", "internal/serve.", "net/http.", "golang.org/x/crypto/ssh.(*connection)",
			"golang.org/x/crypto/ssh.(*handshakeTransport)", "golang.org/x/crypto/ssh.(*mux)", "prometheus"} {
			if strings.Contains(g, mark) {
				left = append(left, g)
				break
			}
		}
	}
	return left
}
