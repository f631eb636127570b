package export

import (
	"net/netip"

	"github.com/conntop/conntop/internal/flow"
)

// Status sets that the kernel reports for common entries.
const (
	stReplied = flow.StatusConfirmed | flow.StatusSeenReply
	stAssured = stReplied | flow.StatusAssured
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// tuple builds a tuple with ports.
func tuple(src string, sport uint16, dst string, dport uint16) flow.Tuple {
	return flow.Tuple{Src: addr(src), Dst: addr(dst), SrcPort: sport, DstPort: dport}
}

// fwd builds a flow whose reply tuple is the inverse of orig.
func fwd(proto uint8, orig flow.Tuple) flow.Flow {
	fam := flow.FamilyIPv4
	if orig.Src.Is6() {
		fam = flow.FamilyIPv6
	}
	return flow.Flow{Family: fam, Proto: proto, Orig: orig, Reply: orig.Reverse(proto), Status: flow.StatusConfirmed}
}

// designExample is the flow of the DESIGN.md §4 snapshot example.
func designExample() flow.Flow {
	f := fwd(flow.ProtoTCP, tuple("10.0.0.1", 47494, "10.0.0.2", 8080))
	f.ID = 3735928559
	f.TCPState = flow.TCPTimeWait
	f.Status = stAssured
	f.Timeout = 117
	f.HasCounters = true
	f.Counters = flow.Counters{OrigPackets: 6, OrigBytes: 398, ReplyPackets: 4, ReplyBytes: 292}
	return f
}

// sample is a named flow and its renderings.
type sample struct {
	name string
	flow flow.Flow
	text string // conntrack -L line
	json string // flow object
	csv  string // CSV row
}

// samples returns flows covering every field and protocol class. The text
// lines of the first seven were printed by `conntrack -L` (conntrack-tools
// 1.4.7, Linux 6.18) for entries made in a test namespace.
func samples() []sample {
	var out []sample

	f := fwd(flow.ProtoTCP, tuple("10.0.0.1", 47494, "10.0.0.2", 8080))
	f.TCPState, f.Status, f.Timeout, f.Mark, f.ID = flow.TCPTimeWait, stAssured, 116, 5, 7
	out = append(out, sample{"tcp assured marked", f,
		"tcp      6 116 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=47494 dport=8080 src=10.0.0.2 dst=10.0.0.1 sport=8080 dport=47494 [ASSURED] mark=5 use=1",
		`{"id":7,"family":"ipv4","proto":"tcp","state":"ESTABLISHED","tcp_state":"TIME_WAIT","status":["CONFIRMED","SEEN_REPLY","ASSURED"],"orig":{"src":"10.0.0.1","dst":"10.0.0.2","sport":47494,"dport":8080},"reply":{"src":"10.0.0.2","dst":"10.0.0.1","sport":8080,"dport":47494},"timeout":116,"mark":5,"zone":0,"helper":"","master":null}`,
		"ipv4,tcp,ESTABLISHED,TIME_WAIT,10.0.0.1,47494,10.0.0.2,8080,10.0.0.2,8080,10.0.0.1,47494,CONFIRMED|SEEN_REPLY|ASSURED,116,5,0,,,,,,,,,\n"})

	f = fwd(flow.ProtoUDP, tuple("10.0.0.1", 5353, "10.0.0.2", 53))
	f.Timeout, f.Zone = 29, 7
	out = append(out, sample{"udp unreplied zone", f,
		"udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=5353 dport=53 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=5353 mark=0 zone=7 use=1",
		`{"id":0,"family":"ipv4","proto":"udp","state":"NEW","tcp_state":"","status":["CONFIRMED"],"orig":{"src":"10.0.0.1","dst":"10.0.0.2","sport":5353,"dport":53},"reply":{"src":"10.0.0.2","dst":"10.0.0.1","sport":53,"dport":5353},"timeout":29,"mark":0,"zone":7,"helper":"","master":null}`,
		"ipv4,udp,NEW,,10.0.0.1,5353,10.0.0.2,53,10.0.0.2,53,10.0.0.1,5353,CONFIRMED,29,0,7,,,,,,,,,\n"})

	f = fwd(99, flow.Tuple{Src: addr("10.0.0.1"), Dst: addr("10.0.0.4")})
	f.Timeout = 49
	out = append(out, sample{"unknown protocol", f,
		"unknown  99 49 src=10.0.0.1 dst=10.0.0.4 [UNREPLIED] src=10.0.0.4 dst=10.0.0.1 mark=0 use=1",
		`{"id":0,"family":"ipv4","proto":"99","state":"NEW","tcp_state":"","status":["CONFIRMED"],"orig":{"src":"10.0.0.1","dst":"10.0.0.4"},"reply":{"src":"10.0.0.4","dst":"10.0.0.1"},"timeout":49,"mark":0,"zone":0,"helper":"","master":null}`,
		"ipv4,99,NEW,,10.0.0.1,,10.0.0.4,,10.0.0.4,,10.0.0.1,,CONFIRMED,49,0,0,,,,,,,,,\n"})

	f = fwd(flow.ProtoICMP, flow.Tuple{Src: addr("10.0.0.1"), Dst: addr("10.0.0.2"), Type: 8, ID: 1234})
	f.Timeout = 28
	out = append(out, sample{"icmp echo", f,
		"icmp     1 28 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1234 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=1234 mark=0 use=1",
		`{"id":0,"family":"ipv4","proto":"icmp","state":"NEW","tcp_state":"","status":["CONFIRMED"],"orig":{"src":"10.0.0.1","dst":"10.0.0.2","type":8,"code":0,"id":1234},"reply":{"src":"10.0.0.2","dst":"10.0.0.1","type":0,"code":0,"id":1234},"timeout":28,"mark":0,"zone":0,"helper":"","master":null}`,
		"ipv4,icmp,NEW,,10.0.0.1,,10.0.0.2,,10.0.0.2,,10.0.0.1,,CONFIRMED,28,0,0,,,,,8,0,1234,,\n"})

	f = fwd(flow.ProtoTCP, tuple("fd00::1", 1, "fd00::2", 2))
	f.TCPState, f.Timeout = flow.TCPEstablished, 99
	out = append(out, sample{"ipv6 tcp", f,
		"tcp      6 99 ESTABLISHED src=fd00::1 dst=fd00::2 sport=1 dport=2 [UNREPLIED] src=fd00::2 dst=fd00::1 sport=2 dport=1 mark=0 use=1",
		`{"id":0,"family":"ipv6","proto":"tcp","state":"NEW","tcp_state":"ESTABLISHED","status":["CONFIRMED"],"orig":{"src":"fd00::1","dst":"fd00::2","sport":1,"dport":2},"reply":{"src":"fd00::2","dst":"fd00::1","sport":2,"dport":1},"timeout":99,"mark":0,"zone":0,"helper":"","master":null}`,
		"ipv6,tcp,NEW,ESTABLISHED,fd00::1,1,fd00::2,2,fd00::2,2,fd00::1,1,CONFIRMED,99,0,0,,,,,,,,,\n"})

	f = fwd(flow.ProtoUDP, tuple("::102:304", 1, "fd00::2", 2))
	f.Timeout = 49
	out = append(out, sample{"ipv4-compatible ipv6", f,
		"udp      17 49 src=::1.2.3.4 dst=fd00::2 sport=1 dport=2 [UNREPLIED] src=fd00::2 dst=::1.2.3.4 sport=2 dport=1 mark=0 use=1",
		`{"id":0,"family":"ipv6","proto":"udp","state":"NEW","tcp_state":"","status":["CONFIRMED"],"orig":{"src":"::102:304","dst":"fd00::2","sport":1,"dport":2},"reply":{"src":"fd00::2","dst":"::102:304","sport":2,"dport":1},"timeout":49,"mark":0,"zone":0,"helper":"","master":null}`,
		"ipv6,udp,NEW,,::102:304,1,fd00::2,2,fd00::2,2,::102:304,1,CONFIRMED,49,0,0,,,,,,,,,\n"})

	f = fwd(flow.ProtoTCP, tuple("10.99.0.1", 42436, "10.99.0.1", 8080))
	f.TCPState, f.Status, f.Timeout = flow.TCPTimeWait, stAssured, 119
	f.HasCounters, f.Counters = true, flow.Counters{OrigPackets: 5, OrigBytes: 271, ReplyPackets: 3, ReplyBytes: 164}
	out = append(out, sample{"tcp counters", f,
		"tcp      6 119 TIME_WAIT src=10.99.0.1 dst=10.99.0.1 sport=42436 dport=8080 packets=5 bytes=271 src=10.99.0.1 dst=10.99.0.1 sport=8080 dport=42436 packets=3 bytes=164 [ASSURED] mark=0 use=1",
		`{"id":0,"family":"ipv4","proto":"tcp","state":"ESTABLISHED","tcp_state":"TIME_WAIT","status":["CONFIRMED","SEEN_REPLY","ASSURED"],"orig":{"src":"10.99.0.1","dst":"10.99.0.1","sport":42436,"dport":8080},"reply":{"src":"10.99.0.1","dst":"10.99.0.1","sport":8080,"dport":42436},"timeout":119,"mark":0,"zone":0,"counters":{"orig_packets":5,"orig_bytes":271,"reply_packets":3,"reply_bytes":164},"helper":"","master":null}`,
		"ipv4,tcp,ESTABLISHED,TIME_WAIT,10.99.0.1,42436,10.99.0.1,8080,10.99.0.1,8080,10.99.0.1,42436,CONFIRMED|SEEN_REPLY|ASSURED,119,0,0,5,271,3,164,,,,,\n"})

	ctl := tuple("141.142.220.235", 50003, "199.233.217.249", 21)
	f = fwd(flow.ProtoTCP, ctl)
	f.TCPState, f.Status, f.Timeout, f.Helper = flow.TCPEstablished, stAssured|flow.StatusHelper, 431999, "ftp"
	out = append(out, sample{"ftp control with helper", f,
		"tcp      6 431999 ESTABLISHED src=141.142.220.235 dst=199.233.217.249 sport=50003 dport=21 src=199.233.217.249 dst=141.142.220.235 sport=21 dport=50003 [ASSURED] mark=0 helper=ftp use=1",
		`{"id":0,"family":"ipv4","proto":"tcp","state":"ESTABLISHED","tcp_state":"ESTABLISHED","status":["CONFIRMED","SEEN_REPLY","ASSURED","HELPER"],"orig":{"src":"141.142.220.235","dst":"199.233.217.249","sport":50003,"dport":21},"reply":{"src":"199.233.217.249","dst":"141.142.220.235","sport":21,"dport":50003},"timeout":431999,"mark":0,"zone":0,"helper":"ftp","master":null}`,
		"ipv4,tcp,ESTABLISHED,ESTABLISHED,141.142.220.235,50003,199.233.217.249,21,199.233.217.249,21,141.142.220.235,50003,CONFIRMED|SEEN_REPLY|ASSURED|HELPER,431999,0,0,,,,,,,,,\n"})

	f = fwd(flow.ProtoTCP, tuple("199.233.217.249", 61918, "141.142.220.235", 37835))
	f.TCPState, f.Status, f.Timeout, f.Master = flow.TCPSynSent, flow.StatusConfirmed|flow.StatusExpected, 120, &ctl
	out = append(out, sample{"ftp data related", f,
		"tcp      6 120 SYN_SENT src=199.233.217.249 dst=141.142.220.235 sport=61918 dport=37835 [UNREPLIED] src=141.142.220.235 dst=199.233.217.249 sport=37835 dport=61918 mark=0 use=1",
		`{"id":0,"family":"ipv4","proto":"tcp","state":"RELATED","tcp_state":"SYN_SENT","status":["EXPECTED","CONFIRMED"],"orig":{"src":"199.233.217.249","dst":"141.142.220.235","sport":61918,"dport":37835},"reply":{"src":"141.142.220.235","dst":"199.233.217.249","sport":37835,"dport":61918},"timeout":120,"mark":0,"zone":0,"helper":"","master":{"src":"141.142.220.235","dst":"199.233.217.249","sport":50003,"dport":21}}`,
		"ipv4,tcp,RELATED,SYN_SENT,199.233.217.249,61918,141.142.220.235,37835,141.142.220.235,37835,199.233.217.249,61918,EXPECTED|CONFIRMED,120,0,0,,,,,,,,,\n"})

	f = fwd(flow.ProtoGRE, flow.Tuple{Src: addr("10.0.0.1"), Dst: addr("10.0.0.3"), SrcPort: 0x1a2b, DstPort: 0})
	f.Reply = flow.Tuple{Src: addr("10.0.0.3"), Dst: addr("10.0.0.1"), SrcPort: 0, DstPort: 0x1a2b}
	f.Status, f.Timeout = stReplied|flow.StatusOffload, 30
	out = append(out, sample{"gre offloaded", f,
		"gre      47 30 src=10.0.0.1 dst=10.0.0.3 srckey=0x1a2b dstkey=0x0 src=10.0.0.3 dst=10.0.0.1 srckey=0x0 dstkey=0x1a2b [OFFLOAD] mark=0 use=1",
		`{"id":0,"family":"ipv4","proto":"gre","state":"ESTABLISHED","tcp_state":"","status":["CONFIRMED","SEEN_REPLY","OFFLOAD"],"orig":{"src":"10.0.0.1","dst":"10.0.0.3"},"reply":{"src":"10.0.0.3","dst":"10.0.0.1"},"timeout":30,"mark":0,"zone":0,"helper":"","master":null}`,
		"ipv4,gre,ESTABLISHED,,10.0.0.1,,10.0.0.3,,10.0.0.3,,10.0.0.1,,CONFIRMED|SEEN_REPLY|OFFLOAD,30,0,0,,,,,,,,,\n"})

	f = fwd(flow.ProtoICMPv6, flow.Tuple{Src: addr("fd00::1"), Dst: addr("fd00::2"), Type: 128, ID: 5})
	f.Status, f.Timeout, f.Mark = stAssured|flow.StatusHWOffload|flow.StatusOffload, 29, 4294967295
	out = append(out, sample{"icmpv6 hw offload max mark", f,
		"icmpv6   58 29 src=fd00::1 dst=fd00::2 type=128 code=0 id=5 src=fd00::2 dst=fd00::1 type=129 code=0 id=5 [HW_OFFLOAD] mark=4294967295 use=1",
		`{"id":0,"family":"ipv6","proto":"icmpv6","state":"ESTABLISHED","tcp_state":"","status":["CONFIRMED","SEEN_REPLY","ASSURED","OFFLOAD","HW_OFFLOAD"],"orig":{"src":"fd00::1","dst":"fd00::2","type":128,"code":0,"id":5},"reply":{"src":"fd00::2","dst":"fd00::1","type":129,"code":0,"id":5},"timeout":29,"mark":4294967295,"zone":0,"helper":"","master":null}`,
		"ipv6,icmpv6,ESTABLISHED,,fd00::1,,fd00::2,,fd00::2,,fd00::1,,CONFIRMED|SEEN_REPLY|ASSURED|OFFLOAD|HW_OFFLOAD,29,4294967295,0,,,,,128,0,5,,\n"})

	f = fwd(flow.ProtoSCTP, tuple("::ffff:10.0.0.1", 9, "fd00::2", 10))
	f.Helper, f.Status, f.Timeout = "h\x1b[2J\"\\\u202e\xff", flow.Status(1<<20)|flow.StatusConfirmed, 3
	out = append(out, sample{"hostile helper, unnamed status bit", f,
		`sctp     132 3 NONE src=::ffff:10.0.0.1 dst=fd00::2 sport=9 dport=10 [UNREPLIED] src=fd00::2 dst=::ffff:10.0.0.1 sport=10 dport=9 mark=0 helper=h\x1b[2J"\\\u202e\xff use=1`,
		`{"id":0,"family":"ipv6","proto":"sctp","state":"NEW","tcp_state":"","status":["CONFIRMED","BIT_20"],"orig":{"src":"::ffff:10.0.0.1","dst":"fd00::2","sport":9,"dport":10},"reply":{"src":"fd00::2","dst":"::ffff:10.0.0.1","sport":10,"dport":9},"timeout":3,"mark":0,"zone":0,"helper":"h\u001b[2J\"\\\u202e\ufffd","master":null,"sctp_state":"NONE"}`,
		"ipv6,sctp,NEW,,::ffff:10.0.0.1,9,fd00::2,10,fd00::2,10,::ffff:10.0.0.1,9,CONFIRMED|BIT_20,3,0,0,,,,,,,,NONE,\n"})

	return out
}
