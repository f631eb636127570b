//go:build linux

package serve

import (
	"bufio"
	"context"

	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/labtest"
	"github.com/conntop/conntop/source/conntrack"
	"github.com/conntop/conntop/tui"
)

// lab is a server namespace (conntrack on, echo servers on ports 8080 and
// 9090) and a client namespace, with an engine watching the server
// namespace's kernel table.
type lab struct {
	srv, cli *labtest.NS
	link     labtest.Link
	eng      *engine.Engine
}

func newLab(t *testing.T) *lab {
	t.Helper()
	labtest.RequireRoot(t)
	l := &lab{srv: labtest.NewNS(t, "serve"), cli: labtest.NewNS(t, "serve")}
	l.link = labtest.Connect(t, l.srv, l.cli, 1)
	l.srv.EnableConntrack(t, labtest.Conntrack{})
	l.srv.ServeEcho(t, "tcp", l.link.A4+":8080")
	l.srv.ServeEcho(t, "tcp", l.link.A4+":9090")
	src := conntrack.New(conntrack.Options{NetNS: l.srv.Path, StatsInterval: 100 * time.Millisecond})
	l.eng = engine.New(src, engine.Options{Tick: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("engine: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("engine did not stop")
		}
	})
	if !waitUntil(10*time.Second, func() bool { return l.eng.Status().Synced }) {
		t.Fatalf("conntrack source never synced: %+v", l.eng.Status())
	}
	return l
}

// connect opens a TCP connection from the client namespace to port and
// does one echo round trip over it.
func (l *lab) connect(t *testing.T, port int) net.Conn {
	t.Helper()
	c := l.cli.DialTCP(t, net.JoinHostPort(l.link.A4, strconv.Itoa(port)))
	if err := labtest.Echo(c, "hello"); err != nil {
		t.Fatal(err)
	}
	return c
}

func tuiFactory(eng *engine.Engine, _ SessionInfo) tea.Model {
	return tui.New(eng, tui.Options{ReadOnly: true, Refresh: 50 * time.Millisecond, NoProcs: true})
}

