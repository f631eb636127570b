package serve

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/vt"
	gossh "golang.org/x/crypto/ssh"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// testFlow is an established TCP flow 10.9.x.y:40000+i -> 10.8.0.1:1000+i.
func testFlow(i int) flow.Flow {
	src := netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)})
	dst := netip.MustParseAddr("10.8.0.1")
	orig := flow.Tuple{Src: src, Dst: dst, SrcPort: uint16(40000 + i%20000), DstPort: uint16(1000 + i%60000)}
	return flow.Flow{
		ID: uint32(i + 1), Family: flow.FamilyIPv4, Proto: flow.ProtoTCP,
		TCPState: flow.TCPEstablished,
		Status:   flow.StatusConfirmed | flow.StatusSeenReply | flow.StatusAssured,
		Orig:     orig, Reply: orig.Reverse(flow.ProtoTCP), Timeout: 431999,
	}
}

// newTestEngine returns an engine without a source holding flows 0..n-1.
func newTestEngine(tb testing.TB, n int) *engine.Engine {
	tb.Helper()
	eng := engine.New(nil, engine.Options{})
	now := time.Now()
	evs := make([]flow.Event, 0, n+1)
	for i := range n {
		evs = append(evs, flow.Event{Type: flow.EventNew, Time: now, Flow: testFlow(i)})
	}
	evs = append(evs, flow.Event{Type: flow.EventSynced, Time: now})
	for len(evs) > 0 {
		k := min(len(evs), 8192)
		eng.Apply(evs[:k])
		evs = evs[k:]
	}
	return eng
}

// testTickMsg re-arms the test model's refresh.
type testTickMsg struct{}

// testModel is a minimal read-only viewer for tests that must not depend on
// the real TUI: a header, then the flows passing its filter. Its filter
// comes from the user name: "port-N" shows dport N, "churn" redraws every
// cell on every tick (to produce a lot of output), anything else shows all.
type testModel struct {
	eng    *engine.Engine
	label  string
	filter *filter.Filter
	churn  bool
	w, h   int
	ticks  int
	every  time.Duration
}

func newTestModelFactory(every time.Duration) ModelFactory {
	return func(eng *engine.Engine, s SessionInfo) tea.Model {
		m := &testModel{eng: eng, label: s.User, w: s.Width, h: s.Height, every: every}
		switch {
		case strings.HasPrefix(s.User, "port-"):
			f, err := filter.Parse("dport " + strings.TrimPrefix(s.User, "port-"))
			if err != nil {
				panic(err)
			}
			m.filter = f
		case s.User == "churn":
			m.churn = true
		}
		return m
	}
}

func (m *testModel) tick() tea.Cmd {
	return tea.Tick(m.every, func(time.Time) tea.Msg { return testTickMsg{} })
}

func (m *testModel) Init() tea.Cmd { return m.tick() }

func (m *testModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case testTickMsg:
		m.ticks++
		return m, m.tick()
	case tea.KeyPressMsg:
		if msg.String() == "q" {
			return m, tea.Quit
		}
	}
	return m, nil
}

func (m *testModel) View() tea.View {
	var b strings.Builder
	if m.churn {
		c := string(rune('a' + m.ticks%26))
		for range max(m.h, 1) {
			b.WriteString(strings.Repeat(c, max(m.w-1, 1)))
			b.WriteByte('\n')
		}
		return tea.NewView(b.String())
	}
	var res store.Result
	m.eng.View(func(s *store.Store) {
		res = s.Query(store.Query{Filter: m.filter, Limit: max(m.h-1, 1)})
	})
	fmt.Fprintf(&b, "view %s matched %d tick %d size %dx%d\n", m.label, res.Matched, m.ticks, m.w, m.h)
	for _, r := range res.Rows {
		fmt.Fprintf(&b, "%s:%d > %s:%d\n", r.Flow.Orig.Src, r.Flow.Orig.SrcPort, r.Flow.Orig.Dst, r.Flow.Orig.DstPort)
	}
	return tea.NewView(b.String())
}

// testServer is a running Server with a client key that is authorized.
type testServer struct {
	*Server
	key    gossh.Signer
	logs   *syncBuffer
	done   chan error
	cancel context.CancelFunc
	dir    string
}

