package serve

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
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

	mu      sync.Mutex
	stamp   fileStamp
	keys    map[string]bool // key.Marshal() as string
	skipped []string        // why lines were skipped at the last read
	err     error           // the last read's error
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
func newAuthorizedKeys(path string) (*authorizedKeys, error) {
	a := &authorizedKeys{path: path}
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
		a.keys, a.stamp, a.err = nil, fileStamp{}, fmt.Errorf("authorized keys: %w", err)
		return
	}
	st := stampOf(fi)
	if st == a.stamp && a.err == nil {
		return
	}
	b, err := readLimited(a.path)
	if err != nil {
		a.keys, a.stamp, a.err = nil, fileStamp{}, fmt.Errorf("authorized keys: %w", err)
		return
	}
	a.keys, a.skipped = parseAuthorizedKeys(b)
	a.stamp, a.err = st, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxKeyFile)
	}
	return b, nil
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
