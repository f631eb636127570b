//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/conntop/conntop/internal/labtest"
	"github.com/conntop/conntop/tui/widget"
)

// TestMeasureBigTable measures conntop on a big kernel table (see
// scripts/measure-bigtable.sh): peak RSS (VmHWM) of the TUI, of serve with
// 16 SSH viewers and of serve --metrics alone; the TUI's first full frame
// against `conntrack -L >/dev/null`; and, under churn (TCP connections
// between two lab namespaces), events lost, /metrics scrape latency and
// serve CPU without and with 16 viewers; then a burst of new entries made
// as fast as the kernel takes them (n/4, between 262,144 and 1,048,576):
// its event rate, events lost, and conntop's count against the kernel's.
// It runs only with
// CONNTOP_MEASURE_BIG=1; CONNTOP_MEASURE_N sets the table size (default
// 262,144), CONNTOP_MEASURE_WINDOW the churn window (default 20s, 1m from
// 1,048,576 entries),
// CONNTOP_MEASURE_RATE the offered connections per second (default 3000),
// CONNTOP_MEASURE_CPUPROFILE a file for the CPU profile of serve --ssh,
// CONNTOP_MEASURE_TUI_CPUPROFILE one for the TUI's load (the run then
// ends at the TUI's first full frame), CONNTOP_MEASURE_TUI_RUNS how many
// times the TUI is started for its first frame, CONNTOP_MEASURE_STEPS
// the steps to run (a comma-separated list of tui, metrics and ssh; all
// by default),
// CONNTOP_MEASURE_SERVE_LIMIT_MIB a memory limit for serve --ssh (its
// cgroup's, and GOMEMLIMIT at 90% of it, as deploy/daemonset.yaml sets),
// CONNTOP_MEASURE_ACCT=1 turns the namespace's conntrack accounting on
// (nf_conntrack_acct, off by default) before the fill, so that every entry
// has counters.
// Every conntop process runs in a memory cgroup of 4 GiB (a bound, not a
// limit it is meant to reach). It prints "MEASURE" lines.
func TestMeasureBigTable(t *testing.T) {
	if os.Getenv("CONNTOP_MEASURE_BIG") != "1" {
		t.Skip("measurement: set CONNTOP_MEASURE_BIG=1 (scripts/measure-bigtable.sh)")
	}
	labtest.RequireRoot(t)
	requireTmux(t)
	n := envInt(t, "CONNTOP_MEASURE_N", bigTableCI, 1, 1<<23)
	rate := envInt(t, "CONNTOP_MEASURE_RATE", 3000, 1, 100000)
	// A window fits between two of the source's polls (every 40-140 s at
	// 262,144 entries); on a big table, where they are minutes apart, it
	// is long enough for a p99 of about 580 scrapes (190 in 20 s: the p99
	// is then the second slowest).
	window := 20 * time.Second
	if n >= 1<<20 {
		window = time.Minute
	}
	if v := os.Getenv("CONNTOP_MEASURE_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > 10*time.Minute {
			t.Fatalf("CONNTOP_MEASURE_WINDOW=%q: want a duration between 1s and 10m", v)
		}
		window = d
	}
	steps := map[string]bool{"tui": true, "metrics": true, "ssh": true}
	if v := os.Getenv("CONNTOP_MEASURE_STEPS"); v != "" {
		clear(steps)
		for _, step := range strings.Split(v, ",") {
			if step != "tui" && step != "metrics" && step != "ssh" {
				t.Fatalf("CONNTOP_MEASURE_STEPS=%q: want a comma-separated list of tui, metrics and ssh", v)
			}
			steps[step] = true
		}
	}
	bin := buildBinary(t)

	// Room for the event burst's and the churn's entries above the fill.
	burst := min(max(n/4, 262144), 1<<20)
	if labtest.ConntrackMax(t) < n+burst+65536 {
		labtest.RaiseConntrackTable(t, n+burst+65536)
	} else {
		labtest.HoldConntrackMax(t, false)
	}
	ns := labtest.NewNS(t, "mbig")
	cli := labtest.NewNS(t, "mbigc")
	// The churn's client closes first: its TIME_WAIT sockets must not use
	// up the ports of the one destination (60 s at 1,000 connections/s is
	// more than the default range), or the second churn window offers
	// less than the first.
	cli.Sysctl(t, "net.ipv4.ip_local_port_range", "1024 65535")
	cli.Sysctl(t, "net.ipv4.tcp_tw_reuse", "1")
	link := labtest.Connect(t, ns, cli, 23)
	ns.EnableConntrack(t, labtest.Conntrack{})
	// Churned connections leave the table a second after they close.
	ns.Sysctl(t, "net.netfilter.nf_conntrack_tcp_timeout_time_wait", "1")
	switch v := os.Getenv("CONNTOP_MEASURE_ACCT"); v {
	case "1":
		ns.Sysctl(t, "net.netfilter.nf_conntrack_acct", "1")
		t.Logf("MEASURE conntrack accounting on: every entry has counters")
	case "", "0":
	default:
		t.Fatalf("CONNTOP_MEASURE_ACCT=%q: want 1 or 0", v)
	}
	fillStart := time.Now()
	ns.FillConntrack(t, n)
	t.Logf("MEASURE fill: %d entries in %v", n, time.Since(fillStart).Round(time.Millisecond))

	// conntrack -L, the reference for the first frame.
	var listTime time.Duration
	if _, err := exec.LookPath("conntrack"); err == nil {
		st := time.Now()
		if out, err := ns.ExecTimeout(10*time.Minute, nil, "sh", "-c", "conntrack -L >/dev/null 2>&1"); err != nil {
			t.Fatalf("conntrack -L: %v: %s", err, out)
		}
		listTime = time.Since(st)
		t.Logf("MEASURE conntrack -L >/dev/null: %v at %d entries", listTime.Round(time.Millisecond), n)
	} else {
		t.Logf("MEASURE conntrack -L: not installed (apt-get install conntrack), not measured")
	}

	bound := func() *labtest.MemCgroup { return labtest.NewMemCgroup(t, max(4<<30, int64(n)*1536)) }
	perFlow := func(hwm int64) string {
		return fmt.Sprintf("%.1f MiB (%.1f bytes/flow above 64 MiB)", float64(hwm)/(1<<20), float64(hwm-64<<20)/float64(n))
	}

	// 1. The TUI in tmux: first full frame, then a sort change and a
	// filter, then its peak RSS.
	if steps["tui"] {
		all := widget.Count(uint64(n))
		profile := ""
		if p := os.Getenv("CONNTOP_MEASURE_TUI_CPUPROFILE"); p != "" {
			profile = " --cpuprofile " + shellQuote(p)
		}
		// firstFrame starts the TUI and waits for its first full frame.
		firstFrame := func(cg *labtest.MemCgroup) *tmuxSession {
			start := time.Now()
			s := startTmux(t, e2eWidth, e2eHeight, t.TempDir(), fmt.Sprintf("echo $$ > %s && exec %s --netns %s --source conntrack%s",
				shellQuote(cg.ProcsFile()), shellQuote(bin), shellQuote(ns.Name), profile))
			// The milestones on the way (to within the 100 ms of
			// polling): the first frame, the last one saying the table
			// is loading.
			var shown, loading time.Duration
			s.waitFor("the whole table", 10*time.Minute, func(scr string) bool {
				if strings.Contains(scr, "conntop") && shown == 0 {
					shown = time.Since(start)
				}
				if strings.Contains(scr, "loading table") {
					loading = time.Since(start)
				}
				return strings.Contains(scr, "shown "+all+" / "+all)
			})
			first := time.Since(start)
			ratio := ""
			if listTime > 0 {
				ratio = fmt.Sprintf(" = %.2f× conntrack -L", first.Seconds()/listTime.Seconds())
			}
			t.Logf("MEASURE TUI first full frame: %v%s (first frame at %v, last \"loading table\" at %v)",
				first.Round(time.Millisecond), ratio, shown.Round(time.Millisecond), loading.Round(time.Millisecond))
			return s
		}
		// More samples of the first frame on the same table
		// (CONNTOP_MEASURE_TUI_RUNS): it varies from run to run.
		for range envInt(t, "CONNTOP_MEASURE_TUI_RUNS", 1, 1, 20) - 1 {
			s := firstFrame(bound())
			s.keys("q")
			time.Sleep(2 * time.Second)
		}
		s := firstFrame(bound())
		pid, err := strconv.Atoi(s.display("#{pane_pid}"))
		if err != nil {
			t.Fatal(err)
		}
		if profile != "" {
			// The profile of the load alone: quit at the first frame.
			s.keys("q")
			time.Sleep(2 * time.Second) // the profile is written on the way out
			return
		}
		s.keys(">")
		time.Sleep(2 * time.Second)
		s.keys("/")
		s.typeText("tcp and dport 1000-1999")
		s.keys("Enter")
		time.Sleep(3 * time.Second)
		t.Logf("MEASURE TUI peak RSS at %d flows: %s", n, perFlow(vmHWM(t, pid)))
		s.keys("q")
	}

	// 2. serve --metrics alone.
	if steps["metrics"] {
		srv := startServe(t, bin, bound(), "--netns", ns.Path, "--source", "conntrack", "--metrics", freeAddr(t))
		srv.waitFlows(t, n)
		time.Sleep(2 * time.Second)
		t.Logf("MEASURE serve --metrics alone: peak RSS %s; now: RSS %.1f MiB, Go heap in use %.1f MiB",
			perFlow(vmHWM(t, srv.pid())), float64(vmRSS(t, srv.pid()))/(1<<20), srv.metric(t, "go_memstats_heap_inuse_bytes")/(1<<20))
		srv.stop()
	}

	// 3. serve --ssh --metrics: churn without viewers, then with 16.
	if !steps["ssh"] {
		return
	}
	dir := t.TempDir()
	authKeys, signer := sshClientKey(t, dir)
	sshAddr := freeAddr(t)
	sshArgs := []string{"--netns", ns.Path, "--source", "conntrack", "--metrics", freeAddr(t),
		"--ssh", sshAddr, "--authorized-keys", authKeys, "--host-key", filepath.Join(dir, "host_key")}
	if p := os.Getenv("CONNTOP_MEASURE_CPUPROFILE"); p != "" {
		sshArgs = append(sshArgs, "--cpuprofile", p) // the whole run of serve --ssh
	}
	sshCg, sshEnv := bound(), []string(nil)
	if v := os.Getenv("CONNTOP_MEASURE_SERVE_LIMIT_MIB"); v != "" {
		// The deployment's bound: a cgroup limit and GOMEMLIMIT at 90%
		// of it (deploy/daemonset.yaml).
		mib, err := strconv.Atoi(v)
		if err != nil || mib < 64 {
			t.Fatalf("CONNTOP_MEASURE_SERVE_LIMIT_MIB=%q: want MiB, at least 64", v)
		}
		sshCg = labtest.NewMemCgroup(t, int64(mib)<<20)
		sshEnv = []string{fmt.Sprintf("GOMEMLIMIT=%dMiB", mib*9/10)}
		t.Logf("MEASURE serve --ssh runs in a cgroup of %d MiB with GOMEMLIMIT=%dMiB", mib, mib*9/10)
	}
	srv := startServeEnv(t, bin, sshCg, sshEnv, sshArgs...)
	srv.waitFlows(t, n)
	loaded := time.Now()
	ln := ns.Listen(t, "tcp4", link.A4+":9000")
	go acceptAndClose(ln)

	// A source poll re-reads the whole table (counters, and the entries
	// older than the event subscription): every 80 listings' time, about
	// 40-140 s at 262,144 entries and 10 min at 4,194,304. One inside a window
	// but not the other weighs on the comparison of their CPU (seconds of
	// CPU at 4,194,304), so a window starts right after a poll if one
	// comes within 45 s, and one that a poll overlapped anyway is measured
	// again (up to twice). pollWork counts what a poll sends: its end, and
	// the entries it lists (counters, or every entry while silent ones
	// are left).
	pollWork := func() float64 {
		var n float64
		for _, v := range srv.metricValues(t, `conntop_events_total{type="poll-done"}`, `conntop_events_total{type="polled"}`, `conntop_events_total{type="counters"}`) {
			n += max(v, 0)
		}
		return n
	}
	measure := func(label string) (overlapped bool) {
		polls := func() float64 { return srv.metric(t, `conntop_events_total{type="poll-done"}`) }
		for p0, w := polls(), time.Now(); polls() == p0 && time.Since(w) < 45*time.Second; {
			time.Sleep(100 * time.Millisecond)
		}
		polls0, work0 := polls(), pollWork()
		lost0 := srv.metric(t, "conntop_events_lost_total")
		c0, t0 := cpuTicks(t, srv.pid()), time.Now()
		busy0, all0 := machineTicks(t)
		stop := make(chan struct{})
		var made atomic.Int64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); churn(cli, link.A4+":9000", rate, stop, &made) }()
		lat, failed := scrapeFrom(t, "http://"+srv.metrics+"/metrics", window)
		close(stop)
		wg.Wait()
		el := time.Since(t0)
		cpu := float64(cpuTicks(t, srv.pid())-c0) / clockTicks(t) / el.Seconds() * 100
		busy1, all1 := machineTicks(t)
		machine := float64(busy1-busy0) / float64(max(all1-all0, 1)) * 100
		overlapped = pollWork() != work0
		time.Sleep(2 * time.Second) // the last events arrive
		lost := srv.metric(t, "conntop_events_lost_total") - lost0
		slices.Sort(lat)
		p99 := lat[min(len(lat)-1, len(lat)*99/100)]
		r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
		t.Logf("MEASURE serve %s: %.0f connections/s made, events lost %.0f, /metrics p50 %v p90 %v p99 %v max %v (%d scrapes, %d failed), serve CPU %.1f%% of a core, machine %.0f%% busy (all cores), source polls in the window %.0f, overlapped by one %v",
			label, float64(made.Load())/el.Seconds(), lost, r(lat[len(lat)/2]), r(lat[len(lat)*9/10]), r(p99), r(lat[len(lat)-1]), len(lat), failed, cpu, machine, polls()-polls0, overlapped)
		return overlapped
	}
	run := func(label string) {
		for attempt := 1; ; attempt++ {
			if overlapped := measure(label); !overlapped || attempt == 3 {
				return
			}
			t.Logf("MEASURE serve %s: a source poll overlapped the window; measuring it again", label)
		}
	}
	run("no viewer under churn")

	viewers, probe := openViewers(t, sshAddr, signer, 16)
	// The viewers' first frames, sorts and filters (every keystroke of a
	// filter is a query): wait until serve is idle again, so that the
	// churn window measures viewers that watch, not their setting up.
	settled := settle(t, srv.pid(), 2*time.Minute)
	t.Logf("MEASURE 16 SSH viewers set up (sorts, filters typed key by key) in %v", settled.Round(100*time.Millisecond))
	run("16 viewers under churn")
	t.Logf("MEASURE serve with 16 SSH viewers: peak RSS %s; now: RSS %.1f MiB, Go heap in use %.1f MiB; degraded: history %.0f, linger %.0f",
		perFlow(vmHWM(t, srv.pid())), float64(vmRSS(t, srv.pid()))/(1<<20), srv.metric(t, "go_memstats_heap_inuse_bytes")/(1<<20),
		srv.metric(t, `conntop_store_degraded{what="history"}`), srv.metric(t, `conntop_store_degraded{what="linger"}`))
	mib := func(name string) float64 { return srv.metric(t, name) / (1 << 20) }
	t.Logf("MEASURE serve with 16 SSH viewers, memory: store %.1f MiB; Go runtime from the OS %.1f MiB (heap %.1f, of it idle %.1f, released %.1f; stacks %.1f; next GC at %.1f)",
		mib("conntop_store_memory_bytes"), mib("go_memstats_sys_bytes"), mib("go_memstats_heap_sys_bytes"), mib("go_memstats_heap_idle_bytes"),
		mib("go_memstats_heap_released_bytes"), mib("go_memstats_stack_inuse_bytes"), mib("go_memstats_next_gc_bytes"))
	if polls := srv.metric(t, `conntop_events_total{type="poll-done"}`); polls > 0 {
		t.Logf("MEASURE source polls since the table was loaded: %.0f in %v (one every %.1f s)",
			polls, time.Since(loaded).Round(time.Second), time.Since(loaded).Seconds()/polls)
	}
	// A viewer's key → frame over SSH (the help page: its query and
	// frame, the session's frame rate, the loopback's round trip), with
	// the other 15 watching a table at rest.
	lat := probe.helpLatency(t, 20)
	t.Logf("MEASURE ssh viewer key → frame (help page, 20 presses): p50 %v p90 %v max %v",
		lat[len(lat)/2].Round(100*time.Microsecond), lat[len(lat)*9/10].Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond))
	for _, v := range viewers {
		v.Close()
	}

	// A burst of new entries as fast as the kernel makes them (each one a
	// NEW event), on top of the loaded table: events lost, and whether
	// conntop's count follows the kernel's.
	{
		lost0 := srv.metric(t, "conntop_events_lost_total")
		st := time.Now()
		ns.FillConntrackRange(t, n, n+burst)
		el := time.Since(st)
		time.Sleep(3 * time.Second) // the last events arrive, churn's leftovers expire
		// The kernel reaps expired entries in its own time (and only then
		// reports them destroyed): compare the counts once they hold
		// still, for up to 30 s.
		kernel, ours := ns.ConntrackCount(t), srv.metric(t, "conntop_flows")
		for wait := time.Now(); float64(kernel) != ours && time.Since(wait) < 30*time.Second; {
			time.Sleep(time.Second)
			kernel, ours = ns.ConntrackCount(t), srv.metric(t, "conntop_flows")
		}
		t.Logf("MEASURE serve under an event burst: %d new entries in %v = %.0f events/s with %d flows loaded, events lost %.0f; conntop_flows %.0f, kernel count %d",
			burst, el.Round(time.Millisecond), float64(burst)/el.Seconds(), n, srv.metric(t, "conntop_events_lost_total")-lost0,
			ours, kernel)
	}
	srv.stop()
}

