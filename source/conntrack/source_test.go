//go:build linux

package conntrack

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
	"github.com/conntop/conntop/internal/netns"
	"github.com/google/go-cmp/cmp"
)

// TestSnapshotMatchesKernel: after real TCP, UDP, ICMP and FTP traffic, the
// source's table equals /proc/net/nf_conntrack entry for entry (with
// counters, accounting on), and the FTP data connection is RELATED with the
// control connection as master.
func TestSnapshotMatchesKernel(t *testing.T) {
	l := newLab(t)
	l.srv.Sysctl(t, "net.netfilter.nf_conntrack_acct", "1")
	ctl := l.traffic(t)

	r := startSource(t, Options{NetNS: l.srv.Name, CountersInterval: -1})
	r.until(10*time.Second, "initial sync", func(tb *table) bool { return tb.synced == 1 })
	r.until(5*time.Second, "stats", func(tb *table) bool { return tb.stats != nil })
	r.drain(200 * time.Millisecond)

	want := sortedStrings(kernelTable(t, l.srv))
	got := sortedStrings(r.tb.entries(true))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("table differs from /proc/net/nf_conntrack (-kernel +source):\n%s", diff)
	}
	if len(got) < 7 {
		t.Fatalf("only %d entries:\n%s", len(got), strings.Join(got, "\n"))
	}
	var related, control int
	for _, f := range r.tb.flows {
		switch {
		case f.State() == flow.StateRelated:
			related++
			if f.Master == nil || *f.Master != ctl {
				t.Errorf("RELATED flow %v: master %v, want %v", f.Orig, f.Master, ctl)
			}
		case f.Orig == ctl:
			control++
			if f.Helper != "ftp" {
				t.Errorf("FTP control flow helper %q, want ftp", f.Helper)
			}
		case f.Master != nil:
			t.Errorf("non-RELATED flow %v has master %v", f.Orig, f.Master)
		}
		if f.ID == 0 || f.Timeout == 0 || f.Status&flow.StatusConfirmed == 0 {
			t.Errorf("flow %v: id %d timeout %d status %v", f.Orig, f.ID, f.Timeout, f.Status)
		}
	}
	if related != 1 || control != 1 {
		t.Errorf("got %d RELATED and %d FTP control flows, want 1 and 1", related, control)
	}
	st := r.tb.stats
	if st.Count != uint64(len(want)) || st.Max == 0 || !st.Accounting || !st.HasClashResolve {
		t.Errorf("stats: %+v (want count %d, max > 0, accounting)", st, len(want))
	}
}

// TestTCPEvents follows one TCP connection through its events.
func TestTCPEvents(t *testing.T) {
	l := newLab(t)
	l.srv.Sysctl(t, "net.netfilter.nf_conntrack_tcp_timeout_time_wait", "1")
	r := startSource(t, Options{NetNS: l.srv.Path})
	r.tb.keepLog = true
	r.until(10*time.Second, "initial sync", func(tb *table) bool { return tb.synced == 1 })

	ln := l.srv.ServeEcho(t, "tcp", l.link.A4+":9000")
	c, err := l.cli.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := labtest.Echo(c, "hello"); err != nil {
		t.Fatal(err)
	}
	c.Close() // client closes first: the server side sees FIN first.
	var key flow.Key
	r.until(10*time.Second, "TIME_WAIT", func(tb *table) bool {
		for k, h := range tb.history {
			if k.Orig.DstPort == 9000 && h[len(h)-1].Flow.TCPState == flow.TCPTimeWait {
				key = k
				return true
			}
		}
		return false
	})
	// With the TIME_WAIT timeout at 1 s the entry expires, but the kernel
	// removes (and reports) expired entries only when its garbage collector
	// or a lookup finds them, which may take long on an idle table. A read
	// of /proc/net/nf_conntrack kills expired entries it meets.
	r.until(20*time.Second, "destroy", func(tb *table) bool {
		if _, err := l.srv.Exec("cat", "/proc/net/nf_conntrack"); err != nil {
			t.Fatal(err)
		}
		h := tb.history[key]
		return h[len(h)-1].Type == flow.EventDestroy
	})
	var seq []string
	for _, ev := range r.tb.history[key] {
		s := ev.Type.String()
		if ev.Type != flow.EventDestroy {
			s += ":" + ev.Flow.TCPState.String()
		}
		if len(seq) == 0 || seq[len(seq)-1] != s {
			seq = append(seq, s)
		}
	}
	got := strings.Join(seq, " ")
	want := "new:SYN_SENT update:SYN_RECV update:ESTABLISHED update:FIN_WAIT update:LAST_ACK update:TIME_WAIT destroy"
	if got != want {
		// The closing states depend on who closes first; the life-cycle
		// must still run SYN_SENT → SYN_RECV → ESTABLISHED → … → TIME_WAIT → destroy.
		if !strings.HasPrefix(got, "new:SYN_SENT update:SYN_RECV update:ESTABLISHED ") ||
			!strings.HasSuffix(got, " update:TIME_WAIT destroy") {
			t.Fatalf("events: %s\nwant:   %s", got, want)
		}
		t.Logf("events: %s", got)
	}
}

