package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Limits on SSH connections before and after authentication.
const (
	// DefaultHandshakeTimeout bounds an SSH connection's key exchange and
	// authentication.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxUnauthenticated bounds the connections that have not
	// authenticated yet, over all sources.
	DefaultMaxUnauthenticated = 64
	// DefaultMaxUnauthenticatedPerSource bounds them per source address.
	DefaultMaxUnauthenticatedPerSource = 8
	// maxAuthTries is the authentication failures allowed per connection
	// (as sshd's MaxAuthTries).
	maxAuthTries = 6
	// maxKeyChecks bounds the public keys one connection may have checked.
	maxKeyChecks = 12
	// maxChannelsPerConn bounds the session channels open at once on one
	// connection.
	maxChannelsPerConn = 4
	// reservedFDs is how many file descriptors the connection limits leave
	// for everything else (netlink sockets, the metrics server, files).
	reservedFDs = 64
	// maxAcceptBackoff bounds the pause after an accept error.
	maxAcceptBackoff = 500 * time.Millisecond
)

// connOutcome says how a connection ended up.
type connOutcome int

const (
	outcomePending  connOutcome = iota // no authentication decided yet
	outcomeAccepted                    // authenticated with an authorized key
	outcomeRefused                     // authenticated, then refused for a limit
)

// sshConn is one accepted TCP connection of the SSH listener: it counts
// against the limits until it closes, and it records what the client did
// for the audit log line written when it closes.
type sshConn struct {
	net.Conn
	lim    *connLimiter
	source string // the remote IP address
	start  time.Time

	mu          sync.Mutex
	outcome     connOutcome
	authed      bool     // counted as authenticated (not pending)
	methods     []string // authentication methods tried, in order, unique
	unknownKeys []string // fingerprints of keys offered but not authorized
	keyChecks   int
	user        string
	fingerprint string
	refusedWhy  string
	channels    int
	// clampNote tells the user of the first terminal size that was
	// clamped (told once).
	clampNote string
	lastClamp string
	closed    bool
}

// Close closes the connection, releases its place in the limits and logs
// its outcome (once).
func (c *sshConn) Close() error {
	err := c.Conn.Close()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return err
	}
	c.closed = true
	authed := c.authed
	c.mu.Unlock()
	c.lim.release(c, authed)
	c.logOutcome()
	return err
}

// triedMethod records an authentication method the client tried.
func (c *sshConn) triedMethod(user, m string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.user = user
	for _, x := range c.methods {
		if x == m {
			return
		}
	}
	if len(c.methods) < 8 {
		c.methods = append(c.methods, m)
	}
}

// unknownKey records the fingerprint of a key that is not authorized.
func (c *sshConn) unknownKey(fp string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.unknownKeys {
		if x == fp {
			return
		}
	}
	if len(c.unknownKeys) < maxKeyChecks {
		c.unknownKeys = append(c.unknownKeys, fp)
	}
}

// checkKey counts one public-key check; false once the connection has had
// too many.
func (c *sshConn) checkKey() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keyChecks++
	return c.keyChecks <= maxKeyChecks
}

// authenticated moves the connection from the unauthenticated count to the
// authenticated one. It returns why the connection is refused ("" if it is
// not), in which case the caller closes it.
func (c *sshConn) authenticated(user string) string {
	why := c.lim.promote(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.user = user
	if why != "" {
		c.outcome, c.refusedWhy = outcomeRefused, why
		return why
	}
	c.outcome, c.authed = outcomeAccepted, true
	return ""
}

// allowedKey records the fingerprint of an authorized key the client
// offered: the one it authenticates with.
func (c *sshConn) allowedKey(fp string) {
	c.mu.Lock()
	c.fingerprint = fp
	c.mu.Unlock()
}

// openChannel counts a new session channel; false when the connection
// has too many open.
func (c *sshConn) openChannel() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.channels >= maxChannelsPerConn {
		return false
	}
	c.channels++
	return true
}

func (c *sshConn) closeChannel() {
	c.mu.Lock()
	c.channels--
	c.mu.Unlock()
}

