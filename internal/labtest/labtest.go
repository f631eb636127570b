//go:build linux

// Package labtest builds throwaway network labs for integration tests that
// need the real kernel: uniquely named network namespaces, veth pairs with
// IPv4 (10.x) and IPv6 (fd00::) addresses, nft rulesets that turn conntrack
// on (optionally with an FTP ct helper), commands run inside a namespace with
// a timeout, and small bounded traffic helpers (TCP echo listener, TCP dial,
// UDP send) whose sockets live inside a namespace.
//
// Everything a helper creates is removed with t.Cleanup. Traffic only ever
// goes between addresses inside namespaces the test created.
//
// Typical use:
//
//	labtest.RequireRoot(t)
//	srv, cli := labtest.NewNS(t, "store"), labtest.NewNS(t, "store")
//	link := labtest.Connect(t, srv, cli, 1)        // 10.99.1.1 (srv) <-> 10.99.1.2 (cli)
//	srv.EnableConntrack(t, labtest.Conntrack{FTPHelper: true})
//	ln := srv.ServeEcho(t, "tcp", link.A4+":8080")
//	c := cli.DialTCP(t, ln.Addr().String())
//
// RequireRoot skips the test when not root, except under CI=true, where it
// fails it: CI must never silently skip kernel tests.
package labtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/netns"
)

// DefaultTimeout bounds every command a helper runs.
const DefaultTimeout = 20 * time.Second

// maxOutput bounds how much command output is kept for error messages.
const maxOutput = 4096

// InCI reports whether the CI environment variable is "true".
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireRoot skips t with a clear message when the process is not root
// (uid 0), or fails it when CI=true.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatal("this test needs root (network namespaces, netlink); CI=true so it fails instead of skipping")
	}
	t.Skip("skipping: this test needs root (network namespaces, netlink); run `go test` as root")
}

// NS is a network namespace created for one test.
type NS struct {
	// Name is the namespace name (under /run/netns).
	Name string
	// Path is /run/netns/<Name>, usable as a --netns PATH.
	Path string
}

// UniqueName returns a namespace name "ct-<tag>-<pid>-<random hex>" that is
// unique across tests and processes running in parallel on the machine.
func UniqueName(tag string) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("labtest: crypto/rand: %v", err))
	}
	if len(tag) > 12 {
		tag = tag[:12]
	}
	return fmt.Sprintf("ct-%s-%d-%s", tag, os.Getpid(), hex.EncodeToString(b[:]))
}

