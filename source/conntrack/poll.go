//go:build linux

package conntrack

import (
	"context"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/source"
)

// pollLoop emits EventStats every StatsInterval and, when accounting is on,
// EventCounters for the entries whose counters changed, at most every
// CountersInterval (stretched to ten times the last poll's duration).
func (r *run) pollLoop(ctx context.Context) error {
	statsT := time.NewTicker(r.opts.StatsInterval)
	defer statsT.Stop()
	nextCounters := time.Now().Add(r.opts.CountersInterval)
	seen := make(map[uint32]uint64)
	prev := make(map[uint32]uint64)
	if err := r.emitStats(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-statsT.C:
		}
		st, err := r.stats()
		if err != nil {
			return err
		}
		if err := r.send(ctx, source.Event{Type: source.EventStats, Time: st.Time, Stats: st}); err != nil {
			return err
		}
		if r.opts.CountersInterval < 0 || !st.Accounting || time.Now().Before(nextCounters) {
			continue
		}
		start := time.Now()
		prev, seen = seen, prev
		if err := r.pollCounters(ctx, prev, seen); err != nil {
			return err
		}
		took := time.Since(start)
		nextCounters = time.Now().Add(max(r.opts.CountersInterval, 10*took))
	}
}

func (r *run) emitStats(ctx context.Context) error {
	st, err := r.stats()
	if err != nil {
		return err
	}
	return r.send(ctx, source.Event{Type: source.EventStats, Time: st.Time, Stats: st})
}

// stats collects the table statistics.
func (r *run) stats() (*source.TableStats, error) {
	st, err := tableStats(r.poll, r.proc)
	if err != nil {
		return nil, err
	}
	st.Time = r.opts.Now()
	st.EventsLost = r.lost.Load()
	st.Resyncs = r.resyncs.Load()
	return st, nil
}

// tableStats queries count, max and the per-CPU statistics through s and
// completes them from the namespace's procfs files.
func tableStats(s *sock, p *procFiles) (*source.TableStats, error) {
	st := &source.TableStats{}
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

// pollCounters dumps the table and emits EventCounters for entries whose
// packet counts differ from the last poll (prev; keyed by conntrack id), and
// records this poll's counts in seen.
func (r *run) pollCounters(ctx context.Context, prev, seen map[uint32]uint64) error {
	clear(seen)
	now := r.opts.Now()
	err := dumpFlows(r.poll, func(f *flow.Flow) error {
		if !f.HasCounters {
			return nil
		}
		sig := f.Counters.OrigPackets + f.Counters.ReplyPackets<<32
		seen[f.ID] = sig
		if old, ok := prev[f.ID]; ok && old == sig {
			return nil
		}
		return r.send(ctx, source.Event{Type: source.EventCounters, Time: now, Flow: *f})
	})
	if err != nil {
		return classify("poll conntrack counters", err)
	}
	return nil
}
