//go:build linux

package conntrack

import (
	"bufio"
	"context"
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
)

// netfilterSockets returns the port ids and multicast groups of the
// NETLINK_NETFILTER sockets in a namespace (/proc/net/netlink).
func netfilterSockets(t *testing.T, ns *labtest.NS) map[uint32]uint32 {
	t.Helper()
	out, err := ns.Output(5*time.Second, "cat", "/proc/net/netlink")
	if err != nil {
		t.Fatal(err)
	}
	socks := make(map[uint32]uint32)
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[1] != strconv.Itoa(unix.NETLINK_NETFILTER) {
			continue
		}
		pid, err1 := strconv.ParseUint(f[2], 10, 32)
		groups, err2 := strconv.ParseUint(f[3], 16, 32)
		if err1 == nil && err2 == nil && pid != 0 {
			socks[uint32(pid)] = uint32(groups)
		}
	}
	return socks
}

// TestForgedNetlinkDropped: a process in the watched namespace sends
// conntrack messages that look like the kernel's (a NEW event, an
// overrun) from its own netlink socket to the source's sockets. The source
// drops them, counts them in TableStats.ForeignMessages, and keeps
// reporting the kernel's events.
func TestForgedNetlinkDropped(t *testing.T) {
	labtest.RequireRoot(t)
	ns := labtest.NewNS(t, "forged")
	ns.EnableConntrack(t, labtest.Conntrack{})
	src := New(Options{NetNS: ns.Path, StatsInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan flow.Event, 4096)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	next := func(timeout time.Duration) (flow.Event, bool) {
		select {
		case ev := <-out:
			return ev, true
		case <-time.After(timeout):
			return flow.Event{}, false
		}
	}
	for {
		ev, ok := next(10 * time.Second)
		if !ok {
			t.Fatal("source never synced")
		}
		if ev.Type == flow.EventSynced {
			break
		}
	}
	targets := netfilterSockets(t, ns)
	if len(targets) < 3 {
		t.Fatalf("found %d netfilter netlink sockets in the namespace; want the source's 3: %v", len(targets), targets)
	}
	hasEvents := false
	for _, g := range targets {
		hasEvents = hasEvents || g&7 == 7 && g&(1<<(groupExpNew-1)|1<<(groupExpDestroy-1)) != 0
	}
	if !hasEvents {
		t.Fatalf("no socket subscribed to the conntrack event groups: %v", targets)
	}

	// The forgery: a NEW event for a flow that does not exist, and a
	// fake overrun, to every netfilter socket of the source.
	fake := flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoUDP, Timeout: 30,
		Status: flow.StatusConfirmed,
		Orig:   flow.Tuple{Src: netip.MustParseAddr("10.77.0.1"), Dst: netip.MustParseAddr("10.77.0.2"), SrcPort: 1234, DstPort: 4321}}
	fake.Reply = fake.Orig.Reverse(fake.Proto)
	newMsg := appendCreate(nil, 0, &fake)
	// A forged expectation NEW event too.
	c := expectCorpus()[0]
	expMsg := binary.NativeEndian.AppendUint32(nil, 0)
	expMsg = binary.NativeEndian.AppendUint16(expMsg, uint16(subsysCTExp)<<8|msgExpNew)
	expMsg = binary.NativeEndian.AppendUint16(expMsg, flagCreate|flagExcl)
	expMsg = append(expMsg, make([]byte, 8)...)
	expMsg = append(expMsg, buildExpectMessage(&c)...)
	binary.NativeEndian.PutUint32(expMsg, uint32(len(expMsg)))
	overrun := make([]byte, nlmsgHdrLen)
	overrun[0] = nlmsgHdrLen
	overrun[4] = nlmsgOverrun
	sent := 0
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		for pid := range targets {
			for _, msg := range [][]byte{newMsg, expMsg, overrun} {
				if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: pid}); err != nil {
					return err
				}
				sent++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send forged messages: %v", err)
	}

	// A real flow afterwards: the source still reports the kernel.
	if err := ns.SendUDP("127.0.0.1:5000", "127.0.0.1:5001", 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	// The event socket and the statistics socket read theirs at once; the
	// query socket when it next has a question for the kernel.
	want := uint64(sent - 3)
	var foreign uint64
	realSeen := false
	deadline := time.Now().Add(10 * time.Second)
	for (foreign < want || !realSeen) && time.Now().Before(deadline) {
		ev, ok := next(time.Until(deadline))
		if !ok {
			break
		}
		switch ev.Type {
		case flow.EventStats:
			foreign = ev.Stats.ForeignMessages
			if len(ev.Stats.Expectations) != 0 {
				t.Errorf("forged expectation listed: %+v", ev.Stats.Expectations)
			}
		case flow.EventResync:
			t.Errorf("a forged overrun made the source resync")
		case flow.EventNew, flow.EventUpdate:
			if ev.Flow.Orig.Src == fake.Orig.Src {
				t.Errorf("forged flow reported: %+v", ev.Flow)
			}
			if ev.Flow.Orig.DstPort == 5001 {
				realSeen = true
			}
		}
	}
	if foreign < want || foreign > uint64(sent) {
		t.Errorf("ForeignMessages = %d; want %d to %d of the %d datagrams sent", foreign, want, sent, sent)
	}
	if !realSeen {
		t.Error("the kernel's event for a real flow sent after the forgeries never came")
	}
}
