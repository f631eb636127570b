// Package tracker is conntop's in-process connection tracker: given whole IP
// datagrams and the time they were seen, it keeps the table the Linux
// kernel's nf_conntrack would keep for the same packets at PRE_ROUTING.
//
// It follows Linux 6.18 (net/netfilter/nf_conntrack_*.c): tuples and
// directions, the TCP state machine with window tracking (tcp_in_window),
// loose pickup, RST and reopen handling, UDP streams, SCTP associations
// (CRC32c, chunk checks, verification tags, per-state timeouts), ICMP and ICMPv6
// request/reply flows and RELATED errors, generic protocols, checksum
// validation (nf_conntrack_checksum), the FTP helper and its expectations,
// the table limit with early drop, the kernel's timeouts and statistics.
// See DESIGN.md for the parts that are easy to get wrong.
//
// The package is pure: time is passed in, nothing runs in the background,
// nothing does I/O. A Tracker is not safe for concurrent use. Handling a
// packet allocates nothing in steady state.
package tracker
