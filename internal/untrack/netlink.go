package untrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// This file encodes the few nf_tables messages Install and Remove send
// (uapi linux/netfilter/nf_tables.h, nfnetlink.h) and runs them as one
// batch: the kernel applies a batch as a single transaction, all of it or
// none.

// nfprotoIPv4 and nfprotoIPv6 are the NFPROTO values `meta nfproto`
// loads.
const (
	nfprotoIPv4 = unix.NFPROTO_IPV4
	nfprotoIPv6 = unix.NFPROTO_IPV6
)

// priorityRaw is nft's "priority raw" (NF_IP_PRI_RAW): before conntrack
// (-200) looks at a packet.
var priorityRaw int32 = -300

// nfAccept is the chains' policy (NF_ACCEPT).
const nfAccept = 1

// udataRuleComment is libnftnl's user-data type of a rule's comment
// (NFTNL_UDATA_RULE_COMMENT), which nft prints as `comment "..."`.
const udataRuleComment = 0

// batch is a sequence of nfnetlink messages between a batch begin and end.
type batch struct {
	msgs [][]byte // each: message type (2 bytes), flags (2 bytes), then the nfgenmsg and attributes
}

func newBatch() *batch { return &batch{} }

// add appends an nf_tables message of type typ (NFT_MSG_*) with flags and
// the attributes attrs, for family inet.
func (b *batch) add(typ uint16, flags uint16, attrs []byte) {
	m := make([]byte, 4, 8+len(attrs))
	binary.NativeEndian.PutUint16(m, unix.NFNL_SUBSYS_NFTABLES<<8|typ)
	binary.NativeEndian.PutUint16(m[2:], flags)
	m = append(m, unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0)
	b.msgs = append(b.msgs, append(m, attrs...))
}

// replaceTable declares the table (no error if it exists), deletes it, and
// declares it again: a stale table, with whatever it held, is replaced.
func (b *batch) replaceTable() {
	b.add(unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE, attrString(unix.NFTA_TABLE_NAME, TableName))
	b.add(unix.NFT_MSG_DELTABLE, 0, attrString(unix.NFTA_TABLE_NAME, TableName))
	b.add(unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, attrString(unix.NFTA_TABLE_NAME, TableName))
}

// deleteTable deletes the table if it exists.
func (b *batch) deleteTable() {
	b.add(unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE, attrString(unix.NFTA_TABLE_NAME, TableName))
	b.add(unix.NFT_MSG_DELTABLE, 0, attrString(unix.NFTA_TABLE_NAME, TableName))
}

// baseChain adds `chain NAME { type filter hook HOOK priority raw; policy accept; }`.
func (b *batch) baseChain(ch chain) {
	var a []byte
	a = append(a, attrString(unix.NFTA_CHAIN_TABLE, TableName)...)
	a = append(a, attrString(unix.NFTA_CHAIN_NAME, ch.name)...)
	hook := append(attrU32(unix.NFTA_HOOK_HOOKNUM, ch.hook), attrU32(unix.NFTA_HOOK_PRIORITY, uint32(priorityRaw))...)
	a = append(a, attrNested(unix.NFTA_CHAIN_HOOK, hook)...)
	a = append(a, attrU32(unix.NFTA_CHAIN_POLICY, nfAccept)...)
	a = append(a, attrString(unix.NFTA_CHAIN_TYPE, "filter")...)
	b.add(unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE|unix.NLM_F_EXCL, a)
}

