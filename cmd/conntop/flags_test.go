package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// sampleValue is a valid value for a flag that takes one, so that a refused
// flag is refused for what it is, not for a bad value.
func sampleValue(f *flagSpec, cmd command) string {
	switch f.value(&options{}).(type) {
	case *int:
		return "1"
	case *time.Duration:
		return "1s"
	}
	if f.choices != nil {
		if !f.appliesTo(cmd) {
			cmd = f.cmds[0]
		}
		if ch := f.choices(cmd); len(ch) > 0 {
			return ch[0]
		}
	}
	if d, ok := f.def.(string); ok && d != "" {
		return d
	}
	return "x"
}

// flagArgs is the flag as typed, with a value if it takes one.
func flagArgs(f *flagSpec, cmd command) []string {
	if f.takesValue() {
		return []string{"--" + f.name, sampleValue(f, cmd)}
	}
	return []string{"--" + f.name}
}

// commandWords is how a command is called (the TUI with no word).
func commandWords(c command) []string {
	if c == cmdTUI {
		return nil
	}
	return []string{string(c)}
}

// TestRefusedFlags: on every command, every flag of another command is
// refused with exit status 2, naming the flag and the commands that take
// it, whether it comes after or before the command word.
func TestRefusedFlags(t *testing.T) {
	for _, c := range commands {
		t.Run(string(c.name), func(t *testing.T) {
			refused := 0
			for i := range flagSpecs {
				f := &flagSpecs[i]
				if f.appliesTo(c.name) {
					continue
				}
				refused++
				var takers []string
				for _, tc := range f.cmds {
					takers = append(takers, tc.displayName())
				}
				want := fmt.Sprintf("--%s is not a flag of %s; it applies to: %s", f.name, c.name.displayName(), strings.Join(takers, ", "))
				for _, args := range [][]string{
					append(commandWords(c.name), flagArgs(f, c.name)...),
					append(flagArgs(f, c.name), commandWords(c.name)...),
				} {
					code, out, errOut := runCLI(t, "", args...)
					if code != 2 || out != "" || !strings.Contains(errOut, want) {
						t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and %q", args, code, out, errOut, want)
					}
				}
			}
			if c.name != cmdServe && refused == 0 {
				t.Errorf("no flag is refused on %s", c.name)
			}
		})
	}
}

// TestAcceptedFlags: every flag of a command parses on that command (the
// parse alone: nothing runs).
func TestAcceptedFlags(t *testing.T) {
	for _, c := range commands {
		for _, f := range flagsOf(c.name) {
			if f.name == "version" {
				continue
			}
			args := append(commandWords(c.name), flagArgs(f, c.name)...)
			switch {
			case c.name == cmdServe:
				args = append(args, "--metrics", "127.0.0.1:0")
			case c.name == cmdCompletion:
				args = append(args, "bash")
			}
			if f.name == "source" {
				args = append(args, "--read", "x.pcap")
				args[slices.Index(args, "--source")+1] = "pcap"
			}
			o, err := parseArgs(args)
			if err != nil {
				t.Errorf("%q: %v", args, err)
				continue
			}
			if !o.set[f.name] {
				t.Errorf("%q: --%s not recorded as set", args, f.name)
			}
		}
	}
}

// TestShortAndEqualsForms: -o and --flag=value work, and a flag's value
// that looks like a command word is not taken for one.
func TestShortAndEqualsForms(t *testing.T) {
	o, err := parseArgs([]string{"--filter", "events", "snapshot", "-o", "f.json", "--format=csv"})
	if err != nil {
		t.Fatal(err)
	}
	if o.cmd != cmdSnapshot || o.filter != "events" || o.output != "f.json" || o.format != "csv" || !o.set["output"] {
		t.Errorf("parsed %+v", o)
	}
}

// helpFlags returns the flag names listed in the Flags section of a help
// text.
func helpFlags(help string) []string {
	_, sec, ok := strings.Cut(help, "\nFlags")
	if !ok {
		return nil
	}
	sec, _, _ = strings.Cut(sec, "\n\n")
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  (?:-\w, )?--([a-z0-9-]+)`).FindAllStringSubmatch(sec, -1) {
		names = append(names, m[1])
	}
	return names
}

// TestHelpPerCommand: `conntop COMMAND --help` and `conntop help COMMAND`
// list exactly that command's flags.
func TestHelpPerCommand(t *testing.T) {
	for _, c := range commands {
		var want []string
		for _, f := range flagsOf(c.name) {
			want = append(want, f.name)
		}
		for _, args := range [][]string{append(commandWords(c.name), "--help"), {"help", string(c.name)}} {
			if args[0] == "help" && (c.name == cmdHelp || c.name == cmdTUI || c.hidden) {
				continue
			}
			code, out, errOut := runCLI(t, "", args...)
			if code != 0 {
				t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
				continue
			}
			if got := helpFlags(out); !slices.Equal(got, want) {
				t.Errorf("%q lists flags %v; want %v\n%s", args, got, want, out)
			}
		}
	}
	// The overview names every visible command.
	_, out, _ := runCLI(t, "", "--help")
	for _, c := range commands {
		if !c.hidden && !strings.Contains(out, "conntop "+c.synopsis) {
			t.Errorf("--help does not list %q", c.synopsis)
		}
	}
}

// TestFlagTable checks the table itself: unique names, registrable values,
// known commands, choices where completions expect them.
func TestFlagTable(t *testing.T) {
	seen := map[string]bool{}
	for i := range flagSpecs {
		f := &flagSpecs[i]
		for _, n := range []string{f.name, f.short} {
			if n == "" {
				continue
			}
			if seen[n] {
				t.Errorf("flag name %q defined twice", n)
			}
			seen[n] = true
		}
		if f.usage == "" || f.group == "" {
			t.Errorf("--%s: no usage or group", f.name)
		}
		for _, c := range f.cmds {
			if _, ok := lookupCommand(string(c)); !ok {
				t.Errorf("--%s names unknown command %q", f.name, c)
			}
		}
		if (f.complete == completeChoices) != (f.choices != nil) {
			t.Errorf("--%s: choices and completion disagree", f.name)
		}
		// Registering checks the value and default types; a switch has no
		// value name and a valued flag has one.
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f.register(fs, &options{})
		_, isBool := f.value(&options{}).(*bool)
		if isBool == f.takesValue() {
			t.Errorf("--%s: arg %q for a %T", f.name, f.arg, f.value(&options{}))
		}
		if d := fs.Lookup(f.name).DefValue; f.defaultValue() != "" && d != f.defaultValue() {
			t.Errorf("--%s: default shown as %q, flag package has %q", f.name, f.defaultValue(), d)
		}
	}
}

// TestPackagedServiceFlags: the flags /etc/default/conntop gives
// conntop.service are valid flags of serve.
func TestPackagedServiceFlags(t *testing.T) {
	raw, err := os.ReadFile("../../packaging/conntop.default")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CONNTOP_OPTS="([^"]*)"$`).FindStringSubmatch(string(raw))
	if m == nil {
		t.Fatal("no CONNTOP_OPTS line")
	}
	o, err := parseArgs(append([]string{"serve"}, strings.Fields(m[1])...))
	if err != nil {
		t.Fatalf("serve %s: %v", m[1], err)
	}
	if o.metrics == "" {
		t.Errorf("the packaged service serves no metrics: %q", m[1])
	}
}
