package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	"charm.land/wish/v2"
	"charm.land/wish/v2/bubbletea"
	gossh "golang.org/x/crypto/ssh"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/serve/metrics"
)

// closeWait bounds the wait for session handlers once their connections
// are closed.
const closeWait = 5 * time.Second

// Server serves one engine over SSH and HTTP. Build it with New, then call
// Run once.
type Server struct {
	eng *engine.Engine
	cfg Config
	log *slog.Logger

	keys   *authorizedKeys
	ssh    *ssh.Server
	sshLn  *connLimiter
	http   *http.Server
	httpLn net.Listener

	// snapSlots bounds the snapshot commands running at once.
	snapSlots chan struct{}
	// cells is the terminal cells all sessions together may draw.
	cells *cellBudget

	mu       sync.Mutex
	sessions map[uint64]*session
	lastID   uint64
	closing  bool
	handlers sync.WaitGroup // running session handlers
}

// Run serves eng as cfg says until ctx is done, then shuts down: sessions
// are told and ended, listeners closed, and Run returns once every
// goroutine it started has ended.
func Run(ctx context.Context, eng *engine.Engine, cfg Config) error {
	s, err := New(eng, cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// New checks cfg, loads (or creates) the host key, reads the authorized
// keys and opens the listeners. Call Run to serve.
func New(eng *engine.Engine, cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{eng: eng, cfg: cfg, log: cfg.Logger, sessions: make(map[uint64]*session),
		snapSlots: make(chan struct{}, maxSnapshotCopies), cells: &cellBudget{total: cfg.CellBudget}}
	if cfg.SSHAddr != "" {
		if err := s.setupSSH(); err != nil {
			return nil, err
		}
	}
	if cfg.MetricsAddr != "" {
		if err := s.setupHTTP(); err != nil {
			if s.sshLn != nil {
				_ = s.sshLn.Close()
			}
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) setupSSH() error {
	keys, err := newAuthorizedKeys(s.cfg.AuthorizedKeys, s.log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s.keys = keys
	pemBytes, signer, created, err := loadOrCreateHostKey(s.cfg.HostKey)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("ssh host key", "file", s.cfg.HostKey, "created", created,
		"fingerprint", gossh.FingerprintSHA256(signer.PublicKey()))

	srv, err := wish.NewServer(
		wish.WithHostKeyPEM(pemBytes),
		wish.WithPublicKeyAuth(s.publicKeyAllowed),
		wish.WithVersion("conntop"),
	)
	if err != nil {
		return fmt.Errorf("serve: ssh server: %w", err)
	}
	srv.Handler = s.handle
	srv.HandshakeTimeout = s.cfg.HandshakeTimeout
	srv.ConnCallback = func(ctx ssh.Context, c net.Conn) net.Conn {
		if sc, ok := c.(*sshConn); ok {
			ctx.SetValue(connKey, sc)
		}
		return c
	}
	// Only public keys: no password or keyboard-interactive handler is set,
	// so the server does not offer those methods. Every attempt is
	// recorded for the connection's audit line.
	srv.ServerConfigCallback = func(ctx ssh.Context) *gossh.ServerConfig {
		sc := connOf(ctx)
		return &gossh.ServerConfig{
			MaxAuthTries: maxAuthTries,
			AuthLogCallback: func(conn gossh.ConnMetadata, method string, err error) {
				s.authLog(sc, conn, method, err)
			},
		}
	}
	srv.ChannelHandlers = map[string]ssh.ChannelHandler{"session": s.sessionChannel}
	ln, err := net.Listen("tcp", s.cfg.SSHAddr)
	if err != nil {
		return fmt.Errorf("serve: ssh listener: %w", err)
	}
	s.ssh = srv
	s.sshLn = newConnLimiter(ln, s.log, s.cfg.MaxUnauthenticated, s.cfg.MaxUnauthenticatedPerSource, 2*s.cfg.MaxSessions)
	return nil
}

func (s *Server) setupHTTP() error {
	reg, err := metrics.NewRegistry(s.eng)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("serve: metrics listener: %w", err)
	}
	s.http = &http.Server{
		Handler:           metrics.Handler(s.eng, reg),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.httpLn = ln
	return nil
}

// SSHAddr returns the SSH listener's address (nil without SSH).
func (s *Server) SSHAddr() net.Addr {
	if s.sshLn == nil {
		return nil
	}
	return s.sshLn.Addr()
}

// MetricsAddr returns the metrics listener's address (nil without metrics).
func (s *Server) MetricsAddr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// Close closes the listeners of a server that will not Run (Run closes
// them itself).
func (s *Server) Close() error {
	var errs []error
	if s.sshLn != nil {
		errs = append(errs, s.sshLn.Close())
	}
	if s.httpLn != nil {
		errs = append(errs, s.httpLn.Close())
	}
	return errors.Join(errs...)
}

// Sessions lists the live SSH sessions, oldest first.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	out := make([]SessionInfo, 0, len(s.sessions))
	for _, se := range s.sessions {
		out = append(out, se.snapshot())
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Run serves until ctx is done or a listener fails, then shuts down.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	if s.ssh != nil {
		s.log.Info("serving the TUI over SSH", "addr", s.sshLn.Addr().String(),
			"authorized_keys", s.cfg.AuthorizedKeys, "max_sessions", s.cfg.MaxSessions)
		wg.Go(func() {
			if err := s.ssh.Serve(s.sshLn); err != nil && !errors.Is(err, ssh.ErrServerClosed) && ctx.Err() == nil {
				errc <- fmt.Errorf("serve ssh: %w", err)
			}
		})
	}
	if s.http != nil {
		s.log.Info("serving metrics", "addr", s.httpLn.Addr().String(), "paths", "/metrics /healthz")
		wg.Go(func() {
			if err := s.http.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve metrics: %w", err)
			}
		})
	}
	reapCtx, stopReap := context.WithCancel(context.Background())
	wg.Go(func() { s.reap(reapCtx) })
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	err := s.shutdown()
	stopReap()
	wg.Wait()
	return errors.Join(runErr, err)
}

// shutdown tells every session the server stops, waits up to the grace
// period for them to end, then closes every connection and listener.
func (s *Server) shutdown() error {
	s.mu.Lock()
	s.closing = true
	live := make([]*session, 0, len(s.sessions))
	for _, se := range s.sessions {
		live = append(live, se)
	}
	s.mu.Unlock()
	s.log.Info("shutting down", "sessions", len(live))

	var errs []error
	if s.sshLn != nil {
		_ = s.sshLn.Close() // no new connections
	}
	for _, se := range live {
		se.stop(stopShutdown)
	}
	httpDone := make(chan error, 1)
	if s.http != nil {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
			defer cancel()
			err := s.http.Shutdown(ctx)
			if err != nil {
				err = errors.Join(err, s.http.Close())
			}
			httpDone <- err
		}()
	} else {
		httpDone <- nil
	}
	ended := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(s.cfg.ShutdownGrace):
		s.log.Warn("sessions still running after the grace period; closing their connections")
	}
	if s.ssh != nil {
		// Close every connection: unblocks writers to clients that stopped
		// reading. The session handlers then end.
		if err := s.ssh.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close ssh server: %w", err))
		}
	}
	select {
	case <-ended:
	case <-time.After(max(s.cfg.ShutdownGrace, closeWait)):
		errs = append(errs, fmt.Errorf("serve: %d SSH sessions did not end after their connections were closed", len(s.Sessions())))
	}
	if err := <-httpDone; err != nil {
		errs = append(errs, fmt.Errorf("shut down metrics server: %w", err))
	}
	return errors.Join(errs...)
}

// publicKeyAllowed is the SSH public-key check. Keys not authorized are
// recorded (by fingerprint) for the connection's audit line.
func (s *Server) publicKeyAllowed(ctx ssh.Context, key ssh.PublicKey) bool {
	sc := connOf(ctx)
	if sc != nil && !sc.checkKey() {
		return false // too many keys tried on this connection
	}
	if !s.keys.allowed(key) {
		if sc != nil {
			sc.unknownKey(gossh.FingerprintSHA256(key))
		}
		return false
	}
	if sc != nil {
		sc.allowedKey(gossh.FingerprintSHA256(key))
	}
	return true
}

// authLog records each authentication attempt; a success moves the
// connection to the authenticated ones, or closes it when there are too
// many.
func (s *Server) authLog(sc *sshConn, conn gossh.ConnMetadata, method string, err error) {
	if sc == nil {
		return
	}
	sc.triedMethod(conn.User(), method)
	if err != nil {
		return
	}
	if why := sc.authenticated(conn.User()); why != "" {
		_ = sc.Close()
	}
}

// connKey is the context key of a connection's *sshConn.
var connKey = &struct{ name string }{"conntop-conn"}

// connOf returns the connection of an SSH context (nil if there is none).
func connOf(ctx ssh.Context) *sshConn {
	sc, _ := ctx.Value(connKey).(*sshConn)
	return sc
}

// acquire registers a new session, or returns why it is refused.
func (s *Server) acquire(sess ssh.Session, info SessionInfo) (*session, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, "the server is shutting down"
	}
	if len(s.sessions) >= s.cfg.MaxSessions {
		return nil, fmt.Sprintf("too many sessions (%d of %d in use); try again later", len(s.sessions), s.cfg.MaxSessions)
	}
	s.lastID++
	info.ID = s.lastID
	se := newSession(sess.Context(), info)
	s.sessions[info.ID] = se
	s.handlers.Add(1)
	return se, ""
}