// startServer starts a server over eng; mod adjusts the config.
func startServer(t testing.TB, eng *engine.Engine, mod func(*Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	key := newClientKey(t)
	writeAuthorizedKeys(t, filepath.Join(dir, "authorized_keys"), key.PublicKey())
	logs := &syncBuffer{}
	cfg := Config{
		SSHAddr:        "127.0.0.1:0",
		AuthorizedKeys: filepath.Join(dir, "authorized_keys"),
		HostKey:        filepath.Join(dir, "host_key"),
		Refresh:        50 * time.Millisecond,
		ShutdownGrace:  time.Second,
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		NewModel:       newTestModelFactory(50 * time.Millisecond),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(eng, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, key: key, logs: logs, done: make(chan error, 1), cancel: cancel, dir: dir}
	go func() { ts.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return ts
}

// stop shuts the server down and returns Run's error (once; later calls
// return nil).
func (ts *testServer) stop() error {
	ts.cancel()
	select {
	case err, ok := <-ts.done:
		if ok {
			close(ts.done)
		}
		return err
	case <-time.After(15 * time.Second):
		return fmt.Errorf("Run did not return within 15s of shutdown")
	}
}

func newClientKey(t testing.TB) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeAuthorizedKeys(t testing.TB, path string, keys ...gossh.PublicKey) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("# test keys\n")
	for _, k := range keys {
		b.Write(gossh.MarshalAuthorizedKey(k))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// dial connects as user with auth.
func (ts *testServer) dial(user string, auth ...gossh.AuthMethod) (*gossh.Client, error) {
	return gossh.Dial("tcp", ts.SSHAddr().String(), &gossh.ClientConfig{
		User:            user,
		Auth:            auth,
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		Timeout:         5 * time.Second,
	})
}

// mustDial connects as user with the authorized key.
func (ts *testServer) mustDial(t testing.TB, user string) *gossh.Client {
	t.Helper()
	c, err := ts.dial(user, gossh.PublicKeys(ts.key))
	if err != nil {
		t.Fatalf("dial as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// viewer is an interactive SSH session with a pseudo-terminal whose output
// is collected (unless it was opened with read=false).
type viewer struct {
	sess *gossh.Session
	out  *syncBuffer // the raw output
	scr  *screen     // the output on a terminal emulator
	in   *lockedWriter
	// exit receives Wait's result.
	exit chan error
}

// openViewer opens a shell session with a w×h terminal on c.
func openViewer(t testing.TB, c *gossh.Client, w, h int, read bool) *viewer {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	v := &viewer{sess: sess, out: &syncBuffer{}, scr: newScreen(w, h), exit: make(chan error, 1)}
	if err := sess.RequestPty("xterm-256color", h, w, gossh.TerminalModes{}); err != nil {
		t.Fatalf("request pty: %v", err)
	}
	if read {
		sess.Stdout = io.MultiWriter(v.out, v.scr)
		sess.Stderr = sess.Stdout
	} else {
		// Pipes that nobody reads: the channel's window fills up.
		if _, err := sess.StdoutPipe(); err != nil {
			t.Fatal(err)
		}
		if _, err := sess.StderrPipe(); err != nil {
			t.Fatal(err)
		}
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	v.in = &lockedWriter{w: stdin}
	// The emulator's answers to terminal queries go back as input. (This
	// goroutine ends with the test binary: closing the emulator while it
	// reads is a data race in vt.)
	go func() { _, _ = io.Copy(v.in, v.scr.emu) }()
	if err := sess.Shell(); err != nil {
		t.Fatalf("shell: %v", err)
	}
	go func() { v.exit <- sess.Wait() }()
	return v
}

// waitFor waits until the screen shows want.
func (v *viewer) waitFor(want string, timeout time.Duration) bool {
	return waitUntil(timeout, func() bool { return strings.Contains(v.scr.String(), want) })
}

// screen is a terminal emulator fed with a session's output.
type screen struct {
	mu  sync.Mutex
	emu *vt.Emulator
}

func newScreen(w, h int) *screen { return &screen{emu: vt.NewEmulator(w, h)} }

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emu.Write(p)
}

// String returns the text on the screen.
func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emu.String()
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// text is the output so far with escape sequences removed.
func (v *viewer) text() string { return ansi.Strip(v.out.String()) }

// waitUntil polls cond every 10ms until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a goroutine-safe buffer that keeps the last 4 MiB written.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
	n  int64
}

const syncBufferKeep = 4 << 20

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	if len(s.b) > syncBufferKeep {
		s.b = append(s.b[:0], s.b[len(s.b)-syncBufferKeep/2:]...)
	}
	s.n += int64(len(p))
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// Len is the total number of bytes written.
func (s *syncBuffer) Len() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// tail returns at most n bytes from the end of s, for failure messages.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
