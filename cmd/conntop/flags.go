package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// command is what conntop was asked to do.
type command string

const (
	cmdTUI        command = "tui"
	cmdSnapshot   command = "snapshot"
	cmdEvents     command = "events"
	cmdServe      command = "serve"
	cmdExplain    command = "explain"
	cmdCompletion command = "completion"
	cmdMan        command = "man"
	cmdVersion    command = "version"
	cmdHelp       command = "help"
)

// commandSpec describes one command. Adding a command is one entry in
// commands (and its name in the cmds of the flags it takes): parsing, --help,
// the man page and the shell completions all read this table.
type commandSpec struct {
	name command
	// synopsis follows "conntop " in usage lines.
	synopsis string
	// summary is one line for command lists.
	summary string
	// about is a paragraph for the command's --help and the man page.
	about string
	// args are the positional words the command accepts (exactly one of
	// them; none when empty and argIsCommand is false); argName names the
	// argument in usage.
	args    []string
	argName string
	// argIsCommand: the argument is a command word (help COMMAND).
	argIsCommand bool
	// optionalArg: the positional word may be left out.
	optionalArg bool
	// hidden commands are left out of help and completions (build tools).
	hidden bool
}

// commands lists every command, in the order help shows them.
var commands = []commandSpec{
	{name: cmdTUI, synopsis: "[flags]", summary: "interactive TUI (default)",
		about: "The live flow table: filter, sort, inspect, export; the keys are on its help screen (?)."},
	{name: cmdSnapshot, synopsis: "snapshot [flags]", summary: "print the current table once, then exit",
		about: "The kernel's table as dumped, the capture's after --duration, or a replay's after the last packet: " +
			"JSON (version 1) by default, or CSV, or the text of conntrack -L."},
	{name: cmdEvents, synopsis: "events [flags]", summary: "stream flow events until interrupted, --count N or --duration D",
		about: "NEW, UPDATE and DESTROY events, like conntrack -E, as NDJSON (one object a line) or text; " +
			"lost events are reported as a resync line."},
	{name: cmdExplain, synopsis: "explain [flags]", summary: "what fills the table and what would relieve it (--format text|json)",
		about: "The table broken down by what governs its entries' lifetime (protocol and state, with the timeout sysctl), " +
			"the top consumers, what lower timeouts would free, and ranked advice with the exact commands; conntop changes nothing."},
	{name: cmdServe, synopsis: "serve [flags]", summary: "one engine, many viewers: the TUI over SSH and Prometheus metrics",
		about: "Read-only SSH viewers (public-key authentication only) and Prometheus metrics at /metrics; " +
			"needs --ssh, --metrics or both."},
	{name: cmdCompletion, synopsis: "completion bash|zsh|fish", summary: "print a shell completion script",
		about: "It completes the flags of each command, their values, filter keywords, " +
			"network namespaces (/run/netns) and interfaces. For this shell only: source <(conntop completion bash)",
		args: []string{"bash", "zsh", "fish"}, argName: "SHELL"},
	{name: cmdMan, synopsis: "man", summary: "print the manual page (roff) on stdout", hidden: true,
		about: "conntop(1) in roff, generated from the same definitions as --help; the release build installs it."},
	{name: cmdVersion, synopsis: "version", summary: "print the version, commit and build date",
		about: "Also: conntop --version."},
	{name: cmdHelp, synopsis: "help [COMMAND]", summary: "show the help of conntop or of a command",
		about:        "Also: conntop COMMAND --help.",
		argIsCommand: true, argName: "COMMAND", optionalArg: true},
}

// lookupCommand finds a command by the word that names it.
func lookupCommand(word string) (*commandSpec, bool) {
	for i := range commands {
		if string(commands[i].name) == word {
			return &commands[i], true
		}
	}
	return nil, false
}

// argChoices are the words the command's argument may be (nil: it takes
// none).
func (c *commandSpec) argChoices() []string {
	if c.argIsCommand {
		return visibleCommandNames()
	}
	return c.args
}