// notrackRule appends to ch the rule `[ip|ip6 daddr|saddr ADDR] tcp
// dport|sport PORT notrack comment "conntop serve"`, as nft compiles it.
func (b *batch) notrackRule(ch chain, p Port) {
	var exprs []byte
	if !p.anyAddr() {
		addr := p.Addr.Unmap()
		var off uint32
		var val []byte
		if addr.Is4() {
			v := addr.As4()
			val = v[:]
			off = 12 // IPv4 source address
			if ch.dest {
				off = 16
			}
			exprs = append(exprs, exprMeta(unix.NFT_META_NFPROTO)...)
			exprs = append(exprs, exprCmp([]byte{nfprotoIPv4})...)
		} else {
			v := addr.As16()
			val = v[:]
			off = 8 // IPv6 source address
			if ch.dest {
				off = 24
			}
			exprs = append(exprs, exprMeta(unix.NFT_META_NFPROTO)...)
			exprs = append(exprs, exprCmp([]byte{nfprotoIPv6})...)
		}
		exprs = append(exprs, exprPayload(unix.NFT_PAYLOAD_NETWORK_HEADER, off, uint32(len(val)))...)
		exprs = append(exprs, exprCmp(val)...)
	}
	exprs = append(exprs, exprMeta(unix.NFT_META_L4PROTO)...)
	exprs = append(exprs, exprCmp([]byte{unix.IPPROTO_TCP})...)
	var portOff uint32 // TCP source port
	if ch.dest {
		portOff = 2
	}
	exprs = append(exprs, exprPayload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, portOff, 2)...)
	exprs = append(exprs, exprCmp(binary.BigEndian.AppendUint16(nil, p.Port))...)
	exprs = append(exprs, expr("notrack", nil)...)

	var a []byte
	a = append(a, attrString(unix.NFTA_RULE_TABLE, TableName)...)
	a = append(a, attrString(unix.NFTA_RULE_CHAIN, ch.name)...)
	a = append(a, attrNested(unix.NFTA_RULE_EXPRESSIONS, exprs)...)
	comment := append([]byte(ruleComment), 0)
	udata := append([]byte{udataRuleComment, byte(len(comment))}, comment...)
	a = append(a, attr(unix.NFTA_RULE_USERDATA, udata)...)
	b.add(unix.NFT_MSG_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_APPEND, a)
}

// expr is one element of a rule's expression list.
func expr(name string, data []byte) []byte {
	e := attrString(unix.NFTA_EXPR_NAME, name)
	if data != nil {
		e = append(e, attrNested(unix.NFTA_EXPR_DATA, data)...)
	}
	return attrNested(unix.NFTA_LIST_ELEM, e)
}

// exprMeta loads meta key into register 1.
func exprMeta(key uint32) []byte {
	return expr("meta", append(attrU32(unix.NFTA_META_DREG, unix.NFT_REG_1), attrU32(unix.NFTA_META_KEY, key)...))
}

// exprPayload loads n bytes at off from the header base into register 1.
func exprPayload(base, off, n uint32) []byte {
	d := attrU32(unix.NFTA_PAYLOAD_DREG, unix.NFT_REG_1)
	d = append(d, attrU32(unix.NFTA_PAYLOAD_BASE, base)...)
	d = append(d, attrU32(unix.NFTA_PAYLOAD_OFFSET, off)...)
	d = append(d, attrU32(unix.NFTA_PAYLOAD_LEN, n)...)
	return expr("payload", d)
}

// exprCmp ends the rule unless register 1 equals val.
func exprCmp(val []byte) []byte {
	d := attrU32(unix.NFTA_CMP_SREG, unix.NFT_REG_1)
	d = append(d, attrU32(unix.NFTA_CMP_OP, unix.NFT_CMP_EQ)...)
	d = append(d, attrNested(unix.NFTA_CMP_DATA, attr(unix.NFTA_DATA_VALUE, val))...)
	return expr("cmp", d)
}

// attr encodes one netlink attribute (padded to 4 bytes).
func attr(typ uint16, data []byte) []byte {
	n := unix.SizeofNlAttr + len(data)
	a := make([]byte, nlAlign(n))
	binary.NativeEndian.PutUint16(a, uint16(n))
	binary.NativeEndian.PutUint16(a[2:], typ)
	copy(a[unix.SizeofNlAttr:], data)
	return a
}

func attrNested(typ uint16, data []byte) []byte { return attr(typ|unix.NLA_F_NESTED, data) }

func attrString(typ uint16, s string) []byte { return attr(typ, append([]byte(s), 0)) }

