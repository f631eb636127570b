package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// command is what conntop was asked to do.
type command string

const (
	cmdTUI      command = "tui"
	cmdSnapshot command = "snapshot"
	cmdEvents   command = "events"
	cmdServe    command = "serve"
	cmdExplain  command = "explain"
	cmdVersion  command = "version"
	cmdHelp     command = "help"
)

// options are every flag of every command. Flags that do not apply to the
// chosen command are refused by validate.
type options struct {
	cmd command

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
	whatIf   string // explain: --what-if

	// TUI.
	refresh     time.Duration
	ascii       bool
	noMouse     bool
	allowDelete bool
	linger      time.Duration

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

func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("conntop", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.source, "source", "auto", "auto|conntrack|capture|pcap (comma-separated conntrack,capture compares kernel and wire)")
	fs.StringVar(&o.netns, "netns", "", "watch another network namespace: NAME, PATH or pid:PID")
	fs.StringVar(&o.ifaces, "iface", "", "capture interfaces, comma-separated (capture source; default all)")
	fs.StringVar(&o.read, "read", "", "pcap or pcapng file to replay, - for stdin (implies --source pcap)")
	fs.StringVar(&o.filter, "filter", "", "filter expression, e.g. 'tcp and dport 443 and not state TIME_WAIT'")
	fs.StringVar(&o.format, "format", "", "snapshot: json (default), csv, text; events: ndjson (default), text")
	fs.StringVar(&o.output, "output", "", "write to FILE (atomically, mode 0600) instead of stdout")
	fs.StringVar(&o.output, "o", "", "short for --output")
	fs.BoolVar(&o.force, "force", false, "overwrite an existing --output file")
	fs.DurationVar(&o.duration, "duration", 0, "events: stop after D; snapshot with the capture source: capture for D (default 5s); explain: watch for D (default 5s)")
	fs.IntVar(&o.count, "count", 0, "events: stop after N events")
	fs.StringVar(&o.whatIf, "what-if", "", "explain: also show the effect of timeout SECONDS, or SYSCTL=SECONDS[,...]")
	fs.Bool("version", false, "print the version and exit")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile to FILE (for performance reports)")

	fs.DurationVar(&o.refresh, "refresh", 250*time.Millisecond, "TUI frame interval (frame rate cap)")
	fs.BoolVar(&o.ascii, "ascii", false, "TUI: ASCII instead of Unicode box drawing")
	fs.BoolVar(&o.noMouse, "no-mouse", false, "TUI: leave the mouse to the terminal (its own text selection); no clicks or wheel")
	fs.BoolVar(&o.allowDelete, "allow-delete", false, "TUI: allow deleting flows from the kernel table (asks first)")
	fs.DurationVar(&o.linger, "linger", 5*time.Second, "how long destroyed flows stay visible")

	fs.IntVar(&o.rcvBuf, "rcvbuf", 0, "kernel source: event socket receive buffer in bytes (default 128 MiB)")
	fs.DurationVar(&o.counterInterval, "counters", 2*time.Second, "kernel source: how often byte/packet counters are refreshed (0 = never)")

	fs.StringVar(&o.bpf, "bpf", "", "capture source: BPF filter in pcap syntax")
	fs.IntVar(&o.ringMB, "ring-mb", 64, "capture source: ring size in MiB")
	fs.BoolVar(&o.tcpLoose, "tcp-loose", true, "tracker: pick up TCP connections already under way (nf_conntrack_tcp_loose)")
	fs.BoolVar(&o.beLiberal, "tcp-be-liberal", false, "tracker: accept out-of-window TCP packets (nf_conntrack_tcp_be_liberal)")
	fs.BoolVar(&o.noChecksum, "no-checksum", false, "tracker: do not validate checksums (nf_conntrack_checksum=0)")
	fs.StringVar(&o.ftpPorts, "ftp-ports", "21", "tracker: TCP ports where the FTP helper is attached (empty = off)")
	fs.IntVar(&o.maxFlows, "max", 0, "tracker: table limit (default: this host's nf_conntrack_max)")
	fs.BoolVar(&o.replayHost, "replay-host", false, "--read: track packets as the capturing host would, not as a router in the path")

	fs.StringVar(&o.ssh, "ssh", "", "serve: serve the TUI over SSH on ADDR (public-key auth only, read-only)")
	fs.StringVar(&o.authorizedKeys, "authorized-keys", "", "serve: keys allowed in (default ~/.ssh/authorized_keys)")
	fs.StringVar(&o.hostKey, "host-key", "", "serve: SSH host key, created (0600) if missing (default <user config dir>/conntop/ssh_host_ed25519_key)")
	fs.StringVar(&o.metrics, "metrics", "", "serve: Prometheus exposition at http://ADDR/metrics")
	fs.IntVar(&o.maxSessions, "max-sessions", 16, "serve: most SSH sessions at once")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 30*time.Minute, "serve: close SSH sessions idle this long")
	fs.BoolVar(&o.untracked, "untracked", false, "serve: exempt the SSH and metrics ports from conntrack (nftables table inet conntop_untracked), to stay reachable when the table is full")
	return fs
}

