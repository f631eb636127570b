//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/labtest"
)

// buildBinary builds conntop once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "conntop")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// waitInNetns waits (bounded) until process pid has entered the network
// namespace at nsPath, as `ip netns exec` does shortly after it starts.
func waitInNetns(t *testing.T, pid int, nsPath string) {
	t.Helper()
	var want syscall.Stat_t
	if err := syscall.Stat(nsPath, &want); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var got syscall.Stat_t
		if err := syscall.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &got); err == nil && got.Ino == want.Ino && got.Dev == want.Dev {
			return
		}
	}
	t.Fatalf("process %d did not enter %s within 10s", pid, nsPath)
}

// waitConntrackSubscriber waits (bounded) until a netfilter netlink socket
// in ns has joined multicast groups, i.e. a conntrack event listener (the
// conntop process under test) is subscribed there.
func waitConntrackSubscriber(t *testing.T, ns *labtest.NS) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out, err := ns.Exec("cat", "/proc/net/netlink")
		if err != nil {
			t.Fatalf("read /proc/net/netlink in %s: %v", ns.Name, err)
		}
		last = out
		for _, line := range strings.Split(out, "\n") {
			// sk Eth Pid Groups ...: Eth 12 is NETLINK_NETFILTER.
			if f := strings.Fields(line); len(f) > 3 && f[1] == "12" && strings.Trim(f[3], "0") != "" {
				return
			}
		}
	}
	t.Fatalf("no conntrack event listener subscribed in %s within 20s:\n%s", ns.Name, last)
}

// lab is two namespaces joined by a veth pair, conntrack active in srv, with
// some TCP, UDP and ICMP traffic tracked.
func lab(t *testing.T) (srv, cli *labtest.NS, link labtest.Link) {
	labtest.RequireRoot(t)
	srv, cli = labtest.NewNS(t, "cmd"), labtest.NewNS(t, "cmd")
	link = labtest.Connect(t, srv, cli, 7)
	srv.EnableConntrack(t, labtest.Conntrack{})
	ln := srv.ServeEcho(t, "tcp", link.A4+":8080")
	for i := 0; i < 3; i++ {
		c := cli.DialTCP(t, ln.Addr().String())
		if err := labtest.Echo(c, "hello"); err != nil {
			t.Fatal(err)
		}
	}
	if err := cli.SendUDP("", link.A4+":5353", 2, []byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := cli.Ping(link.A4, 77, 1); err != nil {
		t.Fatal(err)
	}
	return srv, cli, link
}

// normalizeConntrackL sorts `conntrack -L` lines and blanks the timeout
// column, which counts down between the two reads.
func normalizeConntrackL(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" || strings.HasPrefix(l, "conntrack v") {
			continue
		}
		f := strings.Fields(l)
		if len(f) > 2 {
			f[2] = "T"
		}
		out = append(out, strings.Join(f, " "))
	}
	sort.Strings(out)
	return out
}

func TestKernelSnapshotEqualsConntrackL(t *testing.T) {
	labtest.RequireRoot(t)
	bin := buildBinary(t) // before the traffic: a slow build must not let entries expire
	srv, _, _ := lab(t)
	want, err := srv.Output(20*time.Second, "conntrack", "-L")
	if err != nil {
		t.Fatalf("conntrack -L: %v", err)
	}
	// --netns from outside, and the same run inside the namespace.
	outside, err := exec.Command(bin, "snapshot", "--netns", srv.Name, "--format", "text", "--source", "conntrack").Output()
	if err != nil {
		t.Fatalf("conntop --netns: %v", err)
	}
	inside, err := srv.Output(20*time.Second, bin, "snapshot", "--format", "text")
	if err != nil {
		t.Fatalf("conntop inside the namespace: %v", err)
	}
	w := normalizeConntrackL(string(want))
	if len(w) < 5 {
		t.Fatalf("the kernel tracked only %d flows:\n%s", len(w), want)
	}
	for name, got := range map[string][]byte{"--netns": outside, "inside": inside} {
		g := normalizeConntrackL(string(got))
		if strings.Join(g, "\n") != strings.Join(w, "\n") {
			t.Errorf("%s: conntop snapshot differs from conntrack -L\nconntop:\n%s\nconntrack -L:\n%s", name, strings.Join(g, "\n"), strings.Join(w, "\n"))
		}
	}
	// --netns by path and by pid give the same table.
	byPath, err := exec.Command(bin, "snapshot", "--netns", srv.Path, "--format", "text").Output()
	if err != nil {
		t.Fatal(err)
	}
	if g := normalizeConntrackL(string(byPath)); strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("--netns PATH differs:\n%s", strings.Join(g, "\n"))
	}
	sleeper := exec.Command("ip", "netns", "exec", srv.Name, "sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	waitInNetns(t, sleeper.Process.Pid, srv.Path)
	byPid, err := exec.Command(bin, "snapshot", "--netns", "pid:"+itoa(sleeper.Process.Pid), "--format", "text").Output()
	if err != nil {
		t.Fatal(err)
	}
	if g := normalizeConntrackL(string(byPid)); strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("--netns pid: differs:\n%s", strings.Join(g, "\n"))
	}

	// JSON: the contract's top-level shape with the kernel's own figures.
	js, err := exec.Command(bin, "snapshot", "--netns", srv.Name).Output()
	if err != nil {
		t.Fatal(err)
	}
	var snap struct {
		Version int    `json:"version"`
		Source  string `json:"source"`
		Table   struct {
			Count uint64            `json:"count"`
			Max   uint64            `json:"max"`
			Stats map[string]uint64 `json:"stats"`
		} `json:"table"`
		Flows []json.RawMessage `json:"flows"`
	}
	if err := json.Unmarshal(js, &snap); err != nil {
		t.Fatalf("json: %v\n%s", err, js)
	}
	maxb, _ := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_max")
	if snap.Version != 1 || snap.Source != "conntrack" || len(snap.Flows) != len(w) ||
		itoa64(snap.Table.Max) != strings.TrimSpace(string(maxb)) || len(snap.Table.Stats) < 9 {
		t.Errorf("json snapshot: version %d source %q flows %d (want %d) max %d stats %v",
			snap.Version, snap.Source, len(snap.Flows), len(w), snap.Table.Max, snap.Table.Stats)
	}
}