func (s *Server) release(se *session) {
	se.cancel()
	s.mu.Lock()
	delete(s.sessions, se.info.ID)
	s.mu.Unlock()
	s.handlers.Done()
}

// handle runs one SSH session.
func (s *Server) handle(sess ssh.Session) {
	info := SessionInfo{
		User:    sess.User(),
		Remote:  sess.RemoteAddr().String(),
		Command: sess.Command(),
		Start:   time.Now(),
	}
	// The Pty is the pty-req's, which nothing writes after the session
	// starts: window changes go to the channel's windowFeed.
	if pty, _, ok := sess.Pty(); ok {
		info.Term, info.Width, info.Height = pty.Term, pty.Window.Width, pty.Window.Height
	}
	if k := sess.PublicKey(); k != nil {
		info.Fingerprint = gossh.FingerprintSHA256(k)
	}
	se, refused := s.acquire(sess, info)
	if se == nil {
		s.log.Warn("ssh session refused", "user", info.User, "fingerprint", info.Fingerprint,
			"remote", info.Remote, "why", refused)
		fmt.Fprintf(sess.Stderr(), "conntop: %s\n", refused)
		_ = sess.Exit(1)
		return
	}
	defer s.release(se)
	sc := connOf(sess.Context())
	if sc != nil {
		se.cut = func() { _ = sc.Close() }
	}
	attrs := []any{"session", se.info.ID, "user", info.User, "fingerprint", info.Fingerprint, "remote", info.Remote}
	if len(info.Command) > 0 {
		attrs = append(attrs, "command", printable(info.Command[0]))
	}
	s.log.Info("ssh login", attrs...)
	stderr := se.writer(sess.Stderr())
	clampNote := func() {
		if sc == nil {
			return
		}
		if n := sc.takeClampNote(); n != "" {
			fmt.Fprintf(stderr, "conntop: %s\r\n", n)
		}
	}

	var code int
	if len(info.Command) > 0 {
		code = s.runCommand(se, sess)
	} else {
		clampNote()
		code = s.runTUI(se, sess)
		clampNote() // a window change clamped during the session
	}
	if msg := se.stopped().message(s.cfg.IdleTimeout); msg != "" && len(info.Command) == 0 {
		fmt.Fprintf(stderr, "\n%s\n", msg)
	}
	_ = sess.Exit(code)
	if se.stopped() == stopStalled {
		se.cut() // its writes are stuck: drop the connection
	}
	var resizes uint64 // window changes received
	if feed := feedOf(sess.Context()); feed != nil {
		resizes = feed.count()
	}
	s.log.Info("ssh logout", append(attrs, "reason", se.stopped().String(),
		"duration", time.Since(info.Start).Round(time.Millisecond).String(),
		"bytes_out", se.bytesOut.Load(), "resizes", resizes, "resizes_applied", se.resizesApplied.Load(),
		"exit", code)...)
}

