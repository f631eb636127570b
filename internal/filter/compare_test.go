package filter

import (
	"testing"

	"github.com/conntop/conntop/internal/flow"
)

// TestCompareKeywords covers the compare source's marks: disagree,
// kernelonly and wireonly, alone, negated and combined, and their
// normalized form.
func TestCompareKeywords(t *testing.T) {
	mark := func(seen flow.Seen, d flow.Disagree) flow.Flow {
		f := mkFlow(flow.ProtoTCP, "10.0.0.1", 40000, "10.0.0.2", 80)
		f.Compare = flow.Compare{Seen: seen, Disagree: d}
		if d == flow.DisagreeState {
			f.Compare.WireState, f.Compare.WireTCPState = flow.StateNew, flow.TCPSynSent
		}
		return f
	}
	flows := map[string]flow.Flow{
		"plain":  mkFlow(flow.ProtoUDP, "10.0.0.1", 1, "10.0.0.2", 2), // not compared
		"agree":  mark(flow.SeenKernel|flow.SeenWire, flow.DisagreeNone),
		"kernel": mark(flow.SeenKernel, flow.DisagreeKernelOnly),
		"wire":   mark(flow.SeenWire, flow.DisagreeWireOnly),
		"state":  mark(flow.SeenKernel|flow.SeenWire, flow.DisagreeState),
		// one side only, still within the grace period: not marked
		"pending": mark(flow.SeenWire, flow.DisagreeNone),
	}
	tests := []struct {
		expr, norm string
		want       []string
	}{
		{"disagree", "disagree", []string{"kernel", "wire", "state"}},
		{"DISAGREE", "disagree", []string{"kernel", "wire", "state"}},
		{"kernelonly", "kernelonly", []string{"kernel"}},
		{"wireonly", "wireonly", []string{"wire"}},
		{"not disagree", "not disagree", []string{"plain", "agree", "pending"}},
		{"disagree and not kernelonly and not wireonly", "disagree and not kernelonly and not wireonly", []string{"state"}},
		{"kernelonly or wireonly", "kernelonly or wireonly", []string{"kernel", "wire"}},
		{"tcp and disagree", "tcp and disagree", []string{"kernel", "wire", "state"}},
		{"udp and disagree", "udp and disagree", nil},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			f, err := Parse(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.String(); got != tt.norm {
				t.Errorf("String() = %q, want %q", got, tt.norm)
			}
			if f2, err := Parse(f.String()); err != nil || f2.String() != f.String() {
				t.Errorf("normalized form does not parse back: %v", err)
			}
			want := map[string]bool{}
			for _, n := range tt.want {
				want[n] = true
			}
			for name, fl := range flows {
				if got := f.Match(&fl); got != want[name] {
					t.Errorf("Match(%s) = %v, want %v", name, got, want[name])
				}
			}
		})
	}
}

// TestCompareKeywordsNoAlloc: the new primitives keep Match allocation-free.
func TestCompareKeywordsNoAlloc(t *testing.T) {
	f := MustParse("disagree or kernelonly or wireonly")
	fl := mkFlow(flow.ProtoTCP, "10.0.0.1", 1, "10.0.0.2", 2)
	fl.Compare.Disagree = flow.DisagreeState
	if n := testing.AllocsPerRun(100, func() { f.Match(&fl) }); n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
}

// TestCompareKeywordTypo: a misspelt keyword gets a suggestion.
func TestCompareKeywordTypo(t *testing.T) {
	_, err := Parse("wireonyl")
	if err == nil {
		t.Fatal("no error")
	}
	if got := err.Error(); got != `filter: position 0: unknown word "wireonyl" (did you mean wireonly?)` {
		t.Errorf("error = %q", got)
	}
}
