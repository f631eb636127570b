//go:build linux

package labtest

import (
	"strings"
	"testing"
)

func TestParseKernelTable(t *testing.T) {
	in := "ipv4     2 tcp      6 3599 ESTABLISHED src=10.200.0.0 dst=10.201.0.1 sport=1027 dport=4321 src=10.201.0.1 dst=10.200.0.0 sport=4321 dport=1027 [ASSURED] mark=0 zone=0 use=2\n" +
		"ipv6     10 udp      17 3599 src=fd00:0200:0000:0000:0000:0000:0000:0005 dst=fd00:0201:0000:0000:0000:0000:0000:0001 sport=1029 dport=53 [UNREPLIED] src=fd00:0201:0000:0000:0000:0000:0000:0001 dst=fd00:0200:0000:0000:0000:0000:0000:0005 sport=53 dport=1029 mark=0 use=2\n" +
		"ipv4     2 icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7 mark=0 use=2\n"
	var got []KernelEntry
	if err := parseKernelTable(strings.NewReader(in), func(e *KernelEntry) { got = append(got, *e) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d entries, want 3", len(got))
	}
	if e := got[0]; e.Proto != 6 || e.State != "ESTABLISHED" || !e.Assured || e.Src.String() != "10.200.0.0" || e.Sport != 1027 || e.Dport != 4321 || e.IPv6 {
		t.Errorf("tcp entry %+v", e)
	}
	if e := got[1]; e.Proto != 17 || e.State != "" || e.Assured || !e.IPv6 || e.Src.String() != "fd00:200::5" || e.Dport != 53 {
		t.Errorf("udp entry %+v", e)
	}
	if e := got[2]; e.Proto != 1 || e.Dst.String() != "10.0.0.2" || e.Dport != 0 {
		t.Errorf("icmp entry %+v", e)
	}
	for _, bad := range []string{"ipv4 2 tcp\n", "ipx 2 tcp 6 1 ESTABLISHED src=1.2.3.4 dst=1.2.3.4\n", "ipv4 2 udp 17 3 src=1.2.3 dst=1.2.3.4\n"} {
		if err := parseKernelTable(strings.NewReader(bad), func(*KernelEntry) {}); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func TestFillEntryAtUnique(t *testing.T) {
	seen := map[[2]any]bool{}
	v6 := 0
	for i := range 1 << 16 {
		e := FillEntryAt(i)
		k := [2]any{e.Src, e.Sport}
		if seen[k] {
			t.Fatalf("entry %d repeats source %v:%d", i, e.Src, e.Sport)
		}
		seen[k] = true
		if e.Dport < 1000 || e.Dport >= 6000 {
			t.Fatalf("entry %d: dport %d", i, e.Dport)
		}
		if e.IPv6 {
			v6++
		}
	}
	if v6 != 1<<13 {
		t.Errorf("%d IPv6 entries in 65536, want one in eight", v6)
	}
}

// TestFillConntrack fills a namespace and compares the kernel's own table
// with what was asked for.
func TestFillConntrack(t *testing.T) {
	ns := NewNS(t, "fill")
	ns.EnableConntrack(t, Conntrack{})
	HoldConntrackMax(t, false)
	const n = 4096
	if m := ConntrackMax(t); m < n {
		t.Fatalf("nf_conntrack_max %d is below %d", m, n)
	}
	ns.FillConntrack(t, n)
	want := map[[2]any]FillEntry{}
	for i := range n {
		e := FillEntryAt(i)
		want[[2]any{e.Src, e.Sport}] = e
	}
	tcp := 0
	err := ns.WalkKernelTable(func(k *KernelEntry) {
		w, ok := want[[2]any{k.Src, k.Sport}]
		if !ok || w.Proto != k.Proto || w.Dst != k.Dst || w.Dport != k.Dport || w.IPv6 != k.IPv6 || !k.Assured {
			t.Errorf("kernel entry %+v; asked for %+v", *k, w)
		}
		if k.Proto == 6 {
			tcp++
			if k.State != "ESTABLISHED" {
				t.Errorf("tcp entry in state %q", k.State)
			}
		}
		delete(want, [2]any{k.Src, k.Sport})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 0 || tcp != n/4 {
		t.Errorf("%d entries missing from the kernel table, %d TCP (want %d)", len(want), tcp, n/4)
	}
}
