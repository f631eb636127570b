//go:build linux

package conntrack

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/netns"
	"github.com/conntop/conntop/source"
	"golang.org/x/sys/unix"
)

// Defaults of Options.
const (
	DefaultReadBuffer       = 128 << 20
	DefaultCountersInterval = 2 * time.Second
	DefaultStatsInterval    = time.Second
)

// recvTimeout bounds each blocking receive so that Run notices cancellation.
const recvTimeout = 200 * time.Millisecond

// queryTimeout bounds each receive of a dump or query reply.
const queryTimeout = 10 * time.Second

// Options configure a Source. The zero value is usable.
type Options struct {
	// NetNS names the network namespace to watch (NAME, PATH or pid:PID; ""
	// = the current one). Only the netlink sockets move there.
	NetNS string
	// ReadBuffer is the event socket's receive buffer in bytes (0 =
	// DefaultReadBuffer). Tests set it small to provoke overruns.
	ReadBuffer int
	// CountersInterval is the least time between two polls of the packet
	// and byte counters (0 = DefaultCountersInterval, negative = never). A
	// poll is a full dump, so the actual interval also grows to eighty times
	// the last poll's duration (about 1.25% of a CPU on huge tables: every
	// ~100 s at 262,144 entries here, every 2 s below ~5,000).
	CountersInterval time.Duration
	// StatsInterval is the period of EventStats (0 = DefaultStatsInterval).
	StatsInterval time.Duration
	// AllowInactive makes Run watch a namespace where conntrack is not
	// active instead of failing with ErrNotActive.
	AllowInactive bool
	// OneShot says the caller stops after the initial listing (a snapshot):
	// Run then skips the bookkeeping that live watching needs (the set of
	// entries that predate the event subscription, see [Source.Run]).
	OneShot bool
	// Now is the clock for event times (nil = time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.ReadBuffer == 0 {
		o.ReadBuffer = DefaultReadBuffer
	}
	if o.CountersInterval == 0 {
		o.CountersInterval = DefaultCountersInterval
	}
	if o.StatsInterval <= 0 {
		o.StatsInterval = DefaultStatsInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Source is the kernel conntrack table of one network namespace.
type Source struct {
	opts Options
	// left, when set (ReconcileDownstream), reports the consumer's silent
	// flows: the consumer reconciles them.
	left func() int
	// spacing is pollSpacing; tests that wait for polls lower it.
	spacing time.Duration
}

var (
	_ source.Source         = (*Source)(nil)
	_ source.Deleter        = (*Source)(nil)
	_ source.PollReconciler = (*Source)(nil)
)

// ReconcileDownstream implements source.PollReconciler: Run keeps no set of
// the entries of its initial listing; the consumer marks them and left
// reports how many of them have reported no event yet, while which each
// counters poll sends its entries as EventPolled and ends with
// EventPollDone. Call it before Run.
func (s *Source) ReconcileDownstream(left func() int) { s.left = left }

// New returns a Source watching the namespace in opts. Nothing is opened
// until Run.
func New(opts Options) *Source { return &Source{opts: opts.withDefaults(), spacing: pollSpacing} }

// Name implements source.Source: "conntrack".
func (s *Source) Name() string { return "conntrack" }

// run is the state of one Run.
type run struct {
	opts    Options
	out     chan<- flow.Event
	events  *sock  // subscribed to NEW/UPDATE/DESTROY
	rx      *mrecv // batch receiver of events
	query   *sock  // dumps and gets on behalf of the event loop
	poll    *sock  // statistics and counter polls
	proc    *procFiles
	masters map[flow.Key]*flow.Tuple // master tuples of RELATED flows
	// exp holds the pending expectations, which every EventStats lists.
	exp expectations
	// uses holds the last listed use count of the entries whose count was
	// not 1 (masters of RELATED flows): events carry none (see fillUse).
	usesMu sync.Mutex
	uses   useCounts
	nuses  atomic.Int64
	// silent holds entries listed by the initial dump, which may never
	// report events (see Run and silent.go); guarded by mu, its size
	// mirrored in nsilent; nil with Options.OneShot or when the consumer
	// reconciles them (downstream, see Source.ReconcileDownstream).
	mu         sync.Mutex
	silent     *silentSet
	nsilent    atomic.Int64
	downstream func() int
	drops      uint32 // last SK_MEMINFO_DROPS of events
	lost       atomic.Uint64
	resyncs    atomic.Uint64
	bad        atomic.Uint64 // undecodable messages skipped
	foreign    atomic.Uint64 // datagrams not from the kernel, dropped
	// firstDump is how long the initial listing took: the first poll is
	// spaced from it as later polls are from theirs (spacing times the
	// last dump's duration, see pollSpacing).
	firstDump time.Duration
	spacing   time.Duration
	// listing batches the initial listing's events (RunBatches); nil
	// once it is sent, and with Run.
	listing *listing
}

// Run implements source.Source. It returns nil when ctx is cancelled; an
// error matching ErrPermission, ErrNotLoaded, ErrNotActive or
// netns.ErrNotFound when it cannot start.
//
// Entries made before anyone listened to conntrack events carry no event
// cache (net.netfilter.nf_conntrack_events=2, the default since Linux 6.0,
// adds it only once a listener exists; the kernel keeps that flag for all
// namespaces together; with 0 no entry gets one), so the kernel never
// reports their updates or their destruction. Run therefore
// remembers the entries of its initial listing and reconciles them with a
// dump every few seconds (the counters poll), emitting EventUpdate when one
// changed and EventDestroy when one vanished, until none is left. An entry
// that reports an event leaves that set. With ReconcileDownstream the
// consumer keeps that set instead.
func (s *Source) Run(ctx context.Context, out chan<- flow.Event) error { return s.run(ctx, out, false) }

// RunBatches implements source.Batcher: it is Run with the initial listing
// sent in EventBatch events (see listing.go).
func (s *Source) RunBatches(ctx context.Context, out chan<- flow.Event) error {
	return s.run(ctx, out, true)
}

func (s *Source) run(ctx context.Context, out chan<- flow.Event, batches bool) error {
	r := &run{opts: s.opts, out: out, masters: make(map[flow.Key]*flow.Tuple), spacing: s.spacing}
	if !s.opts.OneShot {
		r.downstream = s.left
	}
	if batches {
		r.listing = newListing()
	}
	path, err := netns.Resolve(s.opts.NetNS)
	if err != nil {
		return err
	}
	if err := r.open(path); err != nil {
		return err
	}
	defer r.close()
	if !s.opts.AllowInactive {
		info, err := probe(r.poll, r.proc)
		if err != nil {
			return err
		}
		if !info.Active {
			return notActiveError(s.opts.NetNS)
		}
	}
	if r.drops, err = r.events.drops(); err != nil {
		return err
	}
	// The pending expectations, then the table's figures (which carry
	// them) first, so that a snapshot can start its document before the
	// flows stream in.
	if err := r.listExpects(r.query, &r.bad); err != nil {
		return err
	}
	st, err := r.emitStats(ctx)
	if err != nil {
		return err
	}
	if !s.opts.OneShot && r.downstream == nil {
		r.silent = newSilentSet(int(min(st.Count, 1<<26)))
	}
	// Subscribed before this dump: nothing between dump and listen is lost.
	start := time.Now()
	if err := r.dump(ctx); err != nil {
		return err
	}
	r.firstDump = time.Since(start)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pollErr := make(chan error, 1)
	go func() { pollErr <- r.pollLoop(ctx) }()
	err = r.eventLoop(ctx)
	cancel()
	if perr := <-pollErr; err == nil {
		err = perr
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// open creates the three sockets inside the namespace at path and opens
// that namespace's procfs files.
func (r *run) open(path string) error {
	return netns.DoPath(path, func() error {
		if err := checkLoaded("/proc/sys/net/netfilter"); err != nil {
			return err
		}
		var err error
		groups := uint32(1<<(groupCTNew-1) | 1<<(groupCTUpdate-1) | 1<<(groupCTDestroy-1) |
			1<<(groupExpNew-1) | 1<<(groupExpDestroy-1))
		if r.events, err = openSock(groups, r.opts.ReadBuffer, recvTimeout, 0); err != nil {
			return err
		}
		r.rx = newMrecv(r.events.fd, eventBatch, eventSlot)
		if r.query, err = openSock(0, 0, queryTimeout, 64<<10); err != nil {
			r.events.Close()
			return err
		}
		if r.poll, err = openSock(0, 0, queryTimeout, 64<<10); err != nil {
			r.events.Close()
			r.query.Close()
			return err
		}
		r.proc = openProcFiles()
		r.events.foreign, r.query.foreign, r.poll.foreign = &r.foreign, &r.foreign, &r.foreign
		return nil
	})
}

func (r *run) close() {
	if r.silent != nil {
		r.silent.free()
	}
	r.events.Close()
	r.query.Close()
	r.poll.Close()
	r.proc.Close()
}

// silentLeft returns how many entries of the initial listing may still
// be silent: in the own set, or as the consumer reports.
func (r *run) silentLeft() int64 {
	if r.downstream != nil {
		return int64(r.downstream())
	}
	return r.nsilent.Load()
}

// send delivers ev unless ctx ends first.
func (r *run) send(ctx context.Context, ev flow.Event) error {
	// Fast path: a non-blocking send costs a fraction of a two-way select.
	select {
	case r.out <- ev:
		return nil
	default:
	}
	select {
	case r.out <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dump lists the whole table (EventNew per entry, then EventSynced) and
// rebuilds the master cache. The first listing also fills the silent set.
func (r *run) dump(ctx context.Context) error {
	clear(r.masters)
	r.clearUses()
	now := r.opts.Now()
	first := r.silent != nil && r.resyncs.Load() == 0
	err := dumpFlows(r.query, &r.bad, func(f *flow.Flow) error {
		if f.Master != nil {
			r.masters[f.Key()] = f.Master
		}
		r.recordUse(f)
		if first {
			r.silent.add(f)
		}
		if r.listing != nil {
			return r.listing.add(ctx, r, now, f)
		}
		return r.send(ctx, flow.Event{Type: flow.EventNew, Time: now, Flow: *f})
	})
	if err != nil {
		return classify("dump conntrack table", err)
	}
	if r.listing != nil {
		if err := r.listing.flush(ctx, r); err != nil {
			return err
		}
		r.listing = nil // only the initial listing: see listing.go
	}
	if err := r.send(ctx, flow.Event{Type: flow.EventSynced, Time: r.opts.Now()}); err != nil {
		return err
	}
	if first {
		// Before the loops start (no lock needed yet), after the
		// consumer has the whole table.
		r.silent.seal()
		r.nsilent.Store(int64(r.silent.len()))
	}
	return nil
}

// dumpFlows dumps all entries (IPv4 and IPv6) through s, calling fn with each
// decoded entry (fn must copy it). Entries that do not decode are skipped
// and counted in bad (when not nil), which the table statistics report.
func dumpFlows(s *sock, bad *atomic.Uint64, fn func(f *flow.Flow) error) error {
	s.begin(subsysCT, msgCTGet, flagRequest|flagDump, 0)
	return s.transactDump(flowMessages(bad, fn))
}

// flowMessages returns the message handler of dumpFlows: it decodes each
// entry message and calls fn with it.
func flowMessages(bad *atomic.Uint64, fn func(f *flow.Flow) error) func(m message) error {
	var f flow.Flow
	return func(m message) error {
		if m.typ != uint16(subsysCT)<<8|msgCTNew {
			return nil
		}
		if _, err := decodeFlow(m.data, &f); err != nil {
			if bad != nil {
				bad.Add(1)
			}
			return nil
		}
		return fn(&f)
	}
}

// dropCheckEvery is how many datagrams the event loop reads between two
// checks of the socket's drop counter.
const dropCheckEvery = 64

// maxCatchUp bounds how long the event loop discards a backlog after a loss
// before it lists the table anyway.
const maxCatchUp = time.Second

// eventLoop reads conntrack events until ctx ends or the socket fails.
//
// The kernel reports ENOBUFS only for the first drop of a congestion
// episode (until the queue drains, further drops are silent except in the
// socket's drop counter), so the loop also notices a loss when that counter
// moved: checked when idle and every dropCheckEvery datagrams. Datagrams
// are read in batches (see mrecv), each holding one event.
//
// After a loss the loop first catches up: it discards what is queued (all
// of it older than the listing to come, which supersedes it) until the
// queue is empty or maxCatchUp passed, and only then resyncs. Listing the
// table at once instead would leave the backlog to grow during the dump
// and overrun again, one resync after another, while the producer stays
// fast.
func (r *run) eventLoop(ctx context.Context) error {
	var f flow.Flow
	sinceCheck := 0
	var (
		catchingUp bool      // a loss was seen; discarding until caught up
		since      time.Time // when catching up began
		discarded  uint64    // datagrams discarded meanwhile
	)
	for ctx.Err() == nil {
		n, err := r.rx.recv()
		if catchingUp {
			discarded += uint64(n)
			switch {
			case err == nil || errors.Is(err, unix.ENOBUFS):
				if n == eventBatch || errors.Is(err, unix.ENOBUFS) {
					if time.Since(since) < maxCatchUp {
						continue // more is queued
					}
				}
			case errors.Is(err, errTimeout):
			default:
				return fmt.Errorf("receive conntrack events: %w", err)
			}
			catchingUp, sinceCheck = false, 0
			if err := r.resync(ctx, discarded); err != nil {
				return err
			}
			continue
		}
		lost := errors.Is(err, unix.ENOBUFS)
		if sinceCheck += max(n, 1); !lost && (err != nil || sinceCheck >= dropCheckEvery) {
			sinceCheck = 0
			if d, derr := r.events.drops(); derr == nil && d != r.drops {
				lost = true
			}
		}
		if !lost && err == nil {
			for i := range n {
				if !r.rx.fromKernel(i) {
					continue // dropped below
				}
				if _, truncated := r.rx.datagram(i); truncated {
					// An event too long for its slot is an event lost.
					r.bad.Add(1)
					lost = true
				}
			}
		}
		if lost {
			// What the batch holds is older than the listing to come.
			catchingUp, since, discarded = true, time.Now(), uint64(n)
			continue
		}
		switch {
		case err == nil:
		case errors.Is(err, errTimeout):
			continue
		default:
			return fmt.Errorf("receive conntrack events: %w", err)
		}
		now := r.opts.Now()
		for i := range n {
			if !r.rx.fromKernel(i) {
				r.foreign.Add(1)
				continue
			}
			b, _ := r.rx.datagram(i)
			if err := r.handleDatagram(ctx, now, b, &f); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// handleDatagram decodes the event messages of one datagram and sends them
// on; f is scratch space.
func (r *run) handleDatagram(ctx context.Context, now time.Time, b []byte, f *flow.Flow) error {
	for len(b) > 0 {
		m, rest, err := nextMessage(b)
		if err != nil {
			r.bad.Add(1)
			return nil
		}
		b = rest
		if m.typ>>8 == subsysCTExp {
			r.handleExpect(m, now)
			continue
		}
		if m.typ>>8 != subsysCT {
			continue
		}
		var typ flow.EventType
		switch uint8(m.typ) {
		case msgCTNew:
			typ = flow.EventUpdate
			if m.flags&(flagCreate|flagExcl) != 0 {
				typ = flow.EventNew
			}
		case msgCTDelete:
			typ = flow.EventDestroy
		default:
			continue
		}
		h, err := decodeFlow(m.data, f)
		if err != nil {
			r.bad.Add(1)
			continue
		}
		r.fillUse(typ, h, f)
		ok, err := r.complete(typ, h, f)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := r.sendEvent(ctx, flow.Event{Type: typ, Time: now, Flow: *f}); err != nil {
			return err
		}
	}
	return nil
}

// sendEvent sends a conntrack event; an entry that reports one leaves the
// silent set (under the lock, so that the reconciler's events for it and
// this one stay in order).
func (r *run) sendEvent(ctx context.Context, ev flow.Event) error {
	if r.nsilent.Load() == 0 {
		return r.send(ctx, ev)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := ev.Flow.Key()
	if r.silent.remove(&k) {
		r.nsilent.Store(int64(r.silent.len()))
	}
	return r.send(ctx, ev)
}

// complete fills in what an event omitted: the master tuple of a RELATED
// flow (sent only with its NEW event) from the cache, and, for a TCP
// (or SCTP) NEW/UPDATE without protocol info, the current entry from the kernel. It
// returns false when the event should be dropped (the entry vanished; its
// DESTROY event follows).
func (r *run) complete(typ flow.EventType, h have, f *flow.Flow) (bool, error) {
	if f.Status&flow.StatusExpected != 0 || (typ == flow.EventDestroy && len(r.masters) != 0) {
		k := f.Key()
		if h&haveMaster != 0 {
			r.masters[k] = f.Master
		} else if m, ok := r.masters[k]; ok {
			f.Master = m
		}
		if typ == flow.EventDestroy {
			delete(r.masters, k)
		}
	}
	if typ == flow.EventDestroy || (f.Proto != flow.ProtoTCP && f.Proto != flow.ProtoSCTP) || h&haveProtoInfo != 0 {
		return true, nil
	}
	g, found, err := getFlow(r.query, f.Key())
	if err != nil {
		return false, classify("get conntrack entry", err)
	}
	if !found {
		return false, nil
	}
	if g.Master == nil {
		g.Master = f.Master
	}
	r.recordUse(&g)
	*f = g
	return true, nil
}

// getFlow asks the kernel for the entry with key k.
func getFlow(s *sock, k flow.Key) (flow.Flow, bool, error) {
	s.beginKeyRequest(msgCTGet, flagRequest|flagAck, k)
	var f flow.Flow
	found := false
	err := s.transact(func(m message) error {
		if _, err := decodeFlow(m.data, &f); err != nil {
			return err
		}
		// The count includes the reference the kernel's lookup holds
		// while it answers: the entry's own is one less.
		if f.Use > 1 {
			f.Use--
		}
		found = true
		return nil
	})
	if errors.Is(err, unix.ENOENT) {
		return f, false, nil
	}
	return f, found, err
}

// resync handles an event-socket overrun: it reports the loss and lists the
// table again. The loss is the growth of the socket's drop counter (each
// dropped skb is one event) plus the discarded events that the loop read
// but dropped because the listing supersedes them, at least 1.
func (r *run) resync(ctx context.Context, discarded uint64) error {
	lost := discarded
	if d, err := r.events.drops(); err == nil {
		lost += uint64(d - r.drops)
		r.drops = d
	}
	// A pending ENOBUFS belongs to the loss this listing repairs: reading
	// SO_ERROR clears it, so the next receive does not report it again.
	_, _ = unix.GetsockoptInt(r.events.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	lost = max(lost, 1)
	r.lost.Add(lost)
	r.resyncs.Add(1)
	if err := r.send(ctx, flow.Event{Type: flow.EventResync, Time: r.opts.Now(), Lost: lost}); err != nil {
		return err
	}
	if err := r.listExpects(r.query, &r.bad); err != nil {
		return err
	}
	return r.dump(ctx)
}

// Delete implements source.Deleter: it deletes each flow (by original tuple
// and zone) from the kernel table and returns how many it removed. Flows
// already gone are not counted and are not an error.
func (s *Source) Delete(ctx context.Context, flows []flow.Flow) (int, error) {
	var q *sock
	err := netns.Do(s.opts.NetNS, func() error {
		var err error
		q, err = openSock(0, 0, queryTimeout, 16<<10)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete conntrack entries: %w", err)
	}
	defer q.Close()
	n := 0
	for i := range flows {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		q.beginKeyRequest(msgCTDelete, flagRequest|flagAck, flows[i].Key())
		err := q.transact(func(message) error { return nil })
		switch {
		case err == nil:
			n++
		case errors.Is(err, unix.ENOENT):
		default:
			return n, classify("delete conntrack entry", err)
		}
	}
	return n, nil
}