// runTUI runs the session's Bubble Tea program until the client leaves or
// the server ends the session. It returns the exit status.
func (s *Server) runTUI(se *session, sess ssh.Session) int {
	if _, _, ok := sess.Pty(); !ok {
		fmt.Fprintf(se.writer(sess.Stderr()), "conntop: no terminal: connect with ssh -t, or run a command: %s\n", commandUsage)
		return 2
	}
	model := s.cfg.NewModel(s.eng, se.info)

	// MakeOptions reads the session's Pty: safe, as window changes never
	// reach charm.land/ssh (see windowFeed); they come through watch.
	opts := append(bubbletea.MakeOptions(sess),
		tea.WithInput(inputReader{r: sess, se: se}),
		tea.WithOutput(se.writer(sess)),
		tea.WithContext(se.ctx),
		tea.WithoutSignalHandler(),
		tea.WithFPS(frameRate(s.cfg.Refresh)),
	)
	prog := tea.NewProgram(model, opts...)

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.watch(se, prog, feedOf(sess.Context()), done) })
	_, err := prog.Run()
	close(done)
	wg.Wait()
	if err != nil && se.stopped() == stopNone && se.ctx.Err() == nil {
		s.log.Warn("ssh session: program ended with an error", "session", se.info.ID, "error", err)
		return 1
	}
	return 0
}

