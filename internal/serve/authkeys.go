package serve

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// harmlessOptions are the authorized_keys options a key may carry and still
// be accepted: they only take away what conntop never offers anyway
// (forwarding, agent, X11, user rc). A key with any other option (from=,
// command=, expiry-time=, permitopen=, cert-authority, …) is skipped,
// because conntop does not enforce those restrictions.
// Option names are compared in lower case, as sshd does.
var harmlessOptions = map[string]bool{
	"restrict": true, "no-port-forwarding": true, "no-agent-forwarding": true,
	"no-x11-forwarding": true, "no-user-rc": true,
}

// authorizedKeys is the set of keys in an authorized_keys file, re-read
// whenever the file's size, modification time or inode change.
type authorizedKeys struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	stamp   fileStamp
	keys    map[string]bool // key.Marshal() as string
	skipped []string        // why lines were skipped at the last read
	err     error           // the last read's error
	logged  string          // the last error logged
}

type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
	ok    bool
}

func stampOf(fi os.FileInfo) fileStamp {
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime(), ok: true}
	if sys, ok := fi.Sys().(interface{ Ino() uint64 }); ok {
		s.ino = sys.Ino()
	}
	return s
}

// newAuthorizedKeys reads path. It fails when the file cannot be read or
// holds no usable key, so that `conntop serve` stops with a clear message
// rather than serving nobody.
func newAuthorizedKeys(path string, log *slog.Logger) (*authorizedKeys, error) {
	a := &authorizedKeys{path: path, log: log}
	a.refresh()
	if a.err != nil {
		return nil, a.err
	}
	if len(a.keys) == 0 {
		return nil, fmt.Errorf("authorized keys %s: no usable public key", path)
	}
	return a, nil
}

// allowed reports whether key is authorized, re-reading the file first if
// it changed. If the file has become unreadable no key is allowed.
func (a *authorizedKeys) allowed(key gossh.PublicKey) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refreshLocked()
	return a.keys[string(key.Marshal())]
}

// refresh re-reads the file if it changed.
func (a *authorizedKeys) refresh() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refreshLocked()
}

func (a *authorizedKeys) refreshLocked() {
	fi, err := os.Stat(a.path)
	if err != nil {
		a.fail(fmt.Errorf("authorized keys: %w", err))
		return
	}
	st := stampOf(fi)
	if st == a.stamp && a.err == nil {
		return
	}
	b, err := readKeyFile(a.path, "authorized keys", 0o022)
	if err != nil {
		a.fail(err)
		return
	}
	reload := a.stamp.ok
	a.keys, a.skipped = parseAuthorizedKeys(b)
	a.stamp, a.err, a.logged = st, nil, ""
	for _, note := range a.skipped {
		a.log.Warn("authorized keys: line skipped", "file", a.path, "why", note)
	}
	msg := "authorized keys read"
	if reload {
		msg = "authorized keys re-read"
	}
	a.log.Info(msg, "file", a.path, "keys", len(a.keys), "skipped", len(a.skipped))
}

// fail drops every key after err (logged once while it stays the same).
func (a *authorizedKeys) fail(err error) {
	a.keys, a.stamp, a.err = nil, fileStamp{}, err
	if msg := err.Error(); msg != a.logged {
		a.logged = msg
		a.log.Error("authorized keys refused: no key is accepted until the file is fixed", "file", a.path, "error", msg)
	}
}

// readKeyFile reads a key file of at most maxKeyFile bytes after checking
// it as sshd's StrictModes does: a regular file, owned by root or by the
// user conntop runs as, and with none of the mode bits in forbidden (say,
// 0o022: writable by group or others). what names the file in errors.
func readKeyFile(path, what string, forbidden os.FileMode) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	if perm := fi.Mode().Perm(); perm&forbidden != 0 {
		return nil, fmt.Errorf("%s %s has mode %04o, open to others (as sshd's StrictModes, conntop refuses it): run chmod %s on it",
			what, path, perm, modeFix(forbidden))
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 && int(sys.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%s %s is owned by uid %d, neither root nor the user conntop runs as (uid %d): refusing it",
			what, path, sys.Uid, os.Geteuid())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s %s is larger than %d bytes", what, path, maxKeyFile)
	}
	return b, nil
}

// modeFix is the chmod argument that clears the forbidden bits.
func modeFix(forbidden os.FileMode) string {
	if forbidden&0o004 != 0 {
		return "600"
	}
	return "go-w"
}

// parseAuthorizedKeys returns the usable keys of an authorized_keys file and
// a note for each line skipped.
func parseAuthorizedKeys(b []byte) (keys map[string]bool, skipped []string) {
	keys = make(map[string]bool)
	for n, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		key, _, opts, _, err := gossh.ParseAuthorizedKey(line)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("line %d: %v", n+1, err))
			continue
		}
		if bad := unsupportedOption(opts); bad != "" {
			skipped = append(skipped, fmt.Sprintf("line %d: option %q is not supported by conntop", n+1, bad))
			continue
		}
		keys[string(key.Marshal())] = true
	}
	return keys, skipped
}

// unsupportedOption returns the first option conntop cannot honour, or "".
func unsupportedOption(opts []string) string {
	for _, o := range opts {
		if !harmlessOptions[strings.ToLower(o)] {
			return o
		}
	}
	return ""
}
