package tui

import (
	"fmt"
	"strings"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/termsafe"
)

// fidelityLines are the detail view's lines for what the kernel says of a
// flow beyond its tuples: its SCTP state, its use count when not 1, the
// tracker's packets by verdict (the ct state each packet had) and the
// pending expectations it made (an FTP data connection announced but not
// yet open).
func (m *detailPage) fidelityLines(f *flow.Flow, label func(string) string) []string {
	st := &m.st
	var out []string
	if f.Proto == flow.ProtoSCTP {
		out = append(out, label("sctp")+f.SCTPState.String())
	}
	if f.Use > 1 {
		out = append(out, label("use")+fmt.Sprintf("%d (1 + one per pending expectation)", f.Use))
	}
	if f.Verdicts.Total() > 0 {
		var parts []string
		for v := range flow.NumVerdicts {
			if n := f.Verdicts[v]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", strings.ToUpper(v.String()), n))
			}
		}
		out = append(out, label("packets")+strings.Join(parts, "  ")+st.dim.Render("  (by ct state)"))
	}
	for i := range m.sum.Table.Expectations {
		e := &m.sum.Table.Expectations[i]
		if e.MasterProto != f.Proto || e.Master != f.Orig || e.Zone != f.Zone {
			continue
		}
		sport := fmt.Sprint(e.Tuple.SrcPort)
		if e.Mask.SrcPort == 0 {
			sport = "*"
		}
		out = append(out, label("expects")+fmt.Sprintf("%s %s:%s %s %s:%d  %ds left  helper %s",
			flow.ProtoName(e.Proto), e.Tuple.Src, sport, st.arrow, e.Tuple.Dst, e.Tuple.DstPort, e.Timeout, termsafe.Escape(e.Helper)))
	}
	return out
}
