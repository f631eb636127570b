//go:build linux

package serve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/labtest"
)

// The hostile-client tests run the server in a child process (this test
// binary re-executed with CONNTOP_SERVE_CHILD=1) inside a memory cgroup of
// its own, so that a server that grows without bound is killed there, never
// the test process or the machine. The child runs a real engine (ticking
// every 250ms) over a table of flows from tableSource, with the real TUI.

func TestMain(m *testing.M) {
	if os.Getenv("CONNTOP_SERVE_CHILD") == "1" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// runChild is the child's main: it joins the cgroup it is given, serves
// until SIGTERM, and prints "ADDRS <ssh> <metrics>" once listening.
func runChild() int {
	if procs := os.Getenv("CONNTOP_CGROUP_PROCS"); procs != "" {
		if err := os.WriteFile(procs, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "join cgroup:", err)
			return 3
		}
	}
	flows, _ := strconv.Atoi(os.Getenv("CONNTOP_FLOWS"))
	idle, _ := time.ParseDuration(os.Getenv("CONNTOP_IDLE"))
	maxSessions, _ := strconv.Atoi(os.Getenv("CONNTOP_MAX_SESSIONS"))
	dir := os.Getenv("CONNTOP_DIR")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	eng := engine.New(tableSource{n: flows}, engine.Options{})
	go func() { _ = eng.Run(ctx) }()
	s, err := New(eng, Config{
		SSHAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0",
		AuthorizedKeys: filepath.Join(dir, "authorized_keys"), HostKey: filepath.Join(dir, "host_key"),
		IdleTimeout: idle, MaxSessions: maxSessions,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, nil)),
		NewModel: tuiBenchFactory,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ADDRS %s %s\n", s.SSHAddr(), s.MetricsAddr())
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childOpts configure a child server.
type childOpts struct {
	flows       int
	idle        time.Duration
	maxSessions int
	nofile      int   // RLIMIT_NOFILE, 0 = unchanged
	memLimit    int64 // bytes, the cgroup's limit
}

// child is a server running in a child process.
type child struct {
	t           *testing.T
	cmd         *exec.Cmd
	key         gossh.Signer
	ssh, metric string
	logs        *syncBuffer
	stderr      *raceWatch
	// done is closed once the child has exited; state and waitErr are
	// set before.
	done    chan struct{}
	state   *os.ProcessState
	waitErr error
}

// memoryCgroup creates a memory cgroup below the test process's own (v1
// or v2) limited to limit bytes, and returns its cgroup.procs path; it is
// removed at cleanup.
func memoryCgroup(t *testing.T, limit int64) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var base, limitFile string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[1] == "memory":
			base, limitFile = filepath.Join("/sys/fs/cgroup/memory", parts[2]), "memory.limit_in_bytes"
		case parts[0] == "0" && parts[1] == "" && base == "":
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", parts[2], "memory.max")); err == nil {
				base, limitFile = filepath.Join("/sys/fs/cgroup", parts[2]), "memory.max"
			}
		}
	}
	if base == "" {
		if labtest.InCI() {
			t.Fatal("no memory cgroup to bound the server child in")
		}
		t.Skip("skipping: no memory cgroup to bound the server child in")
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	dir := filepath.Join(base, "conntop-test-"+hex.EncodeToString(r[:]))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		for range 50 {
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("memory cgroup %s not removed", dir)
	})
	if err := os.WriteFile(filepath.Join(dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		t.Fatalf("limit memory cgroup: %v", err)
	}
	_ = os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0o644)
	return filepath.Join(dir, "cgroup.procs")
}

