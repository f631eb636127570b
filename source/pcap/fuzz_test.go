package pcap

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/conntop/conntop/internal/decode"
	"github.com/conntop/conntop/internal/wiretrack"
)

// FuzzReplay feeds arbitrary bytes as a capture file: nothing panics, and an
// error after the file header names the packet it stopped at.
func FuzzReplay(f *testing.F) {
	for _, name := range []string{"zeek-tcp-rst-inject-rae", "zeek-icmp-ping", "tcpdump-dns_udp"} {
		b, err := os.ReadFile(filepath.Join(oracleDir, name+".replay.pcap"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Replay(context.Background(), bytes.NewReader(data), "fuzz", Config{})
		if err != nil && res.Packets > 0 && !strings.Contains(err.Error(), "packet "+strconv.Itoa(res.Packets+1)) {
			t.Fatalf("error after %d packets does not name packet %d: %v", res.Packets, res.Packets+1, err)
		}
		if res.Stats.Count != uint64(len(res.Flows)) {
			t.Fatalf("stats count %d, %d flows", res.Stats.Count, len(res.Flows))
		}
	})
}

// FuzzFrames feeds arbitrary bytes as frames of every link type through
// decode and the tracker.
func FuzzFrames(f *testing.F) {
	recs, _ := readRecords(f, ftpReplay)
	for i, r := range recs[:8] {
		f.Add(uint8(i), r.data)
	}
	links := []decode.LinkType{decode.LinkEthernet, decode.LinkRaw, decode.LinkLinuxSLL, decode.LinkLinuxSLL2, decode.LinkNull}
	f.Fuzz(func(t *testing.T, link uint8, frame []byte) {
		pl := wiretrack.New(wiretrack.Config{})
		now := time.Unix(1e9, 0)
		lt := links[int(link)%len(links)]
		// The frame twice, and its IP part as a raw datagram.
		pl.Frame(now, lt, frame, len(frame), false)
		pl.Frame(now.Add(time.Second), lt, frame, len(frame)+3, link&1 == 0)
		if len(frame) > 14 {
			pl.Frame(now.Add(2*time.Second), decode.LinkRaw, frame[14:], len(frame)-14, false)
		}
		pl.Finish(now.Add(time.Hour))
		_ = pl.AppendFlows(nil, now.Add(time.Hour))
	})
}

// BenchmarkReplay measures decode + track per packet over the oracle
// captures preloaded in memory (every cycle shifted by an hour, so flows
// expire and are created again as on a busy link).
func BenchmarkReplay(b *testing.B) {
	b.Run("checksums-verified", func(b *testing.B) { benchReplay(b, false) })
	// As on a live link whose NIC/veth vouches for checksums.
	b.Run("checksums-offloaded", func(b *testing.B) { benchReplay(b, true) })
}

func benchReplay(b *testing.B, checksumOK bool) {
	paths, _ := filepath.Glob(filepath.Join(oracleDir, "*.replay.pcap"))
	var frames []record
	for _, p := range paths {
		recs, lt := readRecords(b, p)
		if lt != layers.LinkTypeEthernet {
			b.Fatalf("%s: link type %v", p, lt)
		}
		frames = append(frames, recs...)
	}
	base := frames[0].ci.Timestamp
	pl := wiretrack.New(wiretrack.Config{})
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU(b)
	b.ResetTimer()
	shift := time.Duration(0)
	for i := 0; i < b.N; i++ {
		j := i % len(frames)
		if j == 0 && i > 0 {
			shift += time.Hour
		}
		r := &frames[j]
		// Keep the clock monotonic across captures of different dates.
		ts := base.Add(shift + time.Duration(j)*time.Millisecond)
		pl.Frame(ts, decode.LinkEthernet, r.data, r.ci.Length, checksumOK)
		pl.Reset()
	}
	b.StopTimer()
	cpu := threadCPU(b) - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
	// The thread's CPU time, which the other processes on a shared machine
	// do not inflate as they do ns/op.
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/float64(cpu)*1e3, "Mpps-cpu")
	}
}

// threadCPU is the calling thread's user+system CPU time in nanoseconds.
func threadCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
