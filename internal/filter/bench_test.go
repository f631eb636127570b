package filter

import (
	"testing"

	"github.com/conntop/conntop/internal/flow"
)

type flowT struct{ f flow.Flow }

func BenchmarkMatch(b *testing.B) {
	fx := fixtures()
	flows := make([]*flowT, 0, len(fx))
	for _, fl := range fx {
		flows = append(flows, &flowT{fl})
	}
	for _, bc := range []struct{ name, expr string }{
		{"proto", "tcp"},
		{"typical", "tcp and dport 443 and not state TIME_WAIT"},
		{"net_or_port", "net 10.0.1.0/24 or host fd00::1 or port 1000-2000 or udp port 53"},
		{"all", ""},
	} {
		f := MustParse(bc.expr)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for i := 0; b.Loop(); i++ {
				if f.Match(&flows[i%len(flows)].f) {
					n++
				}
			}
			_ = n
		})
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("tcp and dport 443 and not state TIME_WAIT or src net 10.0.0.0/8"); err != nil {
			b.Fatal(err)
		}
	}
}
