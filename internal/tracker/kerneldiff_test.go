//go:build linux

package tracker

// The kernel-oracle harness: Ethernet frames are replayed into the real
// kernel exactly like the recorded oracle (testdata/kernel-oracle/README.md)
// and into the tracker, and the two tables and invalid/error statistics are
// compared.
//
// Topology: namespace "inj" holds one end of a veth pair, and an AF_PACKET
// socket bound to it injects the frames; the other end sits in namespace
// "router", which has no addresses, forwards everything (ip_forward,
// IPv6 forwarding, rp_filter off) to a veth "sink" whose peer namespace
// drops everything, tracks connections (an nft table with `ct state`
// counters at prerouting and the ftp helper on tcp/21) with the oracle's
// sysctls, and drops every locally generated packet at output before
// conntrack sees it (ICMP errors the router might send).
//
// The tracker gets each frame with the time it was actually sent, so both
// sides see the same clock even when gaps are compressed.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/conntop/conntop/internal/decode"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
	"github.com/conntop/conntop/source/conntrack/conntracktest"
)

// routerMAC is the MAC of the router's veth end; the replay captures are
// addressed to it.
var routerMAC = [6]byte{0x02, 0x00, 0x00, 0x6b, 0x6f, 0x01}

// injMAC is the MAC of the injecting end (the frames' source MAC is theirs).
var injMAC = [6]byte{0x02, 0x00, 0x00, 0x6b, 0x6f, 0x02}

// kframe is one Ethernet frame of a scenario and its time offset.
type kframe struct {
	at   time.Duration
	data []byte
}

// kernelLab is a router namespace fed by an AF_PACKET socket.
type kernelLab struct {
	inj, router *labtest.NS
	fd          int
	ct          *ct.Conn
	nft         *netlink.Conn
	mu          sync.Mutex
}

// oracleSysctls are the kernel settings of the recorded oracle (per
// network namespace).
var oracleSysctls = [][2]string{
	{"net.netfilter.nf_conntrack_acct", "1"},
	{"net.netfilter.nf_conntrack_checksum", "1"},
	{"net.netfilter.nf_conntrack_tcp_loose", "1"},
	{"net.netfilter.nf_conntrack_tcp_be_liberal", "0"},
	{"net.netfilter.nf_conntrack_tcp_ignore_invalid_rst", "0"},
	{"net.netfilter.nf_conntrack_tcp_max_retrans", "3"},
	{"net.ipv4.ip_forward", "1"},
	{"net.ipv6.conf.all.forwarding", "1"},
	{"net.ipv4.conf.all.rp_filter", "0"},
	{"net.ipv4.conf.default.rp_filter", "0"},
	{"net.ipv4.conf.rin.rp_filter", "0"},
}

// routerRuleset is the oracle's ruleset: the ftp helper on tcp/21 and a
// named counter per ct state at prerouting (pre_new … pre_untracked, as
// the recorded oracle's nft_counters).
func routerRuleset() string {
	objs, rules := verdictCounterRules()
	return `table inet ko_oracle {
	ct helper ftp-standard {
		type "ftp" protocol tcp
	}
` + objs + `	chain pre {
		type filter hook prerouting priority 0; policy accept;
		tcp dport 21 ct helper set "ftp-standard"
` + rules + `	}
	chain out {
		type filter hook output priority -400; policy drop;
	}
}
`
}

