package filter

import (
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		"", "tcp", "udp port 53", "tcp and dport 443 and not state TIME_WAIT",
		"state new,related or udp port 53", "src host 10.0.0.1 && !(dst net fd00::/8 || port 1-1024)",
		"proto 47 or proto sctp", "mark 0x10 and zone 3 and assured or unreplied",
		"state tcp:established,CLOSE", "ipv6 src fd00::1", "not not (tcp)", "((", "tcp & udp",
		"port ftp-data", "port http-https", "net 10.1.2.3/8", "host ::ffff:1.2.3.4",
		"state ESTABLISHD", "icmp port 1", "src 10.0.0.0/8 or dst 10.0.0.1",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	flows := fixtures()
	f.Fuzz(func(t *testing.T, expr string) {
		flt, err := Parse(expr)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error %T is not *SyntaxError", expr, err)
			}
			if se.Pos < 0 || se.Pos > len(expr) {
				t.Fatalf("Parse(%q) error position %d outside 0..%d", expr, se.Pos, len(expr))
			}
			return
		}
		s := flt.String()
		again, err := Parse(s)
		if err != nil {
			t.Fatalf("String() of %q = %q does not parse: %v", expr, s, err)
		}
		if s2 := again.String(); s2 != s {
			t.Fatalf("String() not stable: %q -> %q -> %q", expr, s, s2)
		}
		for name, fl := range flows {
			if a, b := flt.Match(&fl), again.Match(&fl); a != b {
				t.Fatalf("%q and its normal form %q disagree on %s: %v vs %v", expr, s, name, a, b)
			}
		}
	})
}