// TestLabTUIOverSSH: SSH viewers running the real TUI see the real flows
// of a namespace, each with its own filter.
func TestLabTUIOverSSH(t *testing.T) {
	l := newLab(t)
	l.connect(t, 8080)
	l.connect(t, 9090)
	ts := startServer(t, l.eng, func(c *Config) { c.NewModel = tuiFactory })

	a := openViewer(t, ts.mustDial(t, "alice"), 160, 40, true)
	b := openViewer(t, ts.mustDial(t, "bob"), 160, 40, true)
	for name, v := range map[string]*viewer{"alice": a, "bob": b} {
		if !waitUntil(10*time.Second, func() bool {
			s := v.scr.String()
			return strings.Contains(s, l.link.B4) && strings.Contains(s, "8080") && strings.Contains(s, "9090")
		}) {
			t.Fatalf("%s's screen does not show the namespace's flows:\n%s", name, v.scr.String())
		}
	}
	// bob filters on port 9090; alice's view must not change.
	if _, err := io.WriteString(b.in, "/"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := io.WriteString(b.in, "dport 9090\r"); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(10*time.Second, func() bool {
		s := b.scr.String()
		return strings.Contains(s, ":9090") && !strings.Contains(s, ":8080")
	}) {
		t.Fatalf("bob's filtered screen:\n%s", b.scr.String())
	}
	time.Sleep(300 * time.Millisecond)
	if s := a.scr.String(); !strings.Contains(s, ":8080") || !strings.Contains(s, ":9090") {
		t.Fatalf("alice's view changed with bob's filter:\n%s", s)
	}
	// Read-only: the delete key does nothing over SSH.
	if _, err := io.WriteString(a.in, "d"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := l.eng.Status(); !n.Live {
		t.Fatalf("source not live: %+v", n)
	}
}

// TestLabMetricsMatchKernel scrapes /metrics during real traffic in a
// namespace and checks the node_exporter-named figures against the kernel's
// own (read inside that namespace), and the exposition against promlint.
func TestLabMetricsMatchKernel(t *testing.T) {
	l := newLab(t)
	ts := startServer(t, l.eng, func(c *Config) {
		c.SSHAddr = ""
		c.MetricsAddr = "127.0.0.1:0"
	})
	url := "http://" + ts.MetricsAddr().String() + "/metrics"

	// Traffic while scraping: new connections, UDP, and one connection
	// kept busy.
	busy := l.connect(t, 8080)
	for i := range 20 {
		c := l.connect(t, 9090)
		if i%2 == 0 {
			c.Close()
		}
		if err := l.cli.SendUDP("", net.JoinHostPort(l.link.A4, strconv.Itoa(5300+i)), 2, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := labtest.Echo(busy, "ping"); err != nil {
			t.Fatal(err)
		}
		body := scrape(t, url)
		if i == 0 {
			problems, err := promlint.New(strings.NewReader(body)).Lint()
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("promlint: %s: %s", p.Metric, p.Text)
			}
		}
	}

	// Quiet now: the figures must settle to the kernel's.
	var kernel, got map[string]float64
	matched := waitUntil(15*time.Second, func() bool {
		k1 := kernelFigures(t, l.srv)
		got = parseMetrics(scrape(t, url))
		kernel = kernelFigures(t, l.srv)
		if !equalFigures(k1, kernel) {
			return false // still moving
		}
		return equalFigures(kernel, pick(got, kernel))
	})
	if !matched {
		t.Fatalf("metrics never matched the kernel:\nkernel  %v\nmetrics %v", kernel, pick(got, kernel))
	}
	if kernel["node_nf_conntrack_entries"] < 20 {
		t.Errorf("only %v entries in the namespace; the traffic did not make flows", kernel["node_nf_conntrack_entries"])
	}
	t.Logf("kernel and metrics agree: %v", kernel)
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// parseMetrics returns the unlabelled samples of an exposition.
func parseMetrics(body string) map[string]float64 {
	m := make(map[string]float64)
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			m[name] = v
		}
	}
	return m
}

// statColumns maps /proc/net/stat/nf_conntrack columns to metric names.
var statColumns = map[string]string{
	"found": "node_nf_conntrack_stat_found", "invalid": "node_nf_conntrack_stat_invalid",
	"ignore": "node_nf_conntrack_stat_ignore", "insert": "node_nf_conntrack_stat_insert",
	"insert_failed": "node_nf_conntrack_stat_insert_failed", "drop": "node_nf_conntrack_stat_drop",
	"early_drop": "node_nf_conntrack_stat_early_drop", "search_restart": "node_nf_conntrack_stat_search_restart",
}

// kernelFigures reads the namespace's conntrack count, max and per-CPU
// statistics (summed) from inside it.
func kernelFigures(t *testing.T, ns *labtest.NS) map[string]float64 {
	t.Helper()
	read := func(path string) string {
		out, err := ns.Output(5*time.Second, "cat", path)
		if err != nil {
			t.Fatalf("read %s in %s: %v", path, ns.Name, err)
		}
		return string(out)
	}
	k := make(map[string]float64)
	for path, name := range map[string]string{
		"/proc/sys/net/netfilter/nf_conntrack_count": "node_nf_conntrack_entries",
		"/proc/sys/net/netfilter/nf_conntrack_max":   "node_nf_conntrack_entries_limit",
	} {
		v, err := strconv.ParseFloat(strings.TrimSpace(read(path)), 64)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		k[name] = v
	}
	lines := strings.Split(strings.TrimSpace(read("/proc/net/stat/nf_conntrack")), "\n")
	header := strings.Fields(lines[0])
	for _, name := range statColumns {
		k[name] = 0
	}
	for _, line := range lines[1:] {
		for i, field := range strings.Fields(line) {
			if i >= len(header) {
				break
			}
			name, ok := statColumns[header[i]]
			if !ok {
				continue
			}
			v, err := strconv.ParseUint(field, 16, 64)
			if err != nil {
				t.Fatalf("/proc/net/stat/nf_conntrack: %q: %v", field, err)
			}
			k[name] += float64(v)
		}
	}
	return k
}

// pick returns the entries of m named in like.
func pick(m, like map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(like))
	for k := range like {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

func equalFigures(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
