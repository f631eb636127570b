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
// crashed, atomically and without duplicating it; Remove deletes it. Both
// speak nf_tables over netlink directly (one batch, one transaction), so
// no nft program is needed: conntop runs in a distroless image, as a
// non-root user whose binary carries cap_net_admin.
//
// Untracked packets have `ct state untracked`: a filter ruleset that
// accepts only `ct state established,related` (and new connections to
// listed ports) must also accept untracked packets to these ports.
package untrack

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// TableName is the nftables table (family inet) conntop owns.
const TableName = "conntop_untracked"

// ruleComment is the comment each rule carries (`nft list` shows it).
const ruleComment = "conntop serve"

// Port is one TCP listening socket to exempt: an address (the zero Addr,
// or an unspecified one, for every address) and a port.
type Port struct {
	Addr netip.Addr
	Port uint16
}

// String returns "ADDR:PORT" or "*:PORT".
func (p Port) String() string {
	if p.anyAddr() {
		return fmt.Sprintf("*:%d", p.Port)
	}
	return netip.AddrPortFrom(p.Addr, p.Port).String()
}

func (p Port) anyAddr() bool { return !p.Addr.IsValid() || p.Addr.IsUnspecified() }

// Options configure Install.
type Options struct {
	// Timeout bounds the wait for the kernel's answer to each
	// transaction (default 10s).
	Timeout time.Duration
}

// ErrUnavailable is wrapped by Install's errors when nftables cannot be
// used: no permission, or a kernel without nf_tables.
var ErrUnavailable = errors.New("nftables unavailable")

// Table is an installed table; Remove deletes it.
type Table struct {
	ports []Port

	mu      sync.Mutex
	sock    *nlSocket // opened in the namespace Install ran in; nil once removed
	removed bool
}

// Ports returns the exempted ports.
func (t *Table) Ports() []Port { return append([]Port(nil), t.ports...) }

// Ruleset returns, in nft's language, the transaction Install sends:
// declaring the table first makes the delete valid when there is none, so
// that a stale table is replaced and a missing one is not an error. It is
// what `nft list table inet conntop_untracked` shows afterwards, and what
// an operator can load by hand with `nft -f`.
func Ruleset(ports []Port) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", TableName, TableName)
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	for _, ch := range chains {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook %s priority raw; policy accept;\n", ch.name, ch.name)
		for _, p := range ports {
			b.WriteString("\t\t")
			switch {
			case p.anyAddr():
			case p.Addr.Is4() || p.Addr.Is4In6():
				fmt.Fprintf(&b, "ip %s %s ", ch.addrDir, p.Addr.Unmap())
			default:
				fmt.Fprintf(&b, "ip6 %s %s ", ch.addrDir, p.Addr)
			}
			fmt.Fprintf(&b, "tcp %s %d notrack comment %q\n", ch.portDir, p.Port, ruleComment)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// chain is one of the table's two base chains: the hook, and whether its
// rules match the destination (prerouting: packets to conntop) or the
// source (output: packets from conntop).
type chain struct {
	name, addrDir, portDir string
	hook                   uint32
	dest                   bool
}

var chains = [...]chain{
	{name: "prerouting", addrDir: "daddr", portDir: "dport", hook: unix.NF_INET_PRE_ROUTING, dest: true},
	{name: "output", addrDir: "saddr", portDir: "sport", hook: unix.NF_INET_LOCAL_OUT},
}

// Install loads the table for ports into the calling thread's network
// namespace (the process's, unless the caller switched the thread). It
// fails with an error wrapping ErrUnavailable when nftables cannot be
// used, saying why.
func Install(ports []Port, opts Options) (*Table, error) {
	if len(ports) == 0 {
		return nil, errors.New("untracked: no port to exempt")
	}
	for _, p := range ports {
		if p.Port == 0 {
			return nil, fmt.Errorf("untracked: port 0 (%s): listen on a fixed port", p)
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	sock, err := openNetlink(opts.Timeout)
	if err != nil {
		return nil, explain(err)
	}
	b := newBatch()
	b.replaceTable()
	for _, ch := range chains {
		b.baseChain(ch)
		for _, p := range ports {
			b.notrackRule(ch, p)
		}
	}
	if err := sock.transact(b); err != nil {
		sock.close()
		return nil, explain(err)
	}
	return &Table{ports: append([]Port(nil), ports...), sock: sock}, nil
}

// Remove deletes the table, in the namespace Install ran in. A table
// already gone is not an error.
func (t *Table) Remove() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.removed {
		return nil
	}
	b := newBatch()
	b.deleteTable()
	if err := t.sock.transact(b); err != nil {
		return fmt.Errorf("untracked: delete table inet %s: %w", TableName, explain(err))
	}
	t.removed = true
	t.sock.close()
	return nil
}

// explain turns a netlink error into one saying what to do.
func explain(err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("untracked: %w", err)
	}
	switch errno {
	case unix.EPERM, unix.EACCES:
		return fmt.Errorf("untracked: %w: the kernel refused nf_tables changes (%v): conntop needs CAP_NET_ADMIN in this network namespace (run as root, or give the binary cap_net_admin)", ErrUnavailable, err)
	case unix.EPROTONOSUPPORT, unix.EAFNOSUPPORT, unix.EOPNOTSUPP:
		return fmt.Errorf("untracked: %w: the kernel has no nf_tables for family inet (%v): modprobe nf_tables, or run without --untracked", ErrUnavailable, err)
	case unix.ENOENT:
		// A missing chain type or expression: nft_chain_filter or
		// nft_ct (notrack) not built.
		return fmt.Errorf("untracked: %w: the kernel lacks a part of nf_tables conntop needs (filter chains, notrack) (%v)", ErrUnavailable, err)
	}
	return fmt.Errorf("untracked: %w", err)
}
