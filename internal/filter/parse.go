package filter

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/conntop/conntop/internal/flow"
)

// SyntaxError reports a filter expression that does not parse.
type SyntaxError struct {
	// Expr is the expression as given.
	Expr string
	// Pos is the byte offset of the problem in Expr (0-based; len(Expr)
	// when the expression ended too early).
	Pos int
	// Msg says what is wrong.
	Msg string
}

// Error returns `filter: position N: MSG`.
func (e *SyntaxError) Error() string {
	return "filter: position " + strconv.Itoa(e.Pos) + ": " + e.Msg
}

// maxDepth bounds the nesting of parentheses and "not", so that a hostile
// expression cannot make parsing or evaluation recurse without bound.
const maxDepth = 64

// maxNodes bounds the size of a compiled expression.
const maxNodes = 4096

// Parse compiles expr. An empty expression (or only spaces) gives a Filter
// matching every flow. Errors are *SyntaxError.
func Parse(expr string) (*Filter, error) {
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{expr: expr, toks: toks}
	f := &Filter{}
	if p.peek().kind == tokEOF {
		return f, nil
	}
	if _, err := p.parseExpr(0); err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		if t.kind == tokRParen {
			return nil, p.errAt(t, `unbalanced ")"`)
		}
		return nil, p.errAt(t, fmt.Sprintf(`expected "and" or "or" before %s`, t.describe()))
	}
	f.nodes = p.nodes
	var b strings.Builder
	f.format(&b, int32(len(f.nodes)-1))
	f.str = b.String()
	return f, nil
}

// MustParse is like Parse but panics on error; for expressions fixed in
// code (tests, examples).
func MustParse(expr string) *Filter {
	f, err := Parse(expr)
	if err != nil {
		panic(err)
	}
	return f
}

// parser is a recursive-descent parser over the token list.
type parser struct {
	expr  string
	toks  []token
	i     int
	nodes []node
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) errAt(t token, msg string) error {
	return &SyntaxError{Expr: p.expr, Pos: t.pos, Msg: msg}
}

// add appends n and returns its index.
func (p *parser) add(n node) (int32, error) {
	if len(p.nodes) >= maxNodes {
		return 0, &SyntaxError{Expr: p.expr, Pos: p.peek().pos, Msg: "filter too long"}
	}
	p.nodes = append(p.nodes, n)
	return int32(len(p.nodes) - 1), nil
}

// parseExpr parses term { (and|or) term }, grouping left to right.
func (p *parser) parseExpr(depth int) (int32, error) {
	left, err := p.parseTerm(depth)
	if err != nil {
		return 0, err
	}
	for {
		t := p.peek()
		var op opcode
		switch t.kind {
		case tokAnd:
			op = opAnd
		case tokOr:
			op = opOr
		default:
			return left, nil
		}
		p.next()
		right, err := p.parseTerm(depth)
		if err != nil {
			return 0, err
		}
		if left, err = p.add(node{op: op, a: left, b: right}); err != nil {
			return 0, err
		}
	}
}

// parseTerm parses { not } ( "(" expr ")" | prim ).
func (p *parser) parseTerm(depth int) (int32, error) {
	t := p.peek()
	if depth >= maxDepth {
		return 0, p.errAt(t, "expression nested too deeply")
	}
	switch t.kind {
	case tokNot:
		p.next()
		a, err := p.parseTerm(depth + 1)
		if err != nil {
			return 0, err
		}
		return p.add(node{op: opNot, a: a})
	case tokLParen:
		p.next()
		e, err := p.parseExpr(depth + 1)
		if err != nil {
			return 0, err
		}
		if c := p.peek(); c.kind != tokRParen {
			if c.kind == tokEOF {
				return 0, p.errAt(c, fmt.Sprintf(`missing ")" to close "(" at position %d`, t.pos))
			}
			return 0, p.errAt(c, fmt.Sprintf(`expected "and", "or" or ")" before %s`, c.describe()))
		}
		p.next()
		return e, nil
	case tokWord:
		return p.parsePrim()
	case tokEOF:
		return 0, p.errAt(t, "expected a filter term at end of filter")
	}
	return 0, p.errAt(t, fmt.Sprintf("expected a filter term, got %s", t.describe()))
}

