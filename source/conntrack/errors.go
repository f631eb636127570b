//go:build linux

package conntrack

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Sentinel errors; test them with errors.Is. The wrapped errors carry a
// message that can be shown to the user as is.
var (
	// ErrPermission: the process lacks CAP_NET_ADMIN.
	ErrPermission = errors.New("permission denied")
	// ErrNotLoaded: the kernel has no conntrack (module not loaded or not
	// built).
	ErrNotLoaded = errors.New("conntrack not available")
	// ErrNotActive: conntrack exists but nothing in the namespace uses it, so
	// the table stays empty.
	ErrNotActive = errors.New("conntrack not active")
)

// EnableCommand is the one shell command that turns conntrack on in a
// network namespace (run it inside the namespace, e.g. with `ip netns exec`).
// One rule using `ct` registers the conntrack hooks for the family at every
// hook, so locally generated connections are tracked too.
const EnableCommand = `nft 'add table inet conntop; add chain inet conntop pre { type filter hook prerouting priority 0; }; add rule inet conntop pre ct state new'`

// Messages of the sentinel errors, written for the person running conntop.
const (
	msgPermission = "need CAP_NET_ADMIN to read the conntrack table over netlink (run as root, or grant it: setcap cap_net_admin+ep conntop)"
	msgNotLoaded  = "kernel conntrack is not available: the nf_conntrack module is not loaded (try `modprobe nf_conntrack nf_conntrack_netlink`), or use --source capture"
	msgNotActive  = "conntrack is not active in this network namespace: no firewall rule uses connection tracking, so the kernel keeps no table. Turn it on with:\n  " + EnableCommand + "\nor use --source capture"
)

// classError wraps a sentinel with a user-facing message and the cause.
type classError struct {
	sentinel error
	msg      string
	op       string
	cause    error
}

func (e *classError) Error() string {
	if e.cause == nil {
		return e.msg
	}
	return fmt.Sprintf("%s: %v: %s", e.op, e.cause, e.msg)
}

func (e *classError) Is(target error) bool { return target == e.sentinel }
func (e *classError) Unwrap() error        { return e.cause }

// classify turns a netlink/syscall error of operation op into an error that
// matches the right sentinel when it has a known cause; other errors are
// wrapped with op only.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *classError
	if errors.As(err, &ce) {
		return err
	}
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return &classError{sentinel: ErrPermission, msg: msgPermission, op: op, cause: err}
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT),
		errors.Is(err, unix.EOPNOTSUPP):
		return &classError{sentinel: ErrNotLoaded, msg: msgNotLoaded, op: op, cause: err}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// notActiveError returns the ErrNotActive error for namespace spec.
func notActiveError(spec string) error {
	msg := msgNotActive
	if spec != "" {
		msg = fmt.Sprintf("conntrack is not active in network namespace %q: no firewall rule uses connection tracking, so the kernel keeps no table. Turn it on with:\n  ip netns exec %s %s\nor use --source capture", spec, shellQuote(spec), EnableCommand)
	}
	return &classError{sentinel: ErrNotActive, msg: msg}
}

// notLoadedError returns ErrNotLoaded with the cause.
func notLoadedError(op string, cause error) error {
	return &classError{sentinel: ErrNotLoaded, msg: msgNotLoaded, op: op, cause: cause}
}

// shellQuote quotes s for a POSIX shell when it is not a plain word.
func shellQuote(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == '/' || r == ':') {
			out := "'"
			for _, c := range s {
				if c == '\'' {
					out += `'\''`
				} else {
					out += string(c)
				}
			}
			return out + "'"
		}
	}
	return s
}

// checkLoaded returns ErrNotLoaded when the conntrack sysctl directory dir
// (/proc/sys/net/netfilter) has no nf_conntrack_max, i.e. the kernel has no
// conntrack in this namespace.
func checkLoaded(dir string) error {
	if _, err := os.Stat(dir + "/nf_conntrack_max"); err != nil {
		return notLoadedError("find conntrack", err)
	}
	return nil
}