// visibleCommandNames are the command words help and completions offer
// (the TUI is the default and needs none).
func visibleCommandNames() []string {
	var out []string
	for _, c := range commands {
		if !c.hidden && c.name != cmdTUI {
			out = append(out, string(c.name))
		}
	}
	return out
}

// displayName names a command in messages.
func (c command) displayName() string {
	if c == cmdTUI {
		return "conntop (TUI)"
	}
	return string(c)
}

// Sets of commands that share flags. A new command that runs a source is
// added to engineCmds (and the narrower sets where it fits) to take all of
// those flags.
var (
	// engineCmds run a source and the engine.
	engineCmds = []command{cmdTUI, cmdSnapshot, cmdEvents, cmdExplain, cmdServe}
	// outputCmds write to stdout or --output.
	outputCmds = []command{cmdSnapshot, cmdEvents, cmdExplain}
	// viewerCmds show the TUI (locally or over SSH).
	viewerCmds = []command{cmdTUI, cmdServe}
	// liveCmds keep a source running (not a one-shot listing).
	liveCmds = []command{cmdTUI, cmdEvents, cmdServe}
	// serveCmds is serve alone.
	serveCmds = []command{cmdServe}
)

// valueCompletion is how a shell completes a flag's value.
type valueCompletion int

const (
	// completeNothing: free text (a number, a duration, an address).
	completeNothing valueCompletion = iota
	// completeFile: a file name.
	completeFile
	// completeNetns: a name under /run/netns.
	completeNetns
	// completeIfaces: interface names, comma-separated.
	completeIfaces
	// completeFilter: words of the filter language.
	completeFilter
	// completeChoices: one of the flag's choices for the command.
	completeChoices
)

// flagSpec describes one flag. Adding a flag is one entry in flagSpecs:
// parsing, refusal on other commands, --help, the man page and the shell
// completions all read it.
type flagSpec struct {
	name  string
	short string // one-letter alias, or ""
	// arg names the value in help ("FILE"); "" for a switch (a bool flag).
	arg   string
	usage string
	group string
	// cmds are the commands that take the flag; nil means every command.
	cmds []command
	// value returns the options field the flag sets: *string, *bool, *int
	// or *time.Duration; def is its default (of the same type, or nil for
	// the zero value).
	value func(o *options) any
	def   any
	// complete says how shells complete the value.
	complete valueCompletion
	// choices are the accepted values for a command (checked by validate
	// where the flag is strict, offered by completions); nil: free text.
	choices func(cmd command) []string
}

