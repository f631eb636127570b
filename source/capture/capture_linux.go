//go:build linux

package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/netns"
	"github.com/conntop/conntop/internal/termsafe"
	"github.com/conntop/conntop/internal/wiretrack"
	"github.com/conntop/conntop/source"
)

// Config configures a capture.
type Config struct {
	// Interfaces to capture on; empty, or any entry "any", means all
	// interfaces of the namespace.
	Interfaces []string
	// NetNS is the network namespace to capture in (--netns: NAME, PATH or
	// pid:PID); empty means conntop's own.
	NetNS string
	// Filter is an optional capture filter in pcap syntax (compiled with
	// tcpdump). Filtering packets out hides them from the tracker: flows
	// may then look different from the kernel's.
	Filter string
	// RingSize is the size in bytes of each interface's ring (default
	// 32 MiB); BlockSize the size of one ring block (default 1 MiB; a
	// packet longer than a block is cut to it).
	RingSize, BlockSize int
	// StatsEvery is how often table statistics (with ring drops) are sent;
	// default 1 s.
	StatsEvery time.Duration
	// Pipeline configures decoding and tracking; its StatsEvery is ignored.
	Pipeline wiretrack.Config
}

// Source captures packets live. It implements source.Source with the name
// "capture".
type Source struct {
	cfg Config
}

var _ source.Source = (*Source)(nil)

// New returns a capture Source; sockets are opened when Run starts.
func New(cfg Config) *Source {
	if cfg.RingSize <= 0 {
		cfg.RingSize = 32 << 20
	}
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = 1 << 20
	}
	if cfg.StatsEvery <= 0 {
		cfg.StatsEvery = time.Second
	}
	return &Source{cfg: cfg}
}

// Name implements source.Source.
func (s *Source) Name() string { return "capture" }

// allInterfaces reports whether the configuration means every interface.
func (c *Config) allInterfaces() bool {
	if len(c.Interfaces) == 0 {
		return true
	}
	for _, i := range c.Interfaces {
		if i == "any" {
			return true
		}
	}
	return false
}

// open compiles the filter and opens one ring per interface (or one for all)
// inside the configured namespace.
func (s *Source) open(ctx context.Context) ([]*ring, error) {
	prog, err := CompileFilter(ctx, s.cfg.Filter)
	if err != nil {
		return nil, err
	}
	nblocks := s.cfg.RingSize / s.cfg.BlockSize
	if nblocks < 2 {
		nblocks = 2
	}
	var rings []*ring
	err = netns.Do(s.cfg.NetNS, func() error {
		var idx []int
		if s.cfg.allInterfaces() {
			idx = []int{0}
		} else {
			for _, name := range s.cfg.Interfaces {
				ifc, err := net.InterfaceByName(name)
				if err != nil {
					where := "this namespace"
					if s.cfg.NetNS != "" {
						where = "namespace " + termsafe.Escape(s.cfg.NetNS)
					}
					return fmt.Errorf("capture interface %q not found in %s", termsafe.Escape(name), where)
				}
				idx = append(idx, ifc.Index)
			}
		}
		for _, i := range idx {
			r, err := openRing(i, s.cfg.BlockSize, nblocks, prog)
			if err != nil {
				return err
			}
			rings = append(rings, r)
		}
		return nil
	})
	if err != nil {
		for _, r := range rings {
			r.close()
		}
		return nil, fmt.Errorf("start capture: %w", err)
	}
	return rings, nil
}

