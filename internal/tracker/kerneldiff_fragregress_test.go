//go:build linux

package tracker

import (
	"slices"
	"testing"
	"time"
)

// TestMisalignedFragment6Regressions replays the frag-v6-misaligned*
// kernel-oracle scenarios (decode, then the tracker) without root, with
// this kernel's (6.18) verdicts written in: a non-last IPv6 fragment whose
// payload is not a multiple of 8 bytes discards its train and reaches
// conntrack unreassembled (nf_ct_frag6_gather's -EPROTO); a later fragment
// has no L4 protocol conntrack can find (invalid), a first one is parsed
// past its fragment header.
func TestMisalignedFragment6Regressions(t *testing.T) {
	const udpFlow = `ipv6 17  orig[fd00:1::1>fd00:2::2 sport=7000 dport=7001 type=0 code=0 id=0 packets=1 bytes=148] ` +
		`reply[fd00:2::2>fd00:1::1 sport=7001 dport=7000 type=0 code=0 id=0 packets=0 bytes=0] status=CONFIRMED helper="" related=false`
	const genericFlow = `ipv6 253  orig[fd00:1::1>fd00:2::2 sport=0 dport=0 type=0 code=0 id=0 packets=1 bytes=78] ` +
		`reply[fd00:2::2>fd00:1::1 sport=0 dport=0 type=0 code=0 id=0 packets=0 bytes=0] status=CONFIRMED helper="" related=false`
	want := map[string]struct {
		invalid uint64
		later   uint64 // of which later fragments (reasonLaterFragment)
		lines   []string
	}{
		"frag-v6-misaligned":               {1, 0, nil}, // a first UDP fragment: bad UDP length
		"frag-v6-misaligned-middle":        {1, 1, nil},
		"frag-v6-misaligned-after":         {1, 1, nil},
		"frag-v6-misaligned-then-whole":    {1, 1, []string{udpFlow}},
		"frag-v6-misaligned-hbh":           {1, 1, nil},
		"frag-v6-misaligned-twice":         {2, 0, nil},
		"frag-v6-misaligned-first-generic": {0, 0, []string{genericFlow}},
	}
	seen := 0
	for _, sc := range fragScenarios() {
		w, ok := want[sc.name]
		if !ok {
			continue
		}
		seen++
		t.Run(sc.name, func(t *testing.T) {
			sent := make([]time.Time, len(sc.frames))
			for i, f := range sc.frames {
				sent[i] = t0.Add(f.at)
			}
			got := runTracker(sc.frames, sent)
			if got.invalid != w.invalid || got.reasons[reasonLaterFragment] != w.later {
				t.Fatalf("invalid %d (reasons %v), want %d with %d later fragments", got.invalid, got.reasons, w.invalid, w.later)
			}
			if !slices.Equal(got.lines, w.lines) {
				t.Fatalf("entries %q, want %q", got.lines, w.lines)
			}
		})
	}
	if seen != len(want) {
		t.Fatalf("%d of the %d scenarios found", seen, len(want))
	}
}
