package filter

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/conntop/conntop/internal/flow"
)

// mkFlow builds a flow for tests: proto, orig src:sport -> dst:dport, with
// the reply tuple the inverse of the original one.
func mkFlow(proto uint8, src string, sport uint16, dst string, dport uint16) flow.Flow {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	fam := flow.FamilyIPv4
	if s.Is6() {
		fam = flow.FamilyIPv6
	}
	f := flow.Flow{Family: fam, Proto: proto, Status: flow.StatusConfirmed}
	f.Orig = flow.Tuple{Src: s, Dst: d}
	if flow.HasPorts(proto) {
		f.Orig.SrcPort, f.Orig.DstPort = sport, dport
	}
	if flow.IsICMP(proto) {
		f.Orig.Type, f.Orig.ID = 8, sport
		if proto == flow.ProtoICMPv6 {
			f.Orig.Type = 128
		}
	}
	f.Reply = f.Orig.Reverse(proto)
	if proto == flow.ProtoTCP {
		f.TCPState = flow.TCPSynSent
	}
	return f
}

// fixtures returns named flows covering the primitives.
func fixtures() map[string]flow.Flow {
	m := map[string]flow.Flow{}

	web := mkFlow(flow.ProtoTCP, "10.0.0.1", 47494, "10.0.0.2", 443)
	web.Status |= flow.StatusSeenReply | flow.StatusAssured
	web.TCPState = flow.TCPEstablished
	web.Mark = 16
	m["web"] = web

	tw := mkFlow(flow.ProtoTCP, "10.0.0.1", 47495, "10.0.0.2", 443)
	tw.Status |= flow.StatusSeenReply | flow.StatusAssured
	tw.TCPState = flow.TCPTimeWait
	m["timewait"] = tw

	syn := mkFlow(flow.ProtoTCP, "10.0.0.3", 5000, "10.0.1.9", 22)
	m["syn"] = syn

	dns := mkFlow(flow.ProtoUDP, "10.0.0.1", 33333, "10.0.0.53", 53)
	dns.Status |= flow.StatusSeenReply
	dns.Zone = 7
	m["dns"] = dns

	ping6 := mkFlow(flow.ProtoICMPv6, "fd00::1", 99, "fd00::2", 0)
	m["ping6"] = ping6

	ftpData := mkFlow(flow.ProtoTCP, "10.0.0.2", 20, "10.0.0.1", 40000)
	ftpData.Status |= flow.StatusExpected
	ftpData.TCPState = flow.TCPSynSent
	m["ftpdata"] = ftpData

	// DNAT: 10.9.9.9 connects to 192.0.2.1:80, forwarded to 10.0.0.80:8080.
	nat := mkFlow(flow.ProtoTCP, "10.9.9.9", 40001, "192.0.2.1", 80)
	nat.Reply = flow.Tuple{Src: netip.MustParseAddr("10.0.0.80"), Dst: netip.MustParseAddr("10.9.9.9"), SrcPort: 8080, DstPort: 40001}
	nat.Status |= flow.StatusSeenReply | flow.StatusDstNAT
	nat.TCPState = flow.TCPEstablished
	m["nat"] = nat

	gre := mkFlow(flow.ProtoGRE, "10.0.0.1", 0, "10.0.0.2", 0)
	m["gre"] = gre

	sctp6 := mkFlow(flow.ProtoSCTP, "fd00::1", 1000, "fd00:1::5", 2000)
	m["sctp6"] = sctp6
	return m
}

