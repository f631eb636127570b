//go:build linux

package untrack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conntop/conntop/internal/labtest"
)

func TestRuleset(t *testing.T) {
	got := Ruleset([]Port{{Port: 2222}, {Addr: netip.MustParseAddr("10.1.2.3"), Port: 9810},
		{Addr: netip.MustParseAddr("fd00::1"), Port: 9811}})
	want := `table inet conntop_untracked
delete table inet conntop_untracked
table inet conntop_untracked {
	chain prerouting {
		type filter hook prerouting priority raw; policy accept;
		tcp dport 2222 notrack comment "conntop serve"
		ip daddr 10.1.2.3 tcp dport 9810 notrack comment "conntop serve"
		ip6 daddr fd00::1 tcp dport 9811 notrack comment "conntop serve"
	}
	chain output {
		type filter hook output priority raw; policy accept;
		tcp sport 2222 notrack comment "conntop serve"
		ip saddr 10.1.2.3 tcp sport 9810 notrack comment "conntop serve"
		ip6 saddr fd00::1 tcp sport 9811 notrack comment "conntop serve"
	}
}
`
	if got != want {
		t.Errorf("Ruleset:\n%s\nwant:\n%s", got, want)
	}
}

func TestInstallRefusals(t *testing.T) {
	if _, err := Install(nil, Options{}); err == nil {
		t.Error("no ports: accepted")
	}
	if _, err := Install([]Port{{Port: 0}}, Options{}); err == nil || !strings.Contains(err.Error(), "port 0") {
		t.Errorf("port 0: %v", err)
	}
}

// TestExplain: the errors the kernel gives where nf_tables cannot be used
// say so, and what to do.
func TestExplain(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{unix.EPERM, "CAP_NET_ADMIN"},
		{unix.EPROTONOSUPPORT, "no nf_tables"},
		{unix.EOPNOTSUPP, "no nf_tables"},
		{unix.EAFNOSUPPORT, "no nf_tables"},
		{unix.ENOENT, "lacks a part of nf_tables"},
	} {
		err := explain(fmt.Errorf("nf_tables message 1 of 9: %w", c.err))
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v; want ErrUnavailable saying %q", c.err, err, c.want)
		}
	}
	if err := explain(errTimeout); errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("timeout: %v", err)
	}
}

// TestMain lets TestLabInstallRemove run Install in a child process (this
// test binary) as an unprivileged user.
func TestMain(m *testing.M) {
	if os.Getenv("CONNTOP_UNTRACK_CHILD") == "1" {
		_, err := Install([]Port{{Port: 2222}}, Options{Timeout: 5 * time.Second})
		fmt.Println(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLabInstallRemove installs the table in a namespace with no nft
// program on PATH, checks what nft lists, that the ports' connections
// leave no conntrack entry while others do, installs it again over itself
// (a stale table from a crashed run: replaced, not duplicated), removes
// it, and checks that a process without CAP_NET_ADMIN is refused with a
// clear error.
func TestLabInstallRemove(t *testing.T) {
	labtest.RequireRoot(t)
	nft, err := exec.LookPath("nft")
	if err != nil {
		t.Fatal(err)
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatal(err)
	}
	srv, cli := labtest.NewNS(t, "untrack"), labtest.NewNS(t, "untrack")
	link := labtest.Connect(t, srv, cli, 1)
	srv.EnableConntrack(t, labtest.Conntrack{})
	srv.ServeEcho(t, "tcp", link.A4+":2222")
	srv.ServeEcho(t, "tcp", link.A4+":8080")
	ports := []Port{{Port: 2222}, {Addr: netip.MustParseAddr(link.A4), Port: 9810},
		{Addr: netip.MustParseAddr(link.A6), Port: 9811}}

	install := func() *Table {
		t.Helper()
		// Install talks netlink itself: no nft program needed on PATH.
		path := os.Getenv("PATH")
		os.Setenv("PATH", t.TempDir())
		defer os.Setenv("PATH", path)
		var tab *Table
		if err := srv.Do(func() error {
			var err error
			tab, err = Install(ports, Options{})
			return err
		}); err != nil {
			t.Fatalf("Install: %v", err)
		}
		return tab
	}
	tab := install()
	t.Cleanup(func() { _ = tab.Remove() })
	tab = install() // over itself, as after a crash
	tables := srv.MustExec(t, nft, "list", "tables")
	if n := strings.Count(tables, "table inet "+TableName); n != 1 {
		t.Fatalf("%d tables %s after two installs; want 1:\n%s", n, TableName, tables)
	}
	listing := srv.MustExec(t, nft, "list", "table", "inet", TableName)
	if n := strings.Count(listing, "notrack"); n != 6 {
		t.Fatalf("%d notrack rules; want 6:\n%s", n, listing)
	}
	// nft decodes what Install encoded as the rules Ruleset describes.
	for _, line := range strings.Split(Ruleset(ports), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "type ") || strings.HasSuffix(line, "notrack comment \"conntop serve\"") {
			if !strings.Contains(listing, line) {
				t.Errorf("nft lists no %q:\n%s", line, listing)
			}
		}
	}

	for _, port := range []string{"2222", "8080"} {
		c := cli.DialTCP(t, net.JoinHostPort(link.A4, port))
		if err := labtest.Echo(c, "hello"); err != nil {
			t.Fatalf("port %s: %v", port, err)
		}
	}
	table := srv.MustExec(t, "cat", "/proc/net/nf_conntrack")
	if strings.Contains(table, "dport=2222") {
		t.Errorf("a connection to the untracked port is tracked:\n%s", table)
	}
	if !strings.Contains(table, "dport=8080") {
		t.Errorf("the connection to port 8080 is not tracked (conntrack not on?):\n%s", table)
	}

	// Remove works from any thread: the socket stays in the namespace.
	if err := tab.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if tables := srv.MustExec(t, nft, "list", "tables"); strings.Contains(tables, TableName) {
		t.Errorf("table left after Remove:\n%s", tables)
	}
	if err := tab.Remove(); err != nil {
		t.Errorf("Remove again: %v", err)
	}
	// A table deleted behind conntop's back: Remove is not an error.
	tab = install()
	srv.MustExec(t, nft, "delete", "table", "inet", TableName)
	if err := tab.Remove(); err != nil {
		t.Errorf("Remove of a table already gone: %v", err)
	}

	// Without CAP_NET_ADMIN (this binary re-run as nobody in the
	// namespace): a clear refusal.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", srv.Name, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
		exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "CONNTOP_UNTRACK_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	if !strings.Contains(string(out), ErrUnavailable.Error()) || !strings.Contains(string(out), "CAP_NET_ADMIN") {
		t.Errorf("Install without CAP_NET_ADMIN: %s; want ErrUnavailable naming CAP_NET_ADMIN", out)
	}
}
