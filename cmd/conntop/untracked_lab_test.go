//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/conntop/conntop/internal/labtest"
)

// fillAssured fills the conntrack table of ns with ASSURED UDP entries
// (10.210.x.y:port -> 10.211.0.1:53, 1200 s) by batched ctnetlink creates,
// until the kernel refuses them (the table is full) or n were sent.
// ASSURED entries are never early-dropped: a full table of them refuses
// every new connection.
func fillAssured(t *testing.T, ns *labtest.NS, n int) {
	t.Helper()
	const (
		ctNew         = 1 << 8 // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW (0)
		flags         = 0x1 | 0x400 | 0x200
		nested        = 0x8000
		statusAssured = 1<<1 | 1<<2 | 1<<3 // SEEN_REPLY | ASSURED | CONFIRMED
	)
	attr := func(b []byte, typ uint16, v []byte) []byte {
		b = binary.NativeEndian.AppendUint16(b, uint16(4+len(v)))
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	nest := func(b []byte, typ uint16, fn func([]byte) []byte) []byte {
		off := len(b)
		b = binary.NativeEndian.AppendUint16(b, 0)
		b = binary.NativeEndian.AppendUint16(b, typ|nested)
		b = fn(b)
		binary.NativeEndian.PutUint16(b[off:], uint16(len(b)-off))
		return b
	}
	tuple := func(b []byte, typ uint16, src, dst [4]byte, sport, dport uint16) []byte {
		return nest(b, typ, func(b []byte) []byte {
			b = nest(b, 1, func(b []byte) []byte { // CTA_TUPLE_IP
				return attr(attr(b, 1, src[:]), 2, dst[:])
			})
			return nest(b, 2, func(b []byte) []byte { // CTA_TUPLE_PROTO
				b = attr(b, 1, []byte{17})
				b = attr(b, 2, binary.BigEndian.AppendUint16(nil, sport))
				return attr(b, 3, binary.BigEndian.AppendUint16(nil, dport))
			})
		})
	}
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		rbuf := make([]byte, 64<<10)
		refused := 0
		drain := func() {
			for {
				k, _, err := unix.Recvfrom(fd, rbuf, unix.MSG_DONTWAIT)
				if err != nil || k <= 0 {
					return
				}
				for b := rbuf[:k]; len(b) >= 20; {
					l := int(binary.NativeEndian.Uint32(b))
					if binary.NativeEndian.Uint16(b[4:]) == 2 && int32(binary.NativeEndian.Uint32(b[16:])) != 0 {
						refused++
					}
					if l < 16 || l > len(b) {
						break
					}
					b = b[(l+3)&^3:]
				}
			}
		}
		var batch []byte
		dst := [4]byte{10, 211, 0, 1}
		for i := 0; i < n && refused == 0; i++ {
			src := [4]byte{10, 210, byte(i >> 14), byte(i >> 6)}
			sport := uint16(1024 + i&63)
			start := len(batch)
			batch = binary.NativeEndian.AppendUint32(batch, 0)
			batch = binary.NativeEndian.AppendUint16(batch, ctNew)
			batch = binary.NativeEndian.AppendUint16(batch, flags)
			batch = binary.NativeEndian.AppendUint32(batch, uint32(i))
			batch = binary.NativeEndian.AppendUint32(batch, 0)
			batch = append(batch, unix.AF_INET, 0, 0, 0)
			batch = tuple(batch, 1, src, dst, sport, 53)
			batch = tuple(batch, 2, dst, src, 53, sport)
			batch = attr(batch, 3, binary.BigEndian.AppendUint32(nil, statusAssured)) // CTA_STATUS
			batch = attr(batch, 7, binary.BigEndian.AppendUint32(nil, 1200))          // CTA_TIMEOUT
			binary.NativeEndian.PutUint32(batch[start:], uint32(len(batch)-start))
			if len(batch) > 60<<10 || i == n-1 {
				if err := unix.Sendto(fd, batch, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
					return fmt.Errorf("send creates: %w", err)
				}
				batch = batch[:0]
				drain()
			}
		}
		time.Sleep(50 * time.Millisecond)
		drain()
		return nil
	})
	if err != nil {
		t.Fatalf("fill the table of %s: %v", ns.Name, err)
	}
}

