package compare

import (
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// Side names one of the two compared sources.
type Side uint8

// The two sides.
const (
	Kernel Side = iota // the kernel's conntrack table
	Wire               // conntop's tracker on the captured packets
)

// String returns "kernel" or "wire".
func (s Side) String() string {
	if s == Kernel {
		return "kernel"
	}
	return "wire"
}

// seen returns the flow.Seen bit of side s.
func (s Side) seen() flow.Seen {
	if s == Kernel {
		return flow.SeenKernel
	}
	return flow.SeenWire
}

// DefaultGrace is how long a difference must last before it is published.
const DefaultGrace = 2 * time.Second

// entry is one merged flow: each side's view and the published mark.
type entry struct {
	fl  [2]flow.Flow // per side, valid when has says so
	has flow.Seen
	// pub is the published disagreement (Seen is filled in from has).
	pub flow.Compare
	// pendKind is the raw difference waiting for the grace period since
	// pendSince (zero: nothing pending).
	pendKind  flow.Disagree
	pendSince time.Time
	// epoch is each side's resync epoch when it last listed or touched
	// the flow.
	epoch [2]uint32
}

// shown returns the side whose flow is shown: the kernel's when it has
// one, else the wire's; ok is false when neither has it.
func (e *entry) shown() (Side, bool) {
	switch {
	case e.has&flow.SeenKernel != 0:
		return Kernel, true
	case e.has&flow.SeenWire != 0:
		return Wire, true
	}
	return Kernel, false
}

// mark returns the mark the merged flow carries.
func (e *entry) mark() flow.Compare {
	c := e.pub
	c.Seen = e.has
	return c
}

// merged returns the flow to emit: the shown side's, with the mark.
func (e *entry) merged() flow.Flow {
	s, _ := e.shown()
	f := e.fl[s]
	f.Compare = e.mark()
	return f
}

// raw returns the difference between the sides of entry e (key k) right
// now. A flow only the wire has that is the post-NAT leg of a kernel flow
// (its original tuple is the inverse of that flow's reply tuple: the
// capture saw the translated packets on another interface) agrees.
func (m *Merger) raw(k flow.Key, e *entry) flow.Disagree {
	switch e.has {
	case flow.SeenKernel:
		return flow.DisagreeKernelOnly
	case flow.SeenWire:
		if _, ok := m.legs[k]; ok {
			return flow.DisagreeNone
		}
		return flow.DisagreeWireOnly
	case flow.SeenKernel | flow.SeenWire:
		k, w := &e.fl[Kernel], &e.fl[Wire]
		if k.State() != w.State() || (k.Proto == flow.ProtoTCP && k.TCPState != w.TCPState) {
			return flow.DisagreeState
		}
	}
	return flow.DisagreeNone
}

// Merger merges the kernel's and the wire's event streams into one, marking
// each flow with flow.Compare. It is pure: time is passed in, it starts no
// goroutines and is not safe for concurrent use. Its methods append the
// merged events to dst and return it.
type Merger struct {
	grace   time.Duration
	flows   map[flow.Key]*entry
	pending map[flow.Key]*entry // entries with a difference in its grace period
	// legs maps the post-NAT leg of each NATed kernel flow (the inverse of
	// its reply tuple) to the flow's key.
	legs map[flow.Key]flow.Key

	synced     [2]bool // each side's first listing is complete
	downSynced bool    // the merged listing ended (EventSynced sent)
	resync     [2]bool // a side is re-listing after lost events
	epoch      [2]uint32
	lost       uint64 // events lost by the sides since the last merged resync

	stats [2]*flow.TableStats
}

// NewMerger returns an empty Merger publishing differences that last grace
// (DefaultGrace when grace <= 0).
func NewMerger(grace time.Duration) *Merger {
	if grace <= 0 {
		grace = DefaultGrace
	}
	return &Merger{grace: grace, flows: make(map[flow.Key]*entry), pending: make(map[flow.Key]*entry),
		legs: make(map[flow.Key]flow.Key)}
}

// Len returns the number of merged flows.
func (m *Merger) Len() int { return len(m.flows) }

// Pending returns the number of flows whose difference is within its grace
// period.
func (m *Merger) Pending() int { return len(m.pending) }

// Apply applies one event of side s, at time now, and appends the merged
// events it causes to dst.
func (m *Merger) Apply(dst []flow.Event, s Side, ev *flow.Event, now time.Time) []flow.Event {
	if s > Wire {
		return dst
	}
	switch ev.Type {
	case flow.EventNew, flow.EventUpdate, flow.EventCounters:
		return m.upsert(dst, s, ev, now)
	case flow.EventDestroy:
		return m.remove(dst, s, &ev.Flow, now)
	case flow.EventResync:
		m.resync[s] = true
		m.epoch[s]++
		m.lost += ev.Lost
		return dst
	case flow.EventSynced:
		return m.synced1(dst, s, now)
	case flow.EventStats:
		if ev.Stats == nil {
			return dst
		}
		st := *ev.Stats
		m.stats[s] = &st
		return m.emitStats(dst, now)
	}
	return dst
}

// Tick re-evaluates the flows whose difference is in its grace period, at
// time now: those whose difference lasted long enough are published (an
// EventUpdate each).
func (m *Merger) Tick(dst []flow.Event, now time.Time) []flow.Event {
	for k, e := range m.pending {
		before := e.mark()
		m.evaluate(k, e, now)
		if e.mark() != before {
			dst = append(dst, flow.Event{Type: flow.EventUpdate, Time: now, Flow: e.merged()})
		}
	}
	return dst
}

// upsert applies a new, update or counters event of side s.
func (m *Merger) upsert(dst []flow.Event, s Side, ev *flow.Event, now time.Time) []flow.Event {
	fl := ev.Flow
	k := fl.Key()
	e := m.flows[k]
	created := e == nil
	if created {
		e = &entry{}
		m.flows[k] = e
	}
	bit := s.seen()
	had := e.has&bit != 0
	if had && !fl.HasCounters && e.fl[s].HasCounters {
		// Kernel NEW/UPDATE events carry no counters: keep the last known.
		fl.HasCounters, fl.Counters = true, e.fl[s].Counters
	}
	fl.Compare = flow.Compare{}
	prevShown, _ := e.shown()
	prevMark := e.mark()
	oldLeg, hadLeg := natLeg(e, s)
	e.fl[s] = fl
	e.has |= bit
	e.epoch[s] = m.epoch[s]
	m.evaluate(k, e, now)
	dst = m.emitUpsert(dst, s, ev, e, created, had, prevShown, prevMark, now)
	if s == Kernel {
		dst = m.relinkLeg(dst, k, e, oldLeg, hadLeg, now)
	}
	return dst
}

// emitUpsert appends the merged event for an upsert of side s into e, if
// the merged flow changed.
func (m *Merger) emitUpsert(dst []flow.Event, s Side, ev *flow.Event, e *entry, created, had bool,
	prevShown Side, prevMark flow.Compare, now time.Time) []flow.Event {
	shown, _ := e.shown()
	typ := flow.EventUpdate
	switch {
	case created:
		typ = flow.EventNew
	case shown == s && ev.Type == flow.EventCounters && e.mark() == prevMark && prevShown == s:
		typ = flow.EventCounters
	case shown == s && ev.Type == flow.EventNew && had:
		typ = flow.EventNew // a re-listing: the store tells whether anything changed
	case shown == s:
		// the shown flow changed
	case e.mark() == prevMark:
		return dst // the hidden side changed, the mark did not
	}
	return append(dst, flow.Event{Type: typ, Time: eventTime(ev.Time, now), Flow: e.merged()})
}

// remove applies a destroy of side s.
func (m *Merger) remove(dst []flow.Event, s Side, final *flow.Flow, now time.Time) []flow.Event {
	k := final.Key()
	e := m.flows[k]
	bit := s.seen()
	if e == nil || e.has&bit == 0 {
		return dst // never seen (created and destroyed while events were lost)
	}
	fl := *final
	if !fl.HasCounters && e.fl[s].HasCounters {
		fl.HasCounters, fl.Counters = true, e.fl[s].Counters
	}
	mark := e.mark()
	leg, hadLeg := natLeg(e, s)
	e.fl[s] = fl
	e.has &^= bit
	if e.has == 0 {
		delete(m.flows, k)
		delete(m.pending, k)
		fl.Compare = mark
		dst = append(dst, flow.Event{Type: flow.EventDestroy, Time: now, Flow: fl})
	} else {
		m.evaluate(k, e, now)
		dst = append(dst, flow.Event{Type: flow.EventUpdate, Time: now, Flow: e.merged()})
	}
	if hadLeg {
		dst = m.relinkLeg(dst, k, e, leg, true, now)
	}
	return dst
}

// evaluate updates e's published mark at time now: agreement is published
// at once, a difference once it has lasted the grace period.
func (m *Merger) evaluate(k flow.Key, e *entry, now time.Time) {
	raw := m.raw(k, e)
	switch {
	case raw == e.pub.Disagree:
		m.settle(k, e)
		if raw == flow.DisagreeState {
			w := &e.fl[Wire]
			e.pub.WireState, e.pub.WireTCPState = w.State(), w.TCPState
		}
	case raw == flow.DisagreeNone:
		e.pub = flow.Compare{}
		m.settle(k, e)
	default:
		if e.pendSince.IsZero() || e.pendKind != raw {
			e.pendKind, e.pendSince = raw, now
			m.pending[k] = e
		}
		if now.Sub(e.pendSince) >= m.grace {
			e.pub = flow.Compare{Disagree: raw}
			if raw == flow.DisagreeState {
				w := &e.fl[Wire]
				e.pub.WireState, e.pub.WireTCPState = w.State(), w.TCPState
			}
			m.settle(k, e)
		}
	}
}

// settle forgets e's pending difference.
func (m *Merger) settle(k flow.Key, e *entry) {
	if !e.pendSince.IsZero() {
		e.pendKind, e.pendSince = flow.DisagreeNone, time.Time{}
		delete(m.pending, k)
	}
}

// synced1 handles the end of a side's listing.
func (m *Merger) synced1(dst []flow.Event, s Side, now time.Time) []flow.Event {
	if m.resync[s] {
		// Entries the side did not list again are gone from it.
		bit := s.seen()
		for _, e := range m.flows {
			if e.has&bit != 0 && e.epoch[s] != m.epoch[s] {
				final := e.fl[s]
				dst = m.remove(dst, s, &final, now)
			}
		}
		m.resync[s] = false
		if m.downSynced {
			dst = append(dst, flow.Event{Type: flow.EventResync, Time: now, Lost: m.lost})
			m.lost = 0
			for _, e := range m.flows {
				dst = append(dst, flow.Event{Type: flow.EventNew, Time: now, Flow: e.merged()})
			}
			dst = append(dst, flow.Event{Type: flow.EventSynced, Time: now})
		}
	}
	m.synced[s] = true
	if !m.downSynced && m.synced[Kernel] && m.synced[Wire] {
		m.downSynced = true
		dst = append(dst, flow.Event{Type: flow.EventSynced, Time: now})
	}
	return dst
}

// emitStats appends the merged table statistics: the kernel's, with the
// capture's ring drops.
func (m *Merger) emitStats(dst []flow.Event, now time.Time) []flow.Event {
	k := m.stats[Kernel]
	if k == nil {
		return dst
	}
	st := *k
	if w := m.stats[Wire]; w != nil {
		st.RingDrops = w.RingDrops
	}
	if st.Time.IsZero() {
		st.Time = now
	}
	return append(dst, flow.Event{Type: flow.EventStats, Time: now, Stats: &st})
}

// eventTime is the side's event time, or now when it has none.
func eventTime(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}

// natLeg returns the key of the post-NAT leg of side s's flow in e: ok
// only when s is the kernel, the kernel has the flow and it is NATed.
func natLeg(e *entry, s Side) (flow.Key, bool) {
	if s != Kernel || e.has&flow.SeenKernel == 0 || !e.fl[Kernel].NAT() {
		return flow.Key{}, false
	}
	f := &e.fl[Kernel]
	return flow.Key{Proto: f.Proto, Zone: f.Zone, Orig: f.Reply.Reverse(f.Proto)}, true
}

// relinkLeg updates the NAT-leg index after the kernel's flow in e (key k)
// changed or left, given its previous leg, and re-evaluates the wire flows
// that became, or stopped being, such a leg.
func (m *Merger) relinkLeg(dst []flow.Event, k flow.Key, e *entry, old flow.Key, hadOld bool, now time.Time) []flow.Event {
	cur, hasCur := natLeg(e, Kernel)
	if hadOld == hasCur && old == cur {
		return dst
	}
	if hadOld && m.legs[old] == k {
		delete(m.legs, old)
		dst = m.reevaluate(dst, old, now)
	}
	if hasCur {
		m.legs[cur] = k
		dst = m.reevaluate(dst, cur, now)
	}
	return dst
}

// reevaluate re-evaluates the flow with key k, if any, and appends an
// update when its mark changed.
func (m *Merger) reevaluate(dst []flow.Event, k flow.Key, now time.Time) []flow.Event {
	e := m.flows[k]
	if e == nil {
		return dst
	}
	before := e.mark()
	m.evaluate(k, e, now)
	if e.mark() != before {
		dst = append(dst, flow.Event{Type: flow.EventUpdate, Time: now, Flow: e.merged()})
	}
	return dst
}
