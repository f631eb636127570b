// Package procs finds the local process that owns a flow's socket, the way
// `ss -p` does: the flow's tuple is looked up in /proc/net/{tcp,tcp6,udp,udp6}
// to find the socket's inode, then /proc/*/fd is searched for a
// "socket:[inode]" link. Lookups are lazy (only for the flows asked about),
// batched, rate limited and cached in a bounded cache.
package procs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// Proc is a process owning a socket. Name comes from /proc/PID/comm and is
// chosen by the process: escape it before printing it to a terminal.
type Proc struct {
	PID  int
	Name string
}

// Options configure a Resolver. Zero values mean the defaults.
type Options struct {
	// Proc is the procfs mount (default "/proc"), searched for fds.
	Proc string
	// NetDir holds the socket tables (default Proc+"/self/net"); use
	// "/proc/PID/net" for another network namespace.
	NetDir string
	// TTL is how long an answer (found or not) is reused (default 5s).
	TTL time.Duration
	// MaxEntries bounds the cache (default 4096).
	MaxEntries int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

type entry struct {
	proc  Proc
	found bool
	at    time.Time
}

// Resolver maps flows to owning processes. It is safe for concurrent use.
type Resolver struct {
	opts  Options
	mu    sync.Mutex
	cache map[flow.Key]entry
}

// New returns a Resolver.
func New(opts Options) *Resolver {
	if opts.Proc == "" {
		opts.Proc = "/proc"
	}
	if opts.NetDir == "" {
		opts.NetDir = filepath.Join(opts.Proc, "self", "net")
	}
	if opts.TTL <= 0 {
		opts.TTL = 5 * time.Second
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 4096
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Resolver{opts: opts, cache: make(map[flow.Key]entry)}
}

// Cached returns the cached answer for f without touching /proc. ok is
// false when there is no fresh answer.
func (r *Resolver) Cached(f *flow.Flow) (p Proc, found, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.cache[f.Key()]
	if !ok || r.opts.Now().Sub(e.at) > r.opts.TTL {
		return Proc{}, false, false
	}
	return e.proc, e.found, true
}

// Resolve returns, for each flow, its owning process and whether one was
// found. Flows with a fresh cached answer cost nothing; the others are
// resolved with one pass over the socket tables and one over /proc/*/fd.
// Protocols other than TCP and UDP are never found.
func (r *Resolver) Resolve(flows []flow.Flow) ([]Proc, []bool, error) {
	procs := make([]Proc, len(flows))
	found := make([]bool, len(flows))
	var miss []int
	now := r.opts.Now()
	r.mu.Lock()
	for i := range flows {
		e, ok := r.cache[flows[i].Key()]
		if ok && now.Sub(e.at) <= r.opts.TTL {
			procs[i], found[i] = e.proc, e.found
			continue
		}
		miss = append(miss, i)
	}
	r.mu.Unlock()
	if len(miss) == 0 {
		return procs, found, nil
	}

	var protos [2]bool // tcp, udp
	for _, i := range miss {
		switch flows[i].Proto {
		case flow.ProtoTCP:
			protos[0] = true
		case flow.ProtoUDP:
			protos[1] = true
		}
	}
	socks := make(map[sockKey]uint64)
	var firstErr error
	for _, tf := range []struct {
		name  string
		proto uint8
		want  bool
	}{
		{"tcp", flow.ProtoTCP, protos[0]}, {"tcp6", flow.ProtoTCP, protos[0]},
		{"udp", flow.ProtoUDP, protos[1]}, {"udp6", flow.ProtoUDP, protos[1]},
	} {
		if !tf.want {
			continue
		}
		if err := r.readTable(tf.name, tf.proto, socks); err != nil && firstErr == nil && !errors.Is(err, os.ErrNotExist) {
			firstErr = err
		}
	}

	inodeOf := make([]uint64, len(flows))
	want := make(map[uint64]Proc)
	for _, i := range miss {
		if ino := match(&flows[i], socks); ino != 0 {
			inodeOf[i] = ino
			want[ino] = Proc{}
		}
	}
	got := r.scanFDs(want)

	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache)+len(miss) > r.opts.MaxEntries {
		clear(r.cache) // bounded: start over rather than grow
	}
	for _, i := range miss {
		if ino := inodeOf[i]; ino != 0 {
			if p, ok := got[ino]; ok {
				procs[i], found[i] = p, true
			}
		}
		r.cache[flows[i].Key()] = entry{proc: procs[i], found: found[i], at: now}
	}
	return procs, found, firstErr
}

// sockKey identifies a socket in the socket tables; Remote is the zero
// AddrPort for an unconnected or listening socket.
type sockKey struct {
	Proto         uint8
	Local, Remote netip.AddrPort
}

// match returns the inode of the socket that owns f: first the originating
// side (this host opened the flow), then the replying side (this host
// answered, possibly behind DNAT), then unconnected UDP sockets.
func match(f *flow.Flow, socks map[sockKey]uint64) uint64 {
	o, rp := f.Orig, f.Reply
	cands := [4]sockKey{
		{f.Proto, netip.AddrPortFrom(o.Src, o.SrcPort), netip.AddrPortFrom(o.Dst, o.DstPort)},
		{f.Proto, netip.AddrPortFrom(rp.Src, rp.SrcPort), netip.AddrPortFrom(rp.Dst, rp.DstPort)},
		{f.Proto, netip.AddrPortFrom(o.Src, o.SrcPort), netip.AddrPort{}},
		{f.Proto, netip.AddrPortFrom(rp.Src, rp.SrcPort), netip.AddrPort{}},
	}
	n := len(cands)
	if f.Proto != flow.ProtoUDP {
		n = 2
	}
	for _, c := range cands[:n] {
		if !c.Local.Addr().IsValid() {
			continue
		}
		if ino, ok := socks[c]; ok {
			return ino
		}
		// A socket bound to the wildcard address (unconnected UDP).
		if c.Remote == (netip.AddrPort{}) {
			any := netip.IPv4Unspecified()
			if c.Local.Addr().Is6() {
				any = netip.IPv6Unspecified()
			}
			for _, a := range []netip.Addr{any, netip.IPv6Unspecified()} {
				if ino, ok := socks[sockKey{c.Proto, netip.AddrPortFrom(a, c.Local.Port()), netip.AddrPort{}}]; ok {
					return ino
				}
			}
		}
	}
	return 0
}

func (r *Resolver) readTable(name string, proto uint8, socks map[sockKey]uint64) error {
	path := filepath.Join(r.opts.NetDir, name)
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read socket table: %w", err)
	}
	defer fh.Close()
	if err := ParseTable(fh, proto, func(local, remote netip.AddrPort, inode uint64) {
		if remote.Port() == 0 && remote.Addr().IsUnspecified() {
			remote = netip.AddrPort{}
		}
		socks[sockKey{proto, local, remote}] = inode
	}); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// ParseTable parses a /proc/net/{tcp,tcp6,udp,udp6} table and calls fn for
// each socket with a non-zero inode. IPv4-mapped IPv6 addresses are
// unmapped. Malformed lines give an error naming the line.
func ParseTable(rd io.Reader, proto uint8, fn func(local, remote netip.AddrPort, inode uint64)) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 512), 64<<10)
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			continue // header
		}
		fields := bytes.Fields(sc.Bytes())
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 10 {
			return fmt.Errorf("line %d: %d fields, want at least 10", line, len(fields))
		}
		local, err := parseHexAddrPort(string(fields[1]))
		if err != nil {
			return fmt.Errorf("line %d: local address: %w", line, err)
		}
		remote, err := parseHexAddrPort(string(fields[2]))
		if err != nil {
			return fmt.Errorf("line %d: remote address: %w", line, err)
		}
		inode, err := strconv.ParseUint(string(fields[9]), 10, 64)
		if err != nil {
			return fmt.Errorf("line %d: inode: %w", line, err)
		}
		if inode != 0 {
			fn(local, remote, inode)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	return nil
}

