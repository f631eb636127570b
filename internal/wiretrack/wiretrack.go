// Package wiretrack is the path shared by conntop's packet sources (pcap
// replay and live capture): frames are decoded to whole IP datagrams
// (internal/decode), tracked by the in-process conntrack (internal/tracker),
// and the tracker's events are collected, with timeouts applied and table
// statistics reported on the packets' clock.
//
// A Pipeline is not safe for concurrent use and allocates nothing per packet
// in steady state.
package wiretrack

import (
	"time"

	"github.com/conntop/conntop/internal/decode"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/tracker"
)

// Config configures a Pipeline.
type Config struct {
	// Tracker configures the in-process conntrack; the zero value means
	// tracker.DefaultConfig().
	Tracker *tracker.Config
	// Decode sets fragment-reassembly limits.
	Decode decode.Config
	// ExpireEvery is how often (on the packet clock) timed-out entries are
	// removed; default 1 s.
	ExpireEvery time.Duration
	// StatsEvery is how often (on the packet clock) an EventStats is
	// emitted; default 1 s; negative: only when asked (Pipeline.EmitStats).
	StatsEvery time.Duration
}

// Pipeline decodes and tracks packets and collects the resulting events.
type Pipeline struct {
	cfg        Config
	dec        *decode.Decoder
	trk        *tracker.Tracker
	dg         decode.Datagram
	pkt        tracker.Packet
	evs        []flow.Event
	now        time.Time
	nextExpire time.Time
	nextStats  time.Time
	ringDrops  uint64
	packets    uint64
	// Counter reporting: what was last sent per entry, by the tracker's
	// entry id (unique per entry, cheaper to hash than the flow key, and a
	// reopened connection is a new entry).
	flowBuf []flow.Flow
	sent    map[uint32]sentMark
	gen     uint32
}

// sentMark is what EmitCounters last reported of a flow.
type sentMark struct {
	packets uint64
	invalid uint32
	gen     uint32
}

// New returns a Pipeline with an empty table.
func New(cfg Config) *Pipeline {
	tc := tracker.DefaultConfig()
	if cfg.Tracker != nil {
		tc = *cfg.Tracker
	}
	if cfg.ExpireEvery <= 0 {
		cfg.ExpireEvery = time.Second
	}
	if cfg.StatsEvery == 0 {
		cfg.StatsEvery = time.Second
	}
	return &Pipeline{cfg: cfg, dec: decode.New(cfg.Decode), trk: tracker.New(tc), sent: make(map[uint32]sentMark)}
}

// Frame decodes a frame of link type link (wireLen is its original length)
// and tracks the datagram in it, if any, at time now. checksumOK says the
// capture vouches for the packet's checksums (offloaded or already
// verified). It returns what the decoder made of the frame.
func (p *Pipeline) Frame(now time.Time, link decode.LinkType, frame []byte, wireLen int, checksumOK bool) decode.Status {
	p.clock(now)
	st := p.dec.Decode(now, link, frame, wireLen, &p.dg)
	if st == decode.StatusDatagram {
		p.track(now, checksumOK)
	}
	return st
}

// Network is Frame for a packet whose link header is already gone (AF_PACKET
// SOCK_DGRAM): etherType is its protocol, data starts at the network header.
func (p *Pipeline) Network(now time.Time, etherType uint16, data []byte, wireLen int, checksumOK bool) decode.Status {
	p.clock(now)
	st := p.dec.DecodeEtherType(now, etherType, data, wireLen, &p.dg)
	if st == decode.StatusDatagram {
		p.track(now, checksumOK)
	}
	return st
}

func (p *Pipeline) track(now time.Time, checksumOK bool) {
	p.packets++
	p.pkt = tracker.Packet{
		Data:   p.dg.Data,
		Length: p.dg.Length,
		// A record cut short by the snaplen stands for the whole packet,
		// whose checksum cannot be verified from what was kept.
		ChecksumOK: checksumOK || p.dg.Truncated(),
		IPHeaderOK: true, // decode verified it
		Fragment:   p.dg.Fragment,
	}
	p.trk.Handle(now, &p.pkt)
	p.evs = p.trk.AppendEvents(p.evs)
}