// keywords lists the words that start a primitive, for suggestions.
var keywords = []string{"tcp", "udp", "icmp", "icmpv6", "ipv4", "ipv6", "ip", "ip6", "proto",
	"src", "dst", "host", "net", "port", "sport", "dport", "state", "mark", "zone",
	"assured", "unreplied", "disagree", "kernelonly", "wireonly", "and", "or", "not"}

// qualifiable reports whether word starts a primitive that a protocol or
// family word may qualify ("udp port 53").
func qualifiable(w string) bool {
	switch strings.ToLower(w) {
	case "src", "dst", "host", "net", "port", "sport", "dport":
		return true
	}
	return false
}

// parsePrim parses one primitive; the current token is a word.
func (p *parser) parsePrim() (int32, error) {
	t := p.next()
	w := strings.ToLower(t.text)
	switch w {
	case "tcp", "udp", "icmp", "icmpv6":
		proto, _ := flow.ParseProto(w)
		return p.qualified(t, node{op: opProto, proto: proto})
	case "ipv4", "ip":
		return p.qualified(t, node{op: opFamily, fam: flow.FamilyIPv4})
	case "ipv6", "ip6":
		return p.qualified(t, node{op: opFamily, fam: flow.FamilyIPv6})
	case "proto":
		a := p.next()
		if a.kind != tokWord {
			return 0, p.errAt(a, `expected a protocol name or number after "proto"`)
		}
		proto, err := flow.ParseProto(a.text)
		if err != nil {
			return 0, p.errAt(a, fmt.Sprintf("unknown protocol %q (use a name such as tcp, udp, sctp, gre, or a number 0-255)", a.text))
		}
		return p.add(node{op: opProto, proto: proto})
	case "src", "dst":
		dir := dirSrc
		if w == "dst" {
			dir = dirDst
		}
		return p.parseDirected(t, dir)
	case "host", "net", "port":
		return p.parseAddrPort(t, w, dirAny)
	case "sport":
		return p.parseAddrPort(t, "port", dirSrc)
	case "dport":
		return p.parseAddrPort(t, "port", dirDst)
	case "state":
		return p.parseState(t)
	case "mark", "zone":
		a := p.next()
		if a.kind != tokWord {
			return 0, p.errAt(a, fmt.Sprintf("expected a number after %q", w))
		}
		bits := 32
		if w == "zone" {
			bits = 16
		}
		v, err := strconv.ParseUint(a.text, 0, bits)
		if err != nil {
			return 0, p.errAt(a, fmt.Sprintf("%s must be a number 0-%d, got %q", w, uint64(1)<<bits-1, a.text))
		}
		op := opMark
		if w == "zone" {
			op = opZone
		}
		return p.add(node{op: op, num: uint32(v)})
	case "assured":
		return p.add(node{op: opAssured})
	case "unreplied":
		return p.add(node{op: opUnreplied})
	case "disagree":
		return p.add(node{op: opDisagree})
	case "kernelonly":
		return p.add(node{op: opKernelOnly})
	case "wireonly":
		return p.add(node{op: opWireOnly})
	}
	msg := fmt.Sprintf("unknown word %q", t.text)
	if s := suggest(w, keywords); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return 0, p.errAt(t, msg)
}

