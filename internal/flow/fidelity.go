package flow

import (
	"strconv"
	"strings"
)

// Verdict is the ct state a packet has when the kernel's `ct state` match
// sees it (at prerouting for received packets): what the in-process
// tracker reports per packet.
type Verdict uint8

// Packet verdicts, in the order of the snapshot's "verdicts" object.
const (
	VerdictNew Verdict = iota
	VerdictEstablished
	VerdictRelated
	VerdictInvalid
	VerdictUntracked
	// NumVerdicts is the number of verdicts (for tables indexed by one).
	NumVerdicts
)

var verdictNames = [...]string{"new", "established", "related", "invalid", "untracked"}

// String returns the lower-case name of the verdict ("new", "established",
// "related", "invalid", "untracked"), as the snapshot JSON and the metrics
// label name it.
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "Verdict(" + strconv.Itoa(int(v)) + ")"
}

// Verdicts counts packets by verdict.
type Verdicts [NumVerdicts]uint64

// Total returns the number of packets counted.
func (v *Verdicts) Total() uint64 {
	var n uint64
	for _, x := range v {
		n += x
	}
	return n
}

// SCTPState is the kernel's SCTP conntrack state (enum sctp_conntrack).
type SCTPState uint8

// SCTP conntrack states, numbered as the kernel numbers them.
const (
	SCTPNone SCTPState = iota
	SCTPClosed
	SCTPCookieWait
	SCTPCookieEchoed
	SCTPEstablished
	SCTPShutdownSent
	SCTPShutdownRecd
	SCTPShutdownAckSent
	SCTPHeartbeatSent
	SCTPHeartbeatAcked // unused since Linux 6.2, still named
	// NumSCTPStates is the number of SCTP states.
	NumSCTPStates
)

var sctpStateNames = [...]string{"NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED",
	"SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT", "HEARTBEAT_ACKED"}

// String returns the kernel's name for the state (as `conntrack -L` and
// /proc/net/nf_conntrack print it); an unknown value prints as NONE, as
// libnetfilter_conntrack does.
func (s SCTPState) String() string {
	if int(s) < len(sctpStateNames) {
		return sctpStateNames[s]
	}
	return "NONE"
}

// ParseSCTPState parses a kernel SCTP state name in any case.
func ParseSCTPState(s string) (SCTPState, bool) {
	for i, n := range sctpStateNames {
		if strings.EqualFold(s, n) {
			return SCTPState(i), true
		}
	}
	return 0, false
}

// Expectation is a pending conntrack expectation: a connection a helper
// (FTP) announced and that will be RELATED to its master when it opens.
// Tuple is the expected original tuple, Mask says which of its parts must
// match (a zero source port in Mask: any source port), Master is the
// original tuple of the flow that announced it.
type Expectation struct {
	// ID is the kernel's expectation id (CTA_EXPECT_ID) or the tracker's.
	ID     uint32
	Family Family
	Proto  uint8
	// Timeout is the number of seconds left before the expectation expires.
	Timeout uint32
	Tuple   Tuple
	Mask    Tuple
	// MasterProto is the protocol of the master flow (TCP for FTP).
	MasterProto uint8
	Master      Tuple
	Zone        uint16
	// Class is the expectation class (0 for FTP); Flags the kernel's
	// NF_CT_EXPECT_* bits (PERMANENT 1, INACTIVE 2, USERSPACE 4).
	Class uint32
	Flags uint32
	// Helper names the helper that made it ("ftp"). It comes from the
	// kernel: escape it before printing it to a terminal.
	Helper string
}

// Expectation flags (NF_CT_EXPECT_*).
const (
	ExpectPermanent uint32 = 1 << 0
	ExpectInactive  uint32 = 1 << 1
	ExpectUserspace uint32 = 1 << 2
)

// ExpectFlagNames returns the names of the set flags as conntrack-tools
// prints them (PERMANENT, INACTIVE, USERSPACE).
func ExpectFlagNames(f uint32) []string {
	var out []string
	for _, x := range []struct {
		bit  uint32
		name string
	}{{ExpectPermanent, "PERMANENT"}, {ExpectInactive, "INACTIVE"}, {ExpectUserspace, "USERSPACE"}} {
		if f&x.bit != 0 {
			out = append(out, x.name)
		}
	}
	return out
}
