//go:build linux

package conntrack

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/netns"
)

// fillTable creates n UDP entries (10.200.x.y:port -> 10.201.0.1:53, 600 s
// timeout) in the namespace at path with batched ctnetlink creates, and
// returns how many the kernel refused.
func fillTable(path string, n int) (refused int, err error) {
	var firstErr error
	defer func() {
		if err == nil && firstErr != nil {
			err = fmt.Errorf("%d creates refused, the first with: %w", refused, firstErr)
		}
	}()
	var s *sock
	err = netns.DoPath(path, func() error {
		var err error
		s, err = openSock(0, 4<<20, queryTimeout, 64<<10)
		return err
	})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	var batch []byte
	f := flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoUDP, Timeout: 600,
		Status: flow.StatusConfirmed | flow.StatusSeenReply | flow.StatusAssured}
	dst := netip.MustParseAddr("10.201.0.1")
	drain := func() error {
		// Errors (refused creates) come back without a request for acks;
		// read what is queued without blocking for long.
		for {
			b, err := s.recvNonBlock()
			if err != nil || b == nil {
				return err
			}
			for len(b) > 0 {
				m, rest, err := nextMessage(b)
				if err != nil {
					return err
				}
				b = rest
				if m.typ == nlmsgError {
					if e := errnoOf(m.data); e != nil {
						if refused == 0 {
							firstErr = e
						}
						refused++
					}
				}
			}
		}
	}
	for i := 0; i < n; i++ {
		src := netip.AddrFrom4([4]byte{10, 200, byte(i >> 14), byte(i >> 6)})
		port := uint16(1024 + i&63)
		f.Orig = flow.Tuple{Src: src, Dst: dst, SrcPort: port, DstPort: 53}
		f.Reply = f.Orig.Reverse(f.Proto)
		batch = appendCreate(batch, uint32(i), &f)
		if len(batch) > 60<<10 || i == n-1 {
			if err := s.sendRaw(batch); err != nil {
				return refused, fmt.Errorf("send creates: %w", err)
			}
			batch = batch[:0]
			if err := drain(); err != nil {
				return refused, err
			}
		}
	}
	// A final acknowledged request: everything before it was processed.
	s.begin(subsysCT, msgCTStats, flagRequest|flagAck, 0)
	err = s.transact(func(message) error { return nil })
	if err2 := drain(); err == nil {
		err = err2
	}
	return refused, err
}

// recvNonBlock returns the next queued datagram, or nil when none is queued.
func (s *sock) recvNonBlock() ([]byte, error) {
	n, _, err := recvfromDontWait(s.fd, s.buf)
	if errors.Is(err, errAgain) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.buf[:n], nil
}