// flagSpecs lists every flag of every command, in help order within each
// group.
var flagSpecs = []flagSpec{
	{name: "source", arg: "SOURCE", group: "Source", cmds: engineCmds, def: "auto",
		usage:    "auto|conntrack|capture|pcap (comma-separated conntrack,capture compares kernel and wire)",
		value:    func(o *options) any { return &o.source },
		complete: completeChoices,
		choices: func(command) []string {
			return []string{"auto", "conntrack", "capture", "pcap", "conntrack,capture"}
		}},
	{name: "netns", arg: "NAME|PATH|pid:PID", group: "Source", cmds: engineCmds,
		usage: "watch another network namespace", value: func(o *options) any { return &o.netns }, complete: completeNetns},
	{name: "iface", arg: "IF[,IF...]", group: "Source", cmds: engineCmds,
		usage: "capture interfaces (capture source; default all)", value: func(o *options) any { return &o.ifaces }, complete: completeIfaces},
	{name: "read", arg: "FILE", group: "Source", cmds: engineCmds,
		usage: "pcap or pcapng file to replay, - for stdin (implies --source pcap)", value: func(o *options) any { return &o.read }, complete: completeFile},
	{name: "filter", arg: "EXPR", group: "Source", cmds: engineCmds,
		usage: "filter expression, e.g. 'tcp and dport 443 and not state TIME_WAIT'", value: func(o *options) any { return &o.filter }, complete: completeFilter},

	{name: "format", arg: "FORMAT", group: "Output", cmds: outputCmds,
		usage: "output format; the first is the default", value: func(o *options) any { return &o.format }, complete: completeChoices,
		choices: func(cmd command) []string {
			switch cmd {
			case cmdSnapshot:
				return []string{"json", "csv", "text"}
			case cmdEvents:
				return []string{"ndjson", "text"}
			case cmdExplain:
				return []string{"text", "json"}
			}
			return nil
		}},
	{name: "output", short: "o", arg: "FILE", group: "Output", cmds: outputCmds,
		usage: "write to FILE (atomically, mode 0600) instead of stdout", value: func(o *options) any { return &o.output }, complete: completeFile},
	{name: "force", group: "Output", cmds: outputCmds,
		usage: "overwrite an existing --output file", value: func(o *options) any { return &o.force }},
	{name: "duration", arg: "D", group: "Output", cmds: outputCmds,
		usage: "events: stop after D; snapshot with the capture source: capture for D (default 5s); explain: watch for D (default 5s)", value: func(o *options) any { return &o.duration }},
	{name: "what-if", arg: "SECONDS|SYSCTL=SECONDS,...", group: "Output", cmds: []command{cmdExplain},
		usage: "explain: also show the effect of timeout SECONDS, or SYSCTL=SECONDS[,...]", value: func(o *options) any { return &o.whatIf }},
	{name: "count", arg: "N", group: "Output", cmds: []command{cmdEvents},
		usage: "stop after N events", value: func(o *options) any { return &o.count }},

	{name: "refresh", arg: "D", group: "TUI", cmds: viewerCmds, def: 250 * time.Millisecond,
		usage: "frame interval (frame rate cap)", value: func(o *options) any { return &o.refresh }},
	{name: "ascii", group: "TUI", cmds: viewerCmds,
		usage: "ASCII instead of Unicode box drawing", value: func(o *options) any { return &o.ascii }},
	{name: "no-mouse", group: "TUI", cmds: viewerCmds,
		usage: "leave the mouse to the terminal (its own text selection); no clicks or wheel", value: func(o *options) any { return &o.noMouse }},
	{name: "allow-delete", group: "TUI", cmds: []command{cmdTUI},
		usage: "allow deleting flows from the kernel table (asks first)", value: func(o *options) any { return &o.allowDelete }},
	{name: "linger", arg: "D", group: "TUI", cmds: viewerCmds, def: 5 * time.Second,
		usage: "how long destroyed flows stay visible", value: func(o *options) any { return &o.linger }},

	{name: "rcvbuf", arg: "BYTES", group: "Kernel source", cmds: engineCmds,
		usage: "event socket receive buffer in bytes (default 128 MiB)", value: func(o *options) any { return &o.rcvBuf }},
	{name: "counters", arg: "D", group: "Kernel source", cmds: liveCmds, def: 2 * time.Second,
		usage: "how often byte/packet counters are refreshed (0 = never)", value: func(o *options) any { return &o.counterInterval }},

	{name: "bpf", arg: "EXPR", group: "Capture and replay (the in-process tracker)", cmds: engineCmds,
		usage: "capture source: BPF filter in pcap syntax", value: func(o *options) any { return &o.bpf }},
	{name: "ring-mb", arg: "MIB", group: "Capture and replay (the in-process tracker)", cmds: engineCmds, def: 64,
		usage: "capture source: ring size in MiB", value: func(o *options) any { return &o.ringMB }},
	{name: "tcp-loose", group: "Capture and replay (the in-process tracker)", cmds: engineCmds, def: true,
		usage: "pick up TCP connections already under way (nf_conntrack_tcp_loose; --tcp-loose=false to turn off)", value: func(o *options) any { return &o.tcpLoose }},
	{name: "tcp-be-liberal", group: "Capture and replay (the in-process tracker)", cmds: engineCmds,
		usage: "accept out-of-window TCP packets (nf_conntrack_tcp_be_liberal)", value: func(o *options) any { return &o.beLiberal }},
	{name: "no-checksum", group: "Capture and replay (the in-process tracker)", cmds: engineCmds,
		usage: "do not validate checksums (nf_conntrack_checksum=0)", value: func(o *options) any { return &o.noChecksum }},
	{name: "ftp-ports", arg: "PORTS", group: "Capture and replay (the in-process tracker)", cmds: engineCmds, def: "21",
		usage: "TCP ports where the FTP helper is attached, comma-separated (empty = off)", value: func(o *options) any { return &o.ftpPorts }},
	{name: "max", arg: "N", group: "Capture and replay (the in-process tracker)", cmds: engineCmds,
		usage: "table limit (default: this host's nf_conntrack_max)", value: func(o *options) any { return &o.maxFlows }},
	{name: "replay-host", group: "Capture and replay (the in-process tracker)", cmds: engineCmds,
		usage: "--read: track packets as the capturing host would, not as a router in the path", value: func(o *options) any { return &o.replayHost }},

	{name: "ssh", arg: "ADDR", group: "serve", cmds: serveCmds,
		usage: "serve the TUI over SSH on ADDR (public-key auth only, read-only)", value: func(o *options) any { return &o.ssh }},
	{name: "authorized-keys", arg: "FILE", group: "serve", cmds: serveCmds,
		usage: "keys allowed in (default ~/.ssh/authorized_keys)", value: func(o *options) any { return &o.authorizedKeys }, complete: completeFile},
	{name: "host-key", arg: "FILE", group: "serve", cmds: serveCmds,
		usage: "SSH host key, created (0600) if missing (default <user config dir>/conntop/ssh_host_ed25519_key)", value: func(o *options) any { return &o.hostKey }, complete: completeFile},
	{name: "metrics", arg: "ADDR", group: "serve", cmds: serveCmds,
		usage: "Prometheus exposition at http://ADDR/metrics", value: func(o *options) any { return &o.metrics }},
	{name: "max-sessions", arg: "N", group: "serve", cmds: serveCmds, def: 16,
		usage: "most SSH sessions at once", value: func(o *options) any { return &o.maxSessions }},
	{name: "idle-timeout", arg: "D", group: "serve", cmds: serveCmds, def: 30 * time.Minute,
		usage: "close SSH sessions idle this long", value: func(o *options) any { return &o.idleTimeout }},

	{name: "untracked", group: "serve", cmds: serveCmds,
		usage: "exempt the SSH and metrics ports from conntrack (nftables table inet conntop_untracked), to stay reachable when the table is full",
		value: func(o *options) any { return &o.untracked }},

	{name: "cpuprofile", arg: "FILE", group: "Other", cmds: engineCmds,
		usage: "write a Go CPU profile to FILE (for performance reports)", value: func(o *options) any { return &o.cpuProfile }, complete: completeFile},
	{name: "version", group: "Other",
		usage: "print the version and exit", value: func(o *options) any { return &o.version }},
}

