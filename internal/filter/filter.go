package filter

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/conntop/conntop/internal/flow"
)

// Filter is a compiled filter expression. The zero value and a nil *Filter
// match every flow. A Filter is immutable once parsed and safe for
// concurrent use.
type Filter struct {
	// nodes is the expression tree, root last; children are indices of
	// earlier nodes, so evaluation needs no pointers and no allocation.
	nodes []node
	// str is the normalized expression (see String).
	str string
}

// opcode is what a node tests.
type opcode uint8

const (
	opAnd opcode = iota
	opOr
	opNot
	opProto     // proto == node.proto
	opFamily    // family == node.fam
	opHost      // an address in node.pfx (a single address)
	opNet       // an address in node.pfx
	opPort      // a port in node.lo..node.hi
	opState     // netfilter or TCP state in node.states
	opMark      // mark == node.num
	opZone      // zone == node.num
	opAssured   // ASSURED status bit
	opUnreplied // no SEEN_REPLY status bit
	opDisagree  // kernel and wire disagree (compare source), any way
	opKernelOnly
	opWireOnly
)

// direction restricts an address or port test to one end of the original
// tuple; dirAny means any end of the original or the reply tuple.
type direction uint8

const (
	dirAny direction = iota
	dirSrc
	dirDst
)

// stateTCPShift is the bit offset of TCP states in node.states; bits below
// it hold netfilter states.
const stateTCPShift = 8

// node is one operator or primitive.
type node struct {
	op     opcode
	dir    direction
	proto  uint8
	fam    flow.Family
	lo, hi uint16
	a, b   int32 // children of and/or (a, b) and not (a)
	states uint32
	num    uint32
	pfx    netip.Prefix
}

// MatchesAll reports whether the filter passes every flow (a nil Filter,
// or one of an empty expression): a reader may then skip evaluating it.
func (f *Filter) MatchesAll() bool { return f == nil || len(f.nodes) == 0 }

// Match reports whether fl passes the filter. A nil Filter matches every
// flow. Match never allocates.
func (f *Filter) Match(fl *flow.Flow) bool {
	if f == nil || len(f.nodes) == 0 {
		return true
	}
	return f.eval(int32(len(f.nodes)-1), fl)
}

// eval evaluates node i against fl, short-circuiting and/or.
func (f *Filter) eval(i int32, fl *flow.Flow) bool {
	n := &f.nodes[i]
	switch n.op {
	case opAnd:
		return f.eval(n.a, fl) && f.eval(n.b, fl)
	case opOr:
		return f.eval(n.a, fl) || f.eval(n.b, fl)
	case opNot:
		return !f.eval(n.a, fl)
	case opProto:
		return fl.Proto == n.proto
	case opFamily:
		return fl.Family == n.fam
	case opHost, opNet:
		return matchAddr(n, fl)
	case opPort:
		return matchPort(n, fl)
	case opState:
		if n.states&(1<<fl.State()) != 0 {
			return true
		}
		return fl.Proto == flow.ProtoTCP && fl.TCPState != flow.TCPNone &&
			n.states&(1<<(stateTCPShift+uint(fl.TCPState))) != 0
	case opMark:
		return fl.Mark == n.num
	case opZone:
		return uint32(fl.Zone) == n.num
	case opAssured:
		return fl.Status&flow.StatusAssured != 0
	case opUnreplied:
		return fl.Status&flow.StatusSeenReply == 0
	case opDisagree:
		return fl.Compare.Disagree != flow.DisagreeNone
	case opKernelOnly:
		return fl.Compare.Disagree == flow.DisagreeKernelOnly
	case opWireOnly:
		return fl.Compare.Disagree == flow.DisagreeWireOnly
	}
	return false
}

// matchAddr tests an address primitive.
func matchAddr(n *node, fl *flow.Flow) bool {
	switch n.dir {
	case dirSrc:
		return n.pfx.Contains(fl.Orig.Src)
	case dirDst:
		return n.pfx.Contains(fl.Orig.Dst)
	}
	return n.pfx.Contains(fl.Orig.Src) || n.pfx.Contains(fl.Orig.Dst) ||
		n.pfx.Contains(fl.Reply.Src) || n.pfx.Contains(fl.Reply.Dst)
}

