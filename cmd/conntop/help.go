package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// The help texts below are shared by --help and the man page; everything
// about flags and commands comes from the tables in flags.go.

const helpTagline = "see what the Linux connection tracking table is doing, live"

const sourcesHelp = `  --source auto                the kernel table when conntrack is active in the namespace,
                               else conntop's own packet capture + tracker (default)
  --source conntrack           the kernel table over netlink (needs CAP_NET_ADMIN)
  --source capture             AF_PACKET capture + in-process tracker (needs CAP_NET_RAW)
  --source conntrack,capture   both: flows where kernel and wire disagree are marked
  --read FILE                  replay a pcap/pcapng file through the tracker (- for stdin), as the
                               table a conntrack router in the path would keep (see --replay-host)
`

const filterHelp = `  tcp udp icmp icmpv6 ipv4 ipv6  proto NAME|NUM  [src|dst] host ADDR  [src|dst] net CIDR
  [src|dst] port PORT[-PORT] (also sport/dport)  state NEW,ESTABLISHED,RELATED,<tcp state>
  mark N  zone N  assured  unreplied   combined with and/&& or/|| not/! and ( )
`

// examples are shown by --help and in the man page: {command line, what it does}.
var examples = [][2]string{
	{"conntop", "watch this host's table"},
	{"conntop --netns pid:4242", "watch a container's namespace"},
	{"conntop snapshot --format text", "like conntrack -L"},
	{"conntop snapshot --filter 'tcp and dport 443' -o flows.json", ""},
	{"conntop events --filter 'state new' --count 100", "like conntrack -E, as NDJSON"},
	{"conntop snapshot --read capture.pcap", "what the kernel would have kept after these packets"},
	{"conntop serve --ssh :2222 --metrics :9810", "share one engine with SSH viewers and Prometheus"},
	{"source <(conntop completion bash)", "tab completion in this shell"},
}

const exitHelp = "0 success, 2 bad usage or bad filter, 1 any other error."

// writeHelp writes the help of cmd: the overview for the TUI (conntop
// --help), else the command's own usage and flags.
func writeHelp(w io.Writer, cmd command) error {
	spec, ok := lookupCommand(string(cmd))
	if !ok || cmd == cmdTUI {
		return writeOverview(w)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "conntop %s — %s\n\nUsage:\n  conntop %s\n\n%s\n", spec.name, spec.summary, spec.synopsis, wrap(spec.about, 78, ""))
	if fl := flagsOf(cmd); len(fl) > 0 {
		b.WriteString("\nFlags:\n")
		writeFlagList(&b, cmd, fl)
	}
	if slices.Contains(engineCmds, cmd) {
		b.WriteString("\nFilter language (--filter):\n" + filterHelp)
	}
	b.WriteString("\nRun 'conntop --help' for the commands, sources and examples.\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write help: %w", err)
	}
	return nil
}

// writeOverview is conntop --help: the commands, then the TUI's flags.
func writeOverview(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "conntop — %s.\n\nUsage:\n", helpTagline)
	for _, c := range commands {
		if c.hidden {
			continue
		}
		line := "  conntop " + c.synopsis
		if len(line) >= 30 {
			line += "\n" + strings.Repeat(" ", 31)
		} else {
			line += pad(len(line), 31)
		}
		b.WriteString(line + c.summary + "\n")
	}
	b.WriteString("\nEach command has its own flags: conntop COMMAND --help lists them.\n")
	b.WriteString("\nSources:\n" + sourcesHelp)
	b.WriteString("\nFlags (the TUI):\n")
	writeFlagList(&b, cmdTUI, flagsOf(cmdTUI))
	b.WriteString("\nFilter language (--filter, and / in the TUI):\n" + filterHelp)
	b.WriteString("\nExamples:\n")
	for _, ex := range examples {
		line := "  " + ex[0]
		if ex[1] != "" {
			line += pad(len(line), 51) + ex[1]
		}
		b.WriteString(line + "\n")
	}
	b.WriteString("\nExit status: " + exitHelp + "\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write help: %w", err)
	}
	return nil
}

// writeFlagList writes flags grouped as in the table, one line each (two
// when the name is long).
func writeFlagList(b *strings.Builder, cmd command, flags []*flagSpec) {
	group := ""
	for _, f := range flags {
		if f.group != group {
			group = f.group
			fmt.Fprintf(b, " %s:\n", group)
		}
		line := "  " + f.synopsis()
		if len(line) < 30 {
			line += pad(len(line), 30)
		} else {
			line += "\n" + strings.Repeat(" ", 30)
		}
		b.WriteString(line + f.helpText(cmd) + "\n")
	}
}

// synopsis is how help writes the flag: "-o, --output FILE".
func (f *flagSpec) synopsis() string {
	s := "--" + f.name
	if f.short != "" {
		s = "-" + f.short + ", " + s
	}
	if f.arg != "" {
		s += " " + f.arg
	}
	return s
}

// helpText is the flag's usage for cmd, with its choices and default.
func (f *flagSpec) helpText(cmd command) string {
	s := f.usage
	if f.choices != nil && f.name != "source" {
		if c := f.choices(cmd); len(c) > 0 {
			s += ": " + strings.Join(c, ", ")
		}
	}
	if d := f.defaultValue(); d != "" {
		s += " (default " + d + ")"
	}
	return s
}

// pad returns the spaces that take a text of n bytes to column col (at
// least one).
func pad(n, col int) string {
	return strings.Repeat(" ", max(1, col-n))
}

// wrap breaks text into lines of at most width bytes at spaces, each
// prefixed with indent.
func wrap(text string, width int, indent string) string {
	var lines []string
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	return strings.Join(append(lines, line), "\n")
}