// lockedBuffer is a goroutine-safe bytes.Buffer for a child's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLabUntrackedReachableWhenFull fills a namespace's conntrack table to
// nf_conntrack_max with ASSURED entries: a plain TCP connection into the
// namespace then fails, while `conntop serve --untracked` running there
// takes an SSH login that shows the whole table, and answers /metrics.
// After conntop exits (SIGTERM) no nftables table of it is left.
//
// conntop runs there as deploy/daemonset.yaml runs it: as user 65532 with
// no capability but the file capabilities of its binary
// (cap_net_admin,cap_net_raw=ep, as the Containerfile sets them), and
// with no nft program on PATH (the distroless image has none).
func TestLabUntrackedReachableWhenFull(t *testing.T) {
	labtest.RequireRoot(t)
	labtest.HoldConntrackMax(t, false)
	limit := labtest.ConntrackMax(t)
	bin := buildBinary(t)
	srv, cli := labtest.NewNS(t, "untracked"), labtest.NewNS(t, "untracked")
	link := labtest.Connect(t, srv, cli, 1)
	srv.EnableConntrack(t, labtest.Conntrack{})
	srv.ServeEcho(t, "tcp", link.A4+":8080")

	t0 := time.Now()
	fillAssured(t, srv, limit+1024)
	t.Logf("%v: table filled", time.Since(t0).Round(time.Millisecond))
	if got := srv.ConntrackCount(t); got < limit {
		t.Fatalf("the table holds %d entries after the fill; want the limit %d", got, limit)
	}
	if c, err := cli.Dial("tcp", net.JoinHostPort(link.A4, "8080")); err == nil {
		c.Close()
		t.Fatal("a TCP connection into the full namespace succeeded; the table is not full")
	}

	dir, bin := asDaemonSet(t, bin)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), gossh.MarshalAuthorizedKey(key.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dir, "authorized_keys"), daemonSetUID, daemonSetUID); err != nil {
		t.Fatal(err)
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatal(err)
	}
	sshAddr, metricsAddr := net.JoinHostPort(link.A4, "2222"), net.JoinHostPort(link.A4, "9810")
	uid := strconv.Itoa(daemonSetUID)
	cmd := exec.Command("ip", "netns", "exec", srv.Name, setpriv, "--reuid="+uid, "--regid="+uid, "--clear-groups",
		bin, "serve", "--untracked",
		"--ssh", sshAddr, "--metrics", metricsAddr,
		"--authorized-keys", filepath.Join(dir, "authorized_keys"), "--host-key", filepath.Join(dir, "host_key"))
	// No nft anywhere on PATH (ip and setpriv are named by their paths).
	cmd.Env = []string{"PATH=" + t.TempDir()}
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("conntop serve exited with %v\n%s", err, tail(logs.String(), 3000))
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("conntop serve did not exit within 20s of SIGTERM")
		}
	}
	t.Cleanup(stop)
	if !pollUntil(30*time.Second, func() bool { return strings.Contains(logs.String(), "serving the TUI over SSH") }) {
		t.Fatalf("conntop serve did not start:\n%s", tail(logs.String(), 3000))
	}

	t.Logf("%v: conntop serve started", time.Since(t0).Round(time.Millisecond))

	// /metrics from the client namespace, until the initial listing is in.
	hc := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) { return cli.Dial(network, addr) },
	}}
	var body string
	synced := pollUntil(60*time.Second, func() bool {
		resp, err := hc.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatalf("/metrics with the table full: %v", err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		body = string(b)
		return strings.Contains(body, `conntop_source_synced{source="conntrack"} 1`)
	})
	if !synced {
		t.Fatalf("/metrics never showed the source synced:\n%s", tail(body, 2000))
	}
	if !strings.Contains(body, "node_nf_conntrack_entries_limit "+strconv.Itoa(limit)) {
		t.Errorf("/metrics does not show the table's limit %d:\n%s", limit, tail(body, 2000))
	}
	t.Logf("%v: /metrics answers, source synced", time.Since(t0).Round(time.Millisecond))

	// SSH from the client namespace: log in and read the whole table.
	raw, err := cli.Dial("tcp", sshAddr)
	if err != nil {
		t.Fatalf("SSH port unreachable with the table full: %v\n%s", err, tail(logs.String(), 3000))
	}
	conn, chans, reqs, err := gossh.NewClientConn(raw, sshAddr, &gossh.ClientConfig{
		User: "ops", Auth: []gossh.AuthMethod{gossh.PublicKeys(key)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("SSH login with the table full: %v\n%s", err, tail(logs.String(), 3000))
	}
	client := gossh.NewClient(conn, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("snapshot --format text --filter 'dst host 10.211.0.1'"); err != nil {
		t.Fatal(err)
	}
	lines := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines++
	}
	if err := sess.Wait(); err != nil {
		t.Fatalf("snapshot over SSH: %v", err)
	}
	if lines < limit-2048 {
		t.Errorf("the snapshot over SSH listed %d filled entries; want about %d", lines, limit)
	}

	t.Logf("%v: SSH snapshot listed %d entries", time.Since(t0).Round(time.Millisecond), lines)
	client.Close()

	stop()
	if tables := srv.MustExec(t, "nft", "list", "tables"); strings.Contains(tables, "conntop_untracked") {
		t.Errorf("conntop's nftables table left after it exited:\n%s", tables)
	}
	for _, want := range []string{"untracked: connections to these ports skip conntrack", "untracked: nftables table removed"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, tail(logs.String(), 3000))
		}
	}
}

// daemonSetUID is the user deploy/daemonset.yaml runs conntop as.
const daemonSetUID = 65532

// asDaemonSet returns a directory owned by daemonSetUID (removed at
// cleanup) holding a copy of bin with the file capabilities the
// Containerfile gives it, and that copy's path.
func asDaemonSet(t *testing.T, bin string) (dir, capBin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "conntop-daemonset-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, daemonSetUID, daemonSetUID); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	capBin = filepath.Join(dir, "conntop")
	if err := os.WriteFile(capBin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("setcap", "cap_net_admin,cap_net_raw=ep", capBin).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v: %s", err, out)
	}
	return dir, capBin
}

// pollUntil polls cond every 20ms until it holds or timeout passes.
func pollUntil(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