func envInt(t *testing.T, name string, def, lo, hi int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, ",", ""))
	if err != nil || n < lo || n > hi {
		t.Fatalf("%s=%q: want a number from %d to %d", name, v, lo, hi)
	}
	return n
}

// vmHWM returns the peak resident set size of pid.
func vmHWM(t *testing.T, pid int) int64 { t.Helper(); return procStatus(t, pid, "VmHWM:") }

// vmRSS returns the resident set size of pid.
func vmRSS(t *testing.T, pid int) int64 { t.Helper(); return procStatus(t, pid, "VmRSS:") }

// procStatus returns a kB field of /proc/PID/status in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of %d: %v", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s %q", field, v)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s for %d", field, pid)
	return 0
}

// served is a `conntop serve` process in a cgroup.
type served struct {
	cmd     *exec.Cmd
	metrics string
	exited  chan struct{}
	log     string
}

func startServe(t *testing.T, bin string, cg *labtest.MemCgroup, args ...string) *served {
	t.Helper()
	return startServeEnv(t, bin, cg, nil, args...)
}

// startServeEnv is startServe with env added to the environment.
func startServeEnv(t *testing.T, bin string, cg *labtest.MemCgroup, env []string, args ...string) *served {
	t.Helper()
	s := &served{exited: make(chan struct{}), log: filepath.Join(t.TempDir(), "serve.log")}
	for i, a := range args {
		if a == "--metrics" {
			s.metrics = args[i+1]
		}
	}
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	s.cmd = exec.Command("sh", "-c", fmt.Sprintf("echo $$ > %s && exec %s serve %s", shellQuote(cg.ProcsFile()), shellQuote(bin), strings.Join(q, " ")))
	s.cmd.Env = append(os.Environ(), env...)
	f, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = f, f
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); f.Close(); close(s.exited) }()
	t.Cleanup(s.stop)
	return s
}

