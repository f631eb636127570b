//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
	"github.com/conntop/conntop/internal/memlimit"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/source/conntrack"
)

// The big-table lab: a namespace filled by ctnetlink creates with
// labtest.FillEntryAt's mix (UDP and ESTABLISHED TCP, all assured, one in
// eight IPv6), 262,144 entries in CI, 4,194,304 with CONNTOP_LAB_BIG=1.
// conntop's count, sorted windows and filtered counts are compared with the
// kernel's own table (/proc/net/nf_conntrack in the namespace).

const (
	bigTableCI  = 262_144
	bigTableBig = 4_194_304
	// bigTableBound bounds the test process (which runs the engine) at
	// 4,194,304 entries.
	bigTableBound = 3 << 30
)

// bigTableLab fills a namespace and returns it with its entry count.
func bigTableLab(t *testing.T) (*labtest.NS, int) {
	t.Helper()
	labtest.RequireRoot(t)
	n := bigTableCI
	if os.Getenv("CONNTOP_LAB_BIG") == "1" {
		n = bigTableBig
	}
	if labtest.ConntrackMax(t) < n {
		// Restored at cleanup, after the namespace (and its entries) is gone.
		labtest.RaiseConntrackTable(t, n)
	} else {
		labtest.HoldConntrackMax(t, false)
	}
	ns := labtest.NewNS(t, "big")
	ns.EnableConntrack(t, labtest.Conntrack{})
	start := time.Now()
	ns.FillConntrack(t, n)
	t.Logf("filled %d entries in %v", n, time.Since(start).Round(time.Millisecond))
	return ns, n
}

// kernelRef is what the test needs of the kernel's table.
type kernelRef struct {
	count, tcp, udp, ipv6 int
	matched               []int          // per bigTableFilters entry
	byDport               [65536]int     // entries per orig destination port
	keys                  map[rowKey]int // dport of entries in the compared windows
}

type rowKey struct {
	src   netip.Addr
	sport uint16
	proto uint8
}

// bigTableFilters are filters whose matched counts are compared, with the
// same selection written as a predicate over the kernel's entries.
var bigTableFilters = []struct {
	expr string
	pred func(e *labtest.KernelEntry) bool
}{
	{"tcp and dport 1000-1999", func(e *labtest.KernelEntry) bool { return e.Proto == 6 && e.Dport >= 1000 && e.Dport <= 1999 }},
	{"ipv6 and udp", func(e *labtest.KernelEntry) bool { return e.IPv6 && e.Proto == 17 }},
	{"state established and not dport 2000-5999", func(e *labtest.KernelEntry) bool {
		// Every entry was created with SEEN_REPLY: ESTABLISHED.
		return e.Dport < 2000 || e.Dport > 5999
	}},
}

