//go:build linux

package labtest

import (
	"strings"
	"testing"

	"github.com/conntop/conntop/internal/netns"
)

func TestICMPChecksum(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want uint16
	}{
		{"zero", []byte{0, 0, 0, 0}, 0xffff},
		{"echo", []byte{8, 0, 0, 0, 0, 1, 0, 1}, 0xf7fd},
		{"odd", []byte{0xff}, 0x00ff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := icmpChecksum(tt.in); got != tt.want {
				t.Errorf("icmpChecksum(%x) = %#04x, want %#04x", tt.in, got, tt.want)
			}
		})
	}
}

func TestRuleset(t *testing.T) {
	r := RulesetConntrack(Conntrack{FTPHelper: true})
	for _, want := range []string{"ct helper ftp-standard", `tcp dport 21 ct helper set "ftp-standard"`, "hook prerouting", "hook output", "ct state new,established,related"} {
		if !strings.Contains(r, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, r)
		}
	}
	if strings.Contains(RulesetConntrack(Conntrack{}), "helper") {
		t.Error("ruleset without FTPHelper mentions a helper")
	}
}

// TestLab builds a two-namespace lab and sends TCP, UDP and ICMP (v4 and
// v6) through it; the server side's conntrack table must show each.
func TestLab(t *testing.T) {
	RequireRoot(t)
	srv, cli := NewNS(t, "lab"), NewNS(t, "lab")
	if srv.Name == cli.Name {
		t.Fatal("namespace names are not unique")
	}
	l := Connect(t, srv, cli, 7)
	srv.EnableConntrack(t, Conntrack{FTPHelper: true})

	ln := srv.ServeEcho(t, "tcp", l.A4+":8080")
	c := cli.DialTCP(t, ln.Addr().String())
	if err := Echo(c, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := cli.SendUDP(l.B4+":5353", l.A4+":53", 3, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := cli.Ping(l.A4, 0x1234, 2); err != nil {
		t.Fatal(err)
	}
	if err := cli.Ping(l.A6, 0x4321, 1); err != nil {
		t.Fatal(err)
	}
	out := srv.MustExec(t, "cat", "/proc/net/nf_conntrack")
	for _, want := range []string{"dport=8080", "sport=5353 dport=53", "id=4660", "id=17185", "ESTABLISHED"} {
		if !strings.Contains(out, want) {
			t.Errorf("conntrack table of %s lacks %q:\n%s", srv.Name, want, out)
		}
	}
	if out := cli.MustExec(t, "cat", "/proc/net/nf_conntrack"); out != "" {
		t.Errorf("client namespace has conntrack entries without any rule:\n%s", out)
	}

	// Do runs inside the namespace and returns to ours.
	before, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}
	want, err := netns.Inode(srv.Path)
	if err != nil {
		t.Fatal(err)
	}
	var inside uint64
	if err := srv.Do(func() error { var err error; inside, err = netns.Current(); return err }); err != nil {
		t.Fatal(err)
	}
	if inside != want || inside == before {
		t.Errorf("Do ran in namespace %d, want %d (caller's is %d)", inside, want, before)
	}
}
