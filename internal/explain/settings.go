package explain

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/conntop/conntop/internal/tracker"
)

// Sysctl names (under net.netfilter, /proc/sys/net/netfilter) that govern
// entry lifetimes and the table's size.
const (
	SysTCPSynSent     = "nf_conntrack_tcp_timeout_syn_sent"
	SysTCPSynRecv     = "nf_conntrack_tcp_timeout_syn_recv"
	SysTCPEstablished = "nf_conntrack_tcp_timeout_established"
	SysTCPFinWait     = "nf_conntrack_tcp_timeout_fin_wait"
	SysTCPCloseWait   = "nf_conntrack_tcp_timeout_close_wait"
	SysTCPLastAck     = "nf_conntrack_tcp_timeout_last_ack"
	SysTCPTimeWait    = "nf_conntrack_tcp_timeout_time_wait"
	SysTCPClose       = "nf_conntrack_tcp_timeout_close"
	SysTCPRetrans     = "nf_conntrack_tcp_timeout_max_retrans"
	SysTCPUnack       = "nf_conntrack_tcp_timeout_unacknowledged"
	SysUDP            = "nf_conntrack_udp_timeout"
	SysUDPStream      = "nf_conntrack_udp_timeout_stream"
	SysICMP           = "nf_conntrack_icmp_timeout"
	SysICMPv6         = "nf_conntrack_icmpv6_timeout"
	SysGRE            = "nf_conntrack_gre_timeout"
	SysGREStream      = "nf_conntrack_gre_timeout_stream"
	SysGeneric        = "nf_conntrack_generic_timeout"
	SysMax            = "nf_conntrack_max"
	SysBuckets        = "nf_conntrack_buckets"
	SysCount          = "nf_conntrack_count"
)

// TimeoutSysctls are the timeout sysctls explain reads, with the kernel's
// defaults in seconds (Linux 6.x, nf_conntrack_proto_*.c).
var TimeoutSysctls = []struct {
	Name    string
	Default uint32
}{
	{SysTCPSynSent, 120}, {SysTCPSynRecv, 60}, {SysTCPEstablished, 432000}, {SysTCPFinWait, 120},
	{SysTCPCloseWait, 60}, {SysTCPLastAck, 30}, {SysTCPTimeWait, 120}, {SysTCPClose, 10},
	{SysTCPRetrans, 300}, {SysTCPUnack, 300},
	{SysUDP, 30}, {SysUDPStream, 120}, {SysICMP, 30}, {SysICMPv6, 30},
	{SysGRE, 30}, {SysGREStream, 180}, {SysGeneric, 600},
}

// DefaultTimeout returns the kernel's default for a timeout sysctl.
func DefaultTimeout(name string) (uint32, bool) {
	for _, s := range TimeoutSysctls {
		if s.Name == name {
			return s.Default, true
		}
	}
	return 0, false
}

// Settings are what governs the table: its limits and the timeouts, as
// the kernel's sysctls in the watched namespace say, or as the in-process
// tracker is configured.
type Settings struct {
	// Tracker is true when the table is conntop's own tracker (capture or
	// pcap source), whose settings mirror the kernel's sysctls.
	Tracker bool
	// Max is nf_conntrack_max (0: unknown); Buckets nf_conntrack_buckets
	// (0: unknown or, for the tracker, not applicable).
	Max, Buckets uint64
	// Timeouts holds each timeout sysctl's value in seconds, by name
	// (without the net.netfilter. prefix). A missing name is unknown.
	Timeouts map[string]uint32
	// EntryBytes is the size of one nf_conntrack slab object and
	// EntryBytesFrom where that figure came from ("/proc/slabinfo", or
	// "estimate" when it could not be read).
	EntryBytes     int
	EntryBytesFrom string
	// CommandPrefix runs a per-namespace command in the watched namespace
	// ("ip netns exec NAME "), empty for conntop's own namespace.
	CommandPrefix string
	// Problems lists settings that could not be read, for the report's
	// notes.
	Problems []string
}

// DefaultEntryBytes is the nf_conntrack slab object size assumed when
// /proc/slabinfo cannot be read (x86_64, Linux 6.x: 256 bytes).
const DefaultEntryBytes = 256

// ExtBytes is the least the kernel allocates for an entry's extension area
// (NF_CT_EXT_PREALLOC in nf_conntrack_extend.c).
const ExtBytes = 128

// BucketBytes is the size of one hash bucket (an hlist_nulls_head).
const BucketBytes = 8

// TrackerSettings returns the settings of conntop's in-process tracker
// configured by cfg, named as the kernel sysctls it mirrors.
func TrackerSettings(cfg *tracker.Config) Settings {
	to := cfg.Timeouts
	sec := func(d time.Duration) uint32 { return uint32(d / time.Second) }
	max := cfg.Max
	if max == 0 {
		max = tracker.DefaultMax
	}
	return Settings{
		Tracker: true,
		Max:     uint64(max),
		Timeouts: map[string]uint32{
			SysTCPSynSent: sec(to.TCPSynSent), SysTCPSynRecv: sec(to.TCPSynRecv),
			SysTCPEstablished: sec(to.TCPEstablished), SysTCPFinWait: sec(to.TCPFinWait),
			SysTCPCloseWait: sec(to.TCPCloseWait), SysTCPLastAck: sec(to.TCPLastAck),
			SysTCPTimeWait: sec(to.TCPTimeWait), SysTCPClose: sec(to.TCPClose),
			SysTCPRetrans: sec(to.TCPRetrans), SysTCPUnack: sec(to.TCPUnack),
			SysUDP: sec(to.UDP), SysUDPStream: sec(to.UDPStream),
			SysICMP: sec(to.ICMP), SysICMPv6: sec(to.ICMPv6),
			SysGRE: sec(to.GRE), SysGREStream: sec(to.GREStream), SysGeneric: sec(to.Generic),
		},
		EntryBytes:     DefaultEntryBytes,
		EntryBytesFrom: "estimate",
	}
}

// timeout returns a timeout sysctl's value.
func (s *Settings) timeout(name string) (uint32, bool) {
	v, ok := s.Timeouts[name]
	return v, ok
}

// ParseWhatIf parses a --what-if value: "SECONDS" for every class, or
// "SYSCTL=SECONDS[,SYSCTL=SECONDS...]" with a conntrack timeout sysctl
// name (the net.netfilter. prefix is optional).
func ParseWhatIf(s string) (map[string]uint32, error) {
	out := map[string]uint32{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, val, hasName := strings.Cut(strings.TrimSpace(part), "=")
		if !hasName {
			name, val = "", name
		}
		name = strings.TrimPrefix(strings.TrimSpace(name), "net.netfilter.")
		if name != "" {
			if _, ok := DefaultTimeout(name); !ok {
				return nil, fmt.Errorf("--what-if: %q is not a conntrack timeout sysctl (e.g. nf_conntrack_udp_timeout)", name)
			}
		}
		v, err := strconv.ParseUint(strings.TrimSpace(val), 10, 32)
		if err != nil || v == 0 {
			return nil, fmt.Errorf("--what-if: %q is not a number of seconds", val)
		}
		out[name] = uint32(v)
	}
	return out, nil
}
