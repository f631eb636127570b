package tracker

// Reasons a packet is INVALID (Verdict.Reason, Flow.InvalidReason and the
// keys of TableStats.InvalidReasons). They are constants so counting them
// allocates nothing.
const (
	// Dropped by the IP layer before conntrack (not in the invalid stat).
	reasonShortIP          = "ip: packet shorter than its header"
	reasonIPVersion        = "ip: unknown IP version"
	reasonIPHeader         = "ip: bad header"
	reasonIPChecksum       = "ip: bad IPv4 header checksum"
	reasonIPLength         = "ip: bad total length"
	reasonMulticastSource  = "ip: IPv6 multicast source"
	reasonFragment         = "ip: fragment not reassembled"
	reasonTruncatedCapture = "capture: cut inside the headers"

	// Counted in the invalid stat.
	reasonNoUpperLayer      = "ip: no upper-layer header"
	reasonLaterFragment     = "ip: IPv6 fragment past the first, passed on unreassembled"
	reasonShortL4           = "short L4 header"
	reasonNoInverse         = "icmp: type without a reply type"
	reasonTCPTruncated      = "tcp: truncated packet"
	reasonTCPChecksum       = "tcp: bad checksum"
	reasonTCPFlags          = "tcp: invalid flag combination"
	reasonTCPNew            = "tcp: invalid packet for a new connection"
	reasonTCPState          = "tcp: invalid in this state"
	reasonTCPRST            = "tcp: invalid rst"
	reasonTCPSeqOver        = "tcp: SEQ over the receiver's window"
	reasonTCPAckOver        = "tcp: ACK of data not seen yet"
	reasonUDPShort          = "udp: short packet"
	reasonUDPLength         = "udp: truncated or malformed length"
	reasonUDPChecksum       = "udp: bad checksum"
	reasonUDPLiteCoverage   = "udplite: invalid checksum coverage"
	reasonUDPLiteNoChecksum = "udplite: checksum missing"
	reasonUDPLiteChecksum   = "udplite: bad checksum"
	reasonICMPNew           = "icmp: type cannot start a flow"
	reasonICMPv6New         = "icmpv6: type cannot start a flow"
	reasonGREProto          = "gre: unsupported protocol"
	reasonTableFull         = "table full: packet dropped"

	// ICMP error handler failures (the kernel counts them as error, not
	// invalid).
	reasonICMPShort      = "icmp: short packet"
	reasonICMPChecksum   = "icmp: bad checksum"
	reasonICMPType       = "icmp: invalid type"
	reasonICMPv6Checksum = "icmpv6: bad checksum"
	reasonICMPNoFlow     = "icmp error: quotes no tracked flow"
	reasonICMPBadInner   = "icmp error: bad quoted header"
	reasonICMPOuterDst   = "icmp error: outer destination differs from the flow's"
	reasonRedirect       = "icmpv6: invalid redirect"
)
