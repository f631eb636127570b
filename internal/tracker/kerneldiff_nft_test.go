//go:build linux

package tracker

// The harness reads the router's per-`ct state` nft counters over
// nfnetlink (NFT_MSG_GETOBJ dump of the named counters), not by running
// nft: a process per scenario would double the run time.

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/conntop/conntop/internal/flow"
)

const (
	nfnlSubsysNFTables = 10
	nftMsgGetObjReset  = 21 // NFT_MSG_GETOBJ_RESET: read and zero
	nftaObjTable       = 1
	nftaObjName        = 2
	nftaObjType        = 3
	nftaObjData        = 4
	nftObjectCounter   = 1
	nftaCounterPackets = 2
	nfprotoInet        = 1
)

// verdictCounterRules returns the prerouting rules and named counters that
// count packets by ct state, as the recorded oracle's pre_* counters.
func verdictCounterRules() (objects, rules string) {
	var o, r strings.Builder
	for v := range flow.NumVerdicts {
		fmt.Fprintf(&o, "\tcounter pre_%s {\n\t}\n", v)
		fmt.Fprintf(&r, "\t\tct state %s counter name \"pre_%s\"\n", v, v)
	}
	return o.String(), r.String()
}

// nftVerdicts reads and zeroes the pre_* counters of table inet ko_oracle
// through c (a NETLINK_NETFILTER socket in the router namespace): one
// round trip per scenario.
func nftVerdicts(c *netlink.Conn) (flow.Verdicts, error) {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(nftaObjTable, "ko_oracle")
	ae.Uint32(nftaObjType, nftObjectCounter)
	attrs, err := ae.Encode()
	if err != nil {
		return flow.Verdicts{}, fmt.Errorf("encode nft request: %w", err)
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(nfnlSubsysNFTables<<8 | nftMsgGetObjReset),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{nfprotoInet, 0, 0, 0}, attrs...),
	}
	msgs, err := c.Execute(req)
	if err != nil {
		return flow.Verdicts{}, fmt.Errorf("dump nft counters: %w", err)
	}
	var v flow.Verdicts
	found := 0
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return v, fmt.Errorf("decode nft object: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		var name string
		var packets uint64
		for ad.Next() {
			switch ad.Type() {
			case nftaObjName:
				name = ad.String()
			case nftaObjData:
				ad.Nested(func(nd *netlink.AttributeDecoder) error {
					for nd.Next() {
						if nd.Type() == nftaCounterPackets {
							packets = nd.Uint64()
						}
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			return v, fmt.Errorf("decode nft object: %w", err)
		}
		for i := range flow.NumVerdicts {
			if name == "pre_"+i.String() {
				v[i] = packets
				found++
			}
		}
	}
	if found != int(flow.NumVerdicts) {
		return v, fmt.Errorf("nft counters: found %d of %d pre_* counters", found, flow.NumVerdicts)
	}
	return v, nil
}

// dialNetfilter opens a NETLINK_NETFILTER socket (call it inside the
// router namespace).
func dialNetfilter() (*netlink.Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("netfilter netlink: %w", err)
	}
	return c, nil
}