// appliesTo reports whether the flag is one of cmd's.
func (f *flagSpec) appliesTo(cmd command) bool {
	return f.cmds == nil || slices.Contains(f.cmds, cmd)
}

// takesValue reports whether the flag needs a value (is not a switch).
func (f *flagSpec) takesValue() bool { return f.arg != "" }

// lookupFlag finds a flag by its long or short name.
func lookupFlag(name string) *flagSpec {
	for i := range flagSpecs {
		if flagSpecs[i].name == name || flagSpecs[i].short != "" && flagSpecs[i].short == name {
			return &flagSpecs[i]
		}
	}
	return nil
}

// flagsOf returns cmd's flags in table order.
func flagsOf(cmd command) []*flagSpec {
	var out []*flagSpec
	for i := range flagSpecs {
		if flagSpecs[i].appliesTo(cmd) {
			out = append(out, &flagSpecs[i])
		}
	}
	return out
}

// options are the flags of the chosen command (the others keep their zero
// values).
type options struct {
	cmd command
	// helpFor is the command whose help was asked for (cmdHelp).
	helpFor command
	// arg is the command's positional word (completion's shell).
	arg string

	source   string
	netns    string
	ifaces   string
	read     string
	filter   string
	format   string
	output   string
	force    bool
	duration time.Duration
	count    int
	version  bool
	whatIf   string // explain: --what-if

	// TUI.
	refresh     time.Duration
	ascii       bool
	allowDelete bool
	linger      time.Duration
	noMouse     bool

	// Kernel source.
	rcvBuf          int
	counterInterval time.Duration

	// Capture and pcap sources (the in-process tracker).
	bpf        string
	ringMB     int
	tcpLoose   bool
	beLiberal  bool
	noChecksum bool
	ftpPorts   string
	maxFlows   int
	replayHost bool

	// serve.
	ssh            string
	authorizedKeys string
	hostKey        string
	metrics        string
	maxSessions    int
	idleTimeout    time.Duration
	untracked      bool

	cpuProfile string

	set map[string]bool // flags given on the command line
}

