// Package pcap is the replay source: it reads a pcap or pcapng capture (a
// file, or stdin for "-"), decodes every frame (internal/decode) and tracks
// it with the in-process conntrack (internal/tracker) on the packets' own
// clock, emitting the tracker's events in order. Replay returns the table as
// it stands right after the last packet, for `conntop snapshot --read FILE`.
//
// A truncated or corrupt capture ends the replay with an error naming the
// packet number; everything read before it has been tracked and its events
// sent.
package pcap

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/conntop/conntop/internal/decode"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/tracker"
	"github.com/conntop/conntop/internal/wiretrack"
	"github.com/conntop/conntop/source"
)

// Config configures a replay.
type Config struct {
	// Pipeline configures decoding and tracking (tracker settings,
	// reassembly limits, how often statistics are emitted on the packet
	// clock).
	Pipeline wiretrack.Config
	// Host tracks the capture as the host that captured it would have:
	// every packet reaches conntrack as if delivered to it. By default
	// (false) a replay keeps the table a conntrack router in the path
	// would keep, the kernel oracle's topology (testdata/kernel-oracle):
	// the tracker's router model (tracker.Config.Router) is turned on, so
	// packets that router would not forward or accept (multicast it has
	// not joined, TTL or hop limit <= 1, IPv6 link-local sources leaving
	// the link) create no entry.
	Host bool
}

// pipeline returns the pipeline settings with the tracker's router model
// set as Host says.
func (cfg Config) pipeline() wiretrack.Config {
	pc := cfg.Pipeline
	tc := tracker.DefaultConfig()
	if pc.Tracker != nil {
		tc = *pc.Tracker
	}
	tc.Router = !cfg.Host
	pc.Tracker = &tc
	return pc
}

// Source replays a capture. It implements source.Source with the name
// "pcap".
type Source struct {
	path string
	r    io.Reader
	cfg  Config
}

var _ source.Source = (*Source)(nil)

// New returns a Source reading the capture at path ("-" reads stdin). The
// file is opened when Run starts.
func New(path string, cfg Config) *Source { return &Source{path: path, cfg: cfg} }

// NewReader returns a Source reading the capture from r; name is used in
// error messages.
func NewReader(name string, r io.Reader, cfg Config) *Source {
	return &Source{path: name, r: r, cfg: cfg}
}

// Name implements source.Source.
func (s *Source) Name() string { return "pcap" }