func TestMatch(t *testing.T) {
	fx := fixtures()
	tests := []struct {
		expr string
		want []string // the fixtures that match
	}{
		{"", []string{"web", "timewait", "syn", "dns", "ping6", "ftpdata", "nat", "gre", "sctp6"}},
		{"   ", []string{"web", "timewait", "syn", "dns", "ping6", "ftpdata", "nat", "gre", "sctp6"}},
		{"tcp", []string{"web", "timewait", "syn", "ftpdata", "nat"}},
		{"TCP", []string{"web", "timewait", "syn", "ftpdata", "nat"}},
		{"udp", []string{"dns"}},
		{"icmp", nil},
		{"icmpv6", []string{"ping6"}},
		{"ipv4", []string{"web", "timewait", "syn", "dns", "ftpdata", "nat", "gre"}},
		{"ip", []string{"web", "timewait", "syn", "dns", "ftpdata", "nat", "gre"}},
		{"ipv6", []string{"ping6", "sctp6"}},
		{"ip6", []string{"ping6", "sctp6"}},
		{"proto gre", []string{"gre"}},
		{"proto 47", []string{"gre"}},
		{"proto sctp", []string{"sctp6"}},
		{"proto 6", []string{"web", "timewait", "syn", "ftpdata", "nat"}},
		{"host 10.0.0.53", []string{"dns"}},
		{"src host 10.0.0.3", []string{"syn"}},
		{"dst host 10.0.0.3", nil},
		{"src 10.0.0.3", []string{"syn"}},
		{"dst 10.0.0.53", []string{"dns"}},
		{"host fd00::2", []string{"ping6"}},
		{"host FD00:0::2", []string{"ping6"}},
		// plain host also matches the reply tuple (NAT); src/dst do not.
		{"host 10.0.0.80", []string{"nat"}},
		{"dst host 10.0.0.80", nil},
		{"dst host 192.0.2.1", []string{"nat"}},
		{"net 10.0.1.0/24", []string{"syn"}},
		{"net 10.0.1.77/24", []string{"syn"}},
		{"dst net 10.0.1.0/24", []string{"syn"}},
		{"src net 10.0.1.0/24", nil},
		{"src 10.0.0.0/30", []string{"web", "timewait", "syn", "dns", "ftpdata", "gre"}},
		{"net fd00::/64", []string{"ping6", "sctp6"}},
		{"dst net fd00:1::/32", []string{"sctp6"}},
		{"net 10.0.0.53", []string{"dns"}},
		{"port 443", []string{"web", "timewait"}},
		{"port https", []string{"web", "timewait"}},
		{"port 22", []string{"syn"}},
		{"port ssh", []string{"syn"}},
		{"dport 22", []string{"syn"}},
		{"sport 22", nil},
		{"dst port 22", []string{"syn"}},
		{"src port 5000", []string{"syn"}},
		{"port dns", []string{"dns"}},
		{"port domain", []string{"dns"}},
		{"port ftp-data", []string{"ftpdata"}},
		{"port 8080", []string{"nat"}}, // the reply (post-DNAT) port
		{"dport 8080", nil},
		{"port 1000-2000", []string{"sctp6"}},
		{"port 40000-40001", []string{"ftpdata", "nat"}},
		{"port 0", nil}, // gre and icmp have no ports
		{"udp port 53", []string{"dns"}},
		{"tcp port 53", nil},
		{"tcp dport 443", []string{"web", "timewait"}},
		{"ipv4 host 10.0.0.53", []string{"dns"}},
		{"state new", []string{"syn", "ping6", "gre", "sctp6"}},
		{"state NEW", []string{"syn", "ping6", "gre", "sctp6"}},
		{"state established", []string{"web", "timewait", "dns", "nat"}},
		{"state related", []string{"ftpdata"}},
		{"state new,related", []string{"syn", "ping6", "gre", "sctp6", "ftpdata"}},
		{"state time_wait", []string{"timewait"}},
		{"state TIME_WAIT,SYN_SENT", []string{"timewait", "syn", "ftpdata"}},
		{"state tcp:established", []string{"web", "nat"}},
		{"state tcp:SYN_SENT", []string{"syn", "ftpdata"}},
		{"mark 16", []string{"web"}},
		{"mark 0x10", []string{"web"}},
		{"zone 7", []string{"dns"}},
		{"assured", []string{"web", "timewait"}},
		{"unreplied", []string{"syn", "ping6", "ftpdata", "gre", "sctp6"}},
		{"not tcp", []string{"dns", "ping6", "gre", "sctp6"}},
		{"! tcp", []string{"dns", "ping6", "gre", "sctp6"}},
		{"!tcp", []string{"dns", "ping6", "gre", "sctp6"}},
		{"not not tcp", []string{"web", "timewait", "syn", "ftpdata", "nat"}},
		{"tcp and dport 443 and not state TIME_WAIT", []string{"web"}},
		{"tcp && dport 443 && !state TIME_WAIT", []string{"web"}},
		{"udp or icmpv6", []string{"dns", "ping6"}},
		{"udp || icmpv6", []string{"dns", "ping6"}},
		{"state new,related or udp port 53", []string{"syn", "ping6", "gre", "sctp6", "ftpdata", "dns"}},
		// equal precedence, left to right: (udp or tcp) and port 22
		{"udp or tcp and port 22", []string{"syn"}},
		// explicit grouping changes it
		{"udp or (tcp and port 22)", []string{"dns", "syn"}},
		// (tcp and port 22) or udp
		{"tcp and port 22 or udp", []string{"syn", "dns"}},
		{"not (tcp or udp)", []string{"ping6", "gre", "sctp6"}},
		{"((tcp))", []string{"web", "timewait", "syn", "ftpdata", "nat"}},
		{"tcp AND port 22", []string{"syn"}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			f, err := Parse(tt.expr)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.expr, err)
			}
			want := map[string]bool{}
			for _, n := range tt.want {
				if _, ok := fx[n]; !ok {
					t.Fatalf("bad fixture name %q", n)
				}
				want[n] = true
			}
			for name, fl := range fx {
				if got := f.Match(&fl); got != want[name] {
					t.Errorf("%q on %s = %v, want %v", tt.expr, name, got, want[name])
				}
			}
		})
	}
}

func TestNilFilterMatchesAll(t *testing.T) {
	var f *Filter
	fl := mkFlow(flow.ProtoTCP, "10.0.0.1", 1, "10.0.0.2", 2)
	if !f.Match(&fl) {
		t.Fatal("nil filter did not match")
	}
	if f.String() != "" {
		t.Fatalf("nil filter String = %q", f.String())
	}
	var z Filter
	if !z.Match(&fl) {
		t.Fatal("zero filter did not match")
	}
}

