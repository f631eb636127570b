package flow

import (
	"net/netip"
	"slices"
	"testing"
)

func TestNames(t *testing.T) {
	if FamilyIPv4.String() != "ipv4" || FamilyIPv6.String() != "ipv6" || Family(7).String() != "unknown" {
		t.Error("family names")
	}
	for p, want := range map[uint8]string{1: "icmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 58: "icmpv6", 132: "sctp", 136: "udplite", 99: "99"} {
		if got := ProtoName(p); got != want {
			t.Errorf("ProtoName(%d) = %q, want %q", p, got, want)
		}
		back, err := ParseProto(want)
		if err != nil || back != p {
			t.Errorf("ParseProto(%q) = %d, %v", want, back, err)
		}
	}
	if p, err := ParseProto("TCP"); err != nil || p != ProtoTCP {
		t.Errorf("ParseProto is case-insensitive: %d %v", p, err)
	}
	for _, bad := range []string{"", "tcpx", "256", "-1"} {
		if _, err := ParseProto(bad); err == nil {
			t.Errorf("ParseProto(%q) accepted", bad)
		}
	}
	for s := TCPNone; s < NumTCPStates; s++ {
		back, ok := ParseTCPState(s.String())
		if !ok || back != s {
			t.Errorf("TCP state %v does not round-trip", s)
		}
	}
	if TCPSynSent2.String() != "SYN_SENT2" || TCPTimeWait.String() != "TIME_WAIT" || TCPState(42).String() != "TCPState(42)" {
		t.Error("tcp state names")
	}
	if st, ok := ParseState("established"); !ok || st != StateEstablished {
		t.Error("ParseState")
	}
	if _, ok := ParseState("INVALID"); ok {
		t.Error("INVALID is not a flow state")
	}
}

func TestStatusNames(t *testing.T) {
	s := StatusAssured | StatusSeenReply | StatusConfirmed
	if got, want := s.Names(), []string{"CONFIRMED", "SEEN_REPLY", "ASSURED"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v (the snapshot contract's order)", got, want)
	}
	if got := (StatusExpected | StatusConfirmed | 1<<20).String(); got != "EXPECTED|CONFIRMED|BIT_20" {
		t.Errorf("String() = %q", got)
	}
	if Status(0).String() != "0" {
		t.Error("empty status")
	}
	if b, ok := ParseStatusName("hw_offload"); !ok || b != StatusHWOffload {
		t.Error("ParseStatusName")
	}
}

func TestState(t *testing.T) {
	tests := []struct {
		status Status
		want   State
	}{
		{StatusConfirmed, StateNew},
		{StatusConfirmed | StatusSeenReply, StateEstablished},
		{StatusConfirmed | StatusSeenReply | StatusAssured, StateEstablished},
		{StatusConfirmed | StatusExpected, StateRelated},
		{StatusConfirmed | StatusExpected | StatusSeenReply, StateRelated},
	}
	for _, tt := range tests {
		f := Flow{Status: tt.status}
		if got := f.State(); got != tt.want {
			t.Errorf("State() of %v = %v, want %v", tt.status, got, tt.want)
		}
	}
}

func TestReverseAndNAT(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	tcp := Tuple{Src: a, Dst: b, SrcPort: 40000, DstPort: 443}
	if got := tcp.Reverse(ProtoTCP); got != (Tuple{Src: b, Dst: a, SrcPort: 443, DstPort: 40000}) {
		t.Errorf("tcp reverse %+v", got)
	}
	// A TCP tuple's zero type is not an ICMP echo reply.
	if got := tcp.Reverse(ProtoTCP); got.Type != 0 {
		t.Errorf("tcp reverse set a type: %+v", got)
	}
	echo := Tuple{Src: a, Dst: b, Type: 8, ID: 7}
	if got := echo.Reverse(ProtoICMP); got.Type != 0 || got.ID != 7 || got.Src != b {
		t.Errorf("icmp echo reverse %+v", got)
	}
	a6, b6 := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	echo6 := Tuple{Src: a6, Dst: b6, Type: 128, ID: 9}
	if got := echo6.Reverse(ProtoICMPv6); got.Type != 129 {
		t.Errorf("icmpv6 echo reverse %+v", got)
	}
	if _, ok := ICMPInverseType(ProtoICMP, 3); ok {
		t.Error("an ICMP error type has no inverse")
	}
	f := Flow{Proto: ProtoTCP, Orig: tcp, Reply: tcp.Reverse(ProtoTCP)}
	if f.NAT() {
		t.Error("an inverted reply is not NAT")
	}
	f.Reply.Src = netip.MustParseAddr("192.0.2.9")
	if !f.NAT() {
		t.Error("a rewritten reply is NAT")
	}
	if k := f.Key(); k.Proto != ProtoTCP || k.Orig != tcp {
		t.Errorf("Key() %+v", k)
	}
}

func TestDisagreeReason(t *testing.T) {
	f := Flow{Proto: ProtoTCP, Status: StatusConfirmed | StatusSeenReply, TCPState: TCPSynRecv}
	if f.DisagreeReason() != "" {
		t.Error("no compare, no reason")
	}
	f.Compare = Compare{Seen: SeenKernel | SeenWire, Disagree: DisagreeState, WireState: StateNew, WireTCPState: TCPSynSent}
	if got := f.DisagreeReason(); got != "state differs: kernel ESTABLISHED/SYN_RECV, wire NEW/SYN_SENT" {
		t.Errorf("reason %q", got)
	}
	f.Compare = Compare{Seen: SeenWire, Disagree: DisagreeWireOnly}
	if got := f.DisagreeReason(); got != "wire only" {
		t.Errorf("reason %q", got)
	}
}