// clock advances the packet clock: expiry and periodic statistics.
func (p *Pipeline) clock(now time.Time) {
	if now.Before(p.now) {
		return // timestamps going backwards: keep the clock where it is
	}
	p.now = now
	if !now.Before(p.nextExpire) {
		p.trk.Expire(now)
		p.dec.Expire(now)
		p.evs = p.trk.AppendEvents(p.evs)
		p.nextExpire = now.Add(p.cfg.ExpireEvery)
	}
	if p.cfg.StatsEvery > 0 {
		if p.nextStats.IsZero() {
			p.nextStats = now.Add(p.cfg.StatsEvery)
		} else if !now.Before(p.nextStats) {
			p.EmitCounters()
			p.EmitStats()
			p.nextStats = now.Add(p.cfg.StatsEvery)
		}
	}
}

// Advance moves the clock to now without a packet (a live source calls it
// while the link is quiet): timeouts are applied and statistics emitted
// when due.
func (p *Pipeline) Advance(now time.Time) { p.clock(now) }

// Finish applies timeouts as of now (the last packet's time for a replay)
// and emits a final EventStats.
func (p *Pipeline) Finish(now time.Time) {
	if now.Before(p.now) {
		now = p.now
	}
	p.now = now
	p.trk.Expire(now)
	p.dec.Expire(now)
	p.evs = p.trk.AppendEvents(p.evs)
	p.EmitCounters()
	p.EmitStats()
}

// EmitCounters appends an EventCounters for every flow whose packet counters
// changed since the last call: the tracker's own events report state
// changes only, so this keeps a consumer's counters fresh. Its cost is one
// pass over the table; sources call it about once a second and at the end.
func (p *Pipeline) EmitCounters() {
	p.gen++
	p.flowBuf = p.trk.AppendFlows(p.flowBuf[:0], p.now)
	for i := range p.flowBuf {
		f := &p.flowBuf[i]
		n := f.Counters.OrigPackets + f.Counters.ReplyPackets
		m, ok := p.sent[f.ID]
		p.sent[f.ID] = sentMark{packets: n, invalid: f.Invalid, gen: p.gen}
		if ok && m.packets == n && m.invalid == f.Invalid {
			continue // neither counters nor INVALID figures moved
		}
		p.evs = append(p.evs, flow.Event{Type: flow.EventCounters, Time: p.now, Flow: *f})
	}
	for k, m := range p.sent {
		if m.gen != p.gen {
			delete(p.sent, k)
		}
	}
	clear(p.flowBuf)
}

// EmitStats appends an EventStats with the current table statistics.
func (p *Pipeline) EmitStats() {
	st := p.Stats()
	p.evs = append(p.evs, flow.Event{Type: flow.EventStats, Time: p.now, Stats: &st})
}

// SetRingDrops records the capture ring's drop count (cumulative), reported
// in TableStats.RingDrops.
func (p *Pipeline) SetRingDrops(n uint64) { p.ringDrops = n }

// Events returns the events collected since the last Reset. The slice is
// reused: send or copy the events, then call Reset.
func (p *Pipeline) Events() []flow.Event { return p.evs }

// Reset forgets the collected events.
func (p *Pipeline) Reset() {
	clear(p.evs)
	p.evs = p.evs[:0]
}

// Now returns the pipeline's clock (the newest packet time seen).
func (p *Pipeline) Now() time.Time { return p.now }

// Stats returns the tracker's table statistics with the ring drops.
func (p *Pipeline) Stats() flow.TableStats {
	st := p.trk.Stats()
	st.Time = p.now
	st.RingDrops = p.ringDrops
	return st
}

// DecodeStats returns the decoder's counters.
func (p *Pipeline) DecodeStats() decode.Stats { return p.dec.Stats() }

// Tracked returns the number of datagrams given to the tracker.
func (p *Pipeline) Tracked() uint64 { return p.packets }

// AppendFlows appends the current table (timeouts as of now) to dst.
func (p *Pipeline) AppendFlows(dst []flow.Flow, now time.Time) []flow.Flow {
	return p.trk.AppendFlows(dst, now)
}

// Len returns the number of entries in the table.
func (p *Pipeline) Len() int { return p.trk.Len() }
