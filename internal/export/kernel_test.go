//go:build linux

package export

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// nsCounter makes namespace names unique within the test process.
var nsCounter atomic.Int32

// run runs a command with a deadline and returns its stdout.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%.2000s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// newNetns creates a network namespace that is deleted when the test ends.
func newNetns(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	for _, tool := range []string{"ip", "nft", "conntrack", "socat"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed", tool)
			}
			t.Skipf("skipped: %s is not installed", tool)
		}
	}
	ns := fmt.Sprintf("ct-export-%d-%d", os.Getpid(), nsCounter.Add(1))
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if err := exec.Command("ip", "netns", "del", ns).Run(); err != nil {
			t.Errorf("delete netns %s: %v", ns, err)
		}
	})
	return ns
}

// labScript sets up the namespace (two local addresses per family,
// accounting, conntrack hooks, the ftp helper on TCP port 21), makes real
// TCP and UDP traffic, and inserts entries of every other kind with
// `conntrack -I`. Every command is bounded by timeout(1).
const labScript = `set -e
ip link set lo up
ip link add v0 type veth peer name v1
ip link set v0 up
ip link set v1 up
ip addr add 10.99.0.1/24 dev v0
ip addr add 10.99.0.2/24 dev v1
ip addr add fd00:99::1/64 dev v0 nodad
ip addr add fd00:99::2/64 dev v1 nodad
sysctl -qw net.netfilter.nf_conntrack_acct=1
nft -f - <<'EOF'
table inet exporttest {
  ct helper ftp-std { type "ftp" protocol tcp; }
  chain out {
    type filter hook output priority 0;
    ct state new counter
    tcp dport 21 ct helper set "ftp-std"
  }
}
EOF
timeout 5 socat -T2 TCP-LISTEN:8080,bind=10.99.0.1,reuseaddr OPEN:/dev/null,creat &
timeout 5 socat -T2 TCP-LISTEN:21,bind=10.99.0.1,reuseaddr OPEN:/dev/null,creat &
timeout 5 socat -T2 TCP6-LISTEN:8443,bind=[fd00:99::1],reuseaddr OPEN:/dev/null,creat &
sleep 0.5
echo hello | timeout 3 socat -T1 - TCP:10.99.0.1:8080
echo hello | timeout 3 socat -T1 - TCP:10.99.0.1:21
echo hello | timeout 3 socat -T1 - TCP6:[fd00:99::1]:8443
echo hello | timeout 3 socat -T1 - UDP:10.99.0.2:9999,sourceport=5353 || true
wait
ct() { timeout 5 conntrack -I "$@" >/dev/null 2>&1; }
ct -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 47494 --dport 8080 --state TIME_WAIT -t 117 -u SEEN_REPLY,ASSURED --mark 5
ct -p udp -s 10.0.0.1 -d 10.0.0.2 --sport 5353 --dport 53 -t 300 --zone 7
ct -p icmp -s 10.0.0.1 -d 10.0.0.2 --icmp-type 8 --icmp-code 0 --icmp-id 1234 -t 300
ct -p icmpv6 -s fd00::1 -d fd00::2 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 77 -t 300 -u SEEN_REPLY
ct -p tcp -s fd00::1 -d fd00::2 --sport 1 --dport 2 --state ESTABLISHED -t 300 -m 4294967295
ct -p udp -s ::102:304 -d fd00::2 --sport 1 --dport 2 -t 300
ct -p udp -s ::ffff:10.1.2.3 -d ::ffff:10.1.2.4 --sport 3 --dport 4 -t 300
ct -p 99 -s 10.0.0.1 -d 10.0.0.4 -t 300
`

