//go:build linux

package tracker

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestKernelDiffCatchesDuplicates is a test of the harness's comparison
// (no root needed): a tracker table equal to the kernel's passes, the same
// table with one entry held twice fails, and so do a verdict count off by
// one and a timeout off by two seconds.
func TestKernelDiffCatchesDuplicates(t *testing.T) {
	tr, end := replay(t, filepath.Join(oracleDir, "zeek-ftp-ipv4.replay.pcap"))
	var kern kernelResult
	for _, f := range tr.AppendFlows(nil, end) {
		kern.addFlow(f)
	}
	kern.verdicts = tr.Stats().Verdicts
	if len(kern.lines) < 2 {
		t.Fatalf("want a table of several entries, got %d", len(kern.lines))
	}
	ours := kern
	if d := diffResults(kern, ours); d != "" {
		t.Fatalf("equal results differ:\n%s", d)
	}

	dup := kern
	dup.lines = append(append([]string(nil), kern.lines...), kern.lines[0])
	d := diffResults(kern, dup)
	if !strings.Contains(d, "tracker has 1 more of entry") {
		t.Fatalf("a duplicated tracker entry passes the comparison: %q", d)
	}
	if d := diffResults(dup, kern); !strings.Contains(d, "kernel has 1 more of entry") {
		t.Fatalf("a duplicated kernel entry passes the comparison: %q", d)
	}

	off := kern
	off.verdicts[CtRelated]++
	if d := diffResults(kern, off); !strings.Contains(d, "related packets") {
		t.Fatalf("a related count off by one passes: %q", d)
	}

	late := kern
	late.timeouts = map[string][]uint32{}
	for l, v := range kern.timeouts {
		late.timeouts[l] = append([]uint32(nil), v...)
	}
	late.timeouts[kern.lines[0]][0] += 2
	if d := diffResults(kern, late); !strings.Contains(d, "timeout: kernel") {
		t.Fatalf("a timeout off by 2 s passes: %q", d)
	}
	late.timeouts[kern.lines[0]][0]--
	if d := diffResults(kern, late); d != "" {
		t.Fatalf("a timeout off by 1 s fails: %q", d)
	}
}
