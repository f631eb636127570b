//go:build unix

package export

import (
	"io"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// benchTable returns n flows shaped like a busy table: mostly IPv4 TCP with
// counters, some UDP, ICMP and IPv6.
func benchTable(n int) []flow.Flow {
	out := make([]flow.Flow, n)
	for i := range out {
		var src, dst netip.Addr
		if i%8 == 7 {
			src = netip.AddrFrom16([16]byte{0: 0xfd, 1: 0, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
			dst = netip.MustParseAddr("fd00::1")
		} else {
			src = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			dst = netip.AddrFrom4([4]byte{192, 168, 1, 1})
		}
		f := &out[i]
		f.ID = uint32(i)
		f.Family = flow.FamilyIPv4
		if src.Is6() {
			f.Family = flow.FamilyIPv6
		}
		switch i % 10 {
		case 0, 1:
			f.Proto = flow.ProtoUDP
		case 2:
			f.Proto = flow.ProtoICMP
			if src.Is6() {
				f.Proto = flow.ProtoICMPv6
			}
		default:
			f.Proto = flow.ProtoTCP
			f.TCPState = flow.TCPEstablished
		}
		f.Orig = flow.Tuple{Src: src, Dst: dst, SrcPort: uint16(1024 + i%60000), DstPort: 443, Type: 8, ID: uint16(i)}
		f.Reply = f.Orig.Reverse(f.Proto)
		f.Status = stAssured
		f.Timeout = uint32(i % 432000)
		f.HasCounters = true
		f.Counters = flow.Counters{OrigPackets: uint64(i), OrigBytes: uint64(i) * 1400, ReplyPackets: uint64(i / 2), ReplyBytes: uint64(i) * 60}
	}
	return out
}

// countWriter counts bytes and discards them.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

const benchFlows = 262144

func benchWrite(b *testing.B, write func(io.Writer, []flow.Flow) error) {
	flows := benchTable(benchFlows)
	var cw countWriter
	if err := write(&cw, flows); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(cw.n)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for b.Loop() {
		if err := write(io.Discard, flows); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchFlows, "ns/flow")
	// On a shared machine wall time overstates the cost; the process's CPU
	// time (user+system, all threads, GC included) does not.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/benchFlows, "cpu-ns/flow")
}

// cpuTime returns the CPU time used by the process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWriteJSON writes a 262,144-flow snapshot document.
func BenchmarkWriteJSON(b *testing.B) {
	benchWrite(b, func(w io.Writer, fs []flow.Flow) error {
		return WriteJSON(w, &Snapshot{Time: time.Unix(1, 0), Source: "conntrack", Flows: fs})
	})
}

// BenchmarkWriteText writes 262,144 `conntrack -L` lines.
func BenchmarkWriteText(b *testing.B) { benchWrite(b, WriteText) }

// BenchmarkWriteCSV writes 262,144 CSV rows.
func BenchmarkWriteCSV(b *testing.B) { benchWrite(b, WriteCSV) }

// BenchmarkEventWriter writes one event per iteration.
func BenchmarkEventWriter(b *testing.B) {
	flows := benchTable(1024)
	for _, f := range []Format{FormatNDJSON, FormatText} {
		b.Run(f.String(), func(b *testing.B) {
			ew := NewEventWriter(io.Discard, f)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ev := flow.Event{Type: flow.EventUpdate, Time: time.Unix(1, 0), Flow: flows[i%len(flows)]}
				if err := ew.Write(ev); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
