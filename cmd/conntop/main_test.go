package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCLI runs one command line in-process and returns its exit status and
// output.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"unknown command", []string{"snapshots"}, `unknown command "snapshots"`},
		{"unknown flag", []string{"snapshot", "--colour"}, "flag provided but not defined: -colour"},
		{"bad source", []string{"--source", "kernel"}, `--source "kernel"`},
		{"pcap without read", []string{"--source", "pcap"}, "--source pcap needs --read FILE"},
		{"read with capture", []string{"--source", "capture", "--read", "x.pcap"}, "cannot be combined"},
		{"read with netns", []string{"--read", "x.pcap", "--netns", "foo"}, "--netns does not apply to --read"},
		{"format for events", []string{"events", "--format", "csv"}, `--format "csv" does not apply to events`},
		{"format for snapshot", []string{"snapshot", "--format", "ndjson"}, `--format "ndjson" does not apply to snapshot`},
		{"serve flag elsewhere", []string{"snapshot", "--ssh", ":2222"}, "--ssh is not a flag of snapshot; it applies to: serve"},
		{"tui flag on snapshot", []string{"snapshot", "--ascii"}, "--ascii is not a flag of snapshot; it applies to: conntop (TUI), serve"},
		{"flag before the command", []string{"--allow-delete", "snapshot"}, "--allow-delete is not a flag of snapshot; it applies to: conntop (TUI)"},
		{"output on the TUI", []string{"-o", "x.json"}, "--output is not a flag of conntop (TUI); it applies to: snapshot, events"},
		{"completion shell", []string{"completion", "tcsh"}, `completion: unknown shell "tcsh" (want bash, zsh, fish)`},
		{"completion without shell", []string{"completion"}, "completion needs SHELL: bash, zsh, fish"},
		{"help of nothing", []string{"help", "frobnicate"}, `help: unknown command "frobnicate"`},
		{"serve without listeners", []string{"serve"}, "serve needs --ssh ADDR, --metrics ADDR or both"},
		{"ftp ports", []string{"--ftp-ports", "21,x"}, `--ftp-ports: "x" is not a port number`},
		{"refresh", []string{"--refresh", "1ms"}, "too fast"},
		{"extra argument", []string{"snapshot", "events"}, `unexpected argument "events"`},
		{"negative count", []string{"events", "--count", "-1"}, "must not be negative"},
		{"filter syntax", []string{"snapshot", "--read", "../../testdata/pcap/zeek-icmp-ping.pcap", "--filter", "tcp and state ESTABLISHD"},
			"position 14: unknown state \"ESTABLISHD\" (did you mean ESTABLISHED?)\n  tcp and state ESTABLISHD\n                ^"},
		{"filter end", []string{"events", "--read", "../../testdata/pcap/zeek-icmp-ping.pcap", "--filter", "port"},
			"position 4: expected port number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "", tt.args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2 (stderr %q)", code, errOut)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q does not contain %q", errOut, tt.want)
			}
		})
	}
}

