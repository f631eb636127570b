// Package capture is the live packet source: it reads packets from AF_PACKET
// TPACKET_V3 rings (one interface, several, or all), decodes them with
// internal/decode and tracks them with the in-process conntrack
// (internal/tracker), so conntop shows connections even where the kernel
// does not track them.
//
// The socket is SOCK_DGRAM, so every interface hands over packets from the
// network header on with their protocol, direction (PACKET_OUTGOING) and
// checksum status (TP_STATUS_CSUM_VALID / TP_STATUS_CSUMNOTREADY), which the
// tracker trusts as the kernel trusts offloaded checksums. On loopback
// interfaces every packet is delivered twice (out and in); only the incoming
// copy is tracked. On a host that forwards, a forwarded packet is captured
// on its way in and again on its way out; conntrack sees it once, so the
// second copy (same addresses, IP id or flow label, lengths and transport
// header start, the TTL aside) is skipped. Ring drops come from PACKET_STATISTICS and are reported
// in TableStats.RingDrops. An optional filter in pcap syntax is compiled to
// classic BPF by running `tcpdump -ddd` (no libpcap or cgo in conntop).
//
// Opening the sockets needs CAP_NET_RAW (ErrPermission otherwise). With
// Config.NetNS the sockets are opened inside that network namespace and the
// interfaces are looked up there.
package capture