// parseArgs parses the command line: an optional command word, then flags
// (flags may also come before the command word).
func parseArgs(args []string) (*options, error) {
	o := &options{cmd: cmdTUI, set: map[string]bool{}}
	fs := newFlagSet(o)
	rest := args
	seenCmd := false
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				o.cmd = cmdHelp
				return o, nil
			}
			return nil, usageErr("%v", err)
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		if seenCmd {
			return nil, usageErr("unexpected argument %q", rest[0])
		}
		switch rest[0] {
		case "snapshot", "events", "serve", "explain", "help", "version", "tui":
			o.cmd = command(rest[0])
		default:
			return nil, usageErr("unknown command %q (commands: snapshot, events, explain, serve)", rest[0])
		}
		seenCmd = true
		rest = rest[1:]
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if o.set["version"] {
		o.cmd = cmdVersion
	}
	return o, o.validate()
}

func (o *options) validate() error {
	if o.read != "" && !o.set["source"] {
		o.source = "pcap"
	}
	for _, s := range strings.Split(o.source, ",") {
		switch s {
		case "auto", "conntrack", "capture", "pcap":
		default:
			return usageErr("--source %q: want auto, conntrack, capture or pcap", o.source)
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
		ok := false
		switch o.cmd {
		case cmdSnapshot:
			ok = o.format == "json" || o.format == "csv" || o.format == "text"
		case cmdEvents:
			ok = o.format == "ndjson" || o.format == "text"
		case cmdExplain:
			ok = o.format == "text" || o.format == "json"
		}
		if !ok {
			return usageErr("--format %q does not apply to %s (snapshot: json, csv, text; events: ndjson, text; explain: text, json)", o.format, o.cmd)
		}
	}
	if o.output != "" && o.cmd != cmdSnapshot && o.cmd != cmdEvents && o.cmd != cmdExplain {
		return usageErr("--output applies to snapshot, events and explain")
	}
	if o.count < 0 || o.duration < 0 {
		return usageErr("--count and --duration must not be negative")
	}
	if o.refresh < 20*time.Millisecond {
		return usageErr("--refresh %v is too fast (at least 20ms)", o.refresh)
	}
	for _, name := range []string{"ssh", "authorized-keys", "host-key", "metrics", "max-sessions", "idle-timeout", "untracked"} {
		if o.set[name] && o.cmd != cmdServe {
			return usageErr("--%s applies to serve only", name)
		}
	}
	if o.cmd == cmdServe && o.ssh == "" && o.metrics == "" {
		return usageErr("serve needs --ssh ADDR, --metrics ADDR or both")
	}
	if o.whatIf != "" && o.cmd != cmdExplain {
		return usageErr("--what-if applies to explain only")
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

const helpText = `conntop — see what the Linux connection tracking table is doing, live.

Usage:
  conntop [flags]              interactive TUI (default)
  conntop snapshot [flags]     print the current table once, then exit
  conntop events [flags]       stream flow events until interrupted, --count N or --duration D
  conntop explain [flags]      what fills the table and what would relieve it (--format text|json)
  conntop serve [flags]        one engine, many viewers: the TUI over SSH and Prometheus metrics

Sources:
  --source auto                the kernel table when conntrack is active in the namespace,
                               else conntop's own packet capture + tracker (default)
  --source conntrack           the kernel table over netlink (needs CAP_NET_ADMIN)
  --source capture             AF_PACKET capture + in-process tracker (needs CAP_NET_RAW)
  --source conntrack,capture   both: flows where kernel and wire disagree are marked
  --read FILE                  replay a pcap/pcapng file through the tracker (- for stdin), as the
                               table a conntrack router in the path would keep (see --replay-host)

Flags:
%s
Filter language (--filter, and / in the TUI):
  tcp udp icmp icmpv6 ipv4 ipv6  proto NAME|NUM  [src|dst] host ADDR  [src|dst] net CIDR
  [src|dst] port PORT[-PORT] (also sport/dport)  state NEW,ESTABLISHED,RELATED,<tcp state>
  mark N  zone N  assured  unreplied   combined with and/&& or/|| not/! and ( )

Examples:
  conntop                                          watch this host's table
  conntop --netns pid:4242                         watch a container's namespace
  conntop snapshot --format text                   like conntrack -L
  conntop snapshot --filter 'tcp and dport 443' -o flows.json
  conntop events --filter 'state new' --count 100  like conntrack -E, as NDJSON
  conntop snapshot --read capture.pcap             what the kernel would have kept after these packets
  conntop explain --format json --what-if 10       why the table is full, as JSON for a runbook
  conntop serve --ssh :2222 --metrics :9810        share one engine with SSH viewers and Prometheus

Exit status: 0 success, 2 bad usage or bad filter, 1 any other error.
`

func writeHelp(w io.Writer) {
	o := &options{}
	fs := newFlagSet(o)
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		line := "  " + dash + f.Name
		if name != "" {
			line += " " + name
		}
		if len(line) < 28 {
			line += strings.Repeat(" ", 28-len(line))
		} else {
			line += "\n" + strings.Repeat(" ", 28)
		}
		line += usage
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			line += " (default " + f.DefValue + ")"
		}
		b.WriteString(line + "\n")
	})
	fmt.Fprintf(w, helpText, b.String())
}
