// Package services maps ports to service names from an /etc/services file,
// for display (the TUI's port-name toggle).
package services

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/conntop/conntop/internal/flow"
)

// DefaultPath is the system services database.
const DefaultPath = "/etc/services"

type key struct {
	proto uint8
	port  uint16
}

// Table maps (protocol, port) to the first service name listed for it. It is
// read-only after Parse and safe for concurrent use.
type Table struct {
	names map[key]string
}

// Load reads and parses the services file at path.
func Load(path string) (*Table, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load services: %w", err)
	}
	defer fh.Close()
	t, err := Parse(fh)
	if err != nil {
		return nil, fmt.Errorf("load services %s: %w", path, err)
	}
	return t, nil
}

// Parse reads lines "name port/proto [aliases...] [# comment]". Lines it
// cannot understand are skipped, as getservent does; only read errors fail.
// Protocols other than tcp, udp, sctp and dccp are ignored.
func Parse(r io.Reader) (*Table, error) {
	t := &Table{names: make(map[key]string)}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		portS, protoS, ok := strings.Cut(f[1], "/")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(portS, 10, 16)
		if err != nil {
			continue
		}
		var proto uint8
		switch protoS {
		case "tcp":
			proto = flow.ProtoTCP
		case "udp":
			proto = flow.ProtoUDP
		case "sctp":
			proto = flow.ProtoSCTP
		case "dccp":
			proto = flow.ProtoDCCP
		default:
			continue
		}
		k := key{proto, uint16(port)}
		if _, dup := t.names[k]; !dup {
			t.names[k] = f[0]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read services: %w", err)
	}
	return t, nil
}

// Name returns the service name of port for proto (UDPLite uses the UDP
// names), or "" when there is none. A nil Table knows no names.
func (t *Table) Name(proto uint8, port uint16) string {
	if t == nil {
		return ""
	}
	if proto == flow.ProtoUDPLite {
		proto = flow.ProtoUDP
	}
	return t.names[key{proto, port}]
}

// Len returns the number of (protocol, port) names known.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.names)
}