// watch hands the session's window changes from feed to prog, at most one
// per frame (the latest): a client that sends thousands of them costs one
// resize a frame, not thousands. It ends the session when the client
// closes its channel (the connection may stay open).
func (s *Server) watch(se *session, prog *tea.Program, feed *windowFeed, done <-chan struct{}) {
	if feed == nil {
		<-done
		return
	}
	frame := time.NewTicker(s.cfg.Refresh)
	defer frame.Stop()
	for {
		select {
		case <-done:
			return
		case <-feed.closed:
			se.cancel()
			<-done
			return
		case <-frame.C:
			w, h, ok := feed.take()
			if !ok {
				continue
			}
			se.resizesApplied.Add(1)
			se.width.Store(int32(w))
			se.height.Store(int32(h))
			select {
			case <-done:
			default:
				prog.Send(tea.WindowSizeMsg{Width: w, Height: h})
			}
		}
	}
}

// reap ends sessions that have been idle too long (no input, in the TUI)
// and those whose writes have been stuck as long (a client that stopped
// reading, TUI or command), until ctx ends.
func (s *Server) reap(ctx context.Context) {
	idle := s.cfg.IdleTimeout
	if idle <= 0 {
		return
	}
	t := time.NewTicker(min(max(idle/10, 10*time.Millisecond), time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			live := make([]*session, 0, len(s.sessions))
			for _, se := range s.sessions {
				live = append(live, se)
			}
			s.mu.Unlock()
			for _, se := range live {
				switch {
				case se.writeBlockedFor(now) > idle:
					se.stop(stopStalled)
					se.cut()
				case len(se.info.Command) == 0 && se.idleFor(now) > idle:
					se.stop(stopIdle)
				}
			}
		}
	}
}
