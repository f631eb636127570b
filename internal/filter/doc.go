// Package filter implements conntop's flow filter language (DESIGN.md §4):
// pcap-filter words for flows plus netfilter and TCP state.
//
//	expr   := term { ("and" | "&&" | "or" | "||") term }
//	term   := { "not" | "!" } ( "(" expr ")" | prim )
//	prim   := "tcp" | "udp" | "icmp" | "icmpv6" | "ipv4" | "ipv6" | "proto" NAME|NUM
//	        | ["src" | "dst"] "host" ADDR | ["src" | "dst"] "net" CIDR
//	        | ["src" | "dst"] "port" PORT[-PORT] | "sport" PORT[-PORT] | "dport" PORT[-PORT]
//	        | "state" NAME[,NAME...] | "mark" NUM | "zone" NUM | "assured" | "unreplied"
//	        | "disagree" | "kernelonly" | "wireonly"
//
// Choices made where the contract leaves room, so that users can rely on them:
//
//   - Precedence: "and" and "or" have EQUAL precedence and group left to
//     right, exactly as in pcap-filter: "a or b and c" means "(a or b) and c".
//     "not" binds tighter than both. Use parentheses when in doubt.
//   - A protocol or family word directly followed by a host, net or port
//     primitive qualifies it, as in pcap: "udp port 53" means
//     "(udp and port 53)" as one term, so "state new or udp port 53" is
//     "state new or (udp and port 53)".
//   - "src" and "dst" (and "sport"/"dport") look at the original-direction
//     tuple only. Plain "host", "net" and "port" match either end of the
//     original tuple OR either end of the reply tuple, so a NATed flow is
//     found by its pre-NAT and by its post-NAT address or port.
//   - "state" takes netfilter states (NEW, ESTABLISHED, RELATED) and TCP
//     states (SYN_SENT … TIME_WAIT, CLOSE, SYN_SENT2), in any case. The name
//     ESTABLISHED means the netfilter state; write "tcp:ESTABLISHED" for the
//     TCP state of that name (any TCP state may carry the "tcp:" prefix).
//     A TCP state matches TCP flows only.
//   - Ports accept numbers, ranges "1000-2000" and a few well-known names
//     (http, https, ssh, dns/domain, ftp, …). A port primitive never matches
//     a flow whose protocol has no ports (ICMP, GRE).
//   - Keywords are case-insensitive; "ip" and "ip6" are accepted for "ipv4"
//     and "ipv6"; "mark" takes decimal or 0x-hexadecimal numbers; a "net"
//     with host bits set is masked ("net 10.1.2.3/8" is "net 10.0.0.0/8");
//     "src ADDR" and "src CIDR" are short for "src host ADDR" and
//     "src net CIDR", as in pcap.
//   - "disagree", "kernelonly" and "wireonly" (an extension beyond the
//     DESIGN.md grammar) select flows that the compare source
//     (`--source conntrack,capture`) marked: the kernel and the wire tracker
//     disagree in any way (one side only, or different states), the kernel
//     alone has the flow, or only the wire shows it. With any other source
//     no flow is marked, so they match nothing.
//
// [Parse] compiles an expression once; [Filter.Match] then evaluates it per
// flow without allocating. Errors are [*SyntaxError] values naming the byte
// offset of the problem.
package filter