func TestString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"TCP", "tcp"},
		{"proto 6", "tcp"},
		{"proto 17", "udp"},
		{"proto GRE", "proto gre"},
		{"proto 200", "proto 200"},
		{"ip6", "ipv6"},
		{"sport 80", "src port 80"},
		{"dport http", "dst port 80"},
		{"port 1000-2000", "port 1000-2000"},
		{"port 5-5", "port 5"},
		{"src 10.0.0.1", "src host 10.0.0.1"},
		{"dst fd00::/8", "dst net fd00::/8"},
		{"net 10.1.2.3/8", "net 10.0.0.0/8"},
		{"host ::ffff:10.0.0.1", "host 10.0.0.1"},
		{"state time_wait,new", "state NEW,TIME_WAIT"},
		{"state tcp:established,established", "state ESTABLISHED,tcp:ESTABLISHED"},
		{"state tcp:close", "state CLOSE"},
		{"mark 0x10", "mark 16"},
		{"zone 3", "zone 3"},
		{"udp port 53", "udp and port 53"},
		{"state new or udp port 53", "state NEW or (udp and port 53)"},
		{"tcp && !(port 22 || port 80)", "tcp and not (port 22 or port 80)"},
		{"(tcp or udp) and (port 1 or port 2)", "tcp or udp and (port 1 or port 2)"},
		{"not (assured and unreplied)", "not (assured and unreplied)"},
	}
	for _, tt := range tests {
		f, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := f.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		expr string
		pos  int
		msg  string // substring of the message
	}{
		{"tcp and port", 12, `expected port number after "port"`},
		{"state ESTABLISHD", 6, `unknown state "ESTABLISHD" (did you mean ESTABLISHED?)`},
		{"state new,ESTABLISHD", 10, `unknown state "ESTABLISHD" (did you mean ESTABLISHED?)`},
		{"state new,,related", 10, "empty state name"},
		{"state invalid", 6, "never appears in the table"},
		{"state", 5, "expected a state name"},
		{"state tcp:foo", 6, `unknown TCP state "foo"`},
		{"tpc", 0, `unknown word "tpc" (did you mean tcp?)`},
		{"tcp and", 7, "expected a filter term at end of filter"},
		{"tcp udp", 4, `expected "and" or "or" before "udp"`},
		{"(tcp", 4, `missing ")" to close "(" at position 0`},
		{"tcp)", 3, `unbalanced ")"`},
		{"()", 1, `expected a filter term, got ")"`},
		{"tcp & udp", 4, `unexpected "&" (did you mean "&&"?)`},
		{"tcp | udp", 4, `unexpected "|" (did you mean "||"?)`},
		{"port 70000", 5, "port 70000 out of range 0-65535"},
		{"port foo", 5, `invalid port "foo"`},
		{"port 2000-1000", 5, "reversed"},
		{"port 1-x", 5, `invalid port "x"`},
		{"host 10.0.0.256", 5, `invalid address "10.0.0.256"`},
		{"host 10.0.0.0/8", 5, `use "net" for a network`},
		{"host fe80::1%eth0", 5, "invalid address"},
		{"net 10.0.0.0/33", 4, `invalid network "10.0.0.0/33"`},
		{"net foo", 4, "invalid network"},
		{"src", 3, `expected "host", "net" or "port" after "src", got end of filter`},
		{"dst foo", 4, `expected "host", "net" or "port" after "dst"`},
		{"proto", 5, `expected a protocol name or number after "proto"`},
		{"proto foo", 6, `unknown protocol "foo"`},
		{"proto 256", 6, `unknown protocol "256"`},
		{"mark x", 5, "mark must be a number"},
		{"mark", 4, `expected a number after "mark"`},
		{"zone 65536", 5, "zone must be a number 0-65535"},
		{"icmp port 80", 5, "icmp has no ports"},
		{"icmp dst port 80", 5, "icmp has no ports"},
		{"not", 3, "expected a filter term"},
		{"tcp and or udp", 8, `expected a filter term, got "or"`},
		{strings.Repeat("(", 100) + "tcp" + strings.Repeat(")", 100), 64, "nested too deeply"},
		{strings.Repeat("not ", 100) + "tcp", 256, "nested too deeply"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			f, err := Parse(tt.expr)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want error", tt.expr, f.String())
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T %v is not *SyntaxError", err, err)
			}
			if se.Pos != tt.pos || !strings.Contains(se.Msg, tt.msg) || se.Expr != tt.expr {
				t.Errorf("Parse(%q) error = pos %d %q, want pos %d containing %q", tt.expr, se.Pos, se.Msg, tt.pos, tt.msg)
			}
			if want := "filter: position "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), want)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Parse("tcp and port")
	if got, want := err.Error(), `filter: position 12: expected port number after "port"`; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	f := MustParse("tcp and dport 443 and not state TIME_WAIT or host fd00::1 or net 10.0.0.0/8 and mark 3")
	fl := fixtures()["web"]
	if n := testing.AllocsPerRun(100, func() { f.Match(&fl) }); n != 0 {
		t.Fatalf("Match allocated %v times", n)
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("MustParse of a bad filter did not panic")
		}
	}()
	MustParse("tcp and")
}
