//go:build linux

package untrack

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	_, err := Install([]Port{{Port: 2222}}, Options{Nft: filepath.Join(t.TempDir(), "nft")})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not installed") {
		t.Errorf("missing nft: %v; want ErrUnavailable saying it is not installed", err)
	}
}

// TestLabInstallRemove installs the table in a namespace, checks that the
// ports' connections leave no conntrack entry while others do, installs
// it again over itself (a stale table from a crashed run: replaced, not
// duplicated), removes it, and checks that nft without the permission is
// refused with a clear error.
func TestLabInstallRemove(t *testing.T) {
	labtest.RequireRoot(t)
	srv, cli := labtest.NewNS(t, "untrack"), labtest.NewNS(t, "untrack")
	link := labtest.Connect(t, srv, cli, 1)
	srv.EnableConntrack(t, labtest.Conntrack{})
	srv.ServeEcho(t, "tcp", link.A4+":2222")
	srv.ServeEcho(t, "tcp", link.A4+":8080")
	ports := []Port{{Port: 2222}, {Addr: netip.MustParseAddr(link.A4), Port: 9810}}

	install := func() *Table {
		t.Helper()
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
	t.Cleanup(func() { _ = srv.Do(tab.Remove) })
	tab = install() // over itself
	tables := srv.MustExec(t, "nft", "list", "tables")
	if n := strings.Count(tables, "table inet "+TableName); n != 1 {
		t.Fatalf("%d tables %s after two installs; want 1:\n%s", n, TableName, tables)
	}
	listing := srv.MustExec(t, "nft", "list", "table", "inet", TableName)
	if n := strings.Count(listing, "notrack"); n != 4 {
		t.Fatalf("%d notrack rules; want 4:\n%s", n, listing)
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

	if err := srv.Do(tab.Remove); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if tables := srv.MustExec(t, "nft", "list", "tables"); strings.Contains(tables, TableName) {
		t.Errorf("table left after Remove:\n%s", tables)
	}
	if err := srv.Do(tab.Remove); err != nil {
		t.Errorf("Remove of a table already gone: %v", err)
	}

	// Without CAP_NET_ADMIN (nft run as nobody): a clear refusal.
	nft, err := exec.LookPath("nft")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(t.TempDir(), "nft-nobody")
	script := "#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups " + nft + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	err = srv.Do(func() error {
		_, err := Install(ports, Options{Nft: wrapper, Timeout: 5 * time.Second})
		return err
	})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Errorf("nft without permission: %v; want ErrUnavailable naming CAP_NET_ADMIN", err)
	}
}