// TestNetNSSpecs: watching by name, path, pid:PID and from inside the
// namespace gives the same table.
func TestNetNSSpecs(t *testing.T) {
	l := newLab(t)
	l.traffic(t)
	out, err := l.srv.Exec("sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!")
	if err != nil {
		t.Fatal(err, out)
	}
	pid := strings.TrimSpace(out)
	t.Cleanup(func() { labtest.Run(labtest.DefaultTimeout, nil, "kill", pid) })

	snap := func(t *testing.T, opts Options, inside bool) []string {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		evs := make(chan flow.Event, 1024)
		done := make(chan error, 1)
		run := func() error { return New(opts).Run(ctx, evs) }
		if inside {
			// The sockets are made while the goroutine is inside; Run's
			// other goroutines only use them.
			go func() { done <- l.srv.Do(run) }()
		} else {
			go func() { done <- run() }()
		}
		tb := newTable()
		for tb.synced == 0 {
			select {
			case ev := <-evs:
				tb.apply(ev)
			case err := <-done:
				t.Fatalf("Run: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("no sync")
			}
		}
		cancel()
		go func() {
			for range evs {
			}
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return sortedStrings(tb.entries(false))
	}
	base := snap(t, Options{}, true)
	if len(base) < 7 {
		t.Fatalf("only %d entries inside the namespace", len(base))
	}
	for _, spec := range []string{l.srv.Name, l.srv.Path, "pid:" + pid} {
		t.Run(spec, func(t *testing.T) {
			if diff := cmp.Diff(base, snap(t, Options{NetNS: spec}, false)); diff != "" {
				t.Errorf("--netns %s differs from running inside (-inside +netns):\n%s", spec, diff)
			}
		})
	}
}

// TestErrors covers every start-up error.
func TestErrors(t *testing.T) {
	labtest.RequireRoot(t)
	empty := labtest.NewNS(t, "ctsrc")
	run := func(opts Options) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return New(opts).Run(ctx, make(chan flow.Event, 64))
	}
	t.Run("not active", func(t *testing.T) {
		err := run(Options{NetNS: empty.Name})
		if !errors.Is(err, ErrNotActive) {
			t.Fatalf("Run = %v, want ErrNotActive", err)
		}
		for _, w := range []string{"not active", "ip netns exec " + empty.Name + " nft 'add table inet conntop;"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("message %q lacks %q", err, w)
			}
		}
		info, err := Probe(Options{NetNS: empty.Name})
		if err != nil || info.Active || info.Max == 0 {
			t.Fatalf("Probe = %+v, %v; want inactive with max", info, err)
		}
		// The printed command turns it on: the table is still empty, but
		// Probe now sees the rule.
		cmd := strings.TrimPrefix(EnableCommand, "nft ")
		if out, err := empty.Exec("nft", strings.Trim(cmd, "'")); err != nil {
			t.Fatalf("EnableCommand: %v: %s", err, out)
		}
		info, err = Probe(Options{NetNS: empty.Name})
		if err != nil || !info.Active || info.Count != 0 {
			t.Fatalf("after EnableCommand: Probe = %+v, %v; want active, empty", info, err)
		}
		// AllowInactive starts anyway.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		evs := make(chan flow.Event, 16)
		done := make(chan error, 1)
		go func() { done <- New(Options{NetNS: empty.Name}).Run(ctx, evs) }()
		select {
		case ev := <-evs:
			if ev.Type == flow.EventStats { // the table's figures come first
				ev = <-evs
			}
			if ev.Type != flow.EventSynced {
				t.Errorf("first event after the stats %v, want synced", ev.Type)
			}
		case err := <-done:
			t.Fatalf("Run: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no sync")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("missing namespace", func(t *testing.T) {
		err := run(Options{NetNS: "ct-conntrack-missing-ns"})
		if !errors.Is(err, netns.ErrNotFound) || !strings.Contains(err.Error(), `network namespace "ct-conntrack-missing-ns" not found`) {
			t.Fatalf("Run = %v, want netns.ErrNotFound", err)
		}
		if _, err := Probe(Options{NetNS: "pid:999999999"}); !errors.Is(err, netns.ErrNotFound) {
			t.Fatalf("Probe = %v, want netns.ErrNotFound", err)
		}
	})
	t.Run("no permission", func(t *testing.T) {
		// A helper process without CAP_NET_ADMIN (see TestMain).
		out, err := dropCapsAndRun(t, "probe", empty.Name)
		if err != nil {
			t.Fatalf("helper: %v: %s", err, out)
		}
		if !strings.Contains(out, "ErrPermission=true") || !strings.Contains(out, "need CAP_NET_ADMIN") {
			t.Fatalf("helper output:\n%s", out)
		}
	})
}

// TestClassify maps kernel errors to the sentinels.
func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"eperm", os.NewSyscallError("socket", errEPERM), ErrPermission},
		{"eprotonosupport", errEPROTONOSUPPORT, ErrNotLoaded},
		{"other", errors.New("x"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify("op", tt.err)
			for _, s := range []error{ErrPermission, ErrNotLoaded, ErrNotActive} {
				if errors.Is(err, s) != (s == tt.want) {
					t.Errorf("classify(%v) = %v; errors.Is(%v) = %v", tt.err, err, s, !(s == tt.want))
				}
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("classify lost the cause: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "op: ") {
				t.Errorf("message %q lacks the operation", err)
			}
		})
	}
}

// TestDelete deletes a live entry through the Source and sees its DESTROY.
// The entry predates the source's event subscription, so the kernel sends
// no event for it: the DESTROY comes from the periodic reconciliation.
func TestDelete(t *testing.T) {
	l := newLab(t)
	if err := l.cli.SendUDP(l.link.B4+":7000", l.link.A4+":7001", 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	src := New(Options{NetNS: l.srv.Name})
	r := startSource(t, Options{NetNS: l.srv.Name})
	r.until(10*time.Second, "initial sync", func(tb *table) bool { return tb.synced == 1 })
	var victim flow.Flow
	for _, f := range r.tb.flows {
		if f.Orig.DstPort == 7001 {
			victim = f
		}
	}
	if victim.Orig.DstPort != 7001 {
		t.Fatalf("no UDP flow to port 7001 in %d flows", len(r.tb.flows))
	}
	n, err := src.Delete(context.Background(), []flow.Flow{victim, victim})
	if err != nil || n != 1 {
		t.Fatalf("Delete = %d, %v; want 1 (the second is already gone)", n, err)
	}
	r.until(5*time.Second, "destroy", func(tb *table) bool { _, ok := tb.flows[victim.Key()]; return !ok })
	if out := l.srv.MustExec(t, "cat", "/proc/net/nf_conntrack"); strings.Contains(out, "dport=7001") {
		t.Errorf("entry still in the kernel table:\n%s", out)
	}
}

// TestCounters: with accounting on, periodic polls bring the counters of
// flows that changed, matching the kernel's.
func TestCounters(t *testing.T) {
	l := newLab(t)
	l.srv.Sysctl(t, "net.netfilter.nf_conntrack_acct", "1")
	r := startSource(t, Options{NetNS: l.srv.Name, CountersInterval: 100 * time.Millisecond, StatsInterval: 100 * time.Millisecond})
	r.until(10*time.Second, "initial sync", func(tb *table) bool { return tb.synced == 1 })
	if err := l.cli.SendUDP(l.link.B4+":7100", l.link.A4+":7101", 5, []byte("12345678")); err != nil {
		t.Fatal(err)
	}
	var k flow.Key
	r.until(10*time.Second, "counters of 5 packets", func(tb *table) bool {
		for key, f := range tb.flows {
			if f.Orig.DstPort == 7101 && f.HasCounters && f.Counters.OrigPackets == 5 {
				k = key
				return true
			}
		}
		return false
	})
	got := r.tb.flows[k].Counters
	if got.OrigBytes != 5*(20+8+8) {
		t.Errorf("counters %+v, want 5 packets of 36 bytes", got)
	}
	if err := l.cli.SendUDP(l.link.B4+":7100", l.link.A4+":7101", 2, []byte("12345678")); err != nil {
		t.Fatal(err)
	}
	// The next poll may be up to pollSpacing times the last dump's duration
	// away, and a dump walks the kernel's global conntrack hash, entries of
	// every namespace included: ~200 ms here while other tests hold big
	// tables, so up to ~16 s.
	r.until(40*time.Second, "counters of 7 packets", func(tb *table) bool { return tb.flows[k].Counters.OrigPackets == 7 })
}
