package tracker

import (
	"net/netip"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// ftpState is struct nf_ct_ftp_master: the sequence numbers just after a
// newline, per direction, so commands are only parsed at a line start.
type ftpState struct {
	seqAftNL    [2][2]uint32
	seqAftNLNum [2]uint8
}

// expectation is an expected FTP data connection: from src (any port) to
// dst:port over TCP, created by master's control connection.
type expectation struct {
	master   *conn
	family   flow.Family
	zone     uint16
	src, dst netip.Addr
	port     uint16
	expires  int64
	id       uint32
}

// ftpPort reports whether new connections to port get the FTP helper.
func (t *Tracker) ftpPort(port uint16) bool {
	for _, p := range t.cfg.FTPPorts {
		if p == port {
			return true
		}
	}
	return false
}

// findExpectation consumes the expectation matching the new entry c, if
// any, and links c to its master (nf_ct_find_expectation).
func (t *Tracker) findExpectation(c *conn) bool {
	if len(t.expects) == 0 || c.key.Proto != flow.ProtoTCP {
		return false
	}
	o := c.key.Orig
	for i := range t.expects {
		e := &t.expects[i]
		if e.expires-t.nowNS <= 0 {
			continue
		}
		if e.zone != c.key.Zone || e.src != o.Src || e.dst != o.Dst || e.port != o.DstPort {
			continue
		}
		if !e.master.confirmed {
			return false
		}
		m := e.master.key.Orig
		c.master = &m
		t.removeExpectation(i)
		return true
	}
	return false
}

// removeExpectation drops expectation i.
func (t *Tracker) removeExpectation(i int) {
	t.expects[i].master.nexpect--
	last := len(t.expects) - 1
	copy(t.expects[i:], t.expects[i+1:])
	t.expects[last] = expectation{}
	t.expects = t.expects[:last]
}

// removeExpectations drops the expectations of a destroyed master.
func (t *Tracker) removeExpectations(c *conn) {
	for i := 0; c.nexpect > 0 && i < len(t.expects); {
		if t.expects[i].master == c {
			t.removeExpectation(i)
			continue
		}
		i++
	}
}

// expireExpectations drops expectations whose timeout passed.
func (t *Tracker) expireExpectations() {
	for i := 0; i < len(t.expects); {
		if t.expects[i].expires-t.nowNS <= 0 {
			t.removeExpectation(i)
			continue
		}
		i++
	}
}

// expect registers an expectation of master (nf_ct_expect_related with the
// FTP policy: max_expected 1, the oldest evicted).
func (t *Tracker) expect(e expectation) {
	t.expireExpectations()
	for i := range t.expects {
		x := &t.expects[i]
		if x.master == e.master && x.zone == e.zone && x.src == e.src && x.dst == e.dst && x.port == e.port {
			t.removeExpectation(i)
			break
		}
	}
	if e.master.nexpect >= 1 {
		for i := range t.expects {
			if t.expects[i].master == e.master {
				t.removeExpectation(i) // the oldest: expects is in creation order
				break
			}
		}
	}
	if len(t.expects) >= t.expectMax {
		return // "nf_conntrack: expectation table full"
	}
	e.expires = t.nowNS + int64(t.to.Expect)
	e.master.nexpect++
	t.nextExpectID++
	e.id = t.nextExpectID
	t.expects = append(t.expects, e)
}

// AppendExpectations appends the pending expectations alive at now (oldest
// first), with their timeouts as of now, to dst and returns it: the
// expected original tuple (any source port: Mask.SrcPort is 0), the mask
// and the master's original tuple, as `conntrack -L expect` lists them.
func (t *Tracker) AppendExpectations(dst []flow.Expectation, now time.Time) []flow.Expectation {
	ns := now.UnixNano()
	for i := range t.expects {
		e := &t.expects[i]
		left := e.expires - ns
		if left <= 0 {
			continue
		}
		full := netip.AddrFrom4([4]byte{255, 255, 255, 255})
		if e.family == flow.FamilyIPv6 {
			full = netip.AddrFrom16([16]byte{0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255, 7: 255,
				8: 255, 9: 255, 10: 255, 11: 255, 12: 255, 13: 255, 14: 255, 15: 255})
		}
		dst = append(dst, flow.Expectation{
			ID:          e.id,
			Family:      e.family,
			Proto:       flow.ProtoTCP,
			Timeout:     uint32(left / int64(time.Second)),
			Tuple:       flow.Tuple{Src: e.src, Dst: e.dst, DstPort: e.port},
			Mask:        flow.Tuple{Src: full, Dst: full, DstPort: 0xFFFF},
			MasterProto: e.master.key.Proto,
			Master:      e.master.key.Orig,
			Zone:        e.zone,
			Helper:      "ftp",
		})
	}
	return dst
}

// ftpHelp is the FTP helper's help(): it looks for PORT/EPRT commands and
// 227/229 replies at the start of a line and expects the data connection.
// It reports whether the kernel would drop the packet (a partial command).
func (t *Tracker) ftpHelp(c *conn, p *pkt, reply bool, info CtInfo) bool {
	if info != CtEstablished || c.key.Proto != flow.ProtoTCP {
		return false
	}
	if ok, _ := p.have(20); !ok {
		return false
	}
	doff := int(p.l4Data()[12]>>4) * 4
	dataoff := p.l4 + doff
	if dataoff >= p.length {
		return false
	}
	if p.truncated {
		return false // the capture does not hold the whole command
	}
	data := p.data[dataoff:]
	dir := 0
	if reply {
		dir = 1
	}
	l4 := p.l4Data()
	seq := uint32(l4[4])<<24 | uint32(l4[5])<<16 | uint32(l4[6])<<8 | uint32(l4[7])
	endsInNL := data[len(data)-1] == '\n'
	nextSeq := seq + uint32(len(data))
	st := &c.ftp
	atLineStart := false
	for i := 0; i < int(st.seqAftNLNum[dir]); i++ {
		if st.seqAftNL[dir][i] == seq {
			atLineStart = true
		}
	}
	if atLineStart {
		var srcTuple, dstTuple flow.Tuple // tuplehash[dir] and tuplehash[!dir]
		if dir == 0 {
			srcTuple, dstTuple = c.key.Orig, c.reply
		} else {
			srcTuple, dstTuple = c.reply, c.key.Orig
		}
		cmd := ftpCmd{addr: srcTuple.Src.As16(), v4: c.family == flow.FamilyIPv4}
		found := ftpSearch(data, dir, &cmd)
		if found < 0 {
			return true // partial match: NF_DROP, sequence state untouched
		}
		if found > 0 {
			sender := srcTuple.Src.As16()
			exp := expectation{master: c, family: c.family, zone: c.key.Zone,
				src: dstTuple.Src, dst: dstTuple.Dst, port: cmd.port}
			if cmd.addr != sender {
				if t.cfg.FTPLoose {
					exp.dst = cmd.netipAddr()
					t.expect(exp)
				}
			} else {
				t.expect(exp)
			}
		}
	}
	if endsInNL {
		ftpUpdateNL(st, dir, nextSeq)
	}
	return false
}

// ftpUpdateNL is update_nl_seq.
func ftpUpdateNL(st *ftpState, dir int, nl uint32) {
	for i := 0; i < int(st.seqAftNLNum[dir]); i++ {
		if st.seqAftNL[dir][i] == nl {
			return
		}
	}
	if st.seqAftNLNum[dir] < 2 {
		st.seqAftNL[dir][st.seqAftNLNum[dir]] = nl
		st.seqAftNLNum[dir]++
		return
	}
	oldest := 1
	if before(st.seqAftNL[dir][0], st.seqAftNL[dir][1]) {
		oldest = 0
	}
	if after(nl, st.seqAftNL[dir][oldest]) {
		st.seqAftNL[dir][oldest] = nl
	}
}

// ftpCmd is struct nf_conntrack_man: the address and port a command names.
type ftpCmd struct {
	addr [16]byte // the address as As16 of the flow's family (IPv4-mapped for IPv4)
	v4   bool
	port uint16
}

// netipAddr returns the command's address for the flow's family.
func (c *ftpCmd) netipAddr() netip.Addr {
	if c.v4 {
		return netip.AddrFrom4([4]byte(c.addr[12:16]))
	}
	return netip.AddrFrom16(c.addr)
}

// setIPv4 stores an IPv4 address as try_rfc959/try_eprt do: into the first
// 32 bits of the kernel's address union. For an IPv4 flow that is the whole
// address; for an IPv6 flow it overwrites the first 4 bytes.
func (c *ftpCmd) setIPv4(a [4]byte) {
	if c.v4 {
		copy(c.addr[12:], a[:])
		return
	}
	copy(c.addr[:4], a[:])
}

// ftpSearch tries the patterns of direction dir at the start of data:
// 1 match, 0 no match, -1 partial match (find_pattern).
func ftpSearch(data []byte, dir int, cmd *ftpCmd) int {
	if dir == 0 {
		if r := findPattern(data, "PORT", ' ', '\r', cmd, getRFC959); r != 0 {
			return r
		}
		return findPattern(data, "EPRT", ' ', '\r', cmd, getEPRT)
	}
	if r := findPattern(data, "227 ", 0, 0, cmd, getRFC1123); r != 0 {
		return r
	}
	return findPattern(data, "229 ", '(', ')', cmd, getEPSV)
}

type getNum func(data []byte, cmd *ftpCmd, term byte) int

// findPattern is find_pattern.
func findPattern(data []byte, pattern string, skip, term byte, cmd *ftpCmd, get getNum) int {
	plen := len(pattern)
	if len(data) <= plen {
		if equalFoldPrefix(data, pattern[:len(data)]) {
			return -1
		}
		return 0
	}
	if !equalFoldPrefix(data[:plen], pattern) {
		return 0
	}
	i := plen
	if skip != 0 {
		for ; data[i] != skip; i++ {
			if i == len(data)-1 {
				return -1
			}
		}
		i++
	}
	if get(data[i:], cmd, term) == 0 {
		return -1
	}
	return 1
}

func equalFoldPrefix(b []byte, s string) bool {
	for i := range len(s) {
		x, y := b[i], s[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// tryNumber is try_number: n numbers separated by sep, ended by term (any
// character when term is 0). It returns the length consumed, 0 on failure.
func tryNumber(data []byte, arr []uint32, sep, term byte) int {
	clear(arr)
	i := 0
	for n := 0; n < len(data) && i < len(arr); n++ {
		ch := data[n]
		switch {
		case ch >= '0' && ch <= '9':
			arr[i] = arr[i]*10 + uint32(ch-'0')
		case ch == sep:
			i++
		default:
			if (ch == term || term == 0) && i == len(arr)-1 {
				return n
			}
			return 0
		}
	}
	return 0
}

// getRFC959 parses "h1,h2,h3,h4,p1,p2".
func getRFC959(data []byte, cmd *ftpCmd, term byte) int {
	var arr [6]uint32
	n := tryNumber(data, arr[:], ',', term)
	if n == 0 {
		return 0
	}
	ip := arr[0]<<24 | arr[1]<<16 | arr[2]<<8 | arr[3]
	cmd.setIPv4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)})
	cmd.port = uint16(arr[4]<<8 | arr[5])
	return n
}

// getRFC1123 scans to the first digit, then parses as getRFC959 with no
// terminator (227 replies may or may not have parentheses).
func getRFC1123(data []byte, cmd *ftpCmd, _ byte) int {
	i := 0
	for i < len(data) && (data[i] < '0' || data[i] > '9') {
		i++
	}
	if i == len(data) {
		return 0
	}
	return getRFC959(data[i:], cmd, 0)
}

// getPort is get_port: a number up to delim, non-zero.
func getPort(data []byte, start int, delim byte, port *uint16) int {
	var tmp uint16
	for i := start; i < len(data); i++ {
		ch := data[i]
		switch {
		case ch == delim:
			if tmp == 0 {
				return 0
			}
			*port = tmp
			return i + 1
		case ch >= '0' && ch <= '9':
			tmp = tmp*10 + uint16(ch-'0')
		default:
			return 0
		}
	}
	return 0
}

func validDelim(d byte) bool { return (d < '0' || d > '9') && d >= 33 && d <= 126 }

// getEPRT parses "|1|a.b.c.d|port|" or "|2|ipv6|port|".
func getEPRT(data []byte, cmd *ftpCmd, _ byte) int {
	if len(data) <= 3 {
		return 0
	}
	delim := data[0]
	if !validDelim(delim) || data[2] != delim {
		return 0
	}
	if (cmd.v4 && data[1] != '1') || (!cmd.v4 && data[1] != '2') {
		return 0
	}
	var n int
	if data[1] == '1' {
		var arr [4]uint32
		n = tryNumber(data[3:], arr[:], '.', delim)
		if n != 0 {
			ip := arr[0]<<24 | arr[1]<<16 | arr[2]<<8 | arr[3]
			cmd.setIPv4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)})
		}
	} else {
		end := 3
		for end < len(data) && data[end] != delim {
			end++
		}
		if end == len(data) {
			return 0
		}
		a, err := netip.ParseAddr(string(data[3:end]))
		if err != nil || !a.Is6() || a.Zone() != "" {
			return 0
		}
		cmd.addr = a.As16()
		n = end - 3
	}
	if n == 0 {
		return 0
	}
	return getPort(data, 3+n+1, delim, &cmd.port)
}

// getEPSV parses "|||port|".
func getEPSV(data []byte, cmd *ftpCmd, _ byte) int {
	if len(data) <= 3 {
		return 0
	}
	delim := data[0]
	if !validDelim(delim) || data[1] != delim || data[2] != delim {
		return 0
	}
	return getPort(data, 3, delim, &cmd.port)
}