// Run implements source.Source: it sends EventSynced (the table starts
// empty), then the tracker's events packet by packet with periodic
// EventStats, applies timeouts at the last packet's time, sends a final
// EventStats and returns nil at the end of the capture. A read error ends
// the replay with an error naming the packet number.
func (s *Source) Run(ctx context.Context, out chan<- flow.Event) error {
	r, closer, err := s.open()
	if err != nil {
		return err
	}
	defer closer()
	send := func(evs []flow.Event) error {
		for _, ev := range evs {
			select {
			case out <- ev:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	if err := send([]flow.Event{{Type: flow.EventSynced, Time: time.Now()}}); err != nil {
		return nil
	}
	_, err = replay(ctx, r, s.path, s.cfg, send)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

func (s *Source) open() (io.Reader, func(), error) {
	if s.r != nil {
		return s.r, func() {}, nil
	}
	if s.path == "-" {
		return os.Stdin, func() {}, nil
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, nil, fmt.Errorf("open capture: %w", err)
	}
	return f, func() { f.Close() }, nil
}

// Result is the outcome of a replay.
type Result struct {
	// Flows is the table right after the last packet (timeouts applied at
	// EndTime), ordered as the tracker lists them.
	Flows []flow.Flow
	// Stats are the tracker's table statistics at the end.
	Stats flow.TableStats
	// Decode counts what the decoder did with the frames.
	Decode decode.Stats
	// Packets is the number of records read.
	Packets int
	// EndTime is the last packet's timestamp (zero for an empty capture).
	EndTime time.Time
	// LinkType is the capture's link type.
	LinkType decode.LinkType
}

// Replay tracks the capture read from r and returns the table right after
// its last packet. name is used in error messages. On a read error it
// returns the Result so far together with an error naming the packet number.
func Replay(ctx context.Context, r io.Reader, name string, cfg Config) (*Result, error) {
	return replay(ctx, r, name, cfg, nil)
}

// replay runs the capture through a pipeline; send (if not nil) receives
// events as they are produced.
func replay(ctx context.Context, r io.Reader, name string, cfg Config, send func([]flow.Event) error) (*Result, error) {
	pl := wiretrack.New(cfg.pipeline())
	res := &Result{}
	next, err := openReader(r)
	if err != nil {
		return res, fmt.Errorf("read capture %s: %w", name, err)
	}
	flush := func() error {
		if send == nil {
			pl.Reset()
			return nil
		}
		err := send(pl.Events())
		pl.Reset()
		return err
	}
	var readErr error
	for {
		if res.Packets&255 == 0 && ctx.Err() != nil {
			return res, ctx.Err()
		}
		data, ts, wire, link, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("read capture %s: packet %d: %w", name, res.Packets+1, err)
			break
		}
		res.Packets++
		res.EndTime = ts
		res.LinkType = link
		pl.Frame(ts, link, data, wire, false)
		if err := flush(); err != nil {
			return res, err
		}
	}
	if res.Packets > 0 {
		pl.Finish(res.EndTime)
		res.Flows = pl.AppendFlows(nil, res.EndTime)
	}
	res.Stats = pl.Stats()
	res.Decode = pl.DecodeStats()
	if res.Packets == 0 {
		pl.EmitStats()
	}
	if err := flush(); err != nil {
		return res, err
	}
	return res, readErr
}

// openReader detects pcap or pcapng by the magic number and returns a
// function giving the next frame: its bytes (valid until the next call),
// timestamp, original length and link type.
func openReader(r io.Reader) (func() ([]byte, time.Time, int, decode.LinkType, error), error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, errors.New("not a pcap or pcapng file: too short")
		}
		return nil, err
	}
	if binary.BigEndian.Uint32(magic) == 0x0A0D0D0A {
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, fmt.Errorf("pcapng header: %w", err)
		}
		var links []decode.LinkType
		return func() ([]byte, time.Time, int, decode.LinkType, error) {
			data, ci, err := ng.ZeroCopyReadPacketData()
			if err != nil {
				return nil, time.Time{}, 0, 0, eofOK(err)
			}
			idx := ci.InterfaceIndex
			for idx >= len(links) {
				iface, err := ng.Interface(len(links))
				if err != nil {
					return nil, time.Time{}, 0, 0, fmt.Errorf("interface %d: %w", idx, err)
				}
				lt := decode.LinkType(iface.LinkType)
				if err := decode.CheckLinkType(lt); err != nil {
					return nil, time.Time{}, 0, 0, err
				}
				links = append(links, lt)
			}
			return data, ci.Timestamp, ci.Length, links[idx], nil
		}, nil
	}
	pr, err := pcapgo.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("not a pcap or pcapng file: %w", err)
	}
	link := decode.LinkType(pr.LinkType())
	if err := decode.CheckLinkType(link); err != nil {
		return nil, err
	}
	return func() ([]byte, time.Time, int, decode.LinkType, error) {
		data, ci, err := pr.ZeroCopyReadPacketData()
		if err != nil {
			return nil, time.Time{}, 0, 0, eofOK(err)
		}
		return data, ci.Timestamp, ci.Length, link, nil
	}, nil
}

// eofOK keeps a clean io.EOF (end of capture at a record boundary) and
// turns every other error, a cut record included, into a clear one.
func eofOK(err error) error {
	if err == io.EOF {
		return io.EOF
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("record cut short (truncated capture): %w", io.ErrUnexpectedEOF)
	}
	return err
}
