//go:build linux

// Package netns resolves a network-namespace specification (--netns
// NAME|PATH|pid:PID) and runs code inside that namespace on a locked OS
// thread, so that sockets created there belong to it.
package netns

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotFound is returned (wrapped) when the namespace a spec names does not
// exist.
var ErrNotFound = errors.New("network namespace not found")

// notFoundError carries the spec and the underlying cause; it matches
// ErrNotFound with errors.Is.
type notFoundError struct {
	spec, path string
	err        error
}

func (e *notFoundError) Error() string {
	return fmt.Sprintf("network namespace %q not found: %s: %v", e.spec, e.path, e.err)
}

func (e *notFoundError) Is(target error) bool { return target == ErrNotFound }
func (e *notFoundError) Unwrap() error        { return e.err }

// Resolve turns a spec into the path of a namespace file: "" gives "" (the
// current namespace); "pid:PID" gives /proc/PID/ns/net; a spec containing a
// "/" is a path used as is; anything else is a name under /run/netns. The
// returned path is checked to exist and be a network namespace; otherwise the
// error wraps ErrNotFound.
func Resolve(spec string) (string, error) {
	if spec == "" {
		return "", nil
	}
	var path string
	switch {
	case strings.HasPrefix(spec, "pid:"):
		pid, err := strconv.ParseUint(strings.TrimPrefix(spec, "pid:"), 10, 31)
		if err != nil || pid == 0 {
			return "", &notFoundError{spec: spec, path: spec, err: errors.New("PID must be a positive number")}
		}
		path = "/proc/" + strconv.FormatUint(pid, 10) + "/ns/net"
	case strings.Contains(spec, "/"):
		path = spec
	default:
		if spec == "." || spec == ".." {
			return "", &notFoundError{spec: spec, path: spec, err: errors.New("not a namespace name")}
		}
		path = "/run/netns/" + spec
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return "", &notFoundError{spec: spec, path: path, err: err}
		}
		return "", fmt.Errorf("open network namespace %q (%s): %w", spec, path, err)
	}
	defer closeFD(fd)
	if err := checkNetNS(fd); err != nil {
		return "", &notFoundError{spec: spec, path: path, err: err}
	}
	return path, nil
}

// checkNetNS verifies that fd refers to a network namespace (nsfs inode of
// type CLONE_NEWNET).
func checkNetNS(fd int) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return errors.New("not a namespace file (mount it with `ip netns add` or use pid:PID)")
	}
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err == nil && typ != unix.CLONE_NEWNET {
		return errors.New("not a network namespace")
	}
	return nil
}

// Do runs fn inside the network namespace named by spec ("" runs fn in the
// current namespace) on a locked OS thread, then switches the thread back.
// fn runs on its own goroutine; goroutines it starts do not inherit the
// namespace. Sockets fn creates stay in that namespace after Do returns. If switching
// back fails, the thread is left locked so that the Go runtime discards it
// instead of reusing it in the wrong namespace.
func Do(spec string, fn func() error) error {
	path, err := Resolve(spec)
	if err != nil {
		return err
	}
	return DoPath(path, fn)
}

// DoPath is Do for an already resolved namespace path ("" = current).
func DoPath(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer closeFD(target)

	errc := make(chan error, 1)
	// A fresh goroutine: its thread is thrown away if restoring fails, and
	// the caller's goroutine never changes namespace.
	go func() {
		runtime.LockOSThread()
		restored := false
		defer func() {
			if restored {
				runtime.UnlockOSThread()
			}
		}()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			restored = true
			errc <- fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer closeFD(self)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			restored = true
			if errors.Is(err, unix.EPERM) {
				errc <- fmt.Errorf("enter network namespace %s: %w (need CAP_SYS_ADMIN)", path, err)
				return
			}
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return from network namespace %s: %w", path, err))
			return
		}
		restored = true
		errc <- ferr
	}()
	return <-errc
}

// Current returns the inode number identifying the network namespace of the
// calling thread (useful to compare namespaces in tests and logs).
func Current() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("stat current network namespace: %w", err)
	}
	return st.Ino, nil
}

// Inode returns the inode number of the namespace named by spec.
func Inode(spec string) (uint64, error) {
	path, err := Resolve(spec)
	if err != nil {
		return 0, err
	}
	if path == "" {
		return Current()
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat network namespace %s: %w", path, err)
	}
	return st.Ino, nil
}

// closeFD closes a namespace file descriptor opened read-only; such a close
// cannot fail in a way that matters.
func closeFD(fd int) { _ = unix.Close(fd) }