func TestKernelEventsOfOneConnection(t *testing.T) {
	labtest.RequireRoot(t)
	srv, cli := labtest.NewNS(t, "cmdev"), labtest.NewNS(t, "cmdev")
	link := labtest.Connect(t, srv, cli, 8)
	srv.EnableConntrack(t, labtest.Conntrack{})
	srv.Sysctl(t, "net.netfilter.nf_conntrack_tcp_timeout_time_wait", "1")
	ln := srv.ServeEcho(t, "tcp", link.A4+":9090")
	bin := buildBinary(t)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "events", "--netns", srv.Name, "--filter", "tcp and dport 9090", "--count", "7", "--format", "ndjson")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitConntrackSubscriber(t, srv) // subscribed before the traffic starts
	c := cli.DialTCP(t, ln.Addr().String())
	if err := labtest.Echo(c, "ping"); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("conntop events: %v\nstderr: %s\nstdout: %s", err, errb.String(), out.String())
	}
	got := eventSequence(t, out.String())
	// The client closes first: FIN_WAIT, then the server's FIN (LAST_ACK),
	// the last ACK (TIME_WAIT); TIME_WAIT lasts 1s here, then destroy.
	want := "new:SYN_SENT update:SYN_RECV update:ESTABLISHED update:FIN_WAIT update:LAST_ACK update:TIME_WAIT destroy:TIME_WAIT"
	if got != want {
		t.Errorf("events of one connection:\n got %s\nwant %s", got, want)
	}
}

func TestKernelErrors(t *testing.T) {
	labtest.RequireRoot(t)
	bin := buildBinary(t)
	quiet := labtest.NewNS(t, "cmderr") // no rule uses conntrack here
	tests := []struct {
		name   string
		args   []string
		asUser bool
		want   []string
	}{
		{"missing namespace", []string{"snapshot", "--netns", "conntop-no-such-ns"}, false,
			[]string{`network namespace "conntop-no-such-ns" not found`}},
		{"missing pid", []string{"snapshot", "--netns", "pid:999999999"}, false, []string{"not found"}},
		{"not active", []string{"snapshot", "--netns", quiet.Name, "--source", "conntrack"}, false,
			[]string{"not active", "nft 'add table inet conntop"}},
		{"no permission", []string{"snapshot", "--source", "conntrack"}, true, []string{"CAP_NET_ADMIN"}},
		{"no capture permission", []string{"snapshot", "--source", "capture", "--duration", "1s"}, true, []string{"CAP_NET_RAW"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			name := bin
			if tt.asUser {
				// Drop to nobody with no capabilities at all.
				name = "setpriv"
				args = append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", bin}, args...)
			}
			cmd := exec.Command(name, args...)
			cmd.Dir = t.TempDir()
			var errb bytes.Buffer
			cmd.Stderr = &errb
			err := cmd.Run()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("want exit status 1, got %v; stderr %q", err, errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr %q does not contain %q", errb.String(), w)
				}
			}
		})
	}
	// With --source auto, a namespace where conntrack is not active falls back
	// to the capture and says why on stderr.
	cmd := exec.Command(bin, "snapshot", "--netns", quiet.Name, "--duration", "300ms", "--format", "csv")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("auto: %v: %s", err, errb.String())
	}
	if !strings.Contains(errb.String(), "not active") || !strings.Contains(errb.String(), "capture") {
		t.Errorf("auto fallback stderr %q", errb.String())
	}
	if !strings.HasPrefix(out.String(), "family,proto,state") {
		t.Errorf("auto fallback stdout %q", out.String())
	}
}

func itoa(n int) string      { return strconv.Itoa(n) }
func itoa64(n uint64) string { return strconv.FormatUint(n, 10) }
