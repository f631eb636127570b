package capture

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestParseDDD(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Instruction
		err  string
	}{
		{"accept all", "1\n6 0 0 262144\n", []Instruction{{Op: 6, K: 262144}}, ""},
		{"two", "2\n48 0 0 0\n21 0 1 96\n", []Instruction{{Op: 48}, {Op: 21, Jf: 1, K: 96}}, ""},
		{"empty", "", nil, "empty"},
		{"bad count", "x\n", nil, "bad instruction count"},
		{"count too big", "5000\n", nil, "bad instruction count"},
		{"short", "2\n6 0 0 1\n", nil, "4 numbers for 2"},
		{"jump out of range", "1\n21 300 0 1\n", nil, "instruction 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDDD(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("got %v, %v", got, err)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("instruction %d: %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func FuzzParseDDD(f *testing.F) {
	f.Add("1\n6 0 0 262144\n")
	f.Add("2\n48 0 0 0\n21 0 1 96\n")
	f.Fuzz(func(t *testing.T, s string) {
		prog, err := ParseDDD(s)
		if err == nil && (len(prog) == 0 || len(prog) > maxInstructions) {
			t.Fatalf("accepted a program of %d instructions", len(prog))
		}
	})
}

func TestCompileFilter(t *testing.T) {
	if prog, err := CompileFilter(context.Background(), "  "); err != nil || prog != nil {
		t.Fatalf("empty filter: %v %v", prog, err)
	}
	if _, err := exec.LookPath("tcpdump"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tcpdump is not installed: CI must test the real filter compiler")
		}
		_, err := CompileFilter(context.Background(), "tcp")
		if !errors.Is(err, ErrNoTcpdump) {
			t.Fatalf("without tcpdump: %v", err)
		}
		return
	}
	prog, err := CompileFilter(context.Background(), "tcp port 21 or icmp6")
	if err != nil || len(prog) < 5 {
		t.Fatalf("compile: %d instructions, %v", len(prog), err)
	}
	// The program starts from the IP header (LINKTYPE_RAW): its first load
	// reads the version nibble at offset 0.
	if prog[0].Op != 0x30 || prog[0].K != 0 {
		t.Errorf("first instruction %+v, want ldb [0]", prog[0])
	}
	_, err = CompileFilter(context.Background(), "tcp port")
	if err == nil || !strings.Contains(err.Error(), "tcp port") || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("bad filter: %v", err)
	}
	_, err = CompileFilter(context.Background(), "-w /tmp/x")
	if err == nil {
		t.Fatal("an expression starting with a dash was taken as an option")
	}
}
