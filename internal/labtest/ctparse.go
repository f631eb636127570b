package labtest

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// parseKernelTable parses /proc/net/nf_conntrack lines ("ipv4 2 tcp 6 3599
// ESTABLISHED src=… dst=… sport=… dport=… src=… … [ASSURED] mark=0 use=2")
// and calls fn for each, reusing one KernelEntry.
func parseKernelTable(r io.Reader, fn func(*KernelEntry)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	var e KernelEntry
	line := 0
	for sc.Scan() {
		line++
		if err := parseKernelLine(sc.Text(), &e); err != nil {
			return fmt.Errorf("nf_conntrack line %d: %w", line, err)
		}
		fn(&e)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read nf_conntrack: %w", err)
	}
	return nil
}

func parseKernelLine(l string, e *KernelEntry) error {
	*e = KernelEntry{}
	f := strings.Fields(l)
	if len(f) < 6 {
		return fmt.Errorf("too short: %q", l)
	}
	switch f[0] {
	case "ipv4":
	case "ipv6":
		e.IPv6 = true
	default:
		return fmt.Errorf("family %q", f[0])
	}
	p, err := strconv.ParseUint(f[3], 10, 8)
	if err != nil {
		return fmt.Errorf("protocol %q", f[3])
	}
	e.Proto = uint8(p)
	rest := f[5:]
	if e.Proto == 6 && !strings.Contains(rest[0], "=") {
		e.State, rest = rest[0], rest[1:]
	}
	var seen [4]bool // orig src, dst, sport, dport
	for _, w := range rest {
		if w == "[ASSURED]" {
			e.Assured = true
			continue
		}
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			continue
		}
		var i int
		switch k {
		case "src":
			i = 0
		case "dst":
			i = 1
		case "sport":
			i = 2
		case "dport":
			i = 3
		default:
			continue
		}
		if seen[i] {
			continue // the reply tuple
		}
		seen[i] = true
		switch i {
		case 0, 1:
			a, err := netip.ParseAddr(v)
			if err != nil {
				return fmt.Errorf("address %q", v)
			}
			if i == 0 {
				e.Src = a
			} else {
				e.Dst = a
			}
		default:
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return fmt.Errorf("port %q", v)
			}
			if i == 2 {
				e.Sport = uint16(n)
			} else {
				e.Dport = uint16(n)
			}
		}
	}
	if !seen[0] || !seen[1] {
		return fmt.Errorf("no addresses: %q", l)
	}
	return nil
}