// startChild starts a server child and waits until it listens.
func startChild(t *testing.T, o childOpts) *child {
	t.Helper()
	labtest.RequireRoot(t)
	if o.memLimit == 0 {
		o.memLimit = 1 << 30
	}
	procs := memoryCgroup(t, o.memLimit)
	dir := t.TempDir()
	key := newClientKey(t)
	writeAuthorizedKeys(t, filepath.Join(dir, "authorized_keys"), key.PublicKey())
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{exe, "-test.run=^$"}
	if o.nofile > 0 {
		args = append([]string{"prlimit", fmt.Sprintf("--nofile=%d:%d", o.nofile, o.nofile), "--"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "CONNTOP_SERVE_CHILD=1", "CONNTOP_CGROUP_PROCS="+procs,
		"CONNTOP_FLOWS="+strconv.Itoa(o.flows), "CONNTOP_IDLE="+o.idle.String(),
		"CONNTOP_MAX_SESSIONS="+strconv.Itoa(o.maxSessions), "CONNTOP_DIR="+dir)
	logs := &syncBuffer{}
	stderr := &raceWatch{logs: logs}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, key: key, logs: logs, stderr: stderr, done: make(chan struct{})}
	addrs := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "ADDRS" {
				addrs <- f[1:]
			}
		}
		c.waitErr = cmd.Wait()
		c.state = cmd.ProcessState
		close(c.done)
	}()
	t.Cleanup(func() {
		c.stop()
		c.checkRace()
	})
	select {
	case a := <-addrs:
		c.ssh, c.metric = a[0], a[1]
	case <-c.done:
		t.Fatalf("server child exited: %v\n%s", c.waitErr, tail(logs.String(), 3000))
	case <-time.After(30 * time.Second):
		t.Fatalf("server child did not start:\n%s", tail(logs.String(), 3000))
	}
	if !waitUntil(30*time.Second, func() bool { return c.flowsShown() >= o.flows }) {
		t.Fatalf("server child never listed its %d flows", o.flows)
	}
	return c
}

// stop ends the child (SIGTERM, then SIGKILL).
func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// raceExitCode is the exit status the race detector gives a process that
// found a data race (GORACE exitcode, 66 by default).
const raceExitCode = 66

// checkRace fails the test if the stopped child found a data race: it
// printed a race report, or exited with the race detector's status. The
// server is the code under test there, and the race detector in a child
// process fails nothing by itself.
func (c *child) checkRace() {
	c.t.Helper()
	code := c.state.ExitCode()
	if report := c.stderr.report(); report != "" || code == raceExitCode {
		c.t.Errorf("the server child found a data race (exit status %d):\n%s", code, report)
	}
}