// newKernelLab builds the topology. It needs root (fails under CI=true
// without it).
func newKernelLab(t testing.TB) *kernelLab {
	t.Helper()
	labtest.RequireRoot(t)
	if _, err := os.Stat("/proc/sys/net/netfilter"); err != nil {
		if labtest.InCI() {
			t.Fatalf("nf_conntrack is not loaded: %v", err)
		}
		t.Skipf("skipping: nf_conntrack is not loaded: %v", err)
	}
	l := &kernelLab{inj: labtest.NewNS(t, "kdinj"), router: labtest.NewNS(t, "kdrt"), fd: -1}
	r := l.router
	if out, err := labtest.Run(labtest.DefaultTimeout, nil, "ip", "-n", l.inj.Name, "link", "add", "src0",
		"address", net.HardwareAddr(injMAC[:]).String(), "type", "veth", "peer", "name", "rin",
		"address", net.HardwareAddr(routerMAC[:]).String(), "netns", r.Name); err != nil {
		t.Fatalf("create veth: %v: %s", err, out)
	}
	l.inj.Sysctl(t, "net.ipv6.conf.src0.disable_ipv6", "1")
	// Jumbo MTUs everywhere: the captures hold frames of offloaded
	// segments, and a forwarded packet above the way out's MTU would be
	// dropped before conntrack confirms its entry.
	l.inj.MustExec(t, "ip", "link", "set", "src0", "mtu", "65535", "up")
	// The way out: a veth whose peer sits in a third namespace that has no
	// conntrack and no forwarding, so everything sent there is dropped.
	sinkNS := labtest.NewNS(t, "kdsink")
	if out, err := labtest.Run(labtest.DefaultTimeout, nil, "ip", "-n", r.Name, "link", "add", "sink",
		"type", "veth", "peer", "name", "sinkpeer", "netns", sinkNS.Name); err != nil {
		t.Fatalf("create sink veth: %v: %s", err, out)
	}
	sinkNS.Sysctl(t, "net.ipv6.conf.sinkpeer.disable_ipv6", "1")
	sinkNS.MustExec(t, "ip", "link", "set", "sinkpeer", "mtu", "65535", "up")
	r.MustExec(t, "ip", "link", "set", "sink", "arp", "off")
	r.Sysctl(t, "net.ipv6.conf.rin.accept_ra", "0")
	r.Sysctl(t, "net.ipv6.conf.rin.accept_dad", "0")
	r.MustExec(t, "ip", "link", "set", "rin", "mtu", "65535", "up")
	r.MustExec(t, "ip", "link", "set", "sink", "mtu", "65535", "up")
	r.MustExec(t, "ip", "route", "add", "default", "dev", "sink")
	r.MustExec(t, "ip", "-6", "route", "add", "default", "dev", "sink")
	r.Nft(t, routerRuleset())
	for _, s := range oracleSysctls {
		r.Sysctl(t, s[0], s[1])
	}

	var ifindex int
	err := l.inj.Do(func() error {
		ifi, err := net.InterfaceByName("src0")
		if err != nil {
			return fmt.Errorf("find src0: %w", err)
		}
		ifindex = ifi.Index
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
			_ = unix.Close(fd)
			return fmt.Errorf("bind packet socket: %w", err)
		}
		l.fd = fd
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(l.fd) })
	err = r.Do(func() error {
		c, err := ct.Dial(nil)
		if err != nil {
			return fmt.Errorf("conntrack netlink: %w", err)
		}
		l.ct = c
		n, err := dialNetfilter()
		if err != nil {
			_ = c.Close()
			return err
		}
		l.nft = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.ct.Close(); _ = l.nft.Close() })
	return l
}

// kernelStats sums the per-CPU conntrack statistics.
func (l *kernelLab) stats() (flow.TableStats, error) {
	per, err := l.ct.Stats()
	if err != nil {
		return flow.TableStats{}, fmt.Errorf("conntrack stats: %w", err)
	}
	var s flow.TableStats
	for _, c := range per {
		s.Invalid += uint64(c.Invalid)
		s.Error += uint64(c.Error)
		s.Drop += uint64(c.Drop)
		s.EarlyDrop += uint64(c.EarlyDrop)
		s.InsertFailed += uint64(c.InsertFailed)
	}
	return s, nil
}

// kernelResult is one side's verdict on a scenario.
type kernelResult struct {
	lines   []string // describeFlow of every entry, sorted (a multiset)
	invalid uint64
	errors  uint64
	reasons map[string]uint64
	// verdicts counts the packets by ct state at prerouting.
	verdicts flow.Verdicts
	// timeouts holds the remaining timeouts of the entries (and
	// expectations) by their line; expects the describeExpect lines of the
	// pending expectations, sorted. Both are nil for a recorded verdict.
	timeouts map[string][]uint32
	expects  []string
	recorded bool
}

// addFlow adds one entry to r.
func (r *kernelResult) addFlow(f flow.Flow) {
	line := describeFlow(f)
	r.lines = append(r.lines, line)
	if r.timeouts == nil {
		r.timeouts = map[string][]uint32{}
	}
	r.timeouts[line] = append(r.timeouts[line], f.Timeout)
}

// addExpect adds one pending expectation to r.
func (r *kernelResult) addExpect(e flow.Expectation) {
	line := describeExpect(e)
	r.expects = append(r.expects, line)
	if r.timeouts == nil {
		r.timeouts = map[string][]uint32{}
	}
	r.timeouts[line] = append(r.timeouts[line], e.Timeout)
}

// describeExpect renders an expectation in a canonical one-line form
// (without its timeout).
func describeExpect(e flow.Expectation) string {
	return fmt.Sprintf("expect %s %d %s>%s sport=%d dport=%d mask[%s>%s sport=%d dport=%d] master[%d %s>%s sport=%d dport=%d] class=%d flags=%d helper=%q",
		e.Family, e.Proto, e.Tuple.Src, e.Tuple.Dst, e.Tuple.SrcPort, e.Tuple.DstPort,
		e.Mask.Src, e.Mask.Dst, e.Mask.SrcPort, e.Mask.DstPort,
		e.MasterProto, e.Master.Src, e.Master.Dst, e.Master.SrcPort, e.Master.DstPort, e.Class, e.Flags, e.Helper)
}