func (s *served) pid() int { return s.cmd.Process.Pid }

func (s *served) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// waitFlows waits (bounded) until /metrics reports n flows.
func (s *served) waitFlows(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		select {
		case <-s.exited:
			b, _ := os.ReadFile(s.log)
			t.Fatalf("conntop serve exited:\n%s", b[max(0, len(b)-4096):])
		default:
		}
		if v := s.metric(t, "conntop_flows"); v >= float64(n) {
			return
		}
	}
	t.Fatalf("conntop serve did not load %d flows within 10 minutes", n)
}

// metric returns the value of a sample from /metrics, named as exposed
// (with its labels, if any), or -1 when it is absent.
func (s *served) metric(t *testing.T, name string) float64 {
	t.Helper()
	return s.metricValues(t, name)[0]
}

// metricValues returns the values of samples from one read of /metrics
// (-1 for each one absent).
func (s *served) metricValues(t *testing.T, names ...string) []float64 {
	t.Helper()
	vals := make([]float64, len(names))
	for i := range vals {
		vals[i] = -1
	}
	code, body := httpGet(t, "http://"+s.metrics+"/metrics")
	if code != 200 {
		return vals
	}
	for _, l := range strings.Split(body, "\n") {
		for i, name := range names {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					vals[i] = f
				}
			}
		}
	}
	return vals
}

