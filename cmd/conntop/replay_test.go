package main

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conntop/conntop/internal/csum"
)

// writeUDPCapture writes a classic Ethernet pcap of IPv4 UDP datagrams (no
// UDP checksum), one per destination, TTL 64, 1 ms apart.
func writeUDPCapture(t *testing.T, dsts ...string) string {
	t.Helper()
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(b[4:], 2)
	binary.LittleEndian.PutUint16(b[6:], 4)
	binary.LittleEndian.PutUint32(b[16:], 65535)
	binary.LittleEndian.PutUint32(b[20:], 1) // Ethernet
	for i, dst := range dsts {
		f := make([]byte, 14+28)
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip := f[14:]
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(ip[2:], 28)
		copy(ip[12:], []byte{10, 1, 0, 1})
		d := netip.MustParseAddr(dst).As4()
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], csum.Checksum(ip[:20]))
		binary.BigEndian.PutUint16(ip[20:], 5353)
		binary.BigEndian.PutUint16(ip[22:], 5353)
		binary.BigEndian.PutUint16(ip[24:], 8)
		rec := make([]byte, 16)
		binary.LittleEndian.PutUint32(rec[0:], 1700000000)
		binary.LittleEndian.PutUint32(rec[4:], uint32(i)*1000)
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(f)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(f)))
		b = append(append(b, rec...), f...)
	}
	path := filepath.Join(t.TempDir(), "udp.pcap")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSnapshotReadRouterModel: --read keeps what a conntrack router in the
// path would (no entry for mDNS it has not joined); --replay-host tracks
// every packet as the capturing host would.
func TestSnapshotReadRouterModel(t *testing.T) {
	path := writeUDPCapture(t, "224.0.0.251", "10.2.0.2")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"dst=10.2.0.2"}},
		{[]string{"--replay-host"}, []string{"dst=224.0.0.251", "dst=10.2.0.2"}},
	} {
		args := append([]string{"snapshot", "--read", path, "--format", "text"}, tc.args...)
		code, out, errOut := runCLI(t, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(tc.want) {
			t.Fatalf("%v: %d entries, want %d:\n%s", args, len(lines), len(tc.want), out)
		}
		for i, w := range tc.want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("%v: entry %d %q lacks %q", args, i, lines[i], w)
			}
		}
	}
}
