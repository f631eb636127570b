//go:build linux

package conntrack

import (
	"fmt"

	"github.com/conntop/conntop/internal/flow"
)

// ctnetlink expectation subsystem (linux/netfilter/nfnetlink_conntrack.h).
const (
	subsysCTExp = 2 // NFNL_SUBSYS_CTNETLINK_EXP

	msgExpNew    = 0 // IPCTNL_MSG_EXP_NEW: dump replies and NEW events
	msgExpGet    = 1 // IPCTNL_MSG_EXP_GET
	msgExpDelete = 2 // IPCTNL_MSG_EXP_DELETE: DESTROY events

	groupExpNew     = 4 // NFNLGRP_CONNTRACK_EXP_NEW
	groupExpDestroy = 6 // NFNLGRP_CONNTRACK_EXP_DESTROY

	ctaExpectMaster   = 1
	ctaExpectTuple    = 2
	ctaExpectMask     = 3
	ctaExpectTimeout  = 4
	ctaExpectID       = 5
	ctaExpectHelpName = 6
	ctaExpectZone     = 7
	ctaExpectFlags    = 8
	ctaExpectClass    = 9
	ctaExpectNAT      = 10
	ctaExpectFn       = 11

	ctaExpectNATDir   = 1
	ctaExpectNATTuple = 2
)

// decodeExpect decodes a ctnetlink expectation message payload (after the
// nlmsghdr: nfgenmsg then CTA_EXPECT_* attributes) into e, which is reset
// first. The kernel sends the expected tuple, its mask (a tuple whose
// fields are the bits that must match), the master's original tuple, the
// seconds left, an id, flags, class, the helper's name and, for helpers
// that NAT the expected connection, CTA_EXPECT_NAT and CTA_EXPECT_FN, which
// conntop does not show (they are checked for shape only). It does not
// allocate except for a helper name the kernel does not ship.
func decodeExpect(data []byte, e *flow.Expectation) error {
	*e = flow.Expectation{}
	if len(data) < nfgenHdrLen {
		return fmt.Errorf("decode conntrack expectation: %w: short nfgenmsg", errMalformed)
	}
	e.Family = flow.Family(data[0])
	var err error
	var haveTuple, haveMaster bool
	a := attrs{b: data[nfgenHdrLen:]}
	for err == nil && a.next() {
		v := a.val
		switch a.typ {
		case ctaExpectTuple:
			e.Proto, err = decodeExpectTuple(v, &e.Tuple, &e.Zone)
			haveTuple = true
		case ctaExpectMask:
			_, err = decodeTuple(v, &e.Mask)
		case ctaExpectMaster:
			e.MasterProto, err = decodeExpectTuple(v, &e.Master, nil)
			haveMaster = true
		case ctaExpectTimeout:
			e.Timeout, err = be32(v)
		case ctaExpectID:
			e.ID, err = be32(v)
		case ctaExpectZone:
			e.Zone, err = be16(v)
		case ctaExpectFlags:
			e.Flags, err = be32(v)
		case ctaExpectClass:
			e.Class, err = be32(v)
		case ctaExpectHelpName:
			e.Helper = internHelper(cString(v))
		case ctaExpectNAT:
			err = checkExpectNAT(v)
		case ctaExpectFn:
			// The expectfn's name ("nat-follow-master"): not shown.
		}
	}
	if err == nil {
		err = a.err
	}
	if err != nil {
		return fmt.Errorf("decode conntrack expectation: %w", err)
	}
	if e.Family != flow.FamilyIPv4 && e.Family != flow.FamilyIPv6 {
		return fmt.Errorf("decode conntrack expectation: %w: family %d", errMalformed, e.Family)
	}
	if !haveTuple || !e.Tuple.Src.IsValid() || !e.Tuple.Dst.IsValid() {
		return fmt.Errorf("decode conntrack expectation: %w: no expected tuple", errMalformed)
	}
	if !haveMaster || !e.Master.Src.IsValid() || !e.Master.Dst.IsValid() {
		return fmt.Errorf("decode conntrack expectation: %w: no master tuple", errMalformed)
	}
	v4 := e.Family == flow.FamilyIPv4
	if e.Tuple.Src.Is4() != v4 || e.Tuple.Dst.Is4() != v4 || e.Master.Src.Is4() != v4 || e.Master.Dst.Is4() != v4 {
		return fmt.Errorf("decode conntrack expectation: %w: addresses of another family than %v", errMalformed, e.Family)
	}
	return nil
}

// decodeExpectTuple decodes a tuple nest and, when zone is not nil, its
// CTA_TUPLE_ZONE (which the kernel adds for a zone other than the default).
func decodeExpectTuple(b []byte, t *flow.Tuple, zone *uint16) (uint8, error) {
	proto, err := decodeTuple(b, t)
	if err != nil || zone == nil {
		return proto, err
	}
	a := attrs{b: b}
	for a.next() {
		if a.typ == ctaTupleZone {
			if *zone, err = be16(a.val); err != nil {
				return 0, err
			}
		}
	}
	return proto, a.err
}

// checkExpectNAT checks the shape of a CTA_EXPECT_NAT nest.
func checkExpectNAT(b []byte) error {
	a := attrs{b: b}
	for a.next() {
		switch a.typ {
		case ctaExpectNATDir:
			if _, err := be32(a.val); err != nil {
				return err
			}
		case ctaExpectNATTuple:
			var t flow.Tuple
			if _, err := decodeTuple(a.val, &t); err != nil {
				return err
			}
		}
	}
	return a.err
}

// cString returns b up to its first NUL byte.
func cString(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
