package serve

import (
	"encoding/binary"
	"fmt"

	"charm.land/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// Bounds on what one session channel may ask for.
const (
	// MaxColumns and MaxRows bound a terminal, and MaxCells its area: a
	// larger pty-req or window-change is clamped to them (rows first). No
	// real terminal is larger (a 4K display in a 7×14-pixel font is
	// 548×154); every cell costs about 234 bytes in the renderer's
	// buffers (37.5 MB a MaxCells session), and all sessions together
	// share Config.CellBudget (see budget.go).
	MaxColumns = 1000
	MaxRows    = 500
	MaxCells   = 160000
	// maxEnv is how many env requests a session may make; later ones are
	// refused.
	maxEnv = 32
	// maxEnvBytes bounds one env request's payload.
	maxEnvBytes = 1024
	// maxTermName bounds a pty-req's TERM value.
	maxTermName = 64
	// maxRequestBytes bounds any other request's payload (pty-req modes,
	// exec command line).
	maxRequestBytes = 8 << 10
	// maxOtherRequests is how many requests other than window-change,
	// signal and break a session may make.
	maxOtherRequests = 64
)

// sessionChannel is the SSH "session" channel handler: charm.land/ssh's
// own, fed through requestFilter, and at most maxChannelsPerConn at once
// per connection.
func (s *Server) sessionChannel(srv *ssh.Server, conn *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	sc := connOf(ctx)
	if sc != nil {
		if !sc.openChannel() {
			_ = newChan.Reject(gossh.ResourceShortage, fmt.Sprintf("at most %d sessions per connection", maxChannelsPerConn))
			return
		}
		defer sc.closeChannel()
	}
	feed := newWindowFeed()
	ssh.DefaultSessionHandler(srv, conn, filteredChannel{NewChannel: newChan, s: s, conn: sc, feed: feed},
		channelContext{Context: ctx, feed: feed})
}

// filteredChannel accepts a channel and hands its requests through
// filterRequests.
type filteredChannel struct {
	gossh.NewChannel
	s    *Server
	conn *sshConn
	feed *windowFeed
}

func (f filteredChannel) Accept() (gossh.Channel, <-chan *gossh.Request, error) {
	ch, reqs, err := f.NewChannel.Accept()
	if err != nil {
		return ch, reqs, err
	}
	out := make(chan *gossh.Request)
	go f.s.filterRequests(f.conn, f.feed, reqs, out)
	return ch, out, nil
}

// filterRequests passes a session's requests on to charm.land/ssh within
// bounds: it refuses env requests past maxEnv or maxEnvBytes, oversized
// requests and too many of them, and clamps terminal sizes to
// MaxColumns × MaxRows (rewriting the request, noting it for the user).
// It takes window changes itself and puts them in feed (see windowFeed),
// and closes feed's closed once the client has closed the channel.
func (s *Server) filterRequests(sc *sshConn, feed *windowFeed, in <-chan *gossh.Request, out chan<- *gossh.Request) {
	defer close(feed.closed)
	defer close(out)
	// The channel's share of the cell budget, given back when it closes.
	var box termBox
	defer func() { s.cells.release(box) }()
	env, other := 0, 0
	refused := 0
	// pty says a pty-req went on to charm.land/ssh; started that a shell,
	// exec or subsystem request did (after which it refuses a pty-req).
	pty, started := false, false
	for req := range in {
		var ok bool
		switch req.Type {
		case "window-change":
			if !pty {
				// No terminal to resize (charm.land/ssh says the same).
				reply(req, false)
				continue
			}
			if s.clampWindow(req.Payload, sc, &box) {
				p := req.Payload
				feed.put(int(binary.BigEndian.Uint32(p)), int(binary.BigEndian.Uint32(p[4:])))
				reply(req, true)
				continue
			}
		case "signal", "break":
			ok = len(req.Payload) <= 256
		case "env":
			env++
			ok = env <= maxEnv && len(req.Payload) <= maxEnvBytes
		case "pty-req":
			if pty || started {
				// One terminal per session, before it starts.
				reply(req, false)
				continue
			}
			other++
			ok = other <= maxOtherRequests && len(req.Payload) <= maxRequestBytes && s.clampPty(req.Payload, sc, &box)
			pty = ok
		default:
			other++
			ok = other <= maxOtherRequests && len(req.Payload) <= maxRequestBytes
			if ok && (req.Type == "shell" || req.Type == "exec" || req.Type == "subsystem") {
				started = true
			}
		}
		if !ok {
			if refused++; refused == 1 && sc != nil {
				s.log.Warn("ssh: session request refused (over its limits)", "remote", sc.RemoteAddr().String(),
					"type", printable(req.Type), "bytes", len(req.Payload))
			}
			reply(req, false)
			continue
		}
		out <- req
	}
}

// reply answers req if the client wants an answer.
func reply(req *gossh.Request, ok bool) {
	if req.WantReply {
		_ = req.Reply(ok, nil)
	}
}

// clampPty clamps the window size in a pty-req payload in place. It
// returns false for a malformed request or an overlong TERM.
func (s *Server) clampPty(p []byte, sc *sshConn, box *termBox) bool {
	if len(p) < 4 {
		return false
	}
	n := binary.BigEndian.Uint32(p)
	if n > maxTermName || len(p) < 4+int(n)+16 {
		return false
	}
	return s.clampWindow(p[4+n:], sc, box)
}

// clampWindow clamps the columns and rows at the start of p (a
// window-change payload, or the window part of a pty-req) in place: to
// MaxColumns, MaxRows and MaxCells, then to what the server-wide cell
// budget leaves the channel holding box (which it updates). It returns
// false when p is too short.
func (s *Server) clampWindow(p []byte, sc *sshConn, box *termBox) bool {
	if len(p) < 16 {
		return false
	}
	cols, rows := binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])
	lw, lh := clampSize(cols, rows)
	w, h, nb, limited := s.cells.fit(*box, lw, lh)
	*box = nb
	if w == cols && h == rows {
		return true
	}
	if sc != nil {
		asked, got := fmt.Sprintf("%d×%d", cols, rows), fmt.Sprintf("%d×%d", w, h)
		why, note := "limit", fmt.Sprintf("your terminal (%s) is larger than conntop draws (at most %d×%d, %d cells); the view is clamped to %s",
			asked, MaxColumns, MaxRows, MaxCells, got)
		if limited {
			why = "cell budget"
			note = fmt.Sprintf("your terminal (%s) is drawn as %s: the server draws at most %d cells for all its sessions together, and other sessions hold the rest; reconnect later for more",
				asked, got, s.cells.total)
		}
		if sc.setClampNote(asked, note) {
			s.log.Info("ssh session: terminal size clamped", "remote", sc.RemoteAddr().String(), "asked", asked,
				"clamped", got, "why", why, "cells_in_use", s.cells.inUse())
		}
	}
	binary.BigEndian.PutUint32(p, w)
	binary.BigEndian.PutUint32(p[4:], h)
	// The pixel sizes go with the cell sizes; drop them.
	binary.BigEndian.PutUint32(p[8:], 0)
	binary.BigEndian.PutUint32(p[12:], 0)
	return true
}

// clampSize returns cols×rows within MaxColumns, MaxRows and MaxCells.
func clampSize(cols, rows uint32) (uint32, uint32) {
	cols, rows = min(cols, MaxColumns), min(rows, MaxRows)
	if uint64(cols)*uint64(rows) > MaxCells {
		rows = MaxCells / cols
	}
	return cols, rows
}

// printable returns s with anything but printable ASCII replaced, cut to
// 64 bytes, for a log line.
func printable(s string) string {
	b := make([]byte, 0, min(len(s), 64))
	for i := 0; i < len(s) && len(b) < 64; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b = append(b, c)
	}
	return string(b)
}