// parseHexAddrPort parses "0100007F:1F90": the address as 32-bit words in
// host byte order, the port big-endian hex.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%q: no port", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: bad port", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("%q: bad address", s)
	}
	// Each 32-bit word was printed as a host-order integer: swap to
	// network order.
	for i := 0; i < len(raw); i += 4 {
		w := binary.NativeEndian.Uint32(raw[i:])
		binary.BigEndian.PutUint32(raw[i:], w)
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// scanFDs finds the processes holding the wanted socket inodes; it stops as
// soon as all are found.
func (r *Resolver) scanFDs(want map[uint64]Proc) map[uint64]Proc {
	got := make(map[uint64]Proc, len(want))
	if len(want) == 0 {
		return got
	}
	d, err := os.Open(r.opts.Proc)
	if err != nil {
		return got
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(r.opts.Proc, n, "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // process gone, or not ours to read
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") || !strings.HasSuffix(link, "]") {
				continue
			}
			ino, err := strconv.ParseUint(link[len("socket:["):len(link)-1], 10, 64)
			if err != nil {
				continue
			}
			if _, ok := want[ino]; !ok {
				continue
			}
			if _, dup := got[ino]; dup {
				continue // first holder wins, as ss lists it first
			}
			got[ino] = Proc{PID: pid, Name: comm(r.opts.Proc, n)}
		}
		if len(got) == len(want) {
			break
		}
	}
	return got
}

func comm(procDir, pid string) string {
	b, err := os.ReadFile(filepath.Join(procDir, pid, "comm"))
	if err != nil {
		return "?"
	}
	return strings.TrimSuffix(string(b), "\n")
}