// matchPort tests a port primitive.
func matchPort(n *node, fl *flow.Flow) bool {
	if !flow.HasPorts(fl.Proto) {
		return false
	}
	in := func(p uint16) bool { return p >= n.lo && p <= n.hi }
	switch n.dir {
	case dirSrc:
		return in(fl.Orig.SrcPort)
	case dirDst:
		return in(fl.Orig.DstPort)
	}
	return in(fl.Orig.SrcPort) || in(fl.Orig.DstPort) || in(fl.Reply.SrcPort) || in(fl.Reply.DstPort)
}

// String returns the normalized expression: keywords in lower case, states
// in upper case, explicit "and" for qualified primitives, and parentheses
// wherever grouping is not plain left to right. It parses back to an
// equivalent filter. A filter matching everything returns "".
func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	return f.str
}

// format renders the tree rooted at i.
func (f *Filter) format(b *strings.Builder, i int32) {
	n := &f.nodes[i]
	switch n.op {
	case opAnd, opOr:
		f.format(b, n.a) // left operand: grouping is left to right already
		if n.op == opAnd {
			b.WriteString(" and ")
		} else {
			b.WriteString(" or ")
		}
		f.formatOperand(b, n.b)
	case opNot:
		b.WriteString("not ")
		f.formatOperand(b, n.a)
	default:
		formatPrim(b, n)
	}
}

// formatOperand renders node i, in parentheses when it is a binary operator.
func (f *Filter) formatOperand(b *strings.Builder, i int32) {
	if op := f.nodes[i].op; op == opAnd || op == opOr {
		b.WriteByte('(')
		f.format(b, i)
		b.WriteByte(')')
		return
	}
	f.format(b, i)
}

// formatPrim renders a primitive.
func formatPrim(b *strings.Builder, n *node) {
	dir := ""
	switch n.dir {
	case dirSrc:
		dir = "src "
	case dirDst:
		dir = "dst "
	}
	switch n.op {
	case opProto:
		switch n.proto {
		case flow.ProtoTCP, flow.ProtoUDP, flow.ProtoICMP, flow.ProtoICMPv6:
			b.WriteString(flow.ProtoName(n.proto))
		default:
			b.WriteString("proto ")
			b.WriteString(flow.ProtoName(n.proto))
		}
	case opFamily:
		b.WriteString(n.fam.String())
	case opHost:
		b.WriteString(dir + "host ")
		b.WriteString(n.pfx.Addr().String())
	case opNet:
		b.WriteString(dir + "net ")
		b.WriteString(n.pfx.String())
	case opPort:
		b.WriteString(dir + "port ")
		b.WriteString(strconv.Itoa(int(n.lo)))
		if n.hi != n.lo {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(n.hi)))
		}
	case opState:
		b.WriteString("state ")
		first := true
		for s := flow.StateNew; s <= flow.StateRelated; s++ {
			if n.states&(1<<s) != 0 {
				if !first {
					b.WriteByte(',')
				}
				first = false
				b.WriteString(s.String())
			}
		}
		for s := flow.TCPSynSent; s < flow.NumTCPStates; s++ {
			if n.states&(1<<(stateTCPShift+uint(s))) != 0 {
				if !first {
					b.WriteByte(',')
				}
				first = false
				if _, clash := flow.ParseState(s.String()); clash {
					b.WriteString("tcp:")
				}
				b.WriteString(s.String())
			}
		}
	case opMark:
		b.WriteString("mark ")
		b.WriteString(strconv.FormatUint(uint64(n.num), 10))
	case opZone:
		b.WriteString("zone ")
		b.WriteString(strconv.FormatUint(uint64(n.num), 10))
	case opAssured:
		b.WriteString("assured")
	case opUnreplied:
		b.WriteString("unreplied")
	case opDisagree:
		b.WriteString("disagree")
	case opKernelOnly:
		b.WriteString("kernelonly")
	case opWireOnly:
		b.WriteString("wireonly")
	}
}
