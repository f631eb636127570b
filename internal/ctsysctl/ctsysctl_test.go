//go:build linux

package ctsysctl

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/conntop/conntop/internal/explain"
	"github.com/conntop/conntop/internal/labtest"
)

func TestSlabObjectSize(t *testing.T) {
	slab := "slabinfo - version: 2.1\n" +
		"# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n" +
		"nf_conntrack_expect      0      0    208   19    1 : tunables    0    0    0 : slabdata      0      0      0\n" +
		"nf_conntrack         120    128    320   16    1 : tunables    0    0    0 : slabdata      8      8      0\n"
	if n, ok := SlabObjectSize([]byte(slab), "nf_conntrack"); !ok || n != 320 {
		t.Errorf("got %d %v, want 320", n, ok)
	}
	if _, ok := SlabObjectSize([]byte(slab), "nf_nat"); ok {
		t.Error("a missing cache was found")
	}
	if _, ok := SlabObjectSize([]byte("nf_conntrack x y z\n"), "nf_conntrack"); ok {
		t.Error("a malformed line was accepted")
	}
}

func TestCommandPrefix(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"", ""},
		{"lab", "ip netns exec lab "},
		{"/run/netns/lab", "ip netns exec lab "},
		{"/proc/42/ns/net", "nsenter --net=/proc/42/ns/net "},
		{"pid:42", "nsenter --net=/proc/42/ns/net "},
		{"a b", "ip netns exec 'a b' "},
		{"it's", `ip netns exec 'it'\''s' `},
	}
	for _, tt := range tests {
		if got := CommandPrefix(tt.spec); got != tt.want {
			t.Errorf("CommandPrefix(%q) = %q, want %q", tt.spec, got, tt.want)
		}
	}
}

// TestReadNamespace sets per-namespace timeouts in a fresh namespace and
// reads them back through it, while this namespace keeps its own.
func TestReadNamespace(t *testing.T) {
	ns := labtest.NewNS(t, "ctsysctl")
	ns.EnableConntrack(t, labtest.Conntrack{}) // loads nf_conntrack in the namespace
	ns.Sysctl(t, "net.netfilter.nf_conntrack_udp_timeout", "77")
	ns.Sysctl(t, "net.netfilter.nf_conntrack_tcp_timeout_time_wait", "33")
	s, err := Read(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Timeouts[explain.SysUDP]; got != 77 {
		t.Errorf("udp timeout %d, want 77 (problems: %v)", got, s.Problems)
	}
	if got := s.Timeouts[explain.SysTCPTimeWait]; got != 33 {
		t.Errorf("time_wait %d, want 33", got)
	}
	own, err := Read("")
	if err != nil {
		t.Fatal(err)
	}
	if own.Timeouts[explain.SysUDP] == 77 && readHere(t, explain.SysUDP) != 77 {
		t.Error("reading our own namespace returned the other namespace's value")
	}
	if own.Timeouts[explain.SysUDP] != readHere(t, explain.SysUDP) {
		t.Errorf("own namespace: %d, /proc says %d", own.Timeouts[explain.SysUDP], readHere(t, explain.SysUDP))
	}
	if s.Max == 0 || s.Max != uint64(labtest.ConntrackMax(t)) {
		t.Errorf("max %d, want the machine-wide %d", s.Max, labtest.ConntrackMax(t))
	}
	if s.Buckets == 0 {
		t.Errorf("buckets unknown: %v", s.Problems)
	}
	if s.EntryBytesFrom != slabinfo || s.EntryBytes < 128 {
		t.Errorf("entry size %d from %q (root reads /proc/slabinfo)", s.EntryBytes, s.EntryBytesFrom)
	}
	if s.CommandPrefix != "ip netns exec "+ns.Name+" " {
		t.Errorf("prefix %q", s.CommandPrefix)
	}
	if len(s.Problems) != 0 {
		t.Errorf("problems: %v", s.Problems)
	}
	if _, err := Read("ct-no-such-namespace-xyz"); err == nil {
		t.Error("a missing namespace gave no error")
	}
}

func readHere(t *testing.T, name string) uint32 {
	t.Helper()
	b, err := os.ReadFile(sysDir + name)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}
