//go:build linux

// Package conntrack is the kernel conntrack source: it reads the kernel's
// connection-tracking table over ctnetlink (NETLINK_NETFILTER) and streams it
// as source events.
//
// Run subscribes to conntrack events first, then dumps the table (one
// EventNew per entry, then EventSynced), then streams NEW, UPDATE and DESTROY
// events from a socket with a large receive buffer (SO_RCVBUFFORCE, 128 MiB
// by default), read up to 64 datagrams per recvmmsg(2). When that buffer
// overruns (ENOBUFS, or the socket's drop counter SO_MEMINFO moved), the loop
// discards the backlog until it has caught up, then reports the loss (the
// kernel's drops plus what it discarded) as EventResync{Lost} and dumps the
// table again, so the consumer never diverges silently. A second
// socket polls table statistics every second (EventStats) and, when
// accounting is on, byte and packet counters (EventCounters) at a rate that
// adapts to the table size.
//
// Pending expectations (an FTP data connection announced, not yet open) are
// listed with a ctnetlink expectation dump before the first statistics and
// after every resync, kept by the expectation NEW and DESTROY events the
// event socket also receives (re-listed every statistics period while
// entries older than the subscription remain: those report no events), and
// carried in every EventStats (TableStats.Expectations), as tracker
// sources carry theirs.
//
// Messages are decoded by this package directly from the netlink bytes, with
// no allocation per entry (ti-mo/conntrack's Dump builds several objects per
// flow); tests check it against that library through
// source/conntrack/conntracktest.
//
// With Options.NetNS, every socket is created inside another network
// namespace (see internal/netns). Probe tells whether conntrack is active in
// a namespace, which `--source auto` uses to choose between this source and
// packet capture.
//
// Requires Linux with CONFIG_NF_CONNTRACK and CONFIG_NF_CT_NETLINK, and
// CAP_NET_ADMIN in the namespace's user namespace.
package conntrack
