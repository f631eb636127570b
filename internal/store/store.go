package store

import (
	"maps"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// Defaults for zero Options fields.
const (
	DefaultLinger       = 5 * time.Second
	DefaultHistoryLen   = 16
	DefaultEventLog     = 10000
	DefaultCountHistory = 10 * time.Minute
	// RateWindow is the span over which NewRate, DestroyRate, UpdateRate
	// and the transition rates are averaged.
	RateWindow = 5 * time.Second
)

// Store is the live flow table. Apply and Tick must not run concurrently
// with anything else; the read methods (Query, Summary, Detail, Snapshot,
// Walk, Groups, Events, …) change nothing and may run concurrently with
// each other (internal/engine holds a read-write lock).
type Store struct {
	opts Options
	tab  *table
	cnt  *countsTable // Options.CountsOnly
	gen  uint64       // changes whenever rows could differ

	now    int64 // latest Tick, Unix ns (0 before the first)
	synced bool  // the source's initial listing is complete
	epoch  bool  // resync epoch parity (flagEpoch)
	resync bool  // a resync listing is in progress

	// silent counts the silent flows (auxSilent), mirrored in silentLeft
	// for the source's poll loop; pollParity is the parity a flow listed
	// by the poll in progress gets (see pollSilent).
	silent     int
	silentLeft atomic.Int64
	pollParity bool

	live, lingering int
	sum             counts
	rates           rateRing
	table           flow.TableStats
	samples         sampleRing
	matrix          [NumPhases][NumPhases]uint64
	events          [flow.NumEventTypes]uint64

	linger []lingerItem // destroyed flows, in destroy order
	lhead  int

	log     eventLog
	hist    historyRing
	changes changeLog
	deg     Degradation
	trimmed int64 // when the table was last trimmed
	cpu     cpuSlots
	bg      cpuSlots    // the share of cpu that background reads may hold (see newBackgroundSlots)
	idle    chan func() // hands a background read to a waiting worker (background.go)
	chunk   uint32      // records a reader reads under one hold of the lock (scanChunk)

	prefetched uint32 // what prefetch loaded (kept so that its loads are not dropped)

	filters filterCache // views' filter bitmaps, shared by filter text (view.go)
}

// cpuSlots bounds how many goroutines work for views at once (one per
// core): a view takes a slot before the store's read lock, and its scan
// helpers take free ones, so that readers holding the lock are running,
// not waiting for a core while a writer waits for them.
type cpuSlots chan struct{}

func newCPUSlots(cores int) cpuSlots { return make(cpuSlots, cores) }

// newBackgroundSlots bounds the views' background reads (Query.Background
// and Changed: periodic refreshes nobody waits for) to one core less than
// there are, at least one: however many viewers refresh at once, a core is
// left to the event pump, scrapes and key presses. A background read takes
// its slot here before its slot of cpu (Store.inBackground).
func newBackgroundSlots(cores int) cpuSlots { return make(cpuSlots, max(cores-1, 1)) }

func (c cpuSlots) acquire() { c <- struct{}{} }
func (c cpuSlots) release() { <-c }

// tryAcquire takes up to n free slots and returns how many it took.
func (c cpuSlots) tryAcquire(n int) int {
	for k := range n {
		select {
		case c <- struct{}{}:
		default:
			return k
		}
	}
	return max(n, 0)
}

func (c cpuSlots) releaseN(n int) {
	for range n {
		<-c
	}
}

// sec is a Unix ns time's second.
func sec(n int64) int64 { return n / int64(time.Second) }

// counts are the incrementally maintained per-flow counts of live flows.
type counts struct {
	byState   [3]int
	byProto   [256]int
	byTCP     [flow.NumTCPStates]int
	ipv4      int
	ipv6      int
	assured   int
	unassured int
}

// lingerItem schedules the removal of a destroyed flow.
type lingerItem struct {
	idx   uint32
	fs    int64 // the flow's first-seen time, to detect reuse of idx
	until int64 // remove at or after this store time
}

// New returns an empty store.
func New(opts Options) *Store {
	if opts.Linger == 0 {
		opts.Linger = DefaultLinger
	}
	if opts.HistoryLen <= 0 {
		opts.HistoryLen = DefaultHistoryLen
	}
	opts.HistoryLen = min(opts.HistoryLen, 255)
	if opts.EventLog <= 0 {
		opts.EventLog = DefaultEventLog
	}
	if opts.CountHistory <= 0 {
		opts.CountHistory = DefaultCountHistory
	}
	if opts.Cores <= 0 {
		opts.Cores = runtime.GOMAXPROCS(0)
	}
	s := &Store{opts: opts, cpu: newCPUSlots(opts.Cores), bg: newBackgroundSlots(opts.Cores), idle: make(chan func()), chunk: scanChunk}
	if opts.CountsOnly {
		s.cnt = newCountsTable()
	} else {
		s.tab = newTable()
		s.hist.init(historyRingMin)
		s.changes.init(changeLogMin)
	}
	s.log.init(opts.EventLog)
	s.samples.init(int(max(opts.CountHistory/time.Second, 1)))
	return s
}

// Close releases the memory the store maps outside the Go heap. The
// store must not be used afterwards. A store that is dropped without
// Close keeps that memory until the process ends.
func (s *Store) Close() {
	if s.tab != nil {
		s.tab.release()
		s.hist.drop()
		s.changes.release()
	}
	if s.cnt != nil {
		s.cnt.release()
	}
}

// Options returns the options in effect (defaults filled in).
func (s *Store) Options() Options { return s.opts }

// Len returns the number of live flows (lingering destroyed flows are not
// counted).
func (s *Store) Len() int { return s.live }

// Version returns a number that changes whenever a Query, Detail,
// Snapshot or Groups answer could have changed (it does not track
// Summary, whose rates move on every Tick).
func (s *Store) Version() uint64 { return s.gen }

// Synced reports whether the source's initial listing is complete.
func (s *Store) Synced() bool { return s.synced }

// Apply applies a batch of source events in order.
//
// Semantics (see flow.Event): EventNew for a known key is an update;
// EventUpdate for an unknown key adds the flow; EventNew for a destroyed
// (lingering) key starts a new flow; EventDestroy for an unknown key is
// logged but keeps nothing. EventCounters refreshes only the counters,
// timeout and INVALID figures of a live flow and is ignored for an unknown
// or destroyed key (a poll that raced the flow's end must not bring it
// back). A destroy that lacks the TCP state, helper or master (the kernel's
// DESTROY events carry none) keeps the last known ones.
//
// Until the first EventSynced (the end of the source's initial listing)
// events are applied but not counted: the flows that were already there
// appear in neither the rates, the transition matrix nor the event log
// (Summary.Events still counts them), though each one's history starts with
// PhaseNone -> phase. A source that never sends EventSynced therefore shows
// no rates; every Source sends one.
//
// EventResync starts a new listing after lost events: at the next
// EventSynced every live flow neither listed nor touched by an event since
// the resync is destroyed (and recorded as such); listed flows that changed
// are recorded as updates, listed flows that were unknown as new.
func (s *Store) Apply(evs []flow.Event) {
	for i := range evs {
		if s.tab != nil && i%prefetchRun == 0 && len(evs)-i >= prefetchRun {
			s.prefetch(evs[i : i+prefetchRun])
		}
		s.apply(&evs[i])
	}
	if s.opts.MemoryLimit > 0 {
		s.checkMemory()
	}
}

// prefetchRun is how many events' index slots prefetch loads at once.
const prefetchRun = 16

// prefetch loads the index slots where the keys of evs' flows are looked
// up, one load after the other, then the records those slots hold: on a
// big table each is a cache miss, and issued together they overlap, where
// one lookup after another would wait for each in turn (this was most of
// the cost of an initial listing).
func (s *Store) prefetch(evs []flow.Event) {
	t := s.tab
	var at [prefetchRun]uint64
	for j := range evs[:prefetchRun] {
		fl := &evs[j].Flow
		at[j] = t.hashTuple(fl.Proto, fl.Zone, &fl.Orig) & t.mask
	}
	var occupant [prefetchRun]uint32
	for j, p := range at {
		occupant[j] = t.slots[p]
	}
	// The records in those slots, which the lookups compare keys with.
	var sink uint32
	for _, v := range occupant {
		if v != 0 {
			sink += uint32(t.at(v - 1).proto)
		}
	}
	s.prefetched += sink
}

// apply applies one event.
func (s *Store) apply(ev *flow.Event) {
	if int(ev.Type) < len(s.events) {
		s.events[ev.Type]++
	}
	at := unixNano(ev.Time)
	if at == 0 {
		at = s.now
	}
	switch ev.Type {
	case flow.EventNew, flow.EventUpdate:
		if s.cnt != nil {
			s.countsUpsert(ev.Type, at, &ev.Flow, s.origin())
		} else {
			s.upsert(ev.Type, at, &ev.Flow, s.origin())
		}
	case flow.EventCounters:
		if s.cnt == nil {
			s.refreshCounters(at, &ev.Flow)
		}
	case flow.EventPolled:
		if s.cnt != nil {
			s.countsPolled(at, &ev.Flow)
		} else {
			s.polled(at, &ev.Flow)
		}
	case flow.EventPollDone:
		if s.cnt != nil {
			s.countsPollDone(at)
		} else {
			s.pollDone(at)
		}
		s.pollParity = !s.pollParity
	case flow.EventDestroy:
		if s.cnt != nil {
			s.countsDestroy(at, &ev.Flow)
		} else {
			s.destroyKey(at, &ev.Flow)
		}
	case flow.EventResync:
		s.epoch = !s.epoch
		s.resync = true
		s.log.add(EventRecord{Time: unixTime(at), Type: flow.EventResync, Lost: ev.Lost})
	case flow.EventSynced:
		if s.resync {
			if s.cnt != nil {
				s.countsReconcile(at)
			} else {
				s.reconcile(at)
			}
			s.resync = false
		}
		s.synced = true
	case flow.EventStats:
		if ev.Stats != nil {
			st := *ev.Stats
			st.InvalidReasons = maps.Clone(st.InvalidReasons)
			s.table = st
			if !s.synced && s.tab != nil && st.Count > 0 {
				// The count before the initial listing: room for it
				// at once rather than by doubling.
				s.reserve(int(min(st.Count, maxReserve)))
			}
		}
	}
}

// maxReserve bounds the records reserved for a source's count (a bigger
// table still grows as it is listed).
const maxReserve = 1 << 26

// reserve makes room for n flows: the index and the records, the change
// log and the history ring at the sizes n flows make them grow to.
func (s *Store) reserve(n int) {
	s.tab.reserve(n)
	for len(s.changes.buf) < changeLogLen && len(s.changes.buf) < 2*n {
		s.changes.grow()
	}
	if len(s.hist.buf) > 0 && s.hist.n == 0 {
		size := len(s.hist.buf)
		for size < historyRingLen && size < 2*n {
			size *= 2
		}
		if size > len(s.hist.buf) {
			s.hist.init(size)
		}
	}
}

// setEpoch marks r as listed or touched in the current resync epoch.
func (s *Store) setEpoch(r *rec) {
	if s.epoch {
		r.flags |= flagEpoch
	} else {
		r.flags &^= flagEpoch
	}
}

// origin says where a new or update event comes from, for the silent
// mark: the initial listing (new flows are silent), a resync listing, or
// the event stream (the flow reported an event: no longer silent).
type origin uint8

const (
	fromInitial origin = iota
	fromRelist
	fromStream
	fromPoll // a silent flow's change found by a poll (EventPolled)
)

func (s *Store) origin() origin {
	switch {
	case !s.synced:
		return fromInitial
	case s.resync:
		return fromRelist
	}
	return fromStream
}

// SilentLeft returns how many flows are silent: listed by the source's
// initial listing and heard of by no event since, so that only polls can
// tell that they changed or vanished (see flow.EventPolled). It may be
// called without the store's lock.
func (s *Store) SilentLeft() int { return int(s.silentLeft.Load()) }

// addSilent counts n more silent flows.
func (s *Store) addSilent(n int) {
	s.silent += n
	s.silentLeft.Store(int64(s.silent))
}

// upsert handles new and update events.
func (s *Store) upsert(typ flow.EventType, at int64, fl *flow.Flow, from origin) {
	k := fl.Key()
	i, ok, slot := s.tab.find(&k)
	counted := s.synced // the initial listing does not count
	if ok && s.tab.at(i).flags&flagDestroyed != 0 {
		// The key was destroyed and is back: a new flow.
		s.lingering--
		s.touch(i)
		s.tab.remove(i)
		_, _, slot = s.tab.find(&k)
		ok = false
	}
	s.gen++
	if !ok {
		i = s.tab.insertAt(&k, slot)
		s.touch(i)
		r := s.tab.at(i)
		r.flags = flagUsed
		r.firstSeen = at
		s.tab.set(i, fl)
		s.setEpoch(r)
		if from == fromInitial {
			r.aux |= auxSilent
			if s.pollParity {
				r.aux |= auxSilentSeen
			}
			s.addSilent(1)
		}
		if r.flags&flagHasCounters != 0 {
			r.flags |= flagCountersAt
		}
		to := r.phase()
		s.hist.add(i, at, at, PhaseNone, to, s.tab.hw)
		s.live++
		s.sum.add(r, 1)
		if counted {
			s.rates.cur.new++
			s.transition(PhaseNone, to)
			s.log.add(EventRecord{Time: unixTime(at), Type: flow.EventNew, Flow: *fl, From: PhaseNone, To: to})
		}
		return
	}
	s.touch(i)
	r := s.tab.at(i)
	if from == fromStream && r.aux&auxSilent != 0 {
		r.aux &^= auxSilent | auxSilentSeen
		s.addSilent(-1)
	}
	before := r.phase()
	old := s.tab.counters(i, r)
	oldAt, had := s.tab.countersAt(i, r)
	s.sum.add(r, -1)
	s.tab.set(i, fl)
	s.sum.add(r, 1)
	r.setLastSeen(at)
	s.setEpoch(r)
	if fl.HasCounters {
		s.updateRates(i, had, old, oldAt, at)
	}
	to := r.phase()
	if before != to {
		s.hist.add(i, r.firstSeen, at, before, to, s.tab.hw)
		if counted {
			s.transition(before, to)
		}
	}
	// A listed flow that did not change is not an update; counters are
	// polls, not changes.
	if typ == flow.EventUpdate || (typ == flow.EventNew && before != to) {
		if counted {
			s.rates.cur.update++
			s.log.add(EventRecord{Time: unixTime(at), Type: flow.EventUpdate, Flow: *fl, From: before, To: to})
		}
	}
}

// rateTau is the time constant of the per-flow rate smoothing: a counter
// sample at least this far from the previous one sets the rate outright,
// a closer one moves it part of the way.
const rateTau = int64(time.Second)

// updateRates derives per-direction rates from a counter delta; record
// i's counters are already the new ones.
func (s *Store) updateRates(i uint32, had bool, old flow.Counters, oldAtMs uint32, at int64) {
	r := s.tab.at(i)
	r.flags |= flagCountersAt
	a := s.tab.acct.at(i)
	if !had {
		a.countersAt = msAfter(r.firstSeen, at)
		return
	}
	oldAt := r.firstSeen + int64(oldAtMs)*int64(time.Millisecond)
	dt := at - oldAt
	if dt < int64(time.Millisecond) {
		return
	}
	cur := s.tab.counters(i, r)
	delta := func(n, o uint64) float64 {
		if n < o {
			return 0 // reset or a different flow: no meaningful rate
		}
		return float64(n - o)
	}
	sec := float64(dt) / float64(time.Second)
	inst := [4]float64{
		delta(cur.OrigPackets, old.OrigPackets) / sec, delta(cur.OrigBytes, old.OrigBytes) / sec,
		delta(cur.ReplyPackets, old.ReplyPackets) / sec, delta(cur.ReplyBytes, old.ReplyBytes) / sec,
	}
	alpha := 1.0
	if dt < rateTau {
		alpha = float64(dt) / float64(rateTau)
	}
	seed := uint64(at) ^ uint64(i)<<32 // smoothRate's rounding: per flow and sample
	v := s.tab.ratesOf(i, r)
	for j := range v {
		v[j] = smoothRate(v[j], inst[j], alpha, seed+uint64(j))
	}
	s.tab.setRates(i, r, v)
	a.countersAt = msAfter(r.firstSeen, at)
}

// destroyKey handles a destroy event.
func (s *Store) destroyKey(at int64, fl *flow.Flow) {
	k := fl.Key()
	i, ok := s.tab.lookup(&k)
	if !ok {
		// Unknown flow (created and destroyed while we were not looking):
		// log it, keep nothing.
		if s.synced {
			s.rates.cur.destroy++
			from := flowPhase(fl)
			s.transition(from, PhaseDestroyed)
			s.log.add(EventRecord{Time: unixTime(at), Type: flow.EventDestroy, Flow: *fl, From: from, To: PhaseDestroyed})
		}
		return
	}
	r := s.tab.at(i)
	if r.flags&flagDestroyed != 0 {
		return // already gone
	}
	old := s.tab.counters(i, r)
	oldAt, had := s.tab.countersAt(i, r)
	s.sum.add(r, -1)
	from := r.phase()
	var last flow.Flow
	s.tab.flow(i, &last)
	merged := *fl
	if merged.Proto == flow.ProtoTCP && merged.TCPState == flow.TCPNone {
		merged.TCPState = last.TCPState
	}
	if merged.Helper == "" {
		merged.Helper = last.Helper
	}
	if merged.Master == nil {
		merged.Master = last.Master
	}
	if merged.Invalid == 0 {
		merged.Invalid, merged.InvalidReason = last.Invalid, last.InvalidReason
	}
	s.tab.set(i, &merged)
	if merged.HasCounters {
		s.updateRates(i, had, old, oldAt, at)
	}
	s.destroy(i, at, from, &merged)
}

// refreshCounters applies an EventCounters: new counters, timeout and
// INVALID figures for a live flow, nothing else.
func (s *Store) refreshCounters(at int64, fl *flow.Flow) {
	k := fl.Key()
	i, ok := s.tab.lookup(&k)
	if !ok || s.tab.at(i).flags&flagDestroyed != 0 {
		return
	}
	r := s.tab.at(i)
	var cur flow.Flow
	s.tab.flow(i, &cur)
	old := s.tab.counters(i, r)
	oldAt, had := s.tab.countersAt(i, r)
	cur.Timeout = fl.Timeout
	cur.Invalid, cur.InvalidReason = fl.Invalid, fl.InvalidReason
	if fl.HasCounters {
		cur.HasCounters, cur.Counters = true, fl.Counters
	}
	s.touch(i)
	s.sum.add(r, -1)
	s.tab.set(i, &cur)
	s.sum.add(r, 1)
	r.setLastSeen(at)
	if fl.HasCounters {
		s.updateRates(i, had, old, oldAt, at)
	}
}

// destroy marks record i destroyed at time at, and schedules its removal.
func (s *Store) destroy(i uint32, at int64, from Phase, fl *flow.Flow) {
	s.touch(i)
	r := s.tab.at(i)
	r.flags |= flagDestroyed
	if r.aux&auxSilent != 0 {
		r.aux &^= auxSilent | auxSilentSeen
		s.addSilent(-1)
	}
	s.tab.clearRates(i, r)
	r.setLastSeen(at)
	s.hist.add(i, r.firstSeen, at, from, PhaseDestroyed, s.tab.hw)
	s.live--
	if s.synced {
		s.rates.cur.destroy++
		s.transition(from, PhaseDestroyed)
		s.log.add(EventRecord{Time: unixTime(at), Type: flow.EventDestroy, Flow: *fl, From: from, To: PhaseDestroyed})
	}
	if s.opts.Linger < 0 || s.deg.NoLinger {
		s.tab.remove(i)
		return
	}
	s.lingering++
	base := s.now
	if base == 0 {
		base = at
	}
	s.linger = append(s.linger, lingerItem{idx: i, fs: r.firstSeen, until: base + int64(s.opts.Linger)})
}

// reconcile ends a resync listing: live flows not seen since the resync
// began are gone.
func (s *Store) reconcile(at int64) {
	s.sweep(at, func(r *rec) bool { return (r.flags&flagEpoch != 0) != s.epoch })
}

// sweep destroys the live flows for which gone is true: flows a listing
// found gone.
func (s *Store) sweep(at int64, gone func(r *rec) bool) {
	var fl flow.Flow
	for i := uint32(0); i < s.tab.hw; i++ {
		r := s.tab.at(i)
		if r.flags&flagUsed == 0 || r.flags&flagDestroyed != 0 || !gone(r) {
			continue
		}
		s.sum.add(r, -1)
		s.tab.flow(i, &fl)
		s.destroy(i, at, r.phase(), &fl)
	}
}

// polled applies an EventPolled. A silent flow is marked listed by the
// poll in progress and, when its TCP state, status or mark changed, is
// updated as by an event; otherwise a flow whose packet counts moved gets
// its counters refreshed as by EventCounters. Unknown and destroyed keys
// are ignored: a poll that raced a flow's end must not bring it back.
func (s *Store) polled(at int64, fl *flow.Flow) {
	k := fl.Key()
	i, ok := s.tab.lookup(&k)
	if !ok {
		return
	}
	r := s.tab.at(i)
	if r.flags&flagDestroyed != 0 {
		return
	}
	if r.aux&auxSilent != 0 {
		r.aux = r.aux&^auxSilentSeen | s.listedParity()
		if r.tcpState != fl.TCPState || r.status != uint32(fl.Status) || s.tab.marks.get(i) != fl.Mark {
			s.upsert(flow.EventUpdate, at, fl, fromPoll)
			return
		}
	}
	if !fl.HasCounters {
		return
	}
	if c := s.tab.counters(i, r); r.flags&flagHasCounters == 0 || c.OrigPackets != fl.Counters.OrigPackets || c.ReplyPackets != fl.Counters.ReplyPackets {
		s.refreshCounters(at, fl)
	}
}

// listedParity is the auxSilentSeen bit of a silent flow listed by the
// poll in progress; a silent flow whose bit is the other value was not
// listed (yet). The parity flips after each poll (EventPollDone).
func (s *Store) listedParity() uint8 {
	if s.pollParity {
		return 0
	}
	return auxSilentSeen
}

// pollDone ends a poll's listing (EventPollDone): silent flows it did not
// list are gone.
func (s *Store) pollDone(at int64) {
	if s.silent == 0 {
		return
	}
	listed := s.listedParity()
	s.sweep(at, func(r *rec) bool { return r.aux&auxSilent != 0 && r.aux&auxSilentSeen != listed })
}

// touch records that record i changed (or is about to be removed).
func (s *Store) touch(i uint32) {
	s.gen++
	s.changes.add(i, s.tab.hw)
}

// transition counts a phase change.
func (s *Store) transition(from, to Phase) {
	if from < NumPhases && to < NumPhases {
		s.matrix[from][to]++
		s.rates.cur.trans[from][to]++
	}
}

// Tick advances the store clock to now: destroyed flows that lingered
// long enough are removed, the per-second rate buckets roll over and the
// table count is sampled once per second.
func (s *Store) Tick(now time.Time) {
	n := unixNano(now)
	if n == 0 {
		return
	}
	if s.now != 0 && n < s.now {
		n = s.now // the clock does not go back
	}
	s.now = n
	s.expire(n)
	if s.tab != nil && s.synced && sec(n) != sec(s.trimmed) {
		s.trimmed = n
		s.tab.trim()
	}
	if s.opts.MemoryLimit > 0 {
		s.checkMemory()
	}
	sec := n / int64(time.Second)
	if s.rates.sec == 0 {
		s.rates.sec = sec
		s.samples.add(CountSample{Time: unixTime(sec * int64(time.Second)), Count: s.live})
		return
	}
	if sec > s.rates.sec {
		steps := sec - s.rates.sec
		s.rates.roll(steps)
		for j := max(steps-int64(s.samples.cap())+1, 1); j <= steps; j++ {
			s.samples.add(CountSample{Time: unixTime((s.rates.sec + j) * int64(time.Second)), Count: s.live})
		}
		s.rates.sec = sec
	}
}

// expire removes lingering flows whose time is up.
func (s *Store) expire(now int64) {
	for s.lhead < len(s.linger) && s.linger[s.lhead].until <= now {
		it := s.linger[s.lhead]
		s.lhead++
		s.unlingerItem(it)
	}
	// Compact the queue once its consumed head dominates.
	if s.lhead > 1024 && s.lhead*2 > len(s.linger) {
		s.linger = append(s.linger[:0], s.linger[s.lhead:]...)
		s.lhead = 0
	}
}

// unlingerItem removes the flow of a linger queue item, if it is still
// that destroyed flow.
func (s *Store) unlingerItem(it lingerItem) {
	if it.idx >= s.tab.hw {
		return
	}
	r := s.tab.at(it.idx)
	if r.flags&flagUsed == 0 || r.flags&flagDestroyed == 0 || r.firstSeen != it.fs {
		return // reused or revived since
	}
	s.touch(it.idx)
	s.tab.remove(it.idx)
	s.lingering--
}

// add adds (sign 1) or removes (sign -1) r's contribution to the counts.
func (c *counts) add(r *rec, sign int) {
	c.addParts(r.state(), r.proto, r.tcpState, r.family, flow.Status(r.status)&flow.StatusAssured != 0, sign)
}

// addParts is add for a flow given by its counted parts.
func (c *counts) addParts(st flow.State, proto uint8, tcp flow.TCPState, fam flow.Family, assured bool, sign int) {
	c.byState[st] += sign
	c.byProto[proto] += sign
	if proto == flow.ProtoTCP && tcp < flow.NumTCPStates {
		c.byTCP[tcp] += sign
	}
	switch fam {
	case flow.FamilyIPv4:
		c.ipv4 += sign
	case flow.FamilyIPv6:
		c.ipv6 += sign
	}
	if assured {
		c.assured += sign
	} else {
		c.unassured += sign
	}
}