// send injects frames into the kernel, keeping gaps of at least keepGap (on
// the frames' clock) and sending the others back to back. It returns the
// time each frame was sent. The sending thread is pinned to one CPU so the
// frames reach conntrack in order.
func (l *kernelLab) send(frames []kframe, keepGap time.Duration) ([]time.Time, error) {
	sent := make([]time.Time, len(frames))
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var old unix.CPUSet
		if err := unix.SchedGetaffinity(0, &old); err != nil {
			errc <- fmt.Errorf("get affinity: %w", err)
			return
		}
		var one unix.CPUSet
		for cpu := range 1024 {
			if old.IsSet(cpu) {
				one.Set(cpu)
				break
			}
		}
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			errc <- fmt.Errorf("set affinity: %w", err)
			return
		}
		defer func() { _ = unix.SchedSetaffinity(0, &old) }()
		for i, f := range frames {
			if i > 0 && keepGap > 0 {
				if gap := f.at - frames[i-1].at; gap >= keepGap {
					time.Sleep(gap)
				}
			}
			sent[i] = time.Now()
			if _, err := unix.Write(l.fd, f.data); err != nil {
				errc <- fmt.Errorf("inject frame %d (%d bytes): %w", i, len(f.data), err)
				return
			}
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return sent, nil
}

// runKernel flushes the router's table, injects frames and returns the
// kernel's table and the statistics the frames caused.
func (l *kernelLab) runKernel(frames []kframe, keepGap time.Duration) (kernelResult, []time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ct.Flush(); err != nil {
		return kernelResult{}, nil, fmt.Errorf("flush conntrack: %w", err)
	}
	before, err := l.stats()
	if err != nil {
		return kernelResult{}, nil, err
	}
	// Zero the counters (the router sees no traffic between scenarios;
	// anything it did see would show as a difference).
	if _, err := nftVerdicts(l.nft); err != nil {
		return kernelResult{}, nil, err
	}
	sent, err := l.send(frames, keepGap)
	if err != nil {
		return kernelResult{}, nil, err
	}
	// Injection runs the receive path synchronously (netif_rx from process
	// context); give the softirq a moment anyway.
	time.Sleep(5 * time.Millisecond)
	dumpAt := time.Now()
	flows, err := l.ct.Dump(nil)
	if err != nil {
		return kernelResult{}, nil, fmt.Errorf("dump conntrack: %w", err)
	}
	exps, err := l.ct.DumpExpect()
	if err != nil {
		return kernelResult{}, nil, fmt.Errorf("dump expectations: %w", err)
	}
	after, err := l.stats()
	if err != nil {
		return kernelResult{}, nil, err
	}
	verdicts, err := nftVerdicts(l.nft)
	if err != nil {
		return kernelResult{}, nil, err
	}
	var res kernelResult
	for i := range flows {
		res.addFlow(conntracktest.FromLib(&flows[i]))
	}
	for i := range exps {
		res.addExpect(conntracktest.ExpectFromLib(&exps[i]))
	}
	sort.Strings(res.lines)
	sort.Strings(res.expects)
	res.invalid = after.Invalid - before.Invalid
	res.errors = after.Error - before.Error
	res.verdicts = verdicts
	// The tracker is asked as of the dump (the kernel's timeouts ran on
	// while it was taken).
	sent = append(sent, dumpAt)
	return res, sent, nil
}

// runTracker feeds frames sent at the given times to a fresh tracker (with
// the router model, as the harness is a router) and returns its table as of
// the time after the last frame's (the kernel's dump time, see runKernel;
// without it, right after the last frame).
func runTracker(frames []kframe, sent []time.Time) kernelResult {
	return runTrackerConfig(routerConfig(), frames, sent)
}

// runTrackerConfig is runTracker with a tracker configured by cfg.
func runTrackerConfig(cfg Config, frames []kframe, sent []time.Time) kernelResult {
	dec := decode.New(decode.Config{})
	tr := New(cfg)
	var dg decode.Datagram
	var last time.Time
	for i, f := range frames {
		last = sent[i]
		if dec.Decode(last, decode.LinkEthernet, f.data, len(f.data), &dg) != decode.StatusDatagram {
			continue
		}
		tr.Handle(last, &Packet{Data: dg.Data, Length: dg.Length, Fragment: dg.Fragment})
		tr.AppendEvents(nil)
	}
	if len(sent) > len(frames) {
		last = sent[len(frames)]
	}
	var res kernelResult
	for _, f := range tr.AppendFlows(nil, last) {
		res.addFlow(f)
	}
	for _, e := range tr.AppendExpectations(nil, last) {
		res.addExpect(e)
	}
	sort.Strings(res.lines)
	sort.Strings(res.expects)
	st := tr.Stats()
	res.invalid, res.errors, res.reasons = st.Invalid, st.Error, st.InvalidReasons
	res.verdicts = st.Verdicts
	return res
}

