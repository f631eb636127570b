//go:build linux

package conntrack

import (
	"context"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// pollLoop emits EventStats every StatsInterval and, with a dump at most
// every CountersInterval (stretched to pollSpacing times the last dump's
// duration),
// EventCounters for the entries whose counters changed (when accounting is
// on) and the reconciliation of silent entries (see Run).
func (r *run) pollLoop(ctx context.Context) error {
	statsT := time.NewTicker(r.opts.StatsInterval)
	defer statsT.Stop()
	interval := r.opts.CountersInterval
	if interval <= 0 {
		interval = DefaultCountersInterval
	}
	nextPoll := time.Now().Add(max(interval, r.spacing*r.firstDump))
	seen := make(map[uint32]uint64)
	prev := make(map[uint32]uint64)
	if _, err := r.emitStats(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-statsT.C:
		}
		if r.silentLeft() > 0 {
			// Entries older than the subscription report no expectation
			// events either: list them while such entries remain.
			if err := r.listExpects(r.poll, nil); err != nil {
				return err
			}
		}
		st, err := r.stats()
		if err != nil {
			return err
		}
		if err := r.send(ctx, flow.Event{Type: flow.EventStats, Time: st.Time, Stats: st}); err != nil {
			return err
		}
		counters := r.opts.CountersInterval >= 0 && st.Accounting
		if time.Now().Before(nextPoll) || (!counters && r.silentLeft() == 0) {
			continue
		}
		start := time.Now()
		prev, seen = seen, prev
		if err := r.pollDump(ctx, counters, prev, seen); err != nil {
			return err
		}
		took := time.Since(start)
		nextPoll = time.Now().Add(max(interval, r.spacing*took))
	}
}

// pollSpacing keeps polling dumps to about 1.25% of the time: a poll of a
// full 262,144-entry table takes half a second to two seconds, mostly in
// the kernel (measured on two machines), so one comes every 40 s to a few
// minutes and an idle conntop watching the table stays cheap.
const pollSpacing = 80

// emitStats sends the table statistics and returns them.
func (r *run) emitStats(ctx context.Context) (*flow.TableStats, error) {
	st, err := r.stats()
	if err != nil {
		return nil, err
	}
	return st, r.send(ctx, flow.Event{Type: flow.EventStats, Time: st.Time, Stats: st})
}

// stats collects the table statistics.
func (r *run) stats() (*flow.TableStats, error) {
	st, err := tableStats(r.poll, r.proc)
	if err != nil {
		return nil, err
	}
	st.Time = r.opts.Now()
	st.EventsLost = r.lost.Load()
	st.Resyncs = r.resyncs.Load()
	st.Undecodable = r.bad.Load()
	st.ForeignMessages = r.foreign.Load()
	st.Expectations, st.HasExpectations = r.exp.snapshot(st.Time), true
	return st, nil
}

// tableStats queries count, max and the per-CPU statistics through s and
// completes them from the namespace's procfs files.
func tableStats(s *sock, p *procFiles) (*flow.TableStats, error) {
	st := &flow.TableStats{}
	s.begin(subsysCT, msgCTStats, flagRequest|flagAck, 0)
	err := s.transact(func(m message) error {
		var err error
		st.Count, st.Max, err = decodeGlobalStats(m.data)
		return err
	})
	if err != nil {
		return nil, classify("read conntrack table size", err)
	}
	var sum statsSum
	s.begin(subsysCT, msgCTStatsCPU, flagRequest|flagDump, 0)
	if err := s.transact(func(m message) error { return addCPUStats(m.data, &sum) }); err != nil {
		return nil, classify("read conntrack statistics", err)
	}
	st.Found, st.Invalid, st.Ignore, st.Insert, st.InsertFailed = sum.Found, sum.Invalid, sum.Ignore, sum.Insert, sum.InsertFailed
	st.Drop, st.EarlyDrop, st.Error, st.SearchRestart = sum.Drop, sum.EarlyDrop, sum.Error, sum.SearchRestart
	st.ClashResolve, st.ChainTooLong, st.HasClashResolve = sum.ClashResolve, sum.ChainTooLong, sum.HasClashResolve
	if !sum.HasClashResolve {
		if b, ok := p.read(p.stat); ok {
			ps := parseProcStat(b)
			if ps.hasClash {
				st.ClashResolve, st.HasClashResolve = ps.clashResolve, true
			}
			if ps.hasChain {
				st.ChainTooLong = ps.chainTooLong
			}
		}
	}
	st.Accounting = p.accounting()
	return st, nil
}

// pollDump dumps the table once. With counters, it emits EventCounters
// for entries whose packet counts differ from the last poll (prev, keyed by
// conntrack id) and records this poll's in seen. It also reconciles the
// silent entries: EventUpdate for those whose state, status or mark
// changed, EventDestroy for those no longer listed. When the consumer
// reconciles them (run.downstream), a poll while any are left sends every
// entry as EventPolled (which carries its counters too) and ends with
// EventPollDone.
func (r *run) pollDump(ctx context.Context, counters bool, prev, seen map[uint32]uint64) error {
	clear(seen)
	now := r.opts.Now()
	handOff := r.downstream != nil && r.downstream() > 0
	if r.nsilent.Load() > 0 {
		r.mu.Lock()
		r.silent.beginPoll()
		r.mu.Unlock()
	}
	err := dumpFlows(r.poll, nil, func(f *flow.Flow) error { // the listing counted any undecodable entry already
		r.recordUse(f)
		if handOff {
			if counters && f.HasCounters {
				seen[f.ID] = f.Counters.OrigPackets + f.Counters.ReplyPackets<<32
			}
			return r.send(ctx, flow.Event{Type: flow.EventPolled, Time: now, Flow: *f})
		}
		if r.nsilent.Load() > 0 {
			if err := r.reconcile(ctx, now, f); err != nil {
				return err
			}
		}
		if !counters || !f.HasCounters {
			return nil
		}
		sig := f.Counters.OrigPackets + f.Counters.ReplyPackets<<32
		seen[f.ID] = sig
		if old, ok := prev[f.ID]; ok && old == sig {
			return nil
		}
		return r.send(ctx, flow.Event{Type: flow.EventCounters, Time: now, Flow: *f})
	})
	if err != nil {
		return classify("poll conntrack table", err)
	}
	if handOff {
		return r.send(ctx, flow.Event{Type: flow.EventPollDone, Time: now})
	}
	if r.nsilent.Load() == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	err = r.silent.sweep(func(gone *flow.Flow) error {
		return r.send(ctx, flow.Event{Type: flow.EventDestroy, Time: now, Flow: *gone})
	})
	r.nsilent.Store(int64(r.silent.len()))
	return err
}

// reconcile compares one dumped entry with the silent set.
func (r *run) reconcile(ctx context.Context, now time.Time, f *flow.Flow) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if found, changed := r.silent.seen(f); !found || !changed {
		return nil
	}
	return r.send(ctx, flow.Event{Type: flow.EventUpdate, Time: now, Flow: *f})
}
