package tracker

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/conntop/conntop/internal/decode"
	"github.com/conntop/conntop/internal/flow"
)

type frame struct {
	at   time.Duration // since the first packet of its capture
	data []byte
	wire int
}

// loadOracleFrames reads every oracle capture into memory.
func loadOracleFrames(b *testing.B) []frame {
	b.Helper()
	names, _ := filepath.Glob(filepath.Join(oracleDir, "*.replay.pcap"))
	if len(names) == 0 {
		b.Fatal("no oracle captures")
	}
	var out []frame
	var base time.Duration
	for _, n := range names {
		fh, err := os.Open(n)
		if err != nil {
			b.Fatal(err)
		}
		r, err := pcapgo.NewReader(fh)
		if err != nil {
			b.Fatal(err)
		}
		var first, last time.Time
		for {
			data, ci, err := r.ReadPacketData()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if first.IsZero() {
				first = ci.Timestamp
			}
			last = ci.Timestamp
			out = append(out, frame{at: base + ci.Timestamp.Sub(first), data: data, wire: ci.Length})
		}
		fh.Close()
		base += last.Sub(first) + time.Second
	}
	return out
}

// BenchmarkDecodeTrack decodes and tracks the oracle captures' packets
// (preloaded), round after round with the clock moving on; one op is one
// packet. Events are drained every 64 packets as a source would. The router
// model is on, as in a replay (source/pcap).
func BenchmarkDecodeTrack(b *testing.B) {
	frames := loadOracleFrames(b)
	span := frames[len(frames)-1].at + time.Second
	dec := decode.New(decode.Config{})
	tr := New(routerConfig())
	var dg decode.Datagram
	var p Packet
	evs := make([]flow.Event, 0, 1024)
	b.ReportAllocs()
	defer reportCPU(b)()
	b.ResetTimer()
	round := time.Duration(0)
	for i := 0; i < b.N; i++ {
		k := i % len(frames)
		if k == 0 && i > 0 {
			round += span
		}
		f := &frames[k]
		now := t0.Add(round + f.at)
		if dec.Decode(now, decode.LinkEthernet, f.data, f.wire, &dg) == decode.StatusDatagram {
			p = Packet{Data: dg.Data, Length: dg.Length, IPHeaderOK: true}
			tr.Handle(now, &p)
		}
		if i&63 == 63 {
			evs = tr.AppendEvents(evs[:0])
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
}

// reportCPU locks the benchmark to its thread and reports the thread's CPU
// time per operation ("cpu-ns/op") and the packet rate that CPU time
// allows ("Mpps-cpu"). Unlike ns/op they do not grow when other processes
// share the machine. Use: defer reportCPU(b)().
func reportCPU(b *testing.B) func() {
	runtime.LockOSThread()
	start := threadCPU(b)
	return func() {
		cpu := threadCPU(b) - start
		runtime.UnlockOSThread()
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		if cpu > 0 {
			b.ReportMetric(float64(b.N)/float64(cpu)*1e3, "Mpps-cpu")
		}
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

// BenchmarkEstablished tracks the packets of one established TCP flow in
// both directions: the steady state of a busy connection.
func BenchmarkEstablished(b *testing.B) {
	tr := New(DefaultConfig())
	for _, s := range handshake {
		tr.Handle(t0.Add(s.at), &Packet{Data: s.data})
	}
	tr.AppendEvents(nil)
	up := c2s(1001, 5001, fACK, "")
	down := s2c(5001, 1001, fACK, "")
	pu, pd := Packet{Data: up}, Packet{Data: down}
	now := t0.Add(time.Second)
	b.ReportAllocs()
	defer reportCPU(b)()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i&1 == 0 {
			tr.Handle(now, &pu)
		} else {
			tr.Handle(now, &pd)
		}
	}
}