// attrU32 encodes a 32-bit value in network order, as nf_tables wants.
func attrU32(typ uint16, v uint32) []byte { return attr(typ, binary.BigEndian.AppendUint32(nil, v)) }

func nlAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// nlSocket is a NETLINK_NETFILTER socket in the namespace it was opened in.
type nlSocket struct {
	fd  int
	seq uint32
}

// openNetlink opens the socket; timeout bounds each wait for an answer.
func openNetlink(timeout time.Duration) (*nlSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("open a netfilter netlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("netlink receive timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("bind netlink socket: %w", err)
	}
	return &nlSocket{fd: fd, seq: uint32(time.Now().Unix())}, nil
}

func (s *nlSocket) close() { _ = unix.Close(s.fd) }

// errTimeout says the kernel did not answer within the receive timeout.
var errTimeout = errors.New("no answer from the kernel within the timeout")

// transact sends b between batch begin and end messages, every message
// asking for an acknowledgement, and waits until the kernel acknowledged
// them all (the transaction is committed) or reported an error (it is
// aborted: nothing changed). Only messages from the kernel are read.
func (s *nlSocket) transact(b *batch) error {
	var buf []byte
	hdr := func(typ, flags uint16, seq uint32, body []byte) {
		n := unix.NLMSG_HDRLEN + len(body)
		start := len(buf)
		buf = append(buf, make([]byte, nlAlign(n))...)
		m := buf[start:]
		binary.NativeEndian.PutUint32(m, uint32(n))
		binary.NativeEndian.PutUint16(m[4:], typ)
		binary.NativeEndian.PutUint16(m[6:], flags)
		binary.NativeEndian.PutUint32(m[8:], seq)
		copy(m[unix.NLMSG_HDRLEN:], body)
	}
	// Batch begin and end: nfgenmsg with the subsystem in res_id.
	batchMsg := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(batchMsg[2:], unix.NFNL_SUBSYS_NFTABLES)
	s.seq++
	hdr(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, s.seq, batchMsg)
	first := s.seq + 1
	for _, m := range b.msgs {
		s.seq++
		typ, flags := binary.NativeEndian.Uint16(m), binary.NativeEndian.Uint16(m[2:])
		hdr(typ, flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK, s.seq, m[4:])
	}
	last := s.seq
	s.seq++
	hdr(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, s.seq, batchMsg)
	end := s.seq

	if err := unix.Sendto(s.fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send nf_tables batch: %w", err)
	}
	acked := make(map[uint32]bool, len(b.msgs))
	rbuf := make([]byte, 64<<10)
	for len(acked) < len(b.msgs) {
		n, from, err := unix.Recvfrom(s.fd, rbuf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EWOULDBLOCK) {
				return errTimeout
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("receive nf_tables answer: %w", err)
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // not from the kernel
		}
		for p := rbuf[:n]; len(p) >= unix.NLMSG_HDRLEN; {
			size := int(binary.NativeEndian.Uint32(p))
			if size < unix.NLMSG_HDRLEN || size > len(p) {
				return errors.New("malformed netlink answer")
			}
			typ, seq := binary.NativeEndian.Uint16(p[4:]), binary.NativeEndian.Uint32(p[8:])
			data := p[unix.NLMSG_HDRLEN:size]
			p = p[min(nlAlign(size), len(p)):]
			if typ != unix.NLMSG_ERROR || seq < first-1 || seq > end {
				continue
			}
			if len(data) < 4 {
				return errors.New("short netlink error message")
			}
			if code := int32(binary.NativeEndian.Uint32(data)); code != 0 {
				if seq < first || seq > last {
					return fmt.Errorf("nf_tables batch: %w", unix.Errno(-code))
				}
				return fmt.Errorf("nf_tables message %d of %d: %w", seq-first+1, len(b.msgs), unix.Errno(-code))
			}
			if seq >= first && seq <= last {
				acked[seq] = true
			}
		}
	}
	return nil
}