// diffResults describes how the tracker's result differs from the kernel's
// ("" when they agree): the tables and expectations as multisets (an entry
// the tracker holds twice differs), the invalid and error statistics, the
// packets by verdict and every entry's remaining timeout (within a second:
// whole seconds, floored on both sides, the kernel's read a little later).
func diffResults(kern, ours kernelResult) string {
	var b strings.Builder
	b.WriteString(diffLines("entry", kern.lines, ours.lines))
	if !kern.recorded && !ours.recorded {
		b.WriteString(diffLines("expectation", kern.expects, ours.expects))
		b.WriteString(diffTimeouts(kern.timeouts, ours.timeouts))
	}
	b.WriteString(diffVerdicts(kern.verdicts, ours.verdicts))
	if kern.invalid != ours.invalid {
		fmt.Fprintf(&b, "  invalid: kernel %d, tracker %d (reasons %v)\n", kern.invalid, ours.invalid, ours.reasons)
	}
	if kern.errors != ours.errors {
		fmt.Fprintf(&b, "  error: kernel %d, tracker %d (reasons %v)\n", kern.errors, ours.errors, ours.reasons)
	}
	return b.String()
}

// compare runs frames through the kernel and the tracker and returns the
// differences ("" when none) and the kernel's result.
func (l *kernelLab) compare(frames []kframe, keepGap time.Duration) (string, kernelResult, error) {
	kern, sent, err := l.runKernel(frames, keepGap)
	if err != nil {
		return "", kern, err
	}
	return diffResults(kern, runTracker(frames, sent)), kern, nil
}

// readFrames reads an Ethernet pcap into frames (offsets from the first).
func readFrames(tb testing.TB, path string) []kframe {
	tb.Helper()
	var out []kframe
	var first time.Time
	readPcap(tb, path, func(data []byte, ci gopacket.CaptureInfo) {
		if first.IsZero() {
			first = ci.Timestamp
		}
		out = append(out, kframe{at: ci.Timestamp.Sub(first), data: slices.Clone(data)})
	})
	return out
}

// kernelJSONLines returns the recorded oracle's table of capture name in
// describeFlow form, and its invalid and error statistics.
func kernelJSONLines(t *testing.T, name string) kernelResult {
	t.Helper()
	var want []oracleFlow
	readJSON(t, oracleDir+"/"+name+".kernel.json", &want)
	var ws oracleStats
	readJSON(t, oracleDir+"/"+name+".kernel.stats.json", &ws)
	var res kernelResult
	for _, f := range want {
		res.lines = append(res.lines, describeOracle(f))
	}
	sort.Strings(res.lines)
	res.invalid, res.errors = ws.Stats["invalid"], ws.Stats["error"]
	res.verdicts = ws.verdicts()
	res.recorded = true
	return res
}

// TestKernelDiffOracle validates the harness: replaying the 16 recorded
// captures into this kernel reproduces their recorded verdict, and the
// tracker agrees with the kernel. Gaps are compressed (the tracker gets the
// real send times); CONNTOP_KERNELDIFF_TIMING=1 keeps gaps of a second or
// more, as recorded.
func TestKernelDiffOracle(t *testing.T) {
	lab := newKernelLab(t)
	keep := time.Duration(0)
	if os.Getenv("CONNTOP_KERNELDIFF_TIMING") == "1" {
		keep = time.Second
	}
	names, _ := filepath.Glob(oracleDir + "/*.replay.pcap")
	if len(names) == 0 {
		t.Fatalf("no oracle captures in %s", oracleDir)
	}
	for _, path := range names {
		name := strings.TrimSuffix(path[strings.LastIndexByte(path, '/')+1:], ".replay.pcap")
		t.Run(name, func(t *testing.T) {
			frames := readFrames(t, path)
			diff, kern, err := lab.compare(frames, keep)
			if err != nil {
				t.Fatal(err)
			}
			if diff != "" {
				t.Errorf("tracker differs from the kernel:\n%s", diff)
			}
			if d := diffResults(kernelJSONLines(t, name), kern); d != "" {
				if keep == 0 && timingDependent[name] {
					t.Logf("with compressed gaps the kernel differs from the recording (expected for this capture):\n%s", d)
				} else {
					t.Errorf("harness differs from the recorded kernel (\"tracker\" = this kernel now):\n%s", d)
				}
			}
		})
	}
}

// timingDependent lists the recorded captures whose verdict depends on
// gaps longer than a second (timeouts run out during the recording).
var timingDependent = map[string]bool{
	// DHCP relay over 64 s: two ICMP echoes time out (30 s), and the UDP
	// flows become ASSURED because their streams last longer than 2 s.
	"tcpdump-dhcp-rfc4388": true,
}