// TestTextMatchesConntrack renders real kernel entries, read from
// /proc/net/nf_conntrack (and the helper from `conntrack -L -o xml`), and
// compares the lines with what `conntrack -L` prints for the same table.
func TestTextMatchesConntrack(t *testing.T) {
	ns := newNetns(t)
	run(t, "ip", "netns", "exec", ns, "sh", "-c", labScript)

	var (
		want, got map[string]uint32
		flows     []flow.Flow
	)
	// TCP entries may still move (FIN_WAIT → TIME_WAIT) right after the
	// traffic: read until two `conntrack -L` listings agree around the
	// /proc read.
	for attempt := 0; ; attempt++ {
		before := run(t, "ip", "netns", "exec", ns, "conntrack", "-L")
		flows = parseProc(t, run(t, "ip", "netns", "exec", ns, "cat", "/proc/net/nf_conntrack"))
		addHelpers(t, flows, run(t, "ip", "netns", "exec", ns, "conntrack", "-L", "-o", "xml"))
		after := run(t, "ip", "netns", "exec", ns, "conntrack", "-L")
		want = normalize(t, after)
		if mapsEqualKeys(normalize(t, before), want) {
			break
		}
		if attempt == 10 {
			t.Fatalf("the table did not settle:\n%s\n%s", before, after)
		}
		time.Sleep(300 * time.Millisecond)
	}
	var rendered strings.Builder
	for i := range flows {
		rendered.WriteString(TextLine(&flows[i]) + "\n")
	}
	got = normalize(t, rendered.String())

	if len(want) < 12 {
		t.Errorf("conntrack -L listed only %d entries, the lab makes 12:\n%v", len(want), want)
	}
	for line, wt := range want {
		gt, ok := got[line]
		if !ok {
			t.Errorf("conntrack -L has a line we do not render:\n  %s", line)
			continue
		}
		if d := int64(wt) - int64(gt); d < -2 || d > 2 {
			t.Errorf("timeout %d, conntrack -L says %d:\n  %s", gt, wt, line)
		}
	}
	for line := range got {
		if _, ok := want[line]; !ok {
			t.Errorf("we render a line conntrack -L does not print:\n  %s", line)
		}
	}
	if t.Failed() {
		t.Logf("rendered:\n%s", rendered.String())
	}
}

var timeoutField = regexp.MustCompile(`^(\S+ +\d+ )(\d+) `)

// normalize maps each line of a listing, with its timeout replaced by T, to
// that timeout. (Entries have distinct tuples, so lines are distinct.)
func normalize(t *testing.T, listing string) map[string]uint32 {
	t.Helper()
	out := map[string]uint32{}
	for _, line := range strings.Split(strings.TrimSpace(listing), "\n") {
		if line == "" {
			continue
		}
		m := timeoutField.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("line without a timeout: %q", line)
		}
		v, _ := strconv.ParseUint(m[2], 10, 32)
		key := m[1] + "T " + line[len(m[0]):]
		if _, dup := out[key]; dup {
			t.Fatalf("two entries print the same line %q", key)
		}
		out[key] = uint32(v)
	}
	return out
}

