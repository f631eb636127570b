package serve

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/explain"
)

// Defaults for Config's zero values.
const (
	DefaultMaxSessions   = 16
	DefaultIdleTimeout   = 30 * time.Minute
	DefaultRefresh       = 250 * time.Millisecond
	DefaultShutdownGrace = 2 * time.Second
)

// SessionInfo describes one SSH session.
type SessionInfo struct {
	// ID numbers sessions from 1 in the order they started.
	ID uint64
	// User is the SSH user name the client asked for (client-chosen text:
	// escape it before printing it to a terminal).
	User string
	// Fingerprint is the SHA256 fingerprint of the client's public key.
	Fingerprint string
	// Remote is the client's address.
	Remote string
	// Command is the command the client asked to run (empty for the TUI).
	Command []string
	// Term, Width and Height describe the client's terminal (TUI sessions).
	Term          string
	Width, Height int
	// Start is when the session began.
	Start time.Time
	// BytesOut counts the bytes written to the client so far.
	BytesOut uint64
}

// ModelFactory returns the Bubble Tea model of a new SSH session. The model
// must be read-only (tui.Options{ReadOnly: true}): it must not delete flows
// nor write files on the server.
type ModelFactory func(eng *engine.Engine, s SessionInfo) tea.Model

// Config configures Run.
type Config struct {
	// SSHAddr is the SSH listen address ("" disables SSH).
	SSHAddr string
	// AuthorizedKeys is the file of public keys allowed in (default: the
	// running user's ~/.ssh/authorized_keys). It is re-read when it changes.
	AuthorizedKeys string
	// HostKey is the server's private host key file, created (ed25519, mode
	// 0600) if missing (default: <user config dir>/conntop/ssh_host_ed25519_key).
	HostKey string
	// MaxSessions bounds concurrent SSH sessions (default 16); twice as
	// many authenticated connections are allowed.
	MaxSessions int
	// IdleTimeout disconnects a TUI session that sent no input for this
	// long, and any session whose client read nothing for this long
	// (default 30 minutes; negative disables).
	IdleTimeout time.Duration
	// HandshakeTimeout bounds an SSH connection's handshake and
	// authentication (default 10s).
	HandshakeTimeout time.Duration
	// MaxUnauthenticated bounds the connections not authenticated yet
	// (default 64, lowered when RLIMIT_NOFILE is small);
	// MaxUnauthenticatedPerSource bounds them per source address
	// (default 8).
	MaxUnauthenticated, MaxUnauthenticatedPerSource int
	// MetricsAddr is the HTTP listen address of /metrics and /healthz (""
	// disables metrics).
	MetricsAddr string
	// CellBudget bounds the terminal cells all TUI sessions together are
	// drawn with (default DefaultCellBudget; see budget.go): a new or
	// resized session gets what is left, at least MinColumns×MinRows, and
	// is told.
	CellBudget int
	// Refresh is the viewers' redraw interval (default 250ms): an idle
	// viewer receives at most one frame a refresh, and a session's window
	// changes are applied at most once a refresh.
	Refresh time.Duration
	// ShutdownGrace is how long sessions get to end after they are told the
	// server stops, before their connections are closed (default 2s).
	ShutdownGrace time.Duration
	// Logger receives login, logout and error records (default slog.Default()).
	Logger *slog.Logger
	// NewModel builds each TUI session's model (required with SSHAddr).
	NewModel ModelFactory
	// Explain reads the settings behind the `explain` command (what
	// governs the table); without it explain works from the flows alone.
	Explain explain.Hooks
}

// withDefaults returns cfg with its zero values replaced by defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.SSHAddr == "" && cfg.MetricsAddr == "" {
		return cfg, errors.New("serve: nothing to serve: give an SSH address, a metrics address or both")
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxUnauthenticated <= 0 {
		cfg.MaxUnauthenticated = DefaultMaxUnauthenticated
	}
	if cfg.MaxUnauthenticatedPerSource <= 0 {
		cfg.MaxUnauthenticatedPerSource = DefaultMaxUnauthenticatedPerSource
	}
	if cfg.CellBudget <= 0 {
		cfg.CellBudget = DefaultCellBudget
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SSHAddr == "" {
		return cfg, nil
	}
	if cfg.NewModel == nil {
		return cfg, errors.New("serve: no TUI model factory for SSH sessions")
	}
	if cfg.AuthorizedKeys == "" {
		home, err := homeDir()
		if err != nil {
			return cfg, fmt.Errorf("serve: default authorized keys: %w", err)
		}
		cfg.AuthorizedKeys = filepath.Join(home, ".ssh", "authorized_keys")
	}
	if cfg.HostKey == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return cfg, fmt.Errorf("serve: default host key: %w", err)
		}
		cfg.HostKey = filepath.Join(dir, "conntop", "ssh_host_ed25519_key")
	}
	return cfg, nil
}

// homeDir returns the running user's home directory (from the user
// database, not $HOME, which sudo may keep).
func homeDir() (string, error) {
	u, err := user.Current()
	if err == nil && u.HomeDir != "" {
		return u.HomeDir, nil
	}
	home, herr := os.UserHomeDir()
	if herr != nil {
		return "", fmt.Errorf("find home directory: %w", errors.Join(err, herr))
	}
	return home, nil
}

// keyFrameRate is the least frame rate of a session's renderer. Bubble
// Tea sends a new view only on its renderer's frame ticks, so a key's
// answer waits for the next one: 30 a second keep that under 34 ms
// (4 a second, the refresh's own rate, left a key up to 250 ms behind).
// A viewer receives no more frames for it: its view changes only on its
// refresh tick or on input, and a renderer's tick sends nothing when the
// view is the one it sent last (it only compares them).
const keyFrameRate = 30

// frameRate is the renderer's frame rate for the refresh interval: the
// refresh's own rate, at least keyFrameRate, at most 60.
func frameRate(refresh time.Duration) int {
	f := int((time.Second + refresh - 1) / refresh)
	return min(max(f, keyFrameRate), 60)
}