// setClampNote records the note telling the user of a clamped terminal
// size (the first one) and says whether it is the first time that size
// (asked) was clamped so on this connection (to log it once, not at every
// window change).
func (c *sshConn) setClampNote(asked, note string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.clampNote == "" {
		c.clampNote = note
	}
	if c.lastClamp == asked {
		return false
	}
	c.lastClamp = asked
	return true
}

// takeClampNote returns the clamp note once.
func (c *sshConn) takeClampNote() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.clampNote
	if n != "" {
		c.clampNote = "-" // told
	}
	if n == "-" {
		return ""
	}
	return n
}

// logOutcome writes the connection's audit line.
func (c *sshConn) logOutcome() {
	c.mu.Lock()
	attrs := []any{"remote", c.RemoteAddr().String(), "duration", time.Since(c.start).Round(time.Millisecond).String()}
	var msg, outcome string
	level := slog.LevelInfo
	switch c.outcome {
	case outcomeAccepted:
		msg, outcome = "ssh connection closed", "accepted"
		attrs = append(attrs, "user", c.user, "fingerprint", c.fingerprint)
	case outcomeRefused:
		msg, outcome, level = "ssh connection refused", "refused for limits", slog.LevelWarn
		attrs = append(attrs, "user", c.user, "fingerprint", c.fingerprint, "why", c.refusedWhy)
	default:
		msg, level = "ssh connection refused", slog.LevelWarn
		switch {
		case len(c.unknownKeys) > 0:
			outcome = "unknown key"
			attrs = append(attrs, "fingerprints", strings.Join(c.unknownKeys, ","))
		case len(c.methods) == 0:
			outcome = "no authentication attempted"
		default:
			outcome = "no key offered"
		}
		if len(c.methods) > 0 {
			attrs = append(attrs, "methods", strings.Join(c.methods, ","))
		}
		if c.user != "" {
			attrs = append(attrs, "user", c.user)
		}
	}
	c.mu.Unlock()
	attrs = append([]any{"outcome", outcome}, attrs...)
	c.lim.log.Log(context.Background(), level, msg, attrs...)
}

// connLimiter wraps the SSH listener: it bounds unauthenticated
// connections (over all and per source address) and authenticated ones,
// sheds connections when the process runs out of file descriptors instead
// of spinning or wedging, and logs refusals (at most one summary line a
// second, however hard the port is flooded).
type connLimiter struct {
	net.Listener
	log *slog.Logger

	maxUnauth, maxUnauthPerSource, maxAuthed int

	mu        sync.Mutex
	unauth    map[string]int // per source address
	nUnauth   int
	nAuthed   int
	reserve   *os.File // a spare descriptor, given up to shed a connection at EMFILE
	refused   map[string]int
	lastLog   time.Time
	flushing  bool // a summary of refusals is scheduled
	closeOnce sync.Once
	done      chan struct{}
}

// newConnLimiter wraps ln. The unauthenticated limits are lowered to what
// the process's descriptor limit (RLIMIT_NOFILE) leaves after reservedFDs,
// so that a flood cannot take the descriptors the metrics server and the
// logged-in sessions need.
func newConnLimiter(ln net.Listener, log *slog.Logger, maxUnauth, perSource, maxAuthed int) *connLimiter {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < 1<<20 {
		budget := int(rl.Cur) - reservedFDs - maxAuthed
		if budget/2 < maxUnauth {
			log.Warn("ssh: few file descriptors; lowering the limit on unauthenticated connections",
				"rlimit_nofile", rl.Cur, "from", maxUnauth, "to", max(budget/2, 1))
			maxUnauth = max(budget/2, 1)
		}
	}
	l := &connLimiter{
		Listener: ln, log: log,
		maxUnauth: maxUnauth, maxUnauthPerSource: min(perSource, maxUnauth), maxAuthed: maxAuthed,
		unauth: make(map[string]int), refused: make(map[string]int), done: make(chan struct{}),
	}
	l.reserve, _ = os.Open(os.DevNull)
	return l
}

// Close closes the listener and the spare descriptor.
func (l *connLimiter) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() {
		close(l.done)
		l.mu.Lock()
		if l.reserve != nil {
			_ = l.reserve.Close()
			l.reserve = nil
		}
		l.mu.Unlock()
	})
	return err
}

