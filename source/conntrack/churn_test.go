//go:build linux

package conntrack

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/netns"
)

// churnSpec describes a churn: producers goroutines, each with its own
// socket, create Creates UDP entries in all and delete each one again once
// Window newer entries of the same producer exist (the rest at the end):
// 2*Creates events (NEW and DESTROY), while the table never holds more than
// about Window entries. The last Keep entries of each producer stay. Rate,
// if > 0, paces the total to that many events per second; otherwise the
// producers go flat out.
type churnSpec struct {
	Producers int
	Creates   int
	Window    int
	Keep      int
	Rate      float64
}

// churnResult is what a churn did.
type churnResult struct {
	Events  int           // requests the kernel accepted (each one event)
	Refused int           // requests the kernel refused
	Elapsed time.Duration // from the first request to the last one's completion
}

// Rate is the offered event rate.
func (c churnResult) Rate() float64 { return float64(c.Events) / c.Elapsed.Seconds() }

// churn runs spec in the namespace at path.
func churn(path string, spec churnSpec) (churnResult, error) {
	socks := make([]*sock, spec.Producers)
	defer func() {
		for _, s := range socks {
			if s != nil {
				s.Close()
			}
		}
	}()
	err := netns.DoPath(path, func() error {
		for i := range socks {
			var err error
			if socks[i], err = openSock(0, 4<<20, queryTimeout, 64<<10); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return churnResult{}, fmt.Errorf("churn: %w", err)
	}
	per := spec.Creates / spec.Producers
	var wg sync.WaitGroup
	refused := make([]int, spec.Producers)
	errs := make([]error, spec.Producers)
	start := time.Now()
	for p := range socks {
		wg.Go(func() {
			refused[p], errs[p] = churnOne(socks[p], byte(p), per, spec.Window, spec.Keep, spec.Rate/float64(spec.Producers), start)
		})
	}
	wg.Wait()
	res := churnResult{Elapsed: time.Since(start)}
	for p := range socks {
		if errs[p] != nil {
			return res, fmt.Errorf("churn producer %d: %w", p, errs[p])
		}
		res.Refused += refused[p]
	}
	res.Events = (2*per-spec.Keep)*spec.Producers - res.Refused
	return res, nil
}

// churnOne is one producer: n creates and n-keep deletes on s, entries
// 10.(200+p).x.y:port -> 10.250.0.1:53, paced to rate events/s if > 0.
func churnOne(s *sock, p byte, n, window, keep int, rate float64, start time.Time) (int, error) {
	f := flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoUDP, Timeout: 600,
		Status: flow.StatusConfirmed | flow.StatusSeenReply | flow.StatusAssured}
	dst := netip.MustParseAddr("10.250.0.1")
	key := func(i int) flow.Key {
		src := netip.AddrFrom4([4]byte{10, 200 + p, byte(i >> 14), byte(i >> 6)})
		return flow.Key{Proto: flow.ProtoUDP, Orig: flow.Tuple{Src: src, Dst: dst, SrcPort: uint16(1024 + i&63), DstPort: 53}}
	}
	refused := 0
	var batch []byte
	sent := 0
	flush := func() error {
		if err := s.sendRaw(batch); err != nil {
			return fmt.Errorf("send requests: %w", err)
		}
		batch = batch[:0]
		if err := drainRefusals(s, &refused); err != nil {
			return err
		}
		if rate > 0 {
			// Sleep until the schedule has caught up with what was sent.
			if d := time.Duration(float64(sent)/rate*float64(time.Second)) - time.Since(start); d > 0 {
				time.Sleep(d)
			}
		}
		return nil
	}
	seq := uint32(0)
	for i := 0; i < n+window; i++ {
		if i < n {
			k := key(i)
			f.Orig = k.Orig
			f.Reply = f.Orig.Reverse(f.Proto)
			seq++
			batch = appendCreate(batch, seq, &f)
			sent++
		}
		if j := i - window; j >= 0 && j < n-keep {
			seq++
			batch = appendDelete(batch, seq, key(j))
			sent++
		}
		if len(batch) > 60<<10 {
			if err := flush(); err != nil {
				return refused, err
			}
		}
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return refused, err
		}
	}
	// A final acknowledged request: everything before it was processed.
	s.begin(subsysCT, msgCTStats, flagRequest|flagAck, 0)
	err := s.transact(func(message) error { return nil })
	if err2 := drainRefusals(s, &refused); err == nil {
		err = err2
	}
	return refused, err
}

// drainRefusals counts the error replies queued on s (requests sent without
// NLM_F_ACK answer only when refused), without blocking.
func drainRefusals(s *sock, refused *int) error {
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
			if m.typ == nlmsgError && errnoOf(m.data) != nil {
				*refused++
			}
		}
	}
}
