package flow

import (
	"fmt"
	"strconv"
	"strings"
)

// State is the netfilter state of a flow as the `ct state` match names it.
// INVALID is not a flow state: invalid packets never make flows.
type State uint8

// Netfilter states of a flow.
const (
	StateNew State = iota
	StateEstablished
	StateRelated
)

var stateNames = [...]string{"NEW", "ESTABLISHED", "RELATED"}

// String returns NEW, ESTABLISHED or RELATED.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// ParseState parses a netfilter state name in any case.
func ParseState(s string) (State, bool) {
	for i, n := range stateNames {
		if strings.EqualFold(s, n) {
			return State(i), true
		}
	}
	return 0, false
}

// TCPState is the kernel's TCP conntrack state (enum tcp_conntrack).
type TCPState uint8

// TCP conntrack states, numbered as the kernel numbers them.
const (
	TCPNone TCPState = iota
	TCPSynSent
	TCPSynRecv
	TCPEstablished
	TCPFinWait
	TCPCloseWait
	TCPLastAck
	TCPTimeWait
	TCPClose
	TCPSynSent2
	// NumTCPStates is the number of TCP states (for tables indexed by state).
	NumTCPStates
)

var tcpStateNames = [...]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
	"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}

// String returns the kernel's name for the state (as /proc/net/nf_conntrack
// prints it).
func (s TCPState) String() string {
	if int(s) < len(tcpStateNames) {
		return tcpStateNames[s]
	}
	return "TCPState(" + strconv.Itoa(int(s)) + ")"
}

// ParseTCPState parses a kernel TCP state name in any case.
func ParseTCPState(s string) (TCPState, bool) {
	for i, n := range tcpStateNames {
		if strings.EqualFold(s, n) {
			return TCPState(i), true
		}
	}
	return 0, false
}

// Status holds the kernel's IPS_* status bits of a conntrack entry.
type Status uint32

// Status bits, as in include/uapi/linux/netfilter/nf_conntrack_common.h.
const (
	StatusExpected     Status = 1 << 0
	StatusSeenReply    Status = 1 << 1
	StatusAssured      Status = 1 << 2
	StatusConfirmed    Status = 1 << 3
	StatusSrcNAT       Status = 1 << 4
	StatusDstNAT       Status = 1 << 5
	StatusSeqAdjust    Status = 1 << 6
	StatusSrcNATDone   Status = 1 << 7
	StatusDstNATDone   Status = 1 << 8
	StatusDying        Status = 1 << 9
	StatusFixedTimeout Status = 1 << 10
	StatusTemplate     Status = 1 << 11
	StatusNATClash     Status = 1 << 12
	StatusHelper       Status = 1 << 13
	StatusOffload      Status = 1 << 14
	StatusHWOffload    Status = 1 << 15
)

// statusOrder is the order in which status names are listed: the life-cycle
// bits first (as in the snapshot JSON example), then the rest by bit.
var statusOrder = [...]struct {
	bit  Status
	name string
}{
	{StatusExpected, "EXPECTED"},
	{StatusConfirmed, "CONFIRMED"},
	{StatusSeenReply, "SEEN_REPLY"},
	{StatusAssured, "ASSURED"},
	{StatusSrcNAT, "SRC_NAT"},
	{StatusDstNAT, "DST_NAT"},
	{StatusSeqAdjust, "SEQ_ADJUST"},
	{StatusSrcNATDone, "SRC_NAT_DONE"},
	{StatusDstNATDone, "DST_NAT_DONE"},
	{StatusDying, "DYING"},
	{StatusFixedTimeout, "FIXED_TIMEOUT"},
	{StatusTemplate, "TEMPLATE"},
	{StatusNATClash, "NAT_CLASH"},
	{StatusHelper, "HELPER"},
	{StatusOffload, "OFFLOAD"},
	{StatusHWOffload, "HW_OFFLOAD"},
}

// Names returns the names of the set bits, life-cycle bits first. Bits
// without a name are listed as BIT_N.
func (s Status) Names() []string {
	var out []string
	known := Status(0)
	for _, b := range statusOrder {
		known |= b.bit
		if s&b.bit != 0 {
			out = append(out, b.name)
		}
	}
	for i := 0; i < 32; i++ {
		if b := Status(1) << i; s&b != 0 && known&b == 0 {
			out = append(out, "BIT_"+strconv.Itoa(i))
		}
	}
	return out
}

// String returns the set bit names joined by "|", or "0" when none is set.
func (s Status) String() string {
	n := s.Names()
	if len(n) == 0 {
		return "0"
	}
	return strings.Join(n, "|")
}

// ParseStatusName returns the bit for a status name (any case).
func ParseStatusName(name string) (Status, bool) {
	for _, b := range statusOrder {
		if strings.EqualFold(name, b.name) {
			return b.bit, true
		}
	}
	return 0, false
}

var protoNames = map[uint8]string{
	ProtoICMP: "icmp", ProtoTCP: "tcp", ProtoUDP: "udp", ProtoDCCP: "dccp",
	ProtoGRE: "gre", ProtoICMPv6: "icmpv6", ProtoSCTP: "sctp", ProtoUDPLite: "udplite",
}

// ProtoName returns the snapshot name of an IP protocol ("tcp", "udp", …) or
// its decimal number when it has no name.
func ProtoName(p uint8) string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return strconv.Itoa(int(p))
}

// ParseProto parses a protocol name (any case) or number 0-255.
func ParseProto(s string) (uint8, error) {
	for p, n := range protoNames {
		if strings.EqualFold(s, n) {
			return p, nil
		}
	}
	v, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("unknown protocol %q", s)
	}
	return uint8(v), nil
}