// qualified returns the protocol or family node n, and-ed with the
// primitive that directly follows it when that is a host, net or port
// primitive ("tcp port 80").
func (p *parser) qualified(t token, n node) (int32, error) {
	a, err := p.add(n)
	if err != nil {
		return 0, err
	}
	nx := p.peek()
	if nx.kind != tokWord || !qualifiable(nx.text) {
		return a, nil
	}
	if n.op == opProto && !flow.HasPorts(n.proto) {
		if w := strings.ToLower(nx.text); w == "port" || w == "sport" || w == "dport" ||
			((w == "src" || w == "dst") && p.toks[p.i+1].kind == tokWord && strings.EqualFold(p.toks[p.i+1].text, "port")) {
			return 0, p.errAt(nx, fmt.Sprintf("%s has no ports", strings.ToLower(t.text)))
		}
	}
	b, err := p.parsePrim()
	if err != nil {
		return 0, err
	}
	return p.add(node{op: opAnd, a: a, b: b})
}

// parseDirected parses what follows "src" or "dst": host, net or port and
// its argument, or an address or CIDR (short for host or net).
func (p *parser) parseDirected(t token, dir direction) (int32, error) {
	nx := p.peek()
	if nx.kind == tokWord {
		switch w := strings.ToLower(nx.text); w {
		case "host", "net", "port":
			p.next()
			return p.parseAddrPort(nx, w, dir)
		}
		if strings.Contains(nx.text, "/") {
			return p.parseAddrPort(t, "net", dir)
		}
		if _, err := netip.ParseAddr(nx.text); err == nil {
			return p.parseAddrPort(t, "host", dir)
		}
	}
	return 0, p.errAt(nx, fmt.Sprintf(`expected "host", "net" or "port" after %q, got %s`, strings.ToLower(t.text), nx.describe()))
}