// TestErrorsAreEscaped checks that text the user or a file supplied (a path,
// a flag name) reaches stderr with its terminal controls made
// visible, while the message's own line breaks stay.
func TestErrorsAreEscaped(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"missing pcap path", []string{"snapshot", "--read", "/nonexistent/\x1b]0;pwned\x07.pcap"}, `/nonexistent/\x1b]0;pwned\x07.pcap`},
		{"flag name", []string{"--col\u202eour"}, `-col\u202eour`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, "", tt.args...)
			if code == 0 {
				t.Fatalf("exit status 0, want an error (stderr %q)", errOut)
			}
			if strings.ContainsAny(errOut, "\x1b\x07\u202e") {
				t.Errorf("stderr carries raw terminal controls: %q", errOut)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q does not contain %q", errOut, tt.want)
			}
			if !strings.HasSuffix(errOut, "\n") {
				t.Errorf("stderr %q does not end in a line break", errOut)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	code, out, _ := runCLI(t, "", "--help")
	if code != 0 || !strings.Contains(out, "conntop snapshot [flags]") || !strings.Contains(out, "--netns NAME|PATH|pid:PID") && !strings.Contains(out, "--netns string") {
		t.Errorf("--help: status %d, output:\n%s", code, out)
	}
	for _, want := range []string{"Examples:", "Filter language", "Exit status"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	code, out, _ = runCLI(t, "", "--version")
	if code != 0 || !strings.HasPrefix(out, "conntop ") {
		t.Errorf("--version: status %d, output %q", code, out)
	}
}

// oracleFlow is the part of a kernel-oracle entry the CLI test compares.
type oracleFlow struct {
	Proto    string `json:"proto"`
	TCPState string `json:"tcp_state"`
	Orig     struct {
		Src     string `json:"src"`
		Dst     string `json:"dst"`
		Sport   int    `json:"sport"`
		Dport   int    `json:"dport"`
		Packets uint64 `json:"packets"`
	} `json:"orig"`
	Related bool `json:"related"`
}

func TestSnapshotReadMatchesKernel(t *testing.T) {
	for _, name := range []string{"zeek-ftp-ipv4", "tcpdump-print-flags", "zeek-smtp-icmp-fragneeded"} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "", "snapshot", "--read", "../../testdata/kernel-oracle/"+name+".replay.pcap")
			if code != 0 {
				t.Fatalf("exit status %d: %s", code, errOut)
			}
			var snap struct {
				Version int    `json:"version"`
				Source  string `json:"source"`
				Flows   []struct {
					Proto    string   `json:"proto"`
					State    string   `json:"state"`
					TCPState string   `json:"tcp_state"`
					Status   []string `json:"status"`
					Orig     struct {
						Src   string `json:"src"`
						Dst   string `json:"dst"`
						Sport int    `json:"sport"`
						Dport int    `json:"dport"`
					} `json:"orig"`
					Counters *struct {
						OrigPackets uint64 `json:"orig_packets"`
					} `json:"counters"`
				} `json:"flows"`
			}
			if err := json.Unmarshal([]byte(out), &snap); err != nil {
				t.Fatalf("snapshot is not JSON: %v\n%s", err, out)
			}
			if snap.Version != 1 || snap.Source != "pcap" {
				t.Errorf("version %d source %q", snap.Version, snap.Source)
			}
			raw, err := os.ReadFile(filepath.Join("../../testdata/kernel-oracle", name+".kernel.json"))
			if err != nil {
				t.Fatal(err)
			}
			var want []oracleFlow
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			if len(snap.Flows) != len(want) {
				t.Fatalf("%d flows, the kernel kept %d", len(snap.Flows), len(want))
			}
			for _, w := range want {
				found := false
				for _, g := range snap.Flows {
					if g.Orig.Src == w.Orig.Src && g.Orig.Dst == w.Orig.Dst && g.Orig.Sport == w.Orig.Sport && g.Orig.Dport == w.Orig.Dport && g.Proto == w.Proto {
						found = true
						if g.TCPState != w.TCPState {
							t.Errorf("%+v: tcp_state %q, kernel %q", w.Orig, g.TCPState, w.TCPState)
						}
						if (g.State == "RELATED") != w.Related {
							t.Errorf("%+v: state %q, kernel related=%v", w.Orig, g.State, w.Related)
						}
						if g.Counters == nil || g.Counters.OrigPackets != w.Orig.Packets {
							t.Errorf("%+v: counters %+v, kernel orig packets %d", w.Orig, g.Counters, w.Orig.Packets)
						}
					}
				}
				if !found {
					t.Errorf("kernel flow %+v missing", w.Orig)
				}
			}
		})
	}
}

func TestSnapshotFormatsAndFilter(t *testing.T) {
	pcapFile := "../../testdata/kernel-oracle/zeek-ftp-ipv4.replay.pcap"
	code, out, errOut := runCLI(t, "", "snapshot", "--read", pcapFile, "--format", "text", "--filter", "dport 21")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "tcp      6 120 TIME_WAIT src=141.142.220.235 dst=199.233.217.249 sport=50003 dport=21 packets=38 bytes=2164 " +
		"src=199.233.217.249 dst=141.142.220.235 sport=21 dport=50003 packets=25 bytes=4458 [ASSURED] mark=0 helper=ftp use=1\n"
	if out != want {
		t.Errorf("text snapshot:\n got %q\nwant %q", out, want)
	}
	code, out, errOut = runCLI(t, "", "snapshot", "--read", pcapFile, "--format", "csv", "--filter", "state related")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "family,proto,state,tcp_state,src,sport,dst,dport,") {
		t.Errorf("csv: want a header and 4 RELATED rows, got:\n%s", out)
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "ipv4,tcp,RELATED,TIME_WAIT,") {
			t.Errorf("csv row %q", l)
		}
	}
	// The same file on stdin.
	raw, err := os.ReadFile(pcapFile)
	if err != nil {
		t.Fatal(err)
	}
	code, out2, errOut := runCLI(t, string(raw), "snapshot", "--read", "-", "--format", "text", "--filter", "dport 21")
	if code != 0 || out2 != want {
		t.Errorf("stdin replay: exit %d, %q, stderr %q", code, out2, errOut)
	}
}

func TestSnapshotOutputFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flows.json")
	pcapFile := "../../testdata/kernel-oracle/zeek-icmp-ping.replay.pcap"
	code, out, errOut := runCLI(t, "", "snapshot", "--read", pcapFile, "-o", path)
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	// An existing file is not overwritten without --force.
	code, _, errOut = runCLI(t, "", "snapshot", "--read", pcapFile, "-o", path)
	if code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("overwrite without --force: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "", "snapshot", "--read", pcapFile, "-o", path, "--force")
	if code != 0 {
		t.Errorf("--force: exit %d, stderr %q", code, errOut)
	}
	// A symlink is never followed.
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(filepath.Join(dir, "target"), link); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "", "snapshot", "--read", pcapFile, "-o", link, "--force")
	if code != 1 || !strings.Contains(errOut, "symlink") && !strings.Contains(errOut, "symbolic link") {
		t.Errorf("symlink: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "target")); err == nil {
		t.Error("the symlink's target was written")
	}
	// A missing directory is a clear error.
	code, _, errOut = runCLI(t, "", "snapshot", "--read", pcapFile, "-o", filepath.Join(dir, "no", "such", "dir.json"))
	if code != 1 || !strings.Contains(errOut, "no such file or directory") {
		t.Errorf("missing dir: exit %d, stderr %q", code, errOut)
	}
}

func TestSnapshotBrokenCapture(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/kernel-oracle/zeek-ftp-ipv4.replay.pcap")
	if err != nil {
		t.Fatal(err)
	}
	// Cut the file in the middle of a record: the table of the packets before
	// it is printed, and the error names the packet.
	code, out, errOut := runCLI(t, string(raw[:len(raw)/2+7]), "snapshot", "--read", "-", "--format", "text")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut, "packet ") {
		t.Errorf("stderr %q does not name the packet", errOut)
	}
	if !strings.Contains(out, "dport=21") {
		t.Errorf("the table read before the error was not printed: %q", out)
	}
	code, _, errOut = runCLI(t, "", "snapshot", "--read", "no-such-file.pcap")
	if code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "not a capture at all", "snapshot", "--read", "-")
	if code != 1 || errOut == "" {
		t.Errorf("garbage: exit %d, stderr %q", code, errOut)
	}
}

func TestEventsRead(t *testing.T) {
	code, out, errOut := runCLI(t, "", "events", "--read", "../../testdata/kernel-oracle/zeek-http-vlan-0.replay.pcap")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got := eventSequence(t, out)
	want := "new:SYN_SENT update:SYN_RECV update:ESTABLISHED update:FIN_WAIT update:LAST_ACK update:TIME_WAIT"
	if got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	code, out, _ = runCLI(t, "", "events", "--read", "../../testdata/kernel-oracle/tcpdump-print-flags.replay.pcap", "--count", "1", "--format", "text")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "[NEW] tcp") {
		t.Errorf("--count 1 --format text: exit %d, %q", code, out)
	}
}

// eventSequence reads NDJSON events and returns "type:tcp_state" of each,
// space-separated.
func eventSequence(t *testing.T, ndjson string) string {
	t.Helper()
	var seq []string
	for _, line := range strings.Split(strings.TrimSpace(ndjson), "\n") {
		var ev struct {
			Type string `json:"type"`
			Flow struct {
				TCPState string `json:"tcp_state"`
			} `json:"flow"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event line %q: %v", line, err)
		}
		seq = append(seq, ev.Type+":"+ev.Flow.TCPState)
	}
	return strings.Join(seq, " ")
}
