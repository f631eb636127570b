//go:build linux

package conntrack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	errEPERM           = unix.EPERM
	errEPROTONOSUPPORT = unix.EPROTONOSUPPORT
)

// helperEnv makes the test binary act as a helper process (see TestMain).
const helperEnv = "CONNTOP_CONNTRACK_TEST_HELPER"

// TestMain lets the test binary run as a helper: with helperEnv=probe it
// probes the namespace named in argv's last word and prints what it got;
// used to test behaviour without CAP_NET_ADMIN.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "probe" {
		_, err := Probe(Options{NetNS: os.Getenv(helperEnv + "_NS")})
		fmt.Printf("err=%v\nErrPermission=%v\n", err, errors.Is(err, ErrPermission))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// dropCapsAndRun runs the test binary as a helper with CAP_NET_ADMIN removed
// from every capability set (setpriv), and returns its output.
func dropCapsAndRun(t *testing.T, mode, ns string) (string, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	out, err := runEnv(20*time.Second, []string{helperEnv + "=" + mode, helperEnv + "_NS=" + ns},
		"setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", "--", self, "-test.run=^$")
	return out, err
}

func runEnv(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = time.Second
	done := make(chan struct{})
	timer := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	close(done)
	return strings.TrimSpace(string(out)), err
}

func TestCheckLoaded(t *testing.T) {
	dir := t.TempDir()
	err := checkLoaded(dir)
	if !errors.Is(err, ErrNotLoaded) || !strings.Contains(err.Error(), "nf_conntrack module is not loaded") {
		t.Fatalf("checkLoaded(empty dir) = %v, want ErrNotLoaded", err)
	}
	if err := os.WriteFile(dir+"/nf_conntrack_max", []byte("1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkLoaded(dir); err != nil {
		t.Fatalf("checkLoaded = %v", err)
	}
}

var errAgain = unix.EAGAIN

func recvfromDontWait(fd int, b []byte) (int, unix.Sockaddr, error) {
	return unix.Recvfrom(fd, b, unix.MSG_DONTWAIT)
}
