package export

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/conntop/conntop/internal/flow"
)

// TestCompareJSON: "seen" and "disagree" appear only on flows the compare
// source marked, and say what flow.Flow.DisagreeReason says.
func TestCompareJSON(t *testing.T) {
	base := flow.Flow{
		ID: 7, Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: flow.TCPSynRecv,
		Status: flow.StatusConfirmed | flow.StatusSeenReply,
		Orig:   flow.Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: 40000, DstPort: 9002},
	}
	base.Reply = base.Orig.Reverse(base.Proto)
	tests := []struct {
		name     string
		cmp      flow.Compare
		proto    uint8
		seen     []string
		disagree string
	}{
		{"not compared", flow.Compare{}, flow.ProtoTCP, nil, ""},
		{"agree", flow.Compare{Seen: flow.SeenKernel | flow.SeenWire}, flow.ProtoTCP, []string{"kernel", "wire"}, ""},
		{"kernel only", flow.Compare{Seen: flow.SeenKernel, Disagree: flow.DisagreeKernelOnly}, flow.ProtoTCP, []string{"kernel"}, "kernel only"},
		{"wire only", flow.Compare{Seen: flow.SeenWire, Disagree: flow.DisagreeWireOnly}, flow.ProtoTCP, []string{"wire"}, "wire only"},
		{"state tcp", flow.Compare{Seen: flow.SeenKernel | flow.SeenWire, Disagree: flow.DisagreeState, WireState: flow.StateNew, WireTCPState: flow.TCPSynSent},
			flow.ProtoTCP, []string{"kernel", "wire"}, "state differs: kernel ESTABLISHED/SYN_RECV, wire NEW/SYN_SENT"},
		{"state udp", flow.Compare{Seen: flow.SeenKernel | flow.SeenWire, Disagree: flow.DisagreeState, WireState: flow.StateNew},
			flow.ProtoUDP, []string{"kernel", "wire"}, "state differs: kernel ESTABLISHED, wire NEW"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base
			f.Proto, f.Compare = tt.proto, tt.cmp
			if f.Proto != flow.ProtoTCP {
				f.TCPState = flow.TCPNone
			}
			js := FlowJSON(&f)
			var obj map[string]any
			if err := json.Unmarshal([]byte(js), &obj); err != nil {
				t.Fatalf("invalid JSON %s: %v", js, err)
			}
			if tt.seen == nil {
				if strings.Contains(js, `"seen"`) || strings.Contains(js, `"disagree"`) {
					t.Fatalf("unmarked flow has compare fields: %s", js)
				}
				return
			}
			var seen []string
			for _, v := range obj["seen"].([]any) {
				seen = append(seen, v.(string))
			}
			if strings.Join(seen, ",") != strings.Join(tt.seen, ",") {
				t.Errorf("seen = %v, want %v", seen, tt.seen)
			}
			if obj["disagree"] != tt.disagree || obj["disagree"] != f.DisagreeReason() {
				t.Errorf("disagree = %q, want %q (DisagreeReason %q)", obj["disagree"], tt.disagree, f.DisagreeReason())
			}
			plain := f
			plain.Compare = flow.Compare{}
			buf := make([]byte, 0, 1024)
			var e encoder
			nPlain := testing.AllocsPerRun(20, func() { _ = e.appendFlow(buf[:0], &plain) })
			nMarked := testing.AllocsPerRun(20, func() { _ = e.appendFlow(buf[:0], &f) })
			if nMarked > nPlain {
				t.Errorf("a marked flow costs %v allocations, an unmarked one %v", nMarked, nPlain)
			}
		})
	}
}
