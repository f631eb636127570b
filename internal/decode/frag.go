package decode

import (
	"encoding/binary"
	"time"
)

// fragKey identifies a fragment train as the kernel's defrag queues do
// (addresses, identification and, for IPv4, the protocol).
type fragKey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	v6       bool
}

// span is a received range [start, end) of a train's payload.
type span struct{ start, end int }

// fragQueue is one train being reassembled.
type fragQueue struct {
	key      fragKey
	deadline time.Time
	hdr      []byte // unfragmentable part, from the offset-0 fragment
	hasHdr   bool
	nhOff    int  // IPv6: offset in hdr of the next-header byte naming the fragment header
	nextHdr  byte // IPv6: the fragment header's next header
	buf      []byte
	spans    []span // runs of fragments, sorted and disjoint
	meat     int    // payload bytes received
	qlen     int    // highest end seen, or the total once lastIn
	lastIn   bool
	mem      int
}

// reassembler holds the fragment trains in progress. It reuses queues and
// buffers, so steady-state reassembly does not allocate.
type reassembler struct {
	cfg       *Config
	stats     *Stats
	queues    map[fragKey]*fragQueue
	free      []*fragQueue
	mem       int
	nextSweep time.Time
	out       []byte
}

func (r *reassembler) init(cfg *Config, st *Stats) {
	r.cfg = cfg
	r.stats = st
	r.queues = make(map[fragKey]*fragQueue)
}

func (r *reassembler) expire(now time.Time) {
	for _, q := range r.queues {
		if !now.Before(q.deadline) {
			r.release(q)
			r.stats.Dropped[DropFragmentTimeout]++
		}
	}
}

func (r *reassembler) release(q *fragQueue) {
	delete(r.queues, q.key)
	r.mem -= q.mem
	q.hdr = q.hdr[:0]
	q.hasHdr = false
	q.spans = q.spans[:0]
	q.qlen, q.meat, q.lastIn, q.mem, q.nhOff, q.nextHdr = 0, 0, false, 0, 0, 0
	r.free = append(r.free, q)
}

// get finds or creates the queue of key; nil when the limits forbid a new one.
func (r *reassembler) get(now time.Time, key fragKey, timeout time.Duration) *fragQueue {
	if now.After(r.nextSweep) {
		r.expire(now)
		r.nextSweep = now.Add(time.Second)
	}
	q, ok := r.queues[key]
	if ok && !now.Before(q.deadline) {
		r.release(q)
		r.stats.Dropped[DropFragmentTimeout]++
		ok = false
	}
	if ok {
		return q
	}
	if len(r.queues) >= r.cfg.FragQueues {
		return nil
	}
	if n := len(r.free); n > 0 {
		q = r.free[n-1]
		r.free = r.free[:n-1]
	} else {
		q = &fragQueue{}
	}
	q.key = key
	q.deadline = now.Add(timeout)
	r.queues[key] = q
	return q
}

// add4 takes an IPv4 fragment (data is the whole fragment, ihl its header
// length) as ip_frag_queue does.
func (r *reassembler) add4(now time.Time, data []byte, ihl, offset int, mf bool, d *Decoder, dg *Datagram) Status {
	var key fragKey
	copy(key.src[:], data[12:16])
	copy(key.dst[:], data[16:20])
	key.id = uint32(binary.BigEndian.Uint16(data[4:]))
	key.proto = data[9]
	payload := data[ihl:]
	end := offset + len(payload)
	if r.mem+len(payload) > r.cfg.FragMemory {
		return d.drop(dg, DropFragmentLimit)
	}
	q := r.get(now, key, r.cfg.FragTimeout4)
	if q == nil {
		return d.drop(dg, DropFragmentLimit)
	}
	if !mf {
		if end < q.qlen || (q.lastIn && end != q.qlen) {
			r.release(q)
			return d.drop(dg, DropFragmentCorrupt)
		}
		q.lastIn = true
		q.qlen = end
	} else {
		if end&7 != 0 {
			end &^= 7
			if end > offset {
				payload = payload[:end-offset]
			}
		}
		if end > q.qlen {
			if q.lastIn {
				r.release(q)
				return d.drop(dg, DropFragmentCorrupt)
			}
			q.qlen = end
		}
	}
	if end <= offset {
		r.release(q)
		return d.drop(dg, DropFragmentCorrupt)
	}
	// A train ending past 65535 is kept (ip_frag_queue does not check);
	// it fails when complete (maybeDone).
	if st, ok := r.insert(q, offset, end, payload, d, dg); !ok {
		return st
	}
	if offset == 0 {
		q.hdr = append(q.hdr[:0], data[:ihl]...)
		q.hasHdr = true
		q.mem += ihl
		r.mem += ihl
	}
	return r.maybeDone(q, d, dg)
}