// readKernel walks the kernel's table twice: counts and the port
// histogram, then the keys of the entries in the lowest and highest window
// of w rows by destination port.
func readKernel(t *testing.T, ns *labtest.NS, w int) *kernelRef {
	t.Helper()
	k := &kernelRef{matched: make([]int, len(bigTableFilters)), keys: map[rowKey]int{}}
	err := ns.WalkKernelTable(func(e *labtest.KernelEntry) {
		k.count++
		switch e.Proto {
		case 6:
			k.tcp++
		case 17:
			k.udp++
		}
		if e.IPv6 {
			k.ipv6++
		}
		k.byDport[e.Dport]++
		for i, f := range bigTableFilters {
			if f.pred(e) {
				k.matched[i]++
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := k.windowPorts(w, false), k.windowPorts(w, true)
	err = ns.WalkKernelTable(func(e *labtest.KernelEntry) {
		if e.Dport <= lo[len(lo)-1] || e.Dport >= hi[len(hi)-1] {
			k.keys[rowKey{e.Src, e.Sport, e.Proto}] = int(e.Dport)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// windowPorts returns the destination ports of the first w rows sorted by
// port (descending with desc).
func (k *kernelRef) windowPorts(w int, desc bool) []uint16 {
	var out []uint16
	for i := range 65536 {
		p := i
		if desc {
			p = 65535 - i
		}
		for range k.byDport[p] {
			if len(out) == w {
				return out
			}
			out = append(out, uint16(p))
		}
	}
	return out
}

// TestBigTableMatchesKernel runs the kernel source and engine on a filled
// namespace and compares the count, the first and last 20 rows by
// destination port, and filters' matched counts with the kernel's table.
func TestBigTableMatchesKernel(t *testing.T) {
	ns, n := bigTableLab(t)
	if n > bigTableCI {
		labtest.NewMemCgroup(t, bigTableBound).Enter(t)
	}
	const w = 20
	k := readKernel(t, ns, w)
	if k.count != n {
		t.Fatalf("the kernel lists %d entries, want %d", k.count, n)
	}

	eng := engine.New(conntrack.New(conntrack.Options{NetNS: ns.Path}), engine.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
	})
	var sum store.Summary
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		eng.View(func(s *store.Store) { sum = s.Summary() })
		if eng.Status().Synced && sum.Live == n {
			break
		}
		if st := eng.Status(); st.Done || time.Now().After(deadline) {
			t.Fatalf("engine holds %d of %d flows (status %+v)", sum.Live, n, st)
		}
	}
	t.Logf("engine loaded %d flows in %v", n, time.Since(start).Round(time.Millisecond))
	if sum.ByProto[flow.ProtoTCP] != k.tcp || sum.ByProto[flow.ProtoUDP] != k.udp || sum.IPv6 != k.ipv6 || sum.Assured != n {
		t.Errorf("summary: tcp %d udp %d ipv6 %d assured %d; kernel: tcp %d udp %d ipv6 %d, all %d assured",
			sum.ByProto[flow.ProtoTCP], sum.ByProto[flow.ProtoUDP], sum.IPv6, sum.Assured, k.tcp, k.udp, k.ipv6, n)
	}

	v := eng.NewViewer()
	defer v.Close()
	for _, desc := range []bool{false, true} {
		qs := time.Now()
		res := v.Query(store.Query{Sort: store.SortDport, Desc: desc, Limit: w})
		t.Logf("window by dport (desc %v): %v", desc, time.Since(qs).Round(time.Microsecond))
		if res.Total != n || res.Matched != n {
			t.Errorf("desc %v: total %d matched %d, want %d", desc, res.Total, res.Matched, n)
		}
		checkWindow(t, res.Rows, k.windowPorts(w, desc), k.keys, desc)
	}
	for i, f := range bigTableFilters {
		flt, err := filter.Parse(f.expr)
		if err != nil {
			t.Fatal(err)
		}
		res := v.Query(store.Query{Filter: flt, Sort: store.SortDport, Limit: w})
		if res.Matched != k.matched[i] {
			t.Errorf("filter %q: conntop matches %d flows, the kernel's table %d", f.expr, res.Matched, k.matched[i])
		}
		for _, r := range res.Rows {
			if !flt.Match(&r.Flow) {
				t.Errorf("filter %q: row %v does not match", f.expr, r.Flow.Orig)
			}
		}
	}
}

// checkWindow checks rows against the kernel: the same destination ports
// in the same order, each row a distinct kernel entry with that port (rows
// that tie on the port may come in any order the store's key order says).
func checkWindow(t *testing.T, rows []store.Row, ports []uint16, keys map[rowKey]int, desc bool) {
	t.Helper()
	got := make([]uint16, len(rows))
	seen := map[rowKey]bool{}
	for i := range rows {
		f := &rows[i].Flow
		got[i] = f.Orig.DstPort
		rk := rowKey{f.Orig.Src, f.Orig.SrcPort, f.Proto}
		if p, ok := keys[rk]; !ok || p != int(f.Orig.DstPort) {
			t.Errorf("desc %v: row %d (%v %v:%d -> dport %d) is not in the kernel's table with that port", desc, i, f.Proto, f.Orig.Src, f.Orig.SrcPort, f.Orig.DstPort)
		}
		if seen[rk] {
			t.Errorf("desc %v: row %d repeats %v", desc, i, rk)
		}
		seen[rk] = true
	}
	if !slices.Equal(got, ports) {
		t.Errorf("desc %v: destination ports of the window %v; the kernel's table sorted: %v", desc, got, ports)
	}
}

// degradedSessions is the serve reserve the degraded test's conntop keeps
// (reserveServe + degradedSessions × reservePerSession).
const degradedSessions = 5

// TestBigTableDegradedUnderMemoryLimit runs `conntop serve` in a memory
// cgroup smaller than the table needs with full history, and checks that
// it says so out loud (/healthz, the metric, the snapshot's JSON) while the
// counts and the snapshot stay exact and the kernel killed nothing.
//
// The limit comes from the store's own estimate E of the loaded table
// with history, read from a first run with no limit
// (conntop_store_memory_bytes): the serve reserve plus E − 4 MiB, lowered
// while the plan (memlimit.NewPlan, which gives the store at least a
// quarter of a small limit) would give the store more than E − 10 MiB.
// Under a budget the history ring does not grow to its 8 MiB (at 262,144
// entries the limited run estimated 20.9 MiB against the first run's 26.9),
// so the budget must be well below E for the store to give up its history;
// it then gives up lingering too, which the checks allow.
// CONNTOP_LAB_DEGRADED_LIMIT (bytes) overrides it.
func TestBigTableDegradedUnderMemoryLimit(t *testing.T) {
	labtest.RequireRoot(t)
	bin := buildBinary(t)
	ns, n := bigTableLab(t)
	dir := t.TempDir()
	authKeys, signer := sshClientKey(t, dir)
	var limit int64
	if v := os.Getenv("CONNTOP_LAB_DEGRADED_LIMIT"); v != "" {
		l, err := strconv.ParseInt(v, 10, 64)
		if err != nil || l < 16<<20 {
			t.Fatalf("CONNTOP_LAB_DEGRADED_LIMIT=%q: want bytes, at least 16 MiB", v)
		}
		limit = l
	} else {
		// A cgroup far above the table: a budget that is never reached, so
		// the store reports its full estimate.
		first := startServe(t, bin, labtest.NewMemCgroup(t, 4<<30),
			"--netns", ns.Path, "--source", "conntrack", "--metrics", freeAddr(t), "--ssh", freeAddr(t),
			"--authorized-keys", authKeys, "--host-key", filepath.Join(dir, "host_key"))
		first.waitFlows(t, n)
		est := int64(first.metric(t, "conntop_store_memory_bytes"))
		first.stop()
		if est <= 4<<20 {
			t.Fatalf("the store's estimate of %d flows is %d bytes", n, est)
		}
		reserve := int64(reserveServe + degradedSessions*reservePerSession)
		limit = reserve + est - 4<<20
		for {
			p, err := memlimit.NewPlan(memlimit.Limit{Bytes: limit, From: "test"}, "", reserve)
			if err != nil {
				t.Fatal(err)
			}
			if p.Store <= est-10<<20 {
				break
			}
			limit -= 1 << 20
		}
		t.Logf("store estimate with history at %d flows: %.1f MiB; cgroup limit %.1f MiB", n, float64(est)/(1<<20), float64(limit)/(1<<20))
	}
	cg := labtest.NewMemCgroup(t, limit)

	sshAddr, metricsAddr := freeAddr(t), freeAddr(t)
	cmdline := fmt.Sprintf("echo $$ > %s && exec %s serve --netns %s --source conntrack --ssh %s --metrics %s --authorized-keys %s --host-key %s --max-sessions %d",
		shellQuote(cg.ProcsFile()), shellQuote(bin), shellQuote(ns.Path), sshAddr, metricsAddr,
		shellQuote(authKeys), shellQuote(filepath.Join(dir, "host_key")), degradedSessions)
	cmd := exec.Command("sh", "-c", cmdline)
	logFile, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when the server has exited, with its error in
	// exitErr.
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	serveLog := func() string {
		b, _ := os.ReadFile(logFile.Name())
		if len(b) > 4096 {
			b = b[len(b)-4096:]
		}
		return string(b)
	}

	// /healthz: synced (bounded by the load time), and then degraded,
	// still 200.
	waitHealth := func(what string, d time.Duration, ok func(code int, body string) bool) string {
		for deadline := time.Now().Add(d); ; time.Sleep(200 * time.Millisecond) {
			select {
			case <-exited:
				t.Fatalf("conntop serve exited (%v; %d OOM kills in its cgroup of %.1f MiB):\n%s", exitErr, cg.OOMKills(), float64(limit)/(1<<20), serveLog())
			default:
			}
			code, body := httpGet(t, "http://"+metricsAddr+"/healthz")
			if ok(code, body) {
				return body
			}
			if time.Now().After(deadline) {
				_, m := httpGet(t, "http://"+metricsAddr+"/metrics")
				var store []string
				for _, l := range strings.Split(m, "\n") {
					if strings.HasPrefix(l, "conntop_store_") {
						store = append(store, l)
					}
				}
				t.Fatalf("/healthz did not say %s within %v (cgroup peak %.1f MiB of %.1f MiB): last %d %q; the store's metrics: %q; serve log:\n%s",
					what, d, float64(cg.PeakBytes())/(1<<20), float64(limit)/(1<<20), code, body, store, serveLog())
			}
		}
	}
	waitHealth("synced", 3*time.Minute, func(code int, body string) bool { return code == 200 && strings.Contains(body, "synced") })
	health := waitHealth("degraded", 30*time.Second, func(code int, body string) bool {
		return code == 200 && strings.Contains(body, "synced") && strings.Contains(body, "\ndegraded: ")
	})
	t.Logf("/healthz: %s", strings.TrimSpace(health))

	_, metrics := httpGet(t, "http://"+metricsAddr+"/metrics")
	for _, want := range []string{`conntop_store_degraded{what="history"} 1`, "conntop_flows " + strconv.Itoa(n) + "\n",
		"conntop_store_memory_limit_bytes "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// The snapshot over SSH: "degraded" in "table" with the kernel's count,
	// and every flow the filter selects. (A filtered snapshot: an
	// unfiltered one copies the whole table out of the store at once,
	// about 200 bytes a flow, more than this limit leaves.)
	const snapFilter = "dport 1000-1099"
	want := 0
	if err := ns.WalkKernelTable(func(e *labtest.KernelEntry) {
		if e.Dport >= 1000 && e.Dport <= 1099 {
			want++
		}
	}); err != nil {
		t.Fatal(err)
	}
	head, flows := sshSnapshotCount(t, sshAddr, signer, "snapshot --format json --filter '"+snapFilter+"'", func() string {
		return fmt.Sprintf("%d OOM kills in conntop's cgroup; serve log:\n%s", cg.OOMKills(), serveLog())
	})
	if !strings.Contains(head, `"degraded":{"history":true`) {
		t.Errorf("snapshot header does not say degraded: %s", head)
	}
	if !strings.Contains(head, `"count":`+strconv.Itoa(n)+",") {
		t.Errorf("snapshot header count is not %d: %s", n, head)
	}
	if flows != want {
		t.Errorf("the snapshot holds %d flows with %s, the kernel's table %d", flows, snapFilter, want)
	}
	if k := cg.OOMKills(); k != 0 {
		t.Errorf("the kernel killed %d processes in conntop's cgroup", k)
	}
	t.Logf("peak memory of the cgroup: %.1f MiB of %.1f MiB", float64(cg.PeakBytes())/(1<<20), float64(limit)/(1<<20))
}

// sshClientKey writes an authorized_keys file for a new ed25519 key and
// returns its path and the key.
func sshClientKey(t *testing.T, dir string) (string, gossh.Signer) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(path, gossh.MarshalAuthorizedKey(sp), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, signer
}

// freeAddr returns a loopback address with a free port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// httpGet returns the status and (bounded) body of url, 0 when it cannot
// connect.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// sshSnapshotCount runs command (a `snapshot --format json`) over SSH and returns the
// document's first line (everything up to "flows") and the number of flows,
// counted as they stream by.
func sshSnapshotCount(t *testing.T, addr string, signer gossh.Signer, command string, why func() string) (string, int) {
	t.Helper()
	c, err := gossh.Dial("tcp", addr, &gossh.ClientConfig{
		User: "lab", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), // a host key made by this test's server
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh %s: %v", addr, err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(command); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(3*time.Minute, func() { c.Close() })
	defer timer.Stop()
	r := bufio.NewReaderSize(out, 1<<16)
	head, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read snapshot header: %v (%s)", err, why())
	}
	flows := 0
	for {
		line, err := r.ReadSlice('\n')
		if strings.HasPrefix(string(line), `{"id":`) {
			flows++
		}
		if err == bufio.ErrBufferFull {
			// A long line: skip to its end.
			for err == bufio.ErrBufferFull {
				_, err = r.ReadSlice('\n')
			}
		}
		if err != nil {
			if err != io.EOF {
				t.Fatalf("read snapshot: %v (%s)", err, why())
			}
			break
		}
	}
	if err := s.Wait(); err != nil {
		t.Errorf("ssh snapshot: %v", err)
	}
	return head, flows
}
