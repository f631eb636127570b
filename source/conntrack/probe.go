//go:build linux

package conntrack

import (
	"bytes"

	"github.com/conntop/conntop/internal/netns"
)

// Info is what Probe learns about a namespace's conntrack table.
type Info struct {
	// Active says whether conntrack tracks connections in the namespace.
	Active bool
	// Reason says how Active was decided, for the banner of --source auto.
	Reason string
	// Count and Max are the number of entries and the limit.
	Count, Max uint64
	// Accounting says whether byte/packet counters are kept
	// (net.netfilter.nf_conntrack_acct).
	Accounting bool
}

// Probe inspects the conntrack table of the namespace in opts.NetNS without
// starting a source. Conntrack is active when the table has entries, or when
// an nftables rule in the namespace uses connection tracking (ct, nat, masq,
// redir, connlimit, synproxy, flow offload, or the iptables-nft conntrack,
// state, connmark and NAT matches and targets). Errors match
// netns.ErrNotFound, ErrNotLoaded or ErrPermission.
func Probe(opts Options) (Info, error) {
	path, err := netns.Resolve(opts.NetNS)
	if err != nil {
		return Info{}, err
	}
	var info Info
	err = netns.DoPath(path, func() error {
		if err := checkLoaded("/proc/sys/net/netfilter"); err != nil {
			return err
		}
		s, err := openSock(0, 0, queryTimeout, 64<<10)
		if err != nil {
			return err
		}
		defer s.Close()
		p := openProcFiles()
		defer p.Close()
		info, err = probe(s, p)
		return err
	})
	return info, err
}

// probe is Probe on sockets and files already in the namespace.
func probe(s *sock, p *procFiles) (Info, error) {
	st, err := tableStats(s, p)
	if err != nil {
		return Info{}, err
	}
	info := Info{Count: st.Count, Max: st.Max, Accounting: st.Accounting}
	if st.Count > 0 {
		info.Active, info.Reason = true, "the conntrack table has entries"
		return info, nil
	}
	name, err := nftUsesConntrack(s)
	switch {
	case err != nil:
		info.Reason = "the conntrack table is empty and the nftables ruleset could not be read: " + err.Error()
	case name != "":
		info.Active, info.Reason = true, "an nftables rule uses conntrack ("+name+")"
	default:
		info.Reason = "the conntrack table is empty and no nftables rule uses conntrack"
	}
	return info, nil
}

// nf_tables netlink constants (linux/netfilter/nf_tables.h).
const (
	msgNFTGetRule       = 7
	nftaRuleExpressions = 4
	nftaListElem        = 1
	nftaExprName        = 1
	nftaExprData        = 2
	nftaMatchName       = 1 // also NFTA_TARGET_NAME
)

// conntrackExprs are nf_tables expressions that make the kernel track
// connections; conntrackXt are the x_tables matches and targets (used by
// iptables-nft through the "match" and "target" expressions) that do.
var (
	conntrackExprs = []string{"ct", "nat", "masq", "redir", "connlimit", "synproxy", "flow_offload"}
	conntrackXt    = []string{"conntrack", "state", "connmark", "connlimit", "connbytes", "helper",
		"MASQUERADE", "SNAT", "DNAT", "REDIRECT", "NETMAP", "CT", "CONNMARK"}
)

// nftUsesConntrack dumps the namespace's nftables rules and returns the name
// of the first expression that needs conntrack, or "".
func nftUsesConntrack(s *sock) (string, error) {
	s.begin(subsysNFTable, msgNFTGetRule, flagRequest|flagDump, 0)
	found := ""
	err := s.transact(func(m message) error {
		if found != "" || len(m.data) < nfgenHdrLen {
			return nil
		}
		found = ruleUsesConntrack(m.data[nfgenHdrLen:])
		return nil
	})
	if err != nil {
		return "", err
	}
	return found, nil
}

// ruleUsesConntrack inspects the attributes of one NFT_MSG_NEWRULE message.
func ruleUsesConntrack(b []byte) string {
	a := attrs{b: b}
	for a.next() {
		if a.typ != nftaRuleExpressions {
			continue
		}
		l := attrs{b: a.val}
		for l.next() {
			if l.typ != nftaListElem {
				continue
			}
			var name, data []byte
			e := attrs{b: l.val}
			for e.next() {
				switch e.typ {
				case nftaExprName:
					name = cstring(e.val)
				case nftaExprData:
					data = e.val
				}
			}
			for _, n := range conntrackExprs {
				if string(name) == n {
					return n
				}
			}
			if string(name) == "match" || string(name) == "target" {
				d := attrs{b: data}
				for d.next() {
					if d.typ != nftaMatchName {
						continue
					}
					xt := cstring(d.val)
					for _, n := range conntrackXt {
						if string(xt) == n {
							return string(name) + " " + n
						}
					}
				}
			}
		}
	}
	return ""
}

// cstring trims b at its first NUL.
func cstring(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}