// add6 takes an IPv6 fragment whose fragment header is at fragOff (nhOff is
// the offset of the next-header byte that names it) as nf_ct_frag6_queue
// does.
func (r *reassembler) add6(now time.Time, data []byte, fragOff, nhOff, offset int, mf bool, d *Decoder, dg *Datagram) Status {
	var key fragKey
	copy(key.src[:], data[8:24])
	copy(key.dst[:], data[24:40])
	key.id = binary.BigEndian.Uint32(data[fragOff+4:])
	key.v6 = true
	payload := data[fragOff+8:]
	end := offset + len(payload)
	if r.mem+len(payload) > r.cfg.FragMemory {
		return d.drop(dg, DropFragmentLimit)
	}
	if end > 0xFFFF {
		return d.drop(dg, DropFragmentTooLarge)
	}
	q := r.get(now, key, r.cfg.FragTimeout6)
	if q == nil {
		return d.drop(dg, DropFragmentLimit)
	}
	if !mf {
		if end < q.qlen || (q.lastIn && end != q.qlen) {
			return r.dropFrag6(q, d, dg)
		}
		q.lastIn = true
		q.qlen = end
	} else {
		if end&7 != 0 {
			// nf_ct_frag6_queue kills the train and returns -EPROTO;
			// nf_ct_frag6_gather then accepts the fragment as it is.
			r.release(q)
			dg.Fragment = true
			d.stats.Unreassembled++
			return d.done(dg, data, len(data))
		}
		if end > q.qlen {
			if q.lastIn {
				return r.dropFrag6(q, d, dg)
			}
			q.qlen = end
		}
	}
	if end == offset {
		return r.dropFrag6(q, d, dg)
	}
	if st, ok := r.insert(q, offset, end, payload, d, dg); !ok {
		return st
	}
	if offset == 0 {
		q.hdr = append(q.hdr[:0], data[:fragOff]...)
		q.hasHdr = true
		q.nhOff = nhOff
		q.nextHdr = data[fragOff]
		q.mem += fragOff
		r.mem += fragOff
	}
	return r.maybeDone(q, d, dg)
}

// dropFrag6 drops one bad IPv6 fragment; the train stays (an empty new one
// is released).
func (r *reassembler) dropFrag6(q *fragQueue, d *Decoder, dg *Datagram) Status {
	if len(q.spans) == 0 {
		r.release(q)
	}
	return d.drop(dg, DropFragmentCorrupt)
}

// insert records payload at [offset, end) as inet_frag_queue_insert does.
// The queue keeps runs of fragments: a fragment starting where the last run
// ends extends it; any other fragment is a run of its own, even when it
// touches its neighbours. A fragment past the last run that starts inside
// it, or one that overlaps a run without lying wholly inside that one run,
// is an overlap and discards the train (RFC 5722); one wholly inside a run
// is a duplicate and only it is dropped.
func (r *reassembler) insert(q *fragQueue, offset, end int, payload []byte, d *Decoder, dg *Datagram) (Status, bool) {
	n := len(q.spans)
	switch {
	case n > 0 && end > q.spans[n-1].end:
		tail := q.spans[n-1].end
		if offset < tail {
			r.release(q)
			return d.drop(dg, DropFragmentOverlap), false
		}
		if offset == tail {
			q.spans[n-1].end = end
		} else {
			q.spans = append(q.spans, span{offset, end})
		}
	default:
		at := n
		for i, s := range q.spans {
			if end <= s.start {
				at = i
				break
			}
			if offset >= s.end {
				continue
			}
			if offset >= s.start && end <= s.end {
				return d.drop(dg, DropFragmentDuplicate), false
			}
			r.release(q)
			return d.drop(dg, DropFragmentOverlap), false
		}
		q.spans = append(q.spans, span{})
		copy(q.spans[at+1:], q.spans[at:])
		q.spans[at] = span{offset, end}
	}
	// Data past 65535 is never reassembled (the train is too large), so
	// only the range is kept.
	if end <= 0xFFFF {
		if cap(q.buf) < end {
			c := max(2*cap(q.buf), end)
			c = min(c, 0xFFFF)
			nb := make([]byte, c)
			copy(nb, q.buf)
			q.buf = nb
		}
		if len(q.buf) < end {
			q.buf = q.buf[:end]
		}
		copy(q.buf[offset:end], payload)
	}
	l := end - offset
	q.meat += l
	q.mem += l
	r.mem += l
	d.stats.Fragments++
	return StatusFragment, true
}

// maybeDone reassembles the train once it is complete.
func (r *reassembler) maybeDone(q *fragQueue, d *Decoder, dg *Datagram) Status {
	if !q.lastIn || !q.hasHdr || q.meat != q.qlen {
		return StatusFragment
	}
	// The fragments were counted as kept; the datagram replaces them.
	d.stats.Fragments--
	hl := len(q.hdr)
	total := hl + q.qlen
	v6 := q.key.v6
	if (!v6 && total > 0xFFFF) || (v6 && total-40 > 0xFFFF) {
		r.release(q)
		return d.drop(dg, DropFragmentTooLarge)
	}
	if cap(r.out) < total {
		r.out = make([]byte, total, 0xFFFF+64)
	}
	out := r.out[:total]
	copy(out, q.hdr)
	copy(out[hl:], q.buf[:q.qlen])
	if v6 {
		out[q.nhOff] = q.nextHdr
		binary.BigEndian.PutUint16(out[4:], uint16(total-40))
	} else {
		binary.BigEndian.PutUint16(out[2:], uint16(total))
		binary.BigEndian.PutUint16(out[6:], binary.BigEndian.Uint16(out[6:])&0x4000) // keep DF only
		out[10], out[11] = 0, 0
		binary.BigEndian.PutUint16(out[10:], Checksum(out[:hl], 0))
	}
	r.release(q)
	dg.Reassembled = true
	d.stats.Reassembled++
	return d.done(dg, out, total)
}
