package services

import (
	"os"
	"strings"
	"testing"

	"github.com/conntop/conntop/internal/flow"
)

func TestParse(t *testing.T) {
	const in = `# comment
ssh		22/tcp				# SSH Remote Login Protocol
domain		53/tcp
domain		53/udp
http		80/tcp		www		# WorldWideWeb HTTP
www-alt		80/tcp
bogus		x/tcp
noproto		81
ddp		2/ddp
sctpthing	9999/sctp
`
	tb, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		proto uint8
		port  uint16
		want  string
	}{
		{flow.ProtoTCP, 22, "ssh"},
		{flow.ProtoUDP, 22, ""},
		{flow.ProtoUDP, 53, "domain"},
		{flow.ProtoUDPLite, 53, "domain"},
		{flow.ProtoTCP, 80, "http"}, // first name wins
		{flow.ProtoTCP, 81, ""},
		{flow.ProtoSCTP, 9999, "sctpthing"},
	}
	for _, tt := range tests {
		if got := tb.Name(tt.proto, tt.port); got != tt.want {
			t.Errorf("Name(%d, %d) = %q, want %q", tt.proto, tt.port, got, tt.want)
		}
	}
	if tb.Len() != 5 {
		t.Errorf("Len = %d, want 5", tb.Len())
	}
	var nilT *Table
	if nilT.Name(flow.ProtoTCP, 22) != "" || nilT.Len() != 0 {
		t.Error("nil Table knows names")
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load("/nonexistent/services"); err == nil || !strings.Contains(err.Error(), "load services") {
		t.Fatalf("Load of a missing file: err = %v", err)
	}
	if _, err := os.Stat(DefaultPath); err != nil {
		t.Skipf("no %s here", DefaultPath)
	}
	tb, err := Load(DefaultPath)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Name(flow.ProtoTCP, 22) != "ssh" {
		t.Fatalf("system services: 22/tcp = %q", tb.Name(flow.ProtoTCP, 22))
	}
}

func FuzzParse(f *testing.F) {
	f.Add("ssh 22/tcp\n")
	f.Add("a 65536/udp\n# x\nb 1/sctp c d\n")
	f.Fuzz(func(t *testing.T, in string) {
		tb, err := Parse(strings.NewReader(in))
		if err == nil && tb.Len() > strings.Count(in, "/")+1 {
			t.Fatalf("%d names from %d slashes", tb.Len(), strings.Count(in, "/"))
		}
	})
}
