// Package untrack installs, and removes, the nftables table with which
// `conntop serve --untracked` exempts its own listening ports (SSH and
// metrics) from connection tracking in the network namespace it runs in.
//
// When the conntrack table is full the kernel drops every packet that
// would create an entry: new SSH connections to the node included, at the
// very moment an operator wants to look. Packets that skip tracking
// (`notrack` in a chain at the raw priority, before conntrack sees them)
// need no entry, so conntop stays reachable.
//
// The table is conntop's own ("inet conntop_untracked"): two base chains
// at priority raw, prerouting (packets to the listening ports) and output
// (packets from them). Install replaces a stale table left by a run that
// crashed, atomically and without duplicating it; Remove deletes it. The
// nft binary applies the ruleset (`nft -f -`).
//
// Untracked packets have `ct state untracked`: a filter ruleset that
// accepts only `ct state established,related` (and new connections to
// listed ports) must also accept untracked packets to these ports.
package untrack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/conntop/conntop/internal/termsafe"
)

// TableName is the nftables table (family inet) conntop owns.
const TableName = "conntop_untracked"

// Port is one TCP listening socket to exempt: an address (the zero Addr,
// or an unspecified one, for every address) and a port.
type Port struct {
	Addr netip.Addr
	Port uint16
}

// String returns "ADDR:PORT" or "*:PORT".
func (p Port) String() string {
	if !p.Addr.IsValid() || p.Addr.IsUnspecified() {
		return fmt.Sprintf("*:%d", p.Port)
	}
	return netip.AddrPortFrom(p.Addr, p.Port).String()
}

// Options configure Install.
type Options struct {
	// Nft is the nft binary (default "nft", looked up in PATH).
	Nft string
	// Timeout bounds each nft run (default 10s).
	Timeout time.Duration
}

// ErrUnavailable is wrapped by Install's errors when nftables cannot be
// used: no nft binary, no permission, or a kernel without nf_tables.
var ErrUnavailable = errors.New("nftables unavailable")

// Table is an installed table; Remove deletes it.
type Table struct {
	opts  Options
	ports []Port
}

// Ports returns the exempted ports.
func (t *Table) Ports() []Port { return append([]Port(nil), t.ports...) }

// Ruleset returns the nft script that installs the table for ports,
// replacing any table of that name (the empty declaration first makes the
// delete valid when there is none, all in one transaction).
func Ruleset(ports []Port) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", TableName, TableName)
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	for _, ch := range []struct{ name, hook, dir, addrDir string }{
		{"prerouting", "prerouting", "dport", "daddr"},
		{"output", "output", "sport", "saddr"},
	} {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook %s priority raw; policy accept;\n", ch.name, ch.hook)
		for _, p := range ports {
			b.WriteString("\t\t")
			switch {
			case !p.Addr.IsValid() || p.Addr.IsUnspecified():
			case p.Addr.Is4() || p.Addr.Is4In6():
				fmt.Fprintf(&b, "ip %s %s ", ch.addrDir, p.Addr.Unmap())
			default:
				fmt.Fprintf(&b, "ip6 %s %s ", ch.addrDir, p.Addr)
			}
			fmt.Fprintf(&b, "tcp %s %d notrack comment \"conntop serve\"\n", ch.dir, p.Port)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// Install loads the table for ports into the calling process's network
// namespace. It fails with an error wrapping ErrUnavailable when nftables
// cannot be used, saying why.
func Install(ports []Port, opts Options) (*Table, error) {
	if len(ports) == 0 {
		return nil, errors.New("untracked: no port to exempt")
	}
	for _, p := range ports {
		if p.Port == 0 {
			return nil, fmt.Errorf("untracked: port 0 (%s): listen on a fixed port", p)
		}
	}
	if opts.Nft == "" {
		opts.Nft = "nft"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	t := &Table{opts: opts, ports: append([]Port(nil), ports...)}
	if err := t.nft(Ruleset(ports)); err != nil {
		return nil, err
	}
	return t, nil
}

// Remove deletes the table. A table already gone is not an error.
func (t *Table) Remove() error {
	return t.nft(fmt.Sprintf("table inet %s\ndelete table inet %s\n", TableName, TableName))
}

// nft runs `nft -f -` with script on stdin.
func (t *Table) nft(script string) error {
	path, err := exec.LookPath(t.opts.Nft)
	if err != nil {
		return fmt.Errorf("untracked: %w: the nft program is not installed (%v); install nftables, or run without --untracked", ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 600 {
			msg = msg[:600] + "…"
		}
		msg = termsafe.Escape(msg)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("untracked: nft did not finish within %v", t.opts.Timeout)
		case strings.Contains(msg, "Operation not permitted"):
			return fmt.Errorf("untracked: %w: nft was refused (needs CAP_NET_ADMIN in this network namespace): %s", ErrUnavailable, msg)
		case strings.Contains(msg, "Protocol not supported") || strings.Contains(msg, "No such file or directory") && strings.Contains(msg, "netlink"):
			return fmt.Errorf("untracked: %w: the kernel has no nf_tables (modprobe nf_tables): %s", ErrUnavailable, msg)
		}
		return fmt.Errorf("untracked: nft -f -: %w: %s", err, msg)
	}
	return nil
}
