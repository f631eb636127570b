//go:build linux

package conntrack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/export"
	"github.com/conntop/conntop/internal/flow"

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
	switch os.Getenv(helperEnv) {
	case "probe":
		_, err := Probe(Options{NetNS: os.Getenv(helperEnv + "_NS")})
		fmt.Printf("err=%v\nErrPermission=%v\n", err, errors.Is(err, ErrPermission))
		os.Exit(0)
	case "fill":
		// Fill a namespace's table for measurements (see README numbers).
		n, _ := strconv.Atoi(os.Getenv(helperEnv + "_N"))
		refused, err := fillTable("/run/netns/"+os.Getenv(helperEnv+"_NS"), n)
		fmt.Fprintf(os.Stderr, "filled %d, refused %d, err %v\n", n-refused, refused, err)
		os.Exit(0)
	case "print":
		// Load the namespace's table through the Source and print it in
		// `conntrack -L` format: the "load and print" measurement.
		if err := loadAndPrint(os.Getenv(helperEnv+"_NS"), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
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

// loadAndPrint loads the table of namespace ns through a Source (until the
// initial EventSynced) and writes it with export.WriteText.
func loadAndPrint(ns string, w io.Writer) error {
	info, err := Probe(Options{NetNS: ns})
	if err != nil {
		return err
	}
	flows, err := load(Options{NetNS: ns, CountersInterval: -1, OneShot: true}, int(info.Count+info.Count/16))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	if err := export.WriteText(bw, flows); err != nil {
		return err
	}
	return bw.Flush()
}

// load runs a Source until its initial listing is complete and returns the
// flows; capacity pre-sizes the slice.
func load(opts Options, capacity int) ([]flow.Flow, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := make(chan flow.Event, 1024)
	done := make(chan error, 1)
	go func() { done <- New(opts).Run(ctx, evs) }()
	flows := make([]flow.Flow, 0, capacity)
	for {
		select {
		case ev := <-evs:
			switch ev.Type {
			case flow.EventNew:
				flows = append(flows, ev.Flow)
			case flow.EventSynced:
				cancel()
				for {
					select {
					case <-evs:
					case err := <-done:
						return flows, err
					}
				}
			}
		case err := <-done:
			return nil, fmt.Errorf("source stopped before the listing ended: %w", err)
		}
	}
}
