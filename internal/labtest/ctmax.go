//go:build linux

package labtest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// ctMaxPath is the machine-wide conntrack limit: nf_conntrack_max is
// writable in the initial namespace only and applies to every namespace's
// count.
const ctMaxPath = "/proc/sys/net/netfilter/nf_conntrack_max"

// ctMaxLock is the lock file that serialises tests (across packages and
// processes, which `go test ./...` runs in parallel) that change
// nf_conntrack_max against tests that depend on it.
const ctMaxLock = "/run/conntop-lab-ctmax.lock"

// HoldConntrackMax takes the machine-wide nf_conntrack_max lock until the
// test ends: shared (exclusive false) by a test that depends on the limit
// staying what it read (say, one that fills a table to the limit),
// exclusive by one that changes it (SetConntrackMax takes it itself).
func HoldConntrackMax(t testing.TB, exclusive bool) {
	t.Helper()
	RequireRoot(t)
	f, err := os.OpenFile(ctMaxLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("open %s: %v", ctMaxLock, err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", ctMaxLock, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// ConntrackMax returns the machine-wide nf_conntrack_max.
func ConntrackMax(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(ctMaxPath)
	if err != nil {
		t.Fatalf("read %s: %v", ctMaxPath, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("parse %s: %v", ctMaxPath, err)
	}
	return n
}

// SetConntrackMax takes the nf_conntrack_max lock exclusively, sets the
// limit to n for the rest of the test and restores the old value at
// cleanup.
func SetConntrackMax(t testing.TB, n int) {
	t.Helper()
	HoldConntrackMax(t, true)
	old := ConntrackMax(t)
	if err := writeCtMax(n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := writeCtMax(old); err != nil {
			t.Errorf("restore nf_conntrack_max: %v", err)
		}
	})
}

func writeCtMax(n int) error {
	if err := os.WriteFile(ctMaxPath, []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		return fmt.Errorf("set nf_conntrack_max to %d: %w", n, err)
	}
	return nil
}