// errUsage marks a usage error (exit status 2); the message says what.
var errUsage = errors.New("usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// register adds f to fs, setting o's field; it panics on a table entry whose
// value and default types disagree (a programming error every test finds).
func (f *flagSpec) register(fs *flag.FlagSet, o *options) {
	names := []string{f.name}
	if f.short != "" {
		names = append(names, f.short)
	}
	for _, name := range names {
		switch p := f.value(o).(type) {
		case *string:
			def, _ := f.def.(string)
			fs.StringVar(p, name, def, f.usage)
		case *bool:
			def, _ := f.def.(bool)
			fs.BoolVar(p, name, def, f.usage)
		case *int:
			def, _ := f.def.(int)
			fs.IntVar(p, name, def, f.usage)
		case *time.Duration:
			def, _ := f.def.(time.Duration)
			fs.DurationVar(p, name, def, f.usage)
		default:
			panic(fmt.Sprintf("flag --%s: unsupported value type %T", f.name, p))
		}
	}
}

// newFlagSet returns cmd's flag set, setting o's fields.
func newFlagSet(cmd command, o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("conntop "+string(cmd), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, f := range flagsOf(cmd) {
		f.register(fs, o)
	}
	return fs
}

// defaultValue is the flag's default as help shows it ("" for none).
func (f *flagSpec) defaultValue() string {
	switch d := f.def.(type) {
	case nil:
		return ""
	case string:
		return d
	case bool:
		if !d {
			return ""
		}
		return "true"
	case int:
		if d == 0 {
			return ""
		}
		return strconv.Itoa(d)
	case time.Duration:
		if d == 0 {
			return ""
		}
		return d.String()
	}
	return fmt.Sprint(f.def)
}

// scanArgs walks a command line the way the flag package will, without
// knowing the command yet: it returns the command word (and its index, -1
// when there is none) and the names of the flags given, skipping the values
// of flags that take one.
func scanArgs(args []string) (word string, at int, flags []string) {
	at = -1
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if len(a) > 1 && a[0] == '-' {
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			flags = append(flags, name)
			if f := lookupFlag(name); f != nil && f.takesValue() && !hasValue {
				i++ // the flag's value
			}
			continue
		}
		if at >= 0 {
			// A second word: the flag parser reports it (or it is the
			// command's argument); flags after it are not parsed.
			break
		}
		word, at = a, i
	}
	return word, at, flags
}

// parseArgs parses the command line: an optional command word and that
// command's flags (which may also come before the command word). A flag of
// another command is refused, naming the commands that take it. With an
// error, the options returned (if any) say which command was meant.
func parseArgs(args []string) (*options, error) {
	word, at, given := scanArgs(args)
	cmd := cmdTUI
	rest := args
	if at >= 0 {
		spec, ok := lookupCommand(word)
		if !ok {
			return nil, usageErr("unknown command %q (commands: %s)", word, strings.Join(visibleCommandNames(), ", "))
		}
		cmd = spec.name
		rest = append(slices.Clone(args[:at]), args[at+1:]...)
	}
	for _, name := range given {
		f := lookupFlag(name)
		if f == nil || f.appliesTo(cmd) {
			continue // unknown flags are reported by the flag parser
		}
		var takers []string
		for _, c := range f.cmds {
			takers = append(takers, c.displayName())
		}
		return &options{cmd: cmd}, usageErr("--%s is not a flag of %s; it applies to: %s", f.name, cmd.displayName(), strings.Join(takers, ", "))
	}

	o := &options{cmd: cmd, set: map[string]bool{}}
	fs := newFlagSet(cmd, o)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			o.cmd, o.helpFor = cmdHelp, cmd
			return o, nil
		}
		return o, usageErr("%v", err)
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "o" {
			o.set["output"] = true
		}
		o.set[f.Name] = true
	})
	spec, _ := lookupCommand(string(cmd))
	if err := o.takeArgs(spec, fs.Args()); err != nil {
		return o, err
	}
	if o.version {
		o.cmd = cmdVersion
		return o, nil
	}
	if o.cmd == cmdHelp {
		o.helpFor = cmdTUI
		if o.arg != "" {
			o.helpFor = command(o.arg)
		}
		return o, nil
	}
	return o, o.validate()
}

