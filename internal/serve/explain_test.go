package serve

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/conntop/conntop/internal/explain"
)

func TestExplainCommand(t *testing.T) {
	eng := newTestEngine(t, 6)
	ts := startServer(t, eng, func(cfg *Config) {
		cfg.Explain = explain.Hooks{Settings: func() explain.Settings {
			s := explain.Settings{Max: 100, Buckets: 128, Timeouts: map[string]uint32{}, CommandPrefix: "ip netns exec lab "}
			for _, to := range explain.TimeoutSysctls {
				s.Timeouts[to.Name] = to.Default
			}
			return s
		}}
	})
	c := ts.mustDial(t, "alice")
	tests := []struct {
		name, cmd  string
		wantStatus int
		want, not  []string
	}{
		{"text", "explain", 0, []string{"WHERE THE ENTRIES ARE", "nf_conntrack_tcp_timeout_established", "ADVICE"}, nil},
		{"json filtered", "explain --format json --filter 'dport 1002' --what-if 60", 0, []string{`"version": 1`, `"flows": 1`}, nil},
		{"bad what-if", "explain --what-if nf_conntrack_bogus=3", 2, []string{"not a conntrack timeout sysctl"}, nil},
		{"bad format", "explain --format csv", 2, []string{"want text or json"}, nil},
		{"bad filter", "explain --filter 'port nope'", 2, []string{"filter: position"}, nil},
		{"stray argument", "explain tcp", 2, []string{`unexpected argument "tcp"`}, nil},
		{"filter escaped", "explain --filter 'proto \x1b[2J'", 2, []string{"filter: position"}, []string{"\x1b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCommand(c, tt.cmd)
			status := 0
			var exit *gossh.ExitError
			if errors.As(err, &exit) {
				status = exit.ExitStatus()
			} else if err != nil {
				t.Fatalf("run: %v", err)
			}
			if status != tt.wantStatus {
				t.Errorf("exit status %d; want %d (output %q)", status, tt.wantStatus, tail(out, 500))
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, tail(out, 2000))
				}
			}
			for _, w := range tt.not {
				if strings.Contains(out, w) {
					t.Errorf("output contains %q:\n%s", w, tail(out, 1000))
				}
			}
		})
	}
	out, err := runCommand(c, "explain --format json")
	if err != nil {
		t.Fatal(err)
	}
	var r explain.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("explain json: %v\n%s", err, tail(out, 1000))
	}
	if r.Table.Flows != 6 || r.Table.Max != 100 || r.Table.Buckets != 128 || len(r.Classes) == 0 || len(r.Top.Dport) == 0 {
		t.Errorf("report over SSH: %+v", r.Table)
	}
}
