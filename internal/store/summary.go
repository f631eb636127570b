package store

import (
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// rateBucket counts what happened during one second.
type rateBucket struct {
	new, destroy, update uint32
	trans                [NumPhases][NumPhases]uint32
}

// rateSeconds is the number of complete seconds averaged.
const rateSeconds = int(RateWindow / time.Second)

// rateRing keeps the last rateSeconds complete seconds plus the current
// one.
type rateRing struct {
	sec    int64 // the current second (Unix), 0 before the first Tick
	cur    rateBucket
	done   [rateSeconds]rateBucket
	next   int // where the next complete second goes
	filled int // complete seconds held
}

// roll closes the current second and steps seconds forward (the seconds
// in between were empty).
func (r *rateRing) roll(steps int64) {
	for j := int64(0); j < steps && j < int64(rateSeconds); j++ {
		r.done[r.next] = r.cur
		r.cur = rateBucket{}
		r.next = (r.next + 1) % rateSeconds
		r.filled = min(r.filled+1, rateSeconds)
	}
	r.cur = rateBucket{}
}

// span is the number of seconds the complete buckets cover.
func (r *rateRing) span() float64 { return float64(r.filled) }

// sampleRing holds the per-second count samples.
type sampleRing struct {
	buf  []CountSample
	next int
	n    int
}

func (r *sampleRing) init(n int) { r.buf = make([]CountSample, n) }

func (r *sampleRing) cap() int { return len(r.buf) }

func (r *sampleRing) add(c CountSample) {
	r.buf[r.next] = c
	r.next = (r.next + 1) % len(r.buf)
	r.n = min(r.n+1, len(r.buf))
}

// all returns the samples, oldest first.
func (r *sampleRing) all() []CountSample {
	out := make([]CountSample, 0, r.n)
	start := (r.next - r.n + len(r.buf)) % len(r.buf)
	for i := 0; i < r.n; i++ {
		out = append(out, r.buf[(start+i)%len(r.buf)])
	}
	return out
}

// Summary returns the header figures. Counts cover live flows only
// (lingering destroyed flows are in Lingering). Rates are averaged over the
// last RateWindow of complete seconds of the Tick clock (zero until one
// second has passed); the initial listing does not count (see Apply).
func (s *Store) Summary() Summary {
	sm := Summary{
		Now:       unixTime(s.now),
		Live:      s.live,
		Lingering: s.lingering,
		ByState:   s.sum.byState,
		ByProto:   s.sum.byProto,
		ByTCP:     s.sum.byTCP,
		IPv4:      s.sum.ipv4,
		IPv6:      s.sum.ipv6,
		Assured:   s.sum.assured,
		Unassured: s.sum.unassured,
		Events:    s.events,
		Table:     s.table,
		Degraded:  s.deg,
	}
	sm.CountHistory = s.samples.all()
	span := s.rates.span()
	var newN, destroyN, updateN uint64
	var trans [NumPhases][NumPhases]uint64
	for b := 0; b < s.rates.filled; b++ {
		bk := &s.rates.done[b]
		newN += uint64(bk.new)
		destroyN += uint64(bk.destroy)
		updateN += uint64(bk.update)
		for f := range trans {
			for t := range trans[f] {
				trans[f][t] += uint64(bk.trans[f][t])
			}
		}
	}
	rate := func(n uint64) float64 {
		if span == 0 {
			return 0
		}
		return float64(n) / span
	}
	sm.NewRate, sm.DestroyRate, sm.UpdateRate = rate(newN), rate(destroyN), rate(updateN)
	for f := range sm.Transitions {
		for t := range sm.Transitions[f] {
			sm.Transitions[f][t] = TransitionCount{Total: s.matrix[f][t], PerSecond: rate(trans[f][t])}
		}
	}
	return sm
}

// eventLog is the bounded ring of recent event records.
type eventLog struct {
	buf  []EventRecord
	next int
	n    int
	seq  uint64
}

func (l *eventLog) init(n int) { l.buf = make([]EventRecord, n) }

// add appends r with the next sequence number.
func (l *eventLog) add(r EventRecord) {
	l.seq++
	r.Seq = l.seq
	l.buf[l.next] = r
	l.next = (l.next + 1) % len(l.buf)
	l.n = min(l.n+1, len(l.buf))
}

// at returns the i-th held record, oldest first.
func (l *eventLog) at(i int) *EventRecord {
	return &l.buf[(l.next-l.n+i+len(l.buf))%len(l.buf)]
}

// LastSeq returns the sequence number of the latest event record (0 when
// there is none).
func (s *Store) LastSeq() uint64 { return s.log.seq }

// Events returns up to max event records with Seq > afterSeq whose flow
// passes m, oldest first: the oldest such records, so that a reader can
// page forward by passing the last Seq it got. Resync records always pass.
// max <= 0 means no limit. Records older than Options.EventLog events are
// gone.
func (s *Store) Events(afterSeq uint64, max int, m Matcher) []EventRecord {
	m = effective(m)
	var out []EventRecord
	l := &s.log
	// Records are in Seq order; skip to the first after afterSeq.
	first := 0
	if l.n > 0 {
		oldest := l.at(0).Seq
		if afterSeq >= oldest {
			first = int(afterSeq-oldest) + 1
		}
	}
	for i := first; i < l.n; i++ {
		r := l.at(i)
		if !s.recordPasses(r, m) {
			continue
		}
		out = append(out, *r)
		if max > 0 && len(out) >= max {
			break
		}
	}
	return out
}

// EventsTail returns the newest max (> 0) event records whose flow passes
// m, oldest first: what a live "tail" view shows.
func (s *Store) EventsTail(max int, m Matcher) []EventRecord {
	m = effective(m)
	if max <= 0 {
		return nil
	}
	l := &s.log
	var n int
	start := l.n
	for start > 0 && n < max {
		start--
		if s.recordPasses(l.at(start), m) {
			n++
		}
	}
	out := make([]EventRecord, 0, n)
	for i := start; i < l.n; i++ {
		if r := l.at(i); s.recordPasses(r, m) {
			out = append(out, *r)
		}
	}
	return out
}

// recordPasses applies m (effective already) to a record's flow.
func (s *Store) recordPasses(r *EventRecord, m Matcher) bool {
	if m == nil || r.Type == flow.EventResync {
		return true
	}
	return m.Match(&r.Flow)
}