// NewNS creates a uniquely named network namespace (tag names the test or
// package, kept short), brings its lo up, and deletes it at cleanup (which
// also frees its conntrack entries).
func NewNS(t testing.TB, tag string) *NS {
	t.Helper()
	RequireRoot(t)
	name := UniqueName(tag)
	if out, err := Run(DefaultTimeout, nil, "ip", "netns", "add", name); err != nil {
		t.Fatalf("create network namespace %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name, Path: "/run/netns/" + name}
	t.Cleanup(func() {
		if out, err := Run(DefaultTimeout, nil, "ip", "netns", "del", name); err != nil {
			t.Errorf("delete network namespace %s: %v: %s", name, err, out)
		}
	})
	ns.MustExec(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Run runs a command with a timeout and optional stdin and returns its
// combined output (truncated to a few KiB).
func Run(timeout time.Duration, stdin io.Reader, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s: timed out after %v: %w", name, timeout, ctx.Err())
	} else if err != nil {
		err = fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	s := out.String()
	if len(s) > maxOutput {
		s = s[:maxOutput] + "…(truncated)"
	}
	return s, err
}

// Exec runs a command inside the namespace (`ip netns exec`) with
// DefaultTimeout and returns its combined output (truncated).
func (ns *NS) Exec(args ...string) (string, error) {
	return ns.ExecTimeout(DefaultTimeout, nil, args...)
}

// ExecTimeout runs a command inside the namespace with the given timeout and
// stdin.
func (ns *NS) ExecTimeout(timeout time.Duration, stdin io.Reader, args ...string) (string, error) {
	return Run(timeout, stdin, "ip", append([]string{"netns", "exec", ns.Name}, args...)...)
}

// MustExec is Exec that fails the test on error.
func (ns *NS) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ns.Exec(args...)
	if err != nil {
		t.Fatalf("in %s: %v: %s", ns.Name, err, out)
	}
	return out
}

// Output runs a command inside the namespace and returns its stdout only,
// unbounded in size but bounded in time; for commands whose full output the
// test parses (conntrack -L on a big table).
func (ns *NS) Output(timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := stderr.String()
		if len(msg) > maxOutput {
			msg = msg[:maxOutput]
		}
		return out, fmt.Errorf("in %s: %s: %w: %s", ns.Name, strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// Do runs fn on a locked OS thread inside the namespace (see netns.Do);
// sockets fn creates stay in the namespace.
func (ns *NS) Do(fn func() error) error { return netns.DoPath(ns.Path, fn) }

// Sysctl sets a per-namespace sysctl inside the namespace (never a global
// one), e.g. "net.netfilter.nf_conntrack_tcp_timeout_time_wait", "1".
func (ns *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	ns.MustExec(t, "sysctl", "-q", "-w", key+"="+value)
}

// Link describes a veth pair made by Connect: interface names and addresses
// on side A and side B (addresses without prefix length).
type Link struct {
	IfA, IfB string
	A4, B4   string // 10.99.N.1 and 10.99.N.2 (/24)
	A6, B6   string // fd00:99:N::1 and fd00:99:N::2 (/64)
}

// Connect creates veth pair number n (0-255) between namespaces a and b,
// named "veth<n>" on both sides, with 10.99.n.1/24 and fd00:99:n::1/64 on a
// and .2 / ::2 on b, both up (IPv6 without duplicate-address detection, so
// usable at once). The pair dies with the namespaces.
func Connect(t testing.TB, a, b *NS, n uint8) Link {
	t.Helper()
	ifn := fmt.Sprintf("veth%d", n)
	l := Link{
		IfA: ifn, IfB: ifn,
		A4: fmt.Sprintf("10.99.%d.1", n), B4: fmt.Sprintf("10.99.%d.2", n),
		A6: fmt.Sprintf("fd00:99:%x::1", n), B6: fmt.Sprintf("fd00:99:%x::2", n),
	}
	if out, err := Run(DefaultTimeout, nil, "ip", "-n", a.Name, "link", "add", ifn, "type", "veth",
		"peer", "name", ifn, "netns", b.Name); err != nil {
		t.Fatalf("create veth pair %s between %s and %s: %v: %s", ifn, a.Name, b.Name, err, out)
	}
	for _, side := range []struct {
		ns     *NS
		v4, v6 string
	}{{a, l.A4, l.A6}, {b, l.B4, l.B6}} {
		side.ns.MustExec(t, "ip", "addr", "add", side.v4+"/24", "dev", ifn)
		side.ns.MustExec(t, "ip", "-6", "addr", "add", side.v6+"/64", "dev", ifn, "nodad")
		side.ns.MustExec(t, "ip", "link", "set", ifn, "up")
	}
	return l
}

// Conntrack selects what EnableConntrack loads.
type Conntrack struct {
	// FTPHelper attaches the kernel's "ftp" conntrack helper to TCP
	// connections to port 21 (in prerouting and output), so that FTP data
	// connections become RELATED with the control connection as master.
	FTPHelper bool
	// Extra is added verbatim inside the prerouting chain.
	Extra string
}

// RulesetConntrack returns the nft ruleset EnableConntrack loads: table
// "inet conntoptest" whose prerouting and output chains match `ct state`, which
// makes the kernel track connections in the namespace.
func RulesetConntrack(c Conntrack) string {
	var b strings.Builder
	b.WriteString("table inet conntoptest {\n")
	helperRule := ""
	if c.FTPHelper {
		b.WriteString("\tct helper ftp-standard {\n\t\ttype \"ftp\" protocol tcp\n\t}\n")
		helperRule = "\t\ttcp dport 21 ct helper set \"ftp-standard\"\n"
	}
	for _, ch := range []struct{ name, hook string }{{"pre", "prerouting"}, {"out", "output"}} {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook %s priority 0; policy accept;\n", ch.name, ch.hook)
		b.WriteString(helperRule)
		b.WriteString("\t\tct state new,established,related counter\n")
		if ch.name == "pre" && c.Extra != "" {
			b.WriteString("\t\t" + c.Extra + "\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// EnableConntrack loads RulesetConntrack(c) into the namespace.
func (ns *NS) EnableConntrack(t testing.TB, c Conntrack) {
	t.Helper()
	ns.Nft(t, RulesetConntrack(c))
}

// Nft loads an nft ruleset (nft -f -) into the namespace.
func (ns *NS) Nft(t testing.TB, ruleset string) {
	t.Helper()
	if out, err := ns.ExecTimeout(DefaultTimeout, strings.NewReader(ruleset), "nft", "-f", "-"); err != nil {
		t.Fatalf("load nft ruleset into %s: %v: %s\nruleset:\n%s", ns.Name, err, out, ruleset)
	}
}

// Listen opens a listener ("tcp", "tcp4", "tcp6") inside the namespace and
// closes it at cleanup.
func (ns *NS) Listen(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := ns.Do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen %s %s in %s: %v", network, addr, ns.Name, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// ServeEcho opens a TCP listener inside the namespace whose connections echo
// what they receive (at most 1 MiB each, each conn closed after 30 s or when
// the peer closes). It runs until cleanup.
func (ns *NS) ServeEcho(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	ln := ns.Listen(t, network, addr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				_, _ = io.Copy(c, io.LimitReader(c, 1<<20))
			}()
		}
	}()
	return ln
}

// DialTCP connects from inside the namespace to addr (timeout 5 s) and closes
// the connection at cleanup.
func (ns *NS) DialTCP(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := ns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Dial connects from inside the namespace (network "tcp", "udp", …) with a
// 5 s timeout. The caller closes the connection.
func (ns *NS) Dial(network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout(network, addr, 5*time.Second)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from %s: %w", network, addr, ns.Name, err)
	}
	return c, nil
}

// Echo sends msg over c and reads back the same number of bytes (5 s
// deadline): one request/response round trip through an echo server.
func Echo(c net.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if _, err := io.WriteString(c, msg); err != nil {
		return fmt.Errorf("echo write: %w", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("echo read: %w", err)
	}
	if string(buf) != msg {
		return fmt.Errorf("echo: got %q, want %q", buf, msg)
	}
	return nil
}

// SendUDP sends count datagrams from inside the namespace, from local
// address laddr (may be "" or have port 0) to raddr, over an unconnected
// socket (so an ICMP port-unreachable answer does not stop later sends). It
// does not wait for replies.
func (ns *NS) SendUDP(laddr, raddr string, count int, payload []byte) error {
	return ns.Do(func() error {
		var la *net.UDPAddr
		if laddr != "" {
			var err error
			if la, err = net.ResolveUDPAddr("udp", laddr); err != nil {
				return fmt.Errorf("send udp: %w", err)
			}
		}
		ra, err := net.ResolveUDPAddr("udp", raddr)
		if err != nil {
			return fmt.Errorf("send udp: %w", err)
		}
		network := "udp4"
		if ra.IP.To4() == nil {
			network = "udp6"
		}
		c, err := net.ListenUDP(network, la)
		if err != nil {
			return fmt.Errorf("send udp to %s: %w", raddr, err)
		}
		defer func() { _ = c.Close() }()
		for i := 0; i < count; i++ {
			if _, err := c.WriteToUDP(payload, ra); err != nil {
				return fmt.Errorf("send udp to %s: %w", raddr, err)
			}
		}
		return nil
	})
}

// Ping sends count ICMP (or ICMPv6, for an IPv6 addr) echo requests from
// inside the namespace with identifier id and waits up to 2 s for each reply.
// It uses a raw socket, so it needs root.
func (ns *NS) Ping(addr string, id uint16, count int) error {
	return ns.Do(func() error { return ping(addr, id, count) })
}
