package tracker

import "time"

// Timeouts are the kernel's per-state timeouts (the net.netfilter
// nf_conntrack_*_timeout* sysctls).
type Timeouts struct {
	TCPSynSent, TCPSynRecv, TCPEstablished, TCPFinWait, TCPCloseWait time.Duration
	TCPLastAck, TCPTimeWait, TCPClose, TCPSynSent2                   time.Duration
	// TCPRetrans caps the timeout after MaxRetrans retransmissions (and with
	// a zero window); TCPUnack caps it while data is unacknowledged.
	TCPRetrans, TCPUnack time.Duration
	// UDP is the timeout of unreplied (and young) UDP flows, UDPStream that
	// of UDP streams.
	UDP, UDPStream time.Duration
	ICMP, ICMPv6   time.Duration
	// GRE and GREStream are the unreplied and replied GRE timeouts.
	GRE, GREStream time.Duration
	// SCTP timeouts by association state (nf_conntrack_sctp_timeout_*);
	// SCTPClosed also applies to an entry still in state NONE.
	SCTPClosed, SCTPCookieWait, SCTPCookieEchoed, SCTPEstablished              time.Duration
	SCTPShutdownSent, SCTPShutdownRecd, SCTPShutdownAckSent, SCTPHeartbeatSent time.Duration

	// Generic is the timeout of protocols without their own tracker.
	Generic time.Duration
	// Expect is the lifetime of an FTP expectation.
	Expect time.Duration
}

// DefaultTimeouts returns the kernel's default timeouts.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		TCPSynSent:     120 * time.Second,
		TCPSynRecv:     60 * time.Second,
		TCPEstablished: 432000 * time.Second,
		TCPFinWait:     120 * time.Second,
		TCPCloseWait:   60 * time.Second,
		TCPLastAck:     30 * time.Second,
		TCPTimeWait:    120 * time.Second,
		TCPClose:       10 * time.Second,
		TCPSynSent2:    120 * time.Second,
		TCPRetrans:     300 * time.Second,
		TCPUnack:       300 * time.Second,
		UDP:            30 * time.Second,
		UDPStream:      120 * time.Second,
		ICMP:           30 * time.Second,
		ICMPv6:         30 * time.Second,
		GRE:            30 * time.Second,
		GREStream:      180 * time.Second,
		Generic:        600 * time.Second,
		Expect:         300 * time.Second,

		SCTPClosed:          10 * time.Second,
		SCTPCookieWait:      3 * time.Second,
		SCTPCookieEchoed:    3 * time.Second,
		SCTPEstablished:     210 * time.Second,
		SCTPShutdownSent:    3 * time.Second,
		SCTPShutdownRecd:    3 * time.Second,
		SCTPShutdownAckSent: 3 * time.Second,
		SCTPHeartbeatSent:   30 * time.Second,
	}
}

// DefaultMax is the table limit used when Config.Max is 0 (the kernel's
// nf_conntrack_max on a machine with more than 4 GiB of RAM).
const DefaultMax = 262144

// Config sets the tracker's behaviour, mirroring the kernel's sysctls. Start
// from DefaultConfig: the zero Config turns off loose pickup, checksum
// validation and the FTP helper.
type Config struct {
	// Max is the table limit (nf_conntrack_max); 0 means DefaultMax. When
	// the table is full a new entry first evicts an unassured one (early
	// drop); if there is none the packet is dropped.
	Max int
	// Loose picks up TCP connections from a mid-stream ACK
	// (nf_conntrack_tcp_loose).
	Loose bool
	// BeLiberal accepts out-of-window TCP packets (nf_conntrack_tcp_be_liberal).
	BeLiberal bool
	// IgnoreInvalidRST accepts RSTs below the acknowledged sequence
	// (nf_conntrack_tcp_ignore_invalid_rst).
	IgnoreInvalidRST bool
	// MaxRetrans is the number of identical retransmissions after which the
	// timeout is capped to Timeouts.TCPRetrans (nf_conntrack_tcp_max_retrans).
	MaxRetrans int
	// Checksum validates TCP, UDP, ICMP and ICMPv6 checksums
	// (nf_conntrack_checksum). Packet.ChecksumOK skips it per packet.
	Checksum bool
	// FTPPorts are the TCP destination ports whose new connections get the
	// FTP helper, as an nft `ct helper` rule on those ports does. Empty
	// turns the helper off.
	FTPPorts []uint16
	// FTPLoose accepts PORT/PASV addresses other than the sender's (the
	// nf_conntrack_ftp module parameter loose).
	FTPLoose bool
	// Router models a forwarding router with no addresses of its own, as
	// the kernel oracle does (testdata/kernel-oracle): a packet that
	// routing would drop before confirmation (multicast the router has not
	// joined, TTL or hop limit <= 1, an IPv6 link-local or unspecified
	// source that is not for the router's link, martian addresses) creates
	// no entry; a packet of an existing entry is still tracked at
	// PRE_ROUTING (counters, state), since conntrack runs before routing,
	// but the FTP helper (run at confirmation) does not see it. Joined
	// groups, delivered locally: 224.0.0.1, 255.255.255.255, ff02::1,
	// ff02::2, ff05::2. Off (the host model) every packet is tracked as if
	// delivered.
	Router bool
	// Timeouts are the per-state timeouts.
	Timeouts Timeouts
}

// DefaultConfig returns the kernel's defaults: loose pickup on, be_liberal
// off, max_retrans 3, checksums validated, the FTP helper on port 21 (as with
// an nft `ct helper` rule for tcp dport 21) and the default timeouts.
func DefaultConfig() Config {
	return Config{
		Max:        DefaultMax,
		Loose:      true,
		MaxRetrans: 3,
		Checksum:   true,
		FTPPorts:   []uint16{21},
		Timeouts:   DefaultTimeouts(),
	}
}