// alive fails the test if the child has exited (say, killed by the
// cgroup's OOM killer).
func (c *child) alive() {
	c.t.Helper()
	select {
	case <-c.done:
		c.t.Fatalf("the server died: %v\n%s", c.state, tail(c.logs.String(), 3000))
	default:
	}
	if err := syscall.Kill(c.cmd.Process.Pid, 0); err != nil {
		c.t.Fatalf("the server died: %v\n%s", err, tail(c.logs.String(), 3000))
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if strings.Contains(string(b), "State:\tZ") {
		c.t.Fatalf("the server died:\n%s", tail(c.logs.String(), 3000))
	}
}

// peakRSS returns the child's peak resident set (VmHWM), in bytes.
func (c *child) peakRSS() int64 {
	c.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		c.t.Fatalf("read the server's status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	c.t.Fatal("no VmHWM in the server's status")
	return 0
}

// checkRSS fails the test if the child's peak RSS passed bound (scaled
// under the race detector).
func (c *child) checkRSS(bound int64) {
	c.t.Helper()
	if raceEnabled {
		bound *= 4
	}
	peak := c.peakRSS()
	c.t.Logf("server peak RSS %d MB (bound %d MB)", peak>>20, bound>>20)
	if peak > bound {
		c.t.Errorf("server peak RSS %d MB; want under %d MB", peak>>20, bound>>20)
	}
}

// scrape GETs /metrics (5s timeout) and returns the body.
func (c *child) scrape() (string, error) {
	hc := http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + c.metric + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return string(b), err
}

// flowsShown is conntop_flows from /metrics (-1 on error).
func (c *child) flowsShown() int {
	body, err := c.scrape()
	if err != nil {
		return -1
	}
	v, ok := parseMetrics(body)["conntop_flows"]
	if !ok {
		return -1
	}
	return int(v)
}

// dial logs in from local address from (e.g. 127.0.0.2, to be another
// source than an attacker on 127.0.0.1).
func (c *child) dial(from string) (*gossh.Client, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	raw, err := d.Dial("tcp", c.ssh)
	if err != nil {
		return nil, err
	}
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	conn, chans, reqs, err := gossh.NewClientConn(raw, c.ssh, &gossh.ClientConfig{
		User: "ops", Auth: []gossh.AuthMethod{gossh.PublicKeys(c.key)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
	})
	if err != nil {
		raw.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return gossh.NewClient(conn, chans, reqs), nil
}

// healthy fails the test unless the server is up, /metrics answers and a
// new client (from 127.0.0.2) logs in and runs a snapshot.
func (c *child) healthy() {
	c.t.Helper()
	c.alive()
	if _, err := c.scrape(); err != nil {
		c.t.Fatalf("/metrics: %v\n%s", err, tail(c.logs.String(), 3000))
	}
	cl, err := c.dial("127.0.0.2")
	if err != nil {
		c.t.Fatalf("login: %v\n%s", err, tail(c.logs.String(), 3000))
	}
	defer cl.Close()
	out, err := runCommand(cl, "snapshot --format csv --filter 'dport 1001'")
	if err != nil || !strings.Contains(out, "10.9.0.1,") {
		c.t.Fatalf("snapshot: %v: %q\n%s", err, tail(out, 500), tail(c.logs.String(), 3000))
	}
}

// raceMarker starts every report of the race detector.
const raceMarker = "WARNING: DATA RACE"

// raceReportKeep bounds how much of the first race report raceWatch keeps.
const raceReportKeep = 16 << 10

// raceWatch is a child's stderr: it passes everything on to logs and keeps
// the start of the first race report in it, wherever writes split it and
// however much the log grows after it (logs keeps only its tail).
type raceWatch struct {
	logs *syncBuffer

	mu    sync.Mutex
	carry []byte // the last len(raceMarker)-1 bytes, for a marker split across writes
	found []byte // the first report, from its marker, at most raceReportKeep bytes
}

func (w *raceWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.found == nil {
		buf := append(w.carry, p...)
		if i := bytes.Index(buf, []byte(raceMarker)); i >= 0 {
			w.found = append([]byte(nil), buf[i:min(len(buf), i+raceReportKeep)]...)
		} else {
			w.carry = append(w.carry[:0], buf[max(0, len(buf)-len(raceMarker)+1):]...)
		}
	} else if len(w.found) < raceReportKeep {
		w.found = append(w.found, p[:min(len(p), raceReportKeep-len(w.found))]...)
	}
	w.mu.Unlock()
	return w.logs.Write(p)
}

// report returns the first race report seen ("" if none).
func (w *raceWatch) report() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.found)
}

// TestRaceWatch: raceWatch finds the race detector's marker wherever the
// writes split it, and keeps the report from there, bounded.
func TestRaceWatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"none", []string{"level=INFO msg=ok\n", "WARNING: DATA\n"}, ""},
		{"whole", []string{"x\n==================\nWARNING: DATA RACE\nWrite at 0x1"}, "WARNING: DATA RACE\nWrite at 0x1"},
		{"split", []string{"x\nWARNING: DA", "TA RACE\n", "Read at 0x2"}, "WARNING: DATA RACE\nRead at 0x2"},
		{"bytewise", strings.Split("..WARNING: DATA RACE!", ""), "WARNING: DATA RACE!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			w := &raceWatch{logs: logs}
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if got := w.report(); got != tc.want {
				t.Errorf("report %q; want %q", got, tc.want)
			}
			if logs.String() != strings.Join(tc.writes, "") {
				t.Errorf("logs %q; want everything written", logs.String())
			}
		})
	}
	w := &raceWatch{logs: &syncBuffer{}}
	_, _ = w.Write([]byte(raceMarker))
	_, _ = w.Write(make([]byte, 2*raceReportKeep))
	if n := len(w.report()); n != raceReportKeep {
		t.Errorf("report of %d bytes; want it bounded to %d", n, raceReportKeep)
	}
}