// parseAddrPort parses the argument of host, net or port (kind) that the
// token t introduced.
func (p *parser) parseAddrPort(t token, kind string, dir direction) (int32, error) {
	a := p.next()
	if a.kind != tokWord {
		what := map[string]string{"host": "an address", "net": "a network (CIDR)", "port": "port number"}[kind]
		return 0, p.errAt(a, fmt.Sprintf("expected %s after %q", what, strings.ToLower(t.text)))
	}
	switch kind {
	case "host":
		addr, err := netip.ParseAddr(a.text)
		if err != nil || addr.Zone() != "" {
			msg := fmt.Sprintf("invalid address %q", a.text)
			if strings.Contains(a.text, "/") {
				msg += ` (use "net" for a network)`
			}
			return 0, p.errAt(a, msg)
		}
		addr = addr.Unmap()
		return p.add(node{op: opHost, dir: dir, pfx: netip.PrefixFrom(addr, addr.BitLen())})
	case "net":
		var pfx netip.Prefix
		if strings.Contains(a.text, "/") {
			var err error
			pfx, err = netip.ParsePrefix(a.text)
			if err != nil {
				return 0, p.errAt(a, fmt.Sprintf("invalid network %q (want CIDR such as 10.0.0.0/8 or fd00::/64)", a.text))
			}
		} else {
			addr, err := netip.ParseAddr(a.text)
			if err != nil || addr.Zone() != "" {
				return 0, p.errAt(a, fmt.Sprintf("invalid network %q (want CIDR such as 10.0.0.0/8 or fd00::/64)", a.text))
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		if pfx.Addr().Is4In6() {
			return 0, p.errAt(a, fmt.Sprintf("invalid network %q: IPv4-mapped IPv6 networks are not supported", a.text))
		}
		return p.add(node{op: opNet, dir: dir, pfx: pfx.Masked()})
	}
	lo, hi, err := parsePortRange(a.text)
	if err != nil {
		return 0, p.errAt(a, err.Error())
	}
	return p.add(node{op: opPort, dir: dir, lo: lo, hi: hi})
}

// portNames are well-known service names accepted for ports.
var portNames = map[string]uint16{
	"ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "dns": 53, "domain": 53,
	"bootps": 67, "bootpc": 68, "tftp": 69, "http": 80, "kerberos": 88, "pop3": 110, "ntp": 123,
	"imap": 143, "snmp": 161, "bgp": 179, "ldap": 389, "https": 443, "smtps": 465, "syslog": 514,
	"submission": 587, "ldaps": 636, "imaps": 993, "pop3s": 995, "openvpn": 1194, "nfs": 2049,
	"mysql": 3306, "rdp": 3389, "sip": 5060, "postgresql": 5432, "postgres": 5432, "redis": 6379,
	"http-alt": 8080, "wireguard": 51820,
}

// parsePort parses one port: a number 0-65535 or a service name.
func parsePort(s string) (uint16, error) {
	if v, err := strconv.ParseUint(s, 10, 16); err == nil {
		return uint16(v), nil
	}
	if v, ok := portNames[strings.ToLower(s)]; ok {
		return v, nil
	}
	if _, err := strconv.ParseUint(s, 10, 64); err == nil {
		return 0, fmt.Errorf("port %s out of range 0-65535", s)
	}
	return 0, fmt.Errorf("invalid port %q (want a number 0-65535, a range such as 1000-2000, or a service name such as https)", s)
}

// parsePortRange parses PORT or PORT-PORT.
func parsePortRange(s string) (lo, hi uint16, err error) {
	// Service names may contain '-' ("ftp-data", "http-alt"): try the whole
	// word first.
	if v, err := parsePort(s); err == nil {
		return v, v, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		_, err := parsePort(s)
		return 0, 0, err
	}
	if lo, err = parsePort(a); err != nil {
		return 0, 0, err
	}
	if hi, err = parsePort(b); err != nil {
		return 0, 0, err
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("port range %s is reversed (want low-high)", s)
	}
	return lo, hi, nil
}

// stateWords lists the state names, for suggestions.
var stateWords = []string{"NEW", "ESTABLISHED", "RELATED", "SYN_SENT", "SYN_RECV", "FIN_WAIT",
	"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}

// parseState parses "state NAME[,NAME...]".
func (p *parser) parseState(t token) (int32, error) {
	a := p.next()
	if a.kind != tokWord {
		return 0, p.errAt(a, `expected a state name after "state" (NEW, ESTABLISHED, RELATED or a TCP state)`)
	}
	var mask uint32
	off := 0
	for _, name := range strings.Split(a.text, ",") {
		pos := a.pos + off
		off += len(name) + 1
		if name == "" {
			return 0, &SyntaxError{Expr: p.expr, Pos: pos, Msg: "empty state name in list"}
		}
		bit, err := stateBit(name)
		if err != nil {
			return 0, &SyntaxError{Expr: p.expr, Pos: pos, Msg: err.Error()}
		}
		mask |= bit
	}
	return p.add(node{op: opState, states: mask})
}

// stateBit returns the mask bit of one state name.
func stateBit(name string) (uint32, error) {
	if len(name) > 4 && strings.EqualFold(name[:4], "tcp:") {
		if s, ok := flow.ParseTCPState(name[4:]); ok && s != flow.TCPNone {
			return 1 << (stateTCPShift + uint(s)), nil
		}
		return 0, fmt.Errorf("unknown TCP state %q", name[4:])
	}
	if s, ok := flow.ParseState(name); ok {
		return 1 << uint(s), nil
	}
	if s, ok := flow.ParseTCPState(name); ok && s != flow.TCPNone {
		return 1 << (stateTCPShift + uint(s)), nil
	}
	if strings.EqualFold(name, "INVALID") || strings.EqualFold(name, "UNTRACKED") {
		return 0, fmt.Errorf("state %s never appears in the table (%s packets make no flow)", strings.ToUpper(name), strings.ToUpper(name))
	}
	msg := fmt.Sprintf("unknown state %q", name)
	if s := suggest(strings.ToUpper(name), stateWords); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return 0, fmt.Errorf("%s", msg)
}

// suggest returns the candidate closest to w (case-insensitive edit
// distance at most 2, or 3 for long words), or "".
func suggest(w string, candidates []string) string {
	if len(w) > 64 {
		return ""
	}
	best, bestD := "", 3
	if len(w) >= 8 {
		bestD = 4
	}
	lw := strings.ToLower(w)
	for _, c := range candidates {
		if d := editDistance(lw, strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