// Run implements source.Source: it opens the rings, sends EventSynced (the
// in-process table starts empty), then tracks packets until ctx is done,
// sending the tracker's events and, every StatsEvery, the table statistics
// with the rings' drop count.
func (s *Source) Run(ctx context.Context, out chan<- flow.Event) error {
	rings, err := s.open(ctx)
	if err != nil {
		return err
	}
	defer func() {
		for _, r := range rings {
			r.close()
		}
	}()
	pcfg := s.cfg.Pipeline
	pcfg.StatsEvery = -1
	pl := wiretrack.New(pcfg)
	c := &capturer{rings: rings, pl: pl, out: out, dedup: newForwardDedup(1<<16, time.Second)}
	if err := c.send(ctx, []flow.Event{{Type: flow.EventSynced, Time: time.Now()}}); err != nil {
		return nil
	}
	err = c.loop(ctx, s.cfg.StatsEvery)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// capturer is the state of one running capture.
type capturer struct {
	rings []*ring
	pl    *wiretrack.Pipeline
	out   chan<- flow.Event
	pfds  []unix.PollFd
	pkt   ringPacket
	// dedup recognises the second copy of a forwarded packet.
	dedup *forwardDedup
	// Counters for tests and benchmarks.
	seen, skippedLoop uint64
}

func (c *capturer) send(ctx context.Context, evs []flow.Event) error {
	for _, ev := range evs {
		select {
		case c.out <- ev:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (c *capturer) loop(ctx context.Context, statsEvery time.Duration) error {
	c.pfds = make([]unix.PollFd, len(c.rings))
	for i, r := range c.rings {
		c.pfds[i] = unix.PollFd{Fd: int32(r.fd), Events: unix.POLLIN | unix.POLLERR}
	}
	nextStats := time.Now().Add(statsEvery)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		busy := false
		for _, r := range c.rings {
			if r.ready() {
				busy = true
				if err := c.drain(ctx, r); err != nil {
					return err
				}
			}
		}
		now := time.Now()
		if !busy {
			// Packets still in the ring may be a block timeout older than
			// now: keep the clock a little behind.
			c.pl.Advance(now.Add(-time.Second).Round(0))
			for i := range c.pfds {
				c.pfds[i].Revents = 0
			}
			if _, err := unix.Poll(c.pfds, 100); err != nil && !errors.Is(err, unix.EINTR) {
				return fmt.Errorf("poll packet sockets: %w", err)
			}
		}
		if !now.Before(nextStats) {
			if err := c.emitStats(); err != nil {
				return err
			}
			nextStats = now.Add(statsEvery)
		}
		if err := c.flush(ctx); err != nil {
			return err
		}
	}
}

// drain tracks the packets of the ready blocks of r (at most a few blocks,
// so the other rings get their turn) and sends the events.
func (c *capturer) drain(ctx context.Context, r *ring) error {
	startBlock := r.cur
	for n := 0; r.next(&c.pkt); n++ {
		p := &c.pkt
		c.seen++
		if p.Loopback && p.Outgoing {
			// Loopback delivers every packet twice (out, then in);
			// conntrack counts it once.
			c.skippedLoop++
			continue
		}
		if !p.Loopback && c.dedup.duplicate(p.Time, p.Data, p.Outgoing) {
			// The other copy of a forwarded packet (in on one
			// interface, out on another): conntrack sees it once.
			continue
		}
		// Conntrack checks checksums only at PRE_ROUTING; outgoing
		// packets were tracked at LOCAL_OUT without a check.
		c.pl.Network(p.Time, p.Protocol, p.Data, p.Len, p.CsumOK || p.Outgoing)
		if n&63 == 63 {
			if err := c.flush(ctx); err != nil {
				return err
			}
		}
		if r.cur != startBlock && (r.cur-startBlock+r.nblocks)%r.nblocks >= 4 {
			break
		}
	}
	return c.flush(ctx)
}

func (c *capturer) flush(ctx context.Context) error {
	evs := c.pl.Events()
	if len(evs) == 0 {
		return nil
	}
	err := c.send(ctx, evs)
	c.pl.Reset()
	return err
}

// emitStats reads the rings' counters and queues an EventStats.
func (c *capturer) emitStats() error {
	var drops uint64
	for _, r := range c.rings {
		if err := r.readStats(); err != nil {
			return err
		}
		drops += r.drops
	}
	c.pl.SetRingDrops(drops)
	c.pl.EmitCounters()
	c.pl.EmitStats()
	return nil
}
