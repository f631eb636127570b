package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/buildinfo"
	"github.com/conntop/conntop/internal/labtest"
)

// needTool returns the path of a program the test runs; without it the test
// skips, or fails when CI=true (.ci/run installs it).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if labtest.InCI() {
			t.Fatalf("%s is not installed (.ci/run installs it); CI=true so this fails", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// script renders a completion script into a file.
func script(t *testing.T, shell string) string {
	t.Helper()
	code, out, errOut := runCLI(t, "", "completion", shell)
	if code != 0 {
		t.Fatalf("completion %s: exit %d: %s", shell, code, errOut)
	}
	path := filepath.Join(t.TempDir(), "conntop."+shell)
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// longFlags are cmd's flags as "--name", plus --help, sorted.
func longFlags(cmd command) []string {
	var out []string
	for _, f := range flagsOf(cmd) {
		out = append(out, "--"+f.name)
	}
	out = append(out, "--help")
	slices.Sort(out)
	return out
}

func runShell(t *testing.T, name string, args ...string) []string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || errb.Len() > 0 {
			t.Fatalf("%s %q: %v, stderr %q", name, args, err, errb.String())
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%s %q did not finish", name, args)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// bashComplete runs the bash completion function on a command line (its
// words, the last being the word under the cursor) and returns COMPREPLY.
func bashComplete(t *testing.T, path string, words ...string) []string {
	t.Helper()
	return runShell(t, "bash", append([]string{"--norc", "--noprofile", "-c",
		`source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _conntop; printf '%s\n' "${COMPREPLY[@]}"`, path}, words...)...)
}

// fishComplete asks fish what it completes for a command line; it returns
// the candidates without their descriptions.
func fishComplete(t *testing.T, path, line string) []string {
	t.Helper()
	lines := runShell(t, "fish", "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, path, line)
	for i, l := range lines {
		lines[i], _, _ = strings.Cut(l, "\t")
	}
	return lines
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestCompletionEveryFlag renders the three scripts and checks that each
// offers exactly every flag of every command: bash and fish by running
// their completion on "conntop COMMAND --", zsh by reading each command's
// _arguments specs (and checking the script's syntax).
func TestCompletionEveryFlag(t *testing.T) {
	t.Run("bash", func(t *testing.T) {
		path := script(t, "bash")
		runShell(t, "bash", "-n", path)
		for _, c := range completedCommands() {
			got := bashComplete(t, path, append(append([]string{"conntop"}, commandWords(c.name)...), "--")...)
			if want := longFlags(c.name); !slices.Equal(sorted(got), want) {
				t.Errorf("bash: conntop %s --<TAB> = %v\nwant %v", c.name, sorted(got), want)
			}
		}
	})
	t.Run("fish", func(t *testing.T) {
		needTool(t, "fish")
		path := script(t, "fish")
		runShell(t, "fish", "--no-execute", path)
		for _, c := range completedCommands() {
			line := strings.Join(append(append([]string{"conntop"}, commandWords(c.name)...), "--"), " ")
			got := fishComplete(t, path, line)
			if want := longFlags(c.name); !slices.Equal(sorted(got), want) {
				t.Errorf("fish: %s<TAB> = %v\nwant %v", line, sorted(got), want)
			}
		}
	})
	t.Run("zsh", func(t *testing.T) {
		path := script(t, "zsh")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		src := string(raw)
		spec := regexp.MustCompile(`'(?:\([^)]*\))?(--[a-z0-9-]+)[=\[]`)
		for _, c := range completedCommands() {
			var block string
			if c.name == cmdTUI {
				_, block, _ = strings.Cut(src, "_arguments -C -s -S :")
				block, _, _ = strings.Cut(block, "'1: :->command'")
			} else {
				_, block, _ = strings.Cut(src, "\n\t\t"+string(c.name)+")\n")
				block, _, _ = strings.Cut(block, "&& ret=0 ;;")
			}
			var got []string
			for _, m := range spec.FindAllStringSubmatch(block, -1) {
				got = append(got, m[1])
			}
			if want := longFlags(c.name); !slices.Equal(sorted(got), want) {
				t.Errorf("zsh: %s specs %v\nwant %v", c.name, sorted(got), want)
			}
		}
		needTool(t, "zsh")
		runShell(t, "zsh", "-n", path)
	})
}

// TestCompletionValues: commands, flag values, filter words, interfaces,
// network namespaces and files.
func TestCompletionValues(t *testing.T) {
	bash := script(t, "bash")
	tests := []struct {
		words []string
		want  []string // all of these
		only  bool     // and nothing else
	}{
		{[]string{"conntop", "sn"}, []string{"snapshot"}, true},
		{[]string{"conntop", ""}, visibleCommandNames(), true},
		{[]string{"conntop", "snapshot", "--format", ""}, []string{"json", "csv", "text"}, true},
		{[]string{"conntop", "events", "--format", ""}, []string{"ndjson", "text"}, true},
		{[]string{"conntop", "snapshot", "--format", "=", ""}, []string{"json", "csv", "text"}, true},
		{[]string{"conntop", "--source", "c"}, []string{"conntrack", "capture", "conntrack,capture"}, true},
		{[]string{"conntop", "completion", ""}, []string{"bash", "zsh", "fish"}, true},
		{[]string{"conntop", "help", "ser"}, []string{"serve"}, true},
		{[]string{"conntop", "--filter", "st"}, []string{"state"}, true},
		{[]string{"conntop", "events", "--filter", "tcp and dp"}, []string{"tcp and dport"}, true},
		{[]string{"conntop", "--filter", "state TIME"}, []string{"state TIME_WAIT"}, true},
		{[]string{"conntop", "--iface", "l"}, []string{"lo"}, false},
		{[]string{"conntop", "--iface", "eth9,l"}, []string{"eth9,lo"}, false},
		{[]string{"conntop", "snapshot", "--read", "../../testdata/kernel-oracle/zeek-ftp-ipv4.rep"}, []string{"../../testdata/kernel-oracle/zeek-ftp-ipv4.replay.pcap"}, true},
		{[]string{"conntop", "--netns", "some-name-nobody-has"}, nil, true},
	}
	for _, tt := range tests {
		got := bashComplete(t, bash, tt.words...)
		for _, w := range tt.want {
			if !slices.Contains(got, w) {
				t.Errorf("bash %q: %v lacks %q", tt.words, got, w)
			}
		}
		if tt.only && len(got) != len(tt.want) {
			t.Errorf("bash %q = %v, want %v", tt.words, got, tt.want)
		}
	}
	// A flag's value is not taken for the command word.
	if got := bashComplete(t, bash, "conntop", "--filter", "events", "--asc"); !slices.Equal(got, []string{"--ascii"}) {
		t.Errorf("after --filter events, --asc completes to %v; want the TUI's --ascii", got)
	}

	t.Run("fish", func(t *testing.T) {
		needTool(t, "fish")
		fish := script(t, "fish")
		for line, want := range map[string]string{
			"conntop sn":                       "snapshot",
			"conntop events --format nd":       "ndjson",
			"conntop --filter 'tcp and dp":     "tcp and dport",
			"conntop --iface l":                "lo",
			"conntop completion z":             "zsh",
			"conntop snapshot --source conntr": "conntrack",
		} {
			if got := fishComplete(t, fish, line); !slices.Contains(got, want) {
				t.Errorf("fish %q = %v, lacks %q", line, got, want)
			}
		}
	})

	t.Run("netns", func(t *testing.T) {
		ns := labtest.NewNS(t, "compl")
		prefix := ns.Name[:len(ns.Name)-3]
		if got := bashComplete(t, bash, "conntop", "--netns", prefix); !slices.Equal(got, []string{ns.Name}) {
			t.Errorf("bash --netns %s = %v, want [%s]", prefix, got, ns.Name)
		}
		if _, err := exec.LookPath("fish"); err == nil {
			if got := fishComplete(t, script(t, "fish"), "conntop snapshot --netns "+prefix); !slices.Equal(got, []string{ns.Name}) {
				t.Errorf("fish --netns %s = %v, want [%s]", prefix, got, ns.Name)
			}
		}
	})
}

// TestManPageEveryFlag renders the man page and checks that OPTIONS
// documents every flag, that each command's entry lists exactly its flags,
// and (with groff) that the page formats without warnings.
func TestManPageEveryFlag(t *testing.T) {
	code, page, errOut := runCLI(t, "", "man")
	if code != 0 {
		t.Fatalf("man: exit %d: %s", code, errOut)
	}
	unesc := strings.NewReplacer(`\-`, "-", `\fB`, "", `\fR`, "", `\fI`, "", `\e`, `\`)
	_, opts, ok := strings.Cut(page, "\n.SH OPTIONS\n")
	if !ok {
		t.Fatal("no OPTIONS section")
	}
	opts, _, _ = strings.Cut(opts, "\n.SH ")
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\.TP\n(?:\\fB\\-[a-z]\\fR, )?\\fB\\-\\-([a-z0-9\\-]+)\\fR`).FindAllStringSubmatch(opts, -1) {
		documented[unesc.Replace(m[1])] = true
	}
	for _, f := range flagSpecs {
		if !documented[f.name] {
			t.Errorf("man page OPTIONS lacks --%s", f.name)
		}
	}
	_, cmds, _ := strings.Cut(page, "\n.SH COMMANDS\n")
	cmds, _, _ = strings.Cut(cmds, "\n.SH ")
	entries := strings.Split(cmds, ".TP\n")
	for _, c := range completedCommands() {
		found := false
		for _, e := range entries {
			first, rest, _ := strings.Cut(e, "\n")
			if unesc.Replace(first) != "conntop "+c.synopsis {
				continue
			}
			found = true
			var got []string
			if _, list, ok := strings.Cut(rest, "Flags: "); ok {
				for _, n := range strings.Split(strings.TrimSuffix(strings.TrimSpace(list), "."), ", ") {
					got = append(got, unesc.Replace(n))
				}
			}
			var want []string
			if c.name != cmdHelp && c.name != cmdVersion && c.name != cmdCompletion {
				for _, f := range flagsOf(c.name) {
					want = append(want, "--"+f.name)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("man page: %s lists %v, want %v", c.name, got, want)
			}
		}
		if !found {
			t.Errorf("man page COMMANDS lacks %q", c.synopsis)
		}
	}
	groff := needTool(t, "groff")
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff: %v\n%s", err, out)
	}
}

// TestManPageStamp: the page carries the version and build date.
func TestManPageStamp(t *testing.T) {
	var b bytes.Buffer
	if err := writeManPage(&b, buildinfo.Info{Version: "1.2.3", Date: "2026-12-01T10:00:00Z"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `.TH CONNTOP 1 "2026\-12\-01" "conntop 1.2.3" "User Commands"`) {
		t.Errorf("title line: %s", strings.SplitN(b.String(), "\n", 4)[2])
	}
}