func mapsEqualKeys(a, b map[string]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// parseProc parses /proc/net/nf_conntrack (nf_conntrack_standalone.c
// ct_seq_show) into flows.
func parseProc(t *testing.T, text string) []flow.Flow {
	t.Helper()
	var out []flow.Flow
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		fs := strings.Fields(line)
		if len(fs) < 6 {
			t.Fatalf("short /proc line %q", line)
		}
		var f flow.Flow
		fam, _ := strconv.Atoi(fs[1])
		proto, _ := strconv.Atoi(fs[3])
		f.Family, f.Proto = flow.Family(fam), uint8(proto)
		rest := fs[4:]
		if !strings.Contains(line, "[OFFLOAD]") && !strings.Contains(line, "[HW_OFFLOAD]") {
			v, err := strconv.ParseUint(rest[0], 10, 32)
			if err != nil {
				t.Fatalf("timeout in %q: %v", line, err)
			}
			f.Timeout, rest = uint32(v), rest[1:]
		}
		if st, ok := flow.ParseTCPState(rest[0]); ok && f.Proto == flow.ProtoTCP {
			f.TCPState, rest = st, rest[1:]
		} else if !strings.Contains(rest[0], "=") { // SCTP/DCCP state: not modelled
			rest = rest[1:]
		}
		f.Status = flow.StatusConfirmed | flow.StatusSeenReply
		tup, dir := &f.Orig, 0
		for _, tok := range rest {
			switch tok {
			case "[UNREPLIED]":
				f.Status &^= flow.StatusSeenReply
				continue
			case "[ASSURED]":
				f.Status |= flow.StatusAssured
				continue
			case "[OFFLOAD]":
				f.Status |= flow.StatusOffload
				continue
			case "[HW_OFFLOAD]":
				f.Status |= flow.StatusHWOffload
				continue
			}
			k, v, ok := strings.Cut(tok, "=")
			if !ok {
				t.Fatalf("token %q in %q", tok, line)
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			switch k {
			case "src":
				if dir++; dir == 2 {
					tup = &f.Reply
				}
				tup.Src = netip.MustParseAddr(v)
			case "dst":
				tup.Dst = netip.MustParseAddr(v)
			case "sport":
				tup.SrcPort = uint16(n)
			case "dport":
				tup.DstPort = uint16(n)
			case "type":
				tup.Type = uint8(n)
			case "code":
				tup.Code = uint8(n)
			case "id":
				tup.ID = uint16(n)
			case "packets", "bytes":
				f.HasCounters = true
				switch {
				case k == "packets" && dir == 1:
					f.Counters.OrigPackets = n
				case k == "bytes" && dir == 1:
					f.Counters.OrigBytes = n
				case k == "packets":
					f.Counters.ReplyPackets = n
				default:
					f.Counters.ReplyBytes = n
				}
			case "mark":
				f.Mark = uint32(n)
			case "zone":
				f.Zone = uint16(n)
			case "use", "secctx", "delta-time":
			default:
				t.Fatalf("unknown field %q in %q", k, line)
			}
		}
		out = append(out, f)
	}
	return out
}

// xmlFlow is the part of `conntrack -L -o xml` the test reads.
type xmlFlow struct {
	Meta []struct {
		Direction string `xml:"direction,attr"`
		Src       string `xml:"layer3>src"`
		Dst       string `xml:"layer3>dst"`
		Layer4    struct {
			Proto int    `xml:"protonum,attr"`
			Sport uint16 `xml:"sport"`
			Dport uint16 `xml:"dport"`
		} `xml:"layer4"`
		Zone uint16 `xml:"zone"`
	} `xml:"meta"`
	Helper string `xml:"helper"`
}

// addHelpers sets the helper of flows from the XML listing, which /proc
// does not show.
func addHelpers(t *testing.T, flows []flow.Flow, doc string) {
	t.Helper()
	var list struct {
		Flows []xmlFlow `xml:"flow"`
	}
	if err := xml.Unmarshal([]byte(doc), &list); err != nil {
		t.Fatalf("parse conntrack xml: %v", err)
	}
	found := 0
	for _, x := range list.Flows {
		if x.Helper == "" {
			continue
		}
		var zone uint16
		for _, m := range x.Meta {
			if m.Direction == "independent" {
				zone = m.Zone
			}
		}
		for _, m := range x.Meta {
			if m.Direction != "original" {
				continue
			}
			i := slices.IndexFunc(flows, func(f flow.Flow) bool {
				return int(f.Proto) == m.Layer4.Proto && f.Zone == zone && f.Orig.Src.String() == m.Src &&
					f.Orig.Dst.String() == m.Dst && f.Orig.SrcPort == m.Layer4.Sport && f.Orig.DstPort == m.Layer4.Dport
			})
			if i < 0 {
				t.Fatalf("xml flow %+v not in /proc", x)
			}
			flows[i].Helper = x.Helper
			found++
		}
	}
	if found == 0 {
		t.Errorf("no entry has a helper; the lab attaches ftp to port 21")
	}
}
