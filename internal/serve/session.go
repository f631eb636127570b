package serve

import (
	"context"
	"io"
	"sync/atomic"
	"time"
)

// stopReason says why the server ended a session.
type stopReason int32

const (
	stopNone     stopReason = iota
	stopShutdown            // the server is shutting down
	stopIdle                // no input for Config.IdleTimeout
	stopStalled             // the client read nothing for Config.IdleTimeout
)

// message is what the client is told when the server ends its session.
func (r stopReason) message(idle time.Duration) string {
	switch r {
	case stopShutdown:
		return "conntop: the server is shutting down; goodbye"
	case stopIdle:
		return "conntop: no input for " + idle.String() + "; disconnected"
	case stopStalled:
		return "conntop: nothing read for " + idle.String() + "; disconnected"
	}
	return ""
}

// String names the reason in log records.
func (r stopReason) String() string {
	switch r {
	case stopShutdown:
		return "shutdown"
	case stopIdle:
		return "idle"
	case stopStalled:
		return "stalled"
	}
	return "client"
}

// session is one live SSH session.
type session struct {
	info   SessionInfo // immutable after start, except the fields below
	ctx    context.Context
	cancel context.CancelFunc

	// cut closes the session's connection: the only way to unblock a
	// write to a client that stopped reading.
	cut func()

	reason    atomic.Int32 // stopReason
	lastInput atomic.Int64 // unix nanoseconds
	// writeSince is when the write under way started (unix nanoseconds; 0
	// when none is).
	writeSince     atomic.Int64
	bytesOut       atomic.Uint64
	width          atomic.Int32
	height         atomic.Int32
	resizesApplied atomic.Uint64 // window changes passed to the program
}

func newSession(parent context.Context, info SessionInfo) *session {
	se := &session{info: info, cut: func() {}}
	se.ctx, se.cancel = context.WithCancel(parent)
	se.touch()
	se.width.Store(int32(info.Width))
	se.height.Store(int32(info.Height))
	return se
}

// stop ends the session for reason r (the first reason given wins).
func (se *session) stop(r stopReason) {
	se.reason.CompareAndSwap(int32(stopNone), int32(r))
	se.cancel()
}

func (se *session) stopped() stopReason { return stopReason(se.reason.Load()) }

// touch records input from the client.
func (se *session) touch() { se.lastInput.Store(time.Now().UnixNano()) }

// idleFor is how long ago the client last sent input.
func (se *session) idleFor(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, se.lastInput.Load()))
}

// writeBlockedFor is how long the write under way has been waiting for the
// client (0 when none is).
func (se *session) writeBlockedFor(now time.Time) time.Duration {
	t := se.writeSince.Load()
	if t == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, t))
}

// writer returns w counting the bytes written and timing each write for
// the stall check.
func (se *session) writer(w io.Writer) io.Writer { return outputWriter{w: w, se: se} }

// snapshot returns the session's info with its counters.
func (se *session) snapshot() SessionInfo {
	in := se.info
	in.BytesOut = se.bytesOut.Load()
	if w := se.width.Load(); w > 0 {
		in.Width, in.Height = int(w), int(se.height.Load())
	}
	return in
}

// inputReader records activity on every read from the client.
type inputReader struct {
	r  io.Reader
	se *session
}

func (r inputReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.se.touch()
	}
	return n, err
}

// writeChunk bounds one write to the channel, so that a slow but steady
// reader shows progress to the stall check between chunks.
const writeChunk = 32 << 10

// outputWriter counts the bytes written to the client and records when a
// write started (see session.writeBlockedFor).
type outputWriter struct {
	w  io.Writer
	se *session
}

func (w outputWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := min(len(p), writeChunk)
		w.se.writeSince.Store(time.Now().UnixNano())
		n, err := w.w.Write(p[:k])
		w.se.writeSince.Store(0)
		written += n
		w.se.bytesOut.Add(uint64(n))
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}