// acceptAndClose accepts connections and closes them until ln closes.
func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}()
	}
}

// churn opens and closes TCP connections from cli to addr at about rate
// per second until stop closes, counting them in made.
func churn(cli *labtest.NS, addr string, rate int, stop <-chan struct{}, made *atomic.Int64) {
	const workers = 16
	per := time.Duration(float64(time.Second) * workers / float64(rate))
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := time.Now()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := cli.Dial("tcp4", addr)
				if err == nil {
					c.Close()
					made.Add(1)
				}
				next = next.Add(per)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				} else if d < -time.Second {
					next = time.Now() // behind: do not burst to catch up
				}
			}
		}()
	}
	wg.Wait()
}

// openViewers opens k SSH sessions with a terminal, each with its own sort
// (and every third a filter), whose output is read and discarded but for
// the first one's: it goes to the returned key probe.
func openViewers(t *testing.T, addr string, signer gossh.Signer, k int) ([]*gossh.Client, *keyProbe) {
	t.Helper()
	var out []*gossh.Client
	var probe *keyProbe
	for i := range k {
		c, err := gossh.Dial("tcp", addr, &gossh.ClientConfig{
			User: fmt.Sprintf("viewer%d", i), Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
			HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatalf("ssh viewer %d: %v", i, err)
		}
		out = append(out, c)
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RequestPty("xterm-256color", 40, 160, gossh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		stdin, err := s.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := s.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			probe = newKeyProbe(stdin)
			go probe.read(stdout)
		} else {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
		}
		if err := s.Shell(); err != nil {
			t.Fatal(err)
		}
		keys := strings.Repeat(">", i%9)
		if i%2 == 1 {
			keys += "r"
		}
		if i%3 == 0 {
			keys += "/" + []string{"tcp and dport 1000-1999", "udp", "ipv6", "state established and dport 3000-3999"}[i/3%4] + "\r"
		}
		go func() {
			time.Sleep(time.Second)
			_, _ = stdin.Write([]byte(keys))
		}()
	}
	return out, probe
}

// keyProbe times an SSH viewer's answer to a key: from writing "?" (the
// help page) to the frame that shows it arriving, and back.
type keyProbe struct {
	in   io.Writer
	mu   sync.Mutex
	seen []byte // output since the last key
	more chan struct{}
}

func newKeyProbe(in io.Writer) *keyProbe {
	return &keyProbe{in: in, more: make(chan struct{}, 1)}
}

// read keeps the session's output since the last key (at most its last
// 64 KiB).
func (p *keyProbe) read(r io.Reader) {
	b := make([]byte, 32<<10)
	for {
		n, err := r.Read(b)
		if n > 0 {
			p.mu.Lock()
			p.seen = append(p.seen, b[:n]...)
			if len(p.seen) > 64<<10 {
				p.seen = append(p.seen[:0], p.seen[len(p.seen)-32<<10:]...)
			}
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

// press writes key and returns how long it took until the output since
// contains want (at most limit; ok false then).
func (p *keyProbe) press(key, want string, limit time.Duration) (time.Duration, bool) {
	p.mu.Lock()
	p.seen = p.seen[:0]
	p.mu.Unlock()
	start := time.Now()
	if _, err := p.in.Write([]byte(key)); err != nil {
		return 0, false
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		found := bytes.Contains(p.seen, []byte(want))
		p.mu.Unlock()
		if found {
			return time.Since(start), true
		}
		select {
		case <-p.more:
		case <-deadline.C:
			return 0, false
		}
	}
}

// helpLatency opens and closes the help page k times, a quiet spell of
// varying length apart, and returns how long each opening took to arrive
// (sorted). The help page's "Filter language" line appears in no other
// frame; its closing is given time, not waited for.
func (p *keyProbe) helpLatency(t *testing.T, k int) []time.Duration {
	t.Helper()
	var lat []time.Duration
	for i := range k {
		d, ok := p.press("?", "language", 5*time.Second)
		if !ok {
			t.Fatalf("ssh viewer: no help page 5 s after \"?\"")
		}
		lat = append(lat, d)
		time.Sleep(300 * time.Millisecond)
		if _, err := p.in.Write([]byte("?")); err != nil {
			t.Fatalf("ssh viewer: %v", err)
		}
		// A pause that varies, so that the presses do not keep one phase
		// of the session's frame clock.
		time.Sleep(500*time.Millisecond + time.Duration(i*53%250)*time.Millisecond)
	}
	slices.Sort(lat)
	return lat
}

// settle waits (at most limit) until the process pid has used less than
// 10% of a core over a second, after at least 3 seconds, and returns how
// long that took.
func settle(t *testing.T, pid int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	time.Sleep(2 * time.Second)
	for time.Since(start) < limit {
		c0, t0 := cpuTicks(t, pid), time.Now()
		time.Sleep(time.Second)
		if float64(cpuTicks(t, pid)-c0)/clockTicks(t)/time.Since(t0).Seconds() < 0.10 {
			return time.Since(start)
		}
	}
	t.Logf("serve still busy after %v", limit)
	return time.Since(start)
}

// scrapeFrom scrapes url every 100 ms for d from a process of its own, as
// Prometheus does, and returns the latencies and the number of failed
// scrapes. The lab's own goroutines (its connection generator, the SSH
// clients of the viewers) would otherwise delay the scraper in this
// process's scheduler and be counted as serve's latency.
func scrapeFrom(t *testing.T, url string, d time.Duration) ([]time.Duration, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestScrapeHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CONNTOP_SCRAPE_URL="+url, "CONNTOP_SCRAPE_FOR="+d.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scraper: %v", err)
	}
	var lat []time.Duration
	failed := 0
	for _, l := range strings.Split(string(out), "\n") {
		var ns int64
		var code int
		if _, err := fmt.Sscanf(l, "SCRAPE %d %d", &ns, &code); err != nil {
			continue
		}
		lat = append(lat, time.Duration(ns))
		if code != 200 {
			failed++ // a timeout (10 s) counts with its latency
		}
	}
	if len(lat) == 0 {
		t.Fatalf("scraper: no scrape in its output:\n%.2000s", out)
	}
	return lat, failed
}

// TestScrapeHelper is scrapeFrom's scraper process: it does nothing unless
// CONNTOP_SCRAPE_URL is set.
func TestScrapeHelper(t *testing.T) {
	url := os.Getenv("CONNTOP_SCRAPE_URL")
	if url == "" {
		return
	}
	d, err := time.ParseDuration(os.Getenv("CONNTOP_SCRAPE_FOR"))
	if err != nil {
		t.Fatalf("CONNTOP_SCRAPE_FOR: %v", err)
	}
	for t0 := time.Now(); time.Since(t0) < d; {
		st := time.Now()
		code, _ := httpGet(t, url)
		fmt.Printf("SCRAPE %d %d\n", time.Since(st).Nanoseconds(), code)
		time.Sleep(100 * time.Millisecond)
	}
}

// machineTicks returns the CPU time of all cores from /proc/stat: busy
// (not idle or waiting for I/O) and in all.
func machineTicks(t *testing.T) (busy, all int64) {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatalf("read /proc/stat: %v", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		t.Fatalf("/proc/stat: %q", line)
	}
	// user nice system idle iowait irq softirq steal; guest time is
	// already counted in user.
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("/proc/stat: %q", line)
		}
		all += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, all
}
