package filter_test

import (
	"fmt"
	"net/netip"

	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/flow"
)

func Example() {
	f, err := filter.Parse("tcp and dport 443 and not state TIME_WAIT")
	if err != nil {
		fmt.Println(err)
		return
	}
	fl := flow.Flow{
		Family:   flow.FamilyIPv4,
		Proto:    flow.ProtoTCP,
		TCPState: flow.TCPEstablished,
		Status:   flow.StatusConfirmed | flow.StatusSeenReply,
		Orig: flow.Tuple{
			Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
			SrcPort: 47494, DstPort: 443,
		},
	}
	fmt.Println(f.Match(&fl))

	_, err = filter.Parse("state ESTABLISHD")
	fmt.Println(err)

	// and/or have equal precedence and group left to right, as in pcap;
	// String shows the grouping.
	fmt.Println(filter.MustParse("udp or tcp && port 53").String())
	fmt.Println(filter.MustParse("state new,related or udp port 53").String())
	// Output:
	// true
	// filter: position 6: unknown state "ESTABLISHD" (did you mean ESTABLISHED?)
	// udp or tcp and port 53
	// state NEW,RELATED or (udp and port 53)
}
