package store

import "time"

// histEntry is one transition in the global history ring: the record
// index, the low 32 bits of the flow's first-seen time (so that a reused
// index is not mistaken for the same flow) and the time in milliseconds
// after first seen.
type histEntry struct {
	idx  uint32
	fs   uint32
	ms   uint32
	from Phase
	to   Phase
}

// historyRing is the bounded ring of recent transitions of all flows: a
// flow's history is what of it is still in the ring (at most HistoryLen
// transitions), so recently changed flows have one and the memory does not
// grow with the table.
type historyRing struct {
	buf  []histEntry
	next int
	n    int
}

// historyRingLen is the ring's largest size (8 MiB); it starts at
// historyRingMin and doubles when full while it holds fewer than two
// transitions per record.
const (
	historyRingLen = 1 << 19
	historyRingMin = 1 << 12
)

// init maps a ring of n entries (outside the Go heap, as the change log).
func (h *historyRing) init(n int) {
	h.drop()
	h.buf = mapArray[histEntry](n)
}

// drop frees the ring.
func (h *historyRing) drop() {
	unmapArray(h.buf)
	h.buf, h.next, h.n = nil, 0, 0
}

func (h *historyRing) bytes() int64 { return int64(cap(h.buf)) * 16 }

// add records a transition of record idx (first seen at firstSeen);
// records is how many records the table has.
func (h *historyRing) add(idx uint32, firstSeen, at int64, from, to Phase, records uint32) {
	if len(h.buf) == 0 {
		return
	}
	if h.n == len(h.buf) && h.next == 0 && len(h.buf) < historyRingLen && len(h.buf) < 2*int(records) {
		old := h.buf
		h.buf = mapArray[histEntry](2 * len(old))
		copy(h.buf, old)
		unmapArray(old)
		h.next = h.n
	}
	h.buf[h.next] = histEntry{idx: idx, fs: uint32(firstSeen), ms: msAfter(firstSeen, at), from: from, to: to}
	h.next++
	if h.next == len(h.buf) {
		h.next = 0
	}
	h.n = min(h.n+1, len(h.buf))
}

// of returns up to limit most recent transitions of the flow at idx first
// seen at firstSeen, oldest first.
func (h *historyRing) of(idx uint32, firstSeen int64, limit int) []Transition {
	var out []Transition
	fs := uint32(firstSeen)
	for k := 0; k < h.n && len(out) < limit; k++ {
		j := h.next - 1 - k
		if j < 0 {
			j += len(h.buf)
		}
		e := &h.buf[j]
		if e.idx != idx || e.fs != fs {
			continue
		}
		out = append(out, Transition{Time: unixTime(firstSeen + int64(e.ms)*int64(time.Millisecond)), From: e.from, To: e.to})
	}
	for a, b := 0, len(out)-1; a < b; a, b = a+1, b-1 {
		out[a], out[b] = out[b], out[a]
	}
	return out
}

// changeLog is the global log of changed record indices: every change of
// a record (new, update, destroy, removal) appends its index, numbered by
// a sequence. A viewer that remembers the sequence it has seen re-evaluates
// only the records changed since; one that fell more than the log's size
// behind rescans the table.
type changeLog struct {
	buf []uint32
	seq uint64 // number of changes ever logged
}

// changeLogLen is the log's largest size (4 MiB); it starts at
// changeLogMin entries and grows with the table (records), to twice as
// many as there are records.
const (
	changeLogLen = 1 << 20
	changeLogMin = 1 << 12
)

func (c *changeLog) init(n int) { c.buf = mapArray[uint32](n) }

func (c *changeLog) release() {
	unmapArray(c.buf)
	c.buf = nil
}

func (c *changeLog) add(i uint32, records uint32) {
	if n := len(c.buf); n < changeLogLen && uint32(n) < 2*records {
		c.grow()
	}
	c.buf[c.seq&uint64(len(c.buf)-1)] = i
	c.seq++
}

// grow doubles the log, keeping what it holds in place of sequence.
func (c *changeLog) grow() {
	old := c.buf
	c.buf = mapArray[uint32](2 * len(old))
	held := min(c.seq, uint64(len(old)))
	for q := c.seq - held; q < c.seq; q++ {
		c.buf[q&uint64(len(c.buf)-1)] = old[q&uint64(len(old)-1)]
	}
	unmapArray(old)
}

// since returns the indices changed after sequence from (up to now), in
// at most two slices, and false when they are no longer all held.
func (c *changeLog) since(from uint64) (a, b []uint32, ok bool) {
	n := c.seq - from
	if n == 0 {
		return nil, nil, true
	}
	if n > uint64(len(c.buf)) || from > c.seq {
		return nil, nil, false
	}
	mask := uint64(len(c.buf) - 1)
	lo, hi := from&mask, c.seq&mask
	if lo < hi {
		return c.buf[lo:hi], nil, true
	}
	return c.buf[lo:], c.buf[:hi], true
}