// Accept returns the next connection within the limits. Connections over
// a limit are closed at once; running out of descriptors sheds the
// connection waiting and pauses, so that Accept neither spins nor leaves
// clients hanging in the kernel's queue.
func (l *connLimiter) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) || errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM) {
				l.shed(err)
				backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
				select {
				case <-time.After(backoff):
				case <-l.done:
					return nil, net.ErrClosed
				}
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return nil, err
		}
		backoff = 0
		if sc := l.admit(c); sc != nil {
			return sc, nil
		}
	}
}

// shed gives up the spare descriptor to accept and close one waiting
// connection, then takes the spare back.
func (l *connLimiter) shed(cause error) {
	l.mu.Lock()
	if l.reserve != nil {
		_ = l.reserve.Close()
		l.reserve = nil
	}
	l.mu.Unlock()
	if c, err := l.Listener.Accept(); err == nil {
		l.refuse(c.RemoteAddr(), "out of file descriptors: "+cause.Error())
		_ = c.Close()
	}
	l.mu.Lock()
	if l.reserve == nil {
		l.reserve, _ = os.Open(os.DevNull)
	}
	l.mu.Unlock()
}

// admit wraps c if it is within the limits, else closes it.
func (l *connLimiter) admit(c net.Conn) *sshConn {
	source := sourceOf(c.RemoteAddr())
	l.mu.Lock()
	var why string
	switch {
	case l.nUnauth >= l.maxUnauth:
		why = fmt.Sprintf("too many unauthenticated connections (%d)", l.maxUnauth)
	case l.unauth[source] >= l.maxUnauthPerSource:
		why = fmt.Sprintf("too many unauthenticated connections from this address (%d)", l.maxUnauthPerSource)
	default:
		l.nUnauth++
		l.unauth[source]++
	}
	l.mu.Unlock()
	if why != "" {
		l.refuse(c.RemoteAddr(), why)
		_ = c.Close()
		return nil
	}
	return &sshConn{Conn: c, lim: l, source: source, start: time.Now()}
}

// promote moves c from the unauthenticated to the authenticated count, or
// says why it cannot.
func (l *connLimiter) promote(c *sshConn) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nAuthed >= l.maxAuthed {
		return fmt.Sprintf("too many connections (%d)", l.maxAuthed)
	}
	l.dropUnauthLocked(c.source)
	l.nAuthed++
	return ""
}

func (l *connLimiter) release(c *sshConn, authed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if authed {
		l.nAuthed--
		return
	}
	l.dropUnauthLocked(c.source)
}

func (l *connLimiter) dropUnauthLocked(source string) {
	l.nUnauth--
	if l.unauth[source]--; l.unauth[source] <= 0 {
		delete(l.unauth, source)
	}
}

// refuse counts a connection refused before the handshake and logs a
// summary at most once a second: the first refusal at once, then how
// many were refused, and why, since the last line.
func (l *connLimiter) refuse(addr net.Addr, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused[why]++
	if wait := time.Second - time.Since(l.lastLog); wait > 0 {
		if !l.flushing {
			l.flushing = true
			time.AfterFunc(wait, func() {
				l.mu.Lock()
				defer l.mu.Unlock()
				l.flushing = false
				l.logRefusedLocked(nil)
			})
		}
		return
	}
	l.logRefusedLocked(addr)
}

// logRefusedLocked logs the refusals counted since the last line.
func (l *connLimiter) logRefusedLocked(addr net.Addr) {
	if len(l.refused) == 0 {
		return
	}
	l.lastLog = time.Now()
	whys := make([]string, 0, len(l.refused))
	total := 0
	for w, n := range l.refused {
		whys = append(whys, fmt.Sprintf("%s: %d", w, n))
		total += n
	}
	sort.Strings(whys)
	clear(l.refused)
	attrs := []any{"outcome", "refused for limits", "refused", total, "why", strings.Join(whys, "; ")}
	if addr != nil {
		attrs = append(attrs, "remote", addr.String())
	}
	l.log.Warn("ssh connection refused", attrs...)
}

// sourceOf returns the IP address of a remote address.
func sourceOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
