package store

import "math"

// memoryUsed estimates the bytes the store holds for its flows: records,
// ext records, index, side table, history ring, change log, linger queue
// and event log.
func (s *Store) memoryUsed() int64 {
	n := int64(len(s.log.buf))*eventRecordSize + int64(cap(s.linger))*16
	if s.cnt != nil {
		return n + s.cnt.bytes()
	}
	return n + s.tab.bytes() + s.hist.bytes() + int64(len(s.changes.buf))*4
}

// eventRecordSize is roughly what one event-log record holds.
const eventRecordSize = 200

// checkMemory keeps the store within Options.MemoryLimit: past it, per-flow
// history goes first, then lingering (the lingering flows leave at once);
// below 3/4 of it (counting what they would take back) they return. Live
// flows are never dropped.
func (s *Store) checkMemory() {
	limit := s.opts.MemoryLimit
	used := s.memoryUsed()
	s.deg.Limit, s.deg.Used = limit, used
	if s.cnt != nil {
		return
	}
	if used > limit && !s.deg.NoHistory {
		s.deg.NoHistory = true
		s.hist.drop()
		used = s.memoryUsed()
	}
	if used > limit && !s.deg.NoLinger {
		s.deg.NoLinger = true
		s.expire(math.MaxInt64) // every lingering flow goes now
		s.linger, s.lhead = nil, 0
		used = s.memoryUsed()
	}
	// Recover once there is room again, lingering first.
	if s.deg.NoLinger && used < limit*3/4 {
		s.deg.NoLinger = false
	}
	if s.deg.NoHistory && !s.deg.NoLinger && used+historyRingMin*16 < limit*3/4 {
		s.deg.NoHistory = false
		s.hist.init(historyRingMin)
		used = s.memoryUsed()
	}
	s.deg.Used = used
}