// takeArgs checks the positional words left after the flags against what
// the command accepts.
func (o *options) takeArgs(spec *commandSpec, args []string) error {
	accepted := spec.argChoices()
	if accepted == nil {
		if len(args) > 0 {
			return usageErr("unexpected argument %q", args[0])
		}
		return nil
	}
	switch {
	case len(args) == 0 && spec.optionalArg:
		return nil
	case len(args) == 0:
		return usageErr("%s needs %s: %s", spec.name, spec.argName, strings.Join(accepted, ", "))
	case len(args) > 1:
		return usageErr("unexpected argument %q", args[1])
	case !slices.Contains(accepted, args[0]):
		return usageErr("%s: unknown %s %q (want %s)", spec.name, strings.ToLower(spec.argName), args[0], strings.Join(accepted, ", "))
	}
	o.arg = args[0]
	return nil
}

func (o *options) validate() error {
	if o.read != "" && !o.set["source"] {
		o.source = "pcap"
	}
	if o.source != "" {
		for _, s := range strings.Split(o.source, ",") {
			switch s {
			case "auto", "conntrack", "capture", "pcap":
			default:
				return usageErr("--source %q: want auto, conntrack, capture or pcap", o.source)
			}
		}
	}
	if o.source == "pcap" && o.read == "" {
		return usageErr("--source pcap needs --read FILE")
	}
	if o.read != "" && o.source != "pcap" {
		return usageErr("--read replays a file: it cannot be combined with --source %s", o.source)
	}
	if o.read != "" && o.netns != "" {
		return usageErr("--netns does not apply to --read")
	}
	if o.format != "" {
		want := lookupFlag("format").choices(o.cmd)
		if !slices.Contains(want, o.format) {
			return usageErr("--format %q does not apply to %s (%s: %s)", o.format, o.cmd, o.cmd, strings.Join(want, ", "))
		}
	}
	if o.count < 0 || o.duration < 0 {
		return usageErr("--count and --duration must not be negative")
	}
	if o.set["refresh"] && o.refresh < 20*time.Millisecond {
		return usageErr("--refresh %v is too fast (at least 20ms)", o.refresh)
	}
	if o.cmd == cmdServe && o.ssh == "" && o.metrics == "" {
		return usageErr("serve needs --ssh ADDR, --metrics ADDR or both")
	}
	if _, err := o.ftpPortList(); err != nil {
		return err
	}
	return nil
}

// ftpPortList parses --ftp-ports.
func (o *options) ftpPortList() ([]uint16, error) {
	var ports []uint16
	for _, s := range strings.Split(o.ftpPorts, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := strconv.ParseUint(s, 10, 16)
		if err != nil || p == 0 {
			return nil, usageErr("--ftp-ports: %q is not a port number", s)
		}
		ports = append(ports, uint16(p))
	}
	return ports, nil
}

// ifaceList parses --iface.
func (o *options) ifaceList() []string {
	var out []string
	for _, s := range strings.Split(o.ifaces, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
